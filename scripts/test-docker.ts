/**
 * `npm run test:docker`: builds Warden's image and checks it the way an operator would run it.
 * Not part of `npm test` (it needs a Docker daemon, root and minutes).
 *
 *  1. `compose.yaml` validates (`docker-compose config -q`, with .env.example for the secrets).
 *  2. The image builds. Its base is NODE_IMAGE (default node:<NODE_MAJOR>-slim, NODE_MAJOR
 *     default 26); when that cannot be pulled, scripts/docker-base.sh makes a local one
 *     (warden-node-base:<major>) and the build uses it.
 *  3. The image runs as uid 10001, has a HEALTHCHECK, a volume on /app/data and no dev packages.
 *  4. `docker run IMAGE gateway` (host network, a free loopback port, a named volume) becomes
 *     ready and healthy; the eight demo scenarios decide as expected; `audit verify` passes.
 *  5. After `docker restart` the audit log is still there (same count, same head), the chain
 *     verifies from a second container on the same volume, and new calls extend it.
 *  6. `agents` and `dashboard` containers become healthy against that gateway; `migrate` applies
 *     the PostgreSQL migrations (DATABASE_URL, default the local test server, a fresh schema).
 *  7. compose.yaml comes up (with docker/local/compose.local.yaml: postgres, redis and haproxy
 *     built from Debian packages, as those images cannot be pulled here) on free loopback ports:
 *     every service healthy, `migrate` exited 0, the demo scenarios pass through the balancer,
 *     both gateways decided calls, the dashboard and agent API reach the gateways through it,
 *     the shared chain verifies, and calls still pass with gateway-1 stopped.
 *
 * Every container, volume, schema and the compose project are removed at the end, pass or fail.
 *   WARDEN_TEST_IMAGE  tag to build (default warden:test)
 *   NODE_IMAGE         base image (skips the pull/local-base choice)
 *   NODE_MAJOR         Node major for the default base (26)
 *   DATABASE_URL       PostgreSQL for the migrate check (postgres://postgres@127.0.0.1:5432/test)
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const IMAGE = process.env.WARDEN_TEST_IMAGE ?? 'warden:test'
const MAJOR = process.env.NODE_MAJOR ?? '26'
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const RUN = randomBytes(4).toString('hex')
const VOLUME = `warden-test-${RUN}`
const containers: string[] = []
const results: { check: string; ok: boolean; detail: string }[] = []

function docker(args: string[], opts: { allowFail?: boolean; quiet?: boolean } = {}): string {
  const r = spawnSync('docker', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0 && !opts.allowFail)
    throw new Error(
      `docker ${args.slice(0, 3).join(' ')} failed (${r.status}): ${r.stderr.trim().slice(-800)}`,
    )
  return r.stdout.trim()
}

function record(check: string, ok: boolean, detail = ''): void {
  results.push({ check, ok, detail })
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${check}${detail ? `  (${detail})` : ''}`)
  if (!ok) throw new Error(`${check}: ${detail}`)
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitFor(what: string, test: () => Promise<boolean>, seconds = 60): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await test().catch(() => false)) return (Date.now() - start) / 1000
    if (Date.now() - start > seconds * 1000) throw new Error(`${what}: not within ${seconds} s`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

const ok200 = (url: string) => async () => (await fetch(url)).ok
const healthy = (name: string) => async () =>
  docker(['inspect', '--format', '{{.State.Health.Status}}', name]) === 'healthy'

function runContainer(name: string, env: Record<string, string>, args: string[]): string {
  const full = `warden-test-${RUN}-${name}`
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`])
  docker([
    'run',
    '-d',
    '--name',
    full,
    '--network',
    'host',
    '-v',
    `${VOLUME}:/app/data`,
    ...envArgs,
    IMAGE,
    ...args,
  ])
  containers.push(full)
  return full
}

/** `warden audit verify --json` in a new container on the test volume. */
function verifyFromVolume(): { ok: boolean; checked: number; head: string } {
  const out = docker(
    [
      'run',
      '--rm',
      '--network',
      'host',
      '-v',
      `${VOLUME}:/app/data`,
      IMAGE,
      'audit',
      'verify',
      '--json',
    ],
    { allowFail: true },
  )
  return JSON.parse(out) as { ok: boolean; checked: number; head: string }
}

/** One allowed agent call (support-agent opens a ticket); the HTTP status. */
async function execute(base: string, subject: string): Promise<number> {
  const res = await fetch(`${base}/gateway/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer demo-support-agent-key' },
    body: JSON.stringify({
      agent_id: 'support-agent',
      tool: 'create_support_ticket',
      params: { customer_id: '12345', subject },
    }),
  })
  await res.arrayBuffer()
  return res.status
}

async function runScenarios(base: string): Promise<string[]> {
  const { scenarios } = (await (await fetch(`${base}/demo/scenarios`)).json()) as {
    scenarios: { id: string }[]
  }
  const failed: string[] = []
  for (const s of scenarios) {
    const res = await fetch(`${base}/demo/run-scenario/${s.id}`, { method: 'POST' })
    const body = (await res.json()) as { passed?: boolean; decision?: string; expected?: string }
    if (!body.passed) failed.push(`${s.id}: ${body.decision} (expected ${body.expected})`)
  }
  if (scenarios.length < 8) failed.push(`only ${scenarios.length} scenarios`)
  return failed
}

function baseImage(): { image: string; how: string; seconds: number } {
  if (process.env.NODE_IMAGE)
    return { image: process.env.NODE_IMAGE, how: 'NODE_IMAGE', seconds: 0 }
  const official = `node:${MAJOR}-slim`
  const start = Date.now()
  const pulled = spawnSync('docker', ['pull', '-q', official], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (pulled.status === 0)
    return { image: official, how: 'pulled', seconds: (Date.now() - start) / 1000 }
  console.log(`cannot pull ${official}; making a local base (scripts/docker-base.sh ${MAJOR})`)
  execFileSync('sh', ['scripts/docker-base.sh', MAJOR], { cwd: ROOT, stdio: 'inherit' })
  return {
    image: `warden-node-base:${MAJOR}`,
    how: 'local base',
    seconds: (Date.now() - start) / 1000,
  }
}

async function main(): Promise<void> {
  docker(['version', '--format', '{{.Server.Version}}'])

  // 1. compose.yaml
  const compose = spawnSync(
    'docker-compose',
    ['--env-file', '.env.example', '-f', 'compose.yaml', 'config', '-q'],
    { cwd: ROOT, encoding: 'utf8' },
  )
  record(
    'compose.yaml validates (docker-compose config -q)',
    compose.status === 0,
    compose.status === 0 ? '' : `${compose.error?.message ?? ''} ${compose.stderr}`.trim(),
  )

  // 2. build
  const base = baseImage()
  let start = Date.now()
  docker([
    'build',
    '--network',
    'host',
    '--build-arg',
    `NODE_IMAGE=${base.image}`,
    '-t',
    IMAGE,
    '.',
  ])
  const buildSeconds = (Date.now() - start) / 1000
  const size = Number(docker(['image', 'inspect', '--format', '{{.Size}}', IMAGE]))
  record(
    'image builds',
    true,
    `${base.image} (${base.how}, ${base.seconds.toFixed(0)} s); build ${buildSeconds.toFixed(0)} s; ${(size / 1e6).toFixed(0)} MB`,
  )

  // 3. image metadata
  const config = JSON.parse(
    docker(['image', 'inspect', '--format', '{{json .Config}}', IMAGE]),
  ) as {
    User: string
    Healthcheck?: { Test: string[] }
    Volumes?: Record<string, unknown>
    Entrypoint: string[]
    Cmd: string[]
  }
  record('runs as uid 10001', config.User === '10001:10001', config.User)
  record(
    'HEALTHCHECK and VOLUME /app/data',
    Boolean(config.Healthcheck?.Test.length) && '/app/data' in (config.Volumes ?? {}),
    JSON.stringify(config.Healthcheck?.Test),
  )
  record(
    'entry point `warden`, default `gateway`',
    config.Entrypoint.join(' ') === 'node bin/warden.js' && config.Cmd.join(' ') === 'gateway',
  )
  const devDep = docker([
    'run',
    '--rm',
    '--entrypoint',
    'node',
    IMAGE,
    '-e',
    "import('vitest').then(()=>console.log('present'),()=>console.log('absent'))",
  ])
  record('production dependencies only (vitest absent)', devDep === 'absent', devDep)
  const version = docker(['run', '--rm', '--entrypoint', 'node', IMAGE, '--version'])
  record(
    `Node in the image`,
    version.startsWith(`v${MAJOR}.`) || Boolean(process.env.NODE_IMAGE),
    version,
  )

  // 4. gateway: ready, healthy, scenarios, verify
  docker(['volume', 'create', VOLUME])
  const port = await freePort()
  const gw = `http://127.0.0.1:${port}`
  // The image's configuration has the public demo keys: listening on 0.0.0.0 needs the second
  // confirmation (without it the gateway refuses to start; README, "The image").
  const gateway = runContainer('gateway', { PORT: String(port), WARDEN_DEMO_PUBLIC: '1' }, [
    'gateway',
  ])
  start = Date.now()
  const ready = await waitFor('gateway readiness', ok200(`${gw}/health/ready`))
  record('gateway ready (/health/ready)', true, `${ready.toFixed(1)} s`)
  const failed = await runScenarios(gw)
  record('demo scenarios decide as expected', failed.length === 0, failed.join('; ') || '8 of 8')
  const status = await execute(gw, 'Parcel from a container')
  record('a call through /gateway/execute is allowed', status === 200, String(status))
  const inside = JSON.parse(
    docker(['exec', gateway, 'node', 'bin/warden.js', 'audit', 'verify', '--json']),
  ) as { ok: boolean; checked: number; head: string }
  record('audit verify (docker exec)', inside.ok && inside.checked > 0, `${inside.checked} events`)
  const healthySeconds = await waitFor('gateway container healthy', healthy(gateway), 90)
  record(
    'container reports healthy (HEALTHCHECK)',
    true,
    `${((Date.now() - start) / 1000).toFixed(0)} s after start; waited ${healthySeconds.toFixed(0)} s`,
  )

  // 5. restart: the audit survives
  start = Date.now()
  docker(['restart', '--time', '20', gateway])
  await waitFor('gateway readiness after restart', ok200(`${gw}/health/ready`))
  record(
    'restart (SIGTERM, then start) and ready again',
    true,
    `${((Date.now() - start) / 1000).toFixed(1)} s`,
  )
  const after = verifyFromVolume()
  record(
    'audit survived the restart and verifies (second container, same volume)',
    after.ok && after.checked === inside.checked && after.head === inside.head,
    `${after.checked} events, head ${after.head.slice(0, 12)}`,
  )
  const again = await runScenarios(gw)
  const extended = verifyFromVolume()
  record(
    'calls after the restart extend the same chain',
    again.length === 0 && extended.ok && extended.checked > after.checked,
    `${extended.checked} events`,
  )

  // 6. the other commands
  const agentsPort = await freePort()
  const agents = runContainer(
    'agents',
    {
      AGENTS_PORT: String(agentsPort),
      GATEWAY_URL: gw,
      WARDEN_DEMO_PUBLIC: '1',
      AGENT_RUNS_PATH: `data/agent-runs-${RUN}.db`,
    },
    ['agents'],
  )
  const dashPort = await freePort()
  const dashboard = runContainer(
    'dashboard',
    { DASHBOARD_PORT: String(dashPort), GATEWAY_URL: gw, WARDEN_DEMO_PUBLIC: '1' },
    ['dashboard'],
  )
  await waitFor('agent API', ok200(`http://127.0.0.1:${agentsPort}/health`))
  await waitFor('dashboard', ok200(`http://127.0.0.1:${dashPort}/`))
  const proxied = await fetch(`http://127.0.0.1:${dashPort}/api/health/ready`)
  record(
    '`agents` and `dashboard` serve (dashboard proxies the gateway)',
    proxied.ok,
    `/api/health/ready ${proxied.status}`,
  )
  await waitFor(
    'agents and dashboard healthy',
    async () => (await healthy(agents)()) && (await healthy(dashboard)()),
    90,
  )
  record('`agents` and `dashboard` containers report healthy', true)

  const schema = `warden_docker_${RUN}`
  const migrate = spawnSync(
    'docker',
    [
      'run',
      '--rm',
      '--network',
      'host',
      '-e',
      `DATABASE_URL=${DATABASE_URL}`,
      IMAGE,
      'migrate',
      '--schema',
      schema,
      '--json',
    ],
    { encoding: 'utf8' },
  )
  try {
    const applied =
      migrate.status === 0 ? (JSON.parse(migrate.stdout) as { applied: unknown[] }).applied : []
    record(
      '`migrate` applies the PostgreSQL migrations',
      migrate.status === 0 && applied.length > 0,
      migrate.status === 0
        ? `${applied.length} to a fresh schema`
        : migrate.stderr.trim().slice(-300),
    )
  } finally {
    const client = new pg.Client({ connectionString: DATABASE_URL })
    await client.connect().then(
      () => client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => client.end()),
      () => undefined,
    )
  }

  // 7. compose.yaml, brought up
  await composeUp(base.image)
}

const PROJECT = `wardentest${RUN}`
let composeArgs: string[] | undefined

function compose(args: string[], allowFail = false): string {
  if (!composeArgs) throw new Error('compose project not set up')
  const r = spawnSync('docker-compose', [...composeArgs, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  if (r.status !== 0 && !allowFail)
    throw new Error(`docker-compose ${args.join(' ')} failed: ${r.stderr.trim().slice(-800)}`)
  return r.stdout.trim()
}

/** Decisions a gateway container counted (its /metrics), read from inside it. */
function decisionsOf(service: string): number {
  const script =
    "fetch('http://127.0.0.1:8004/metrics').then(r=>r.text()).then(t=>console.log(t.split('\\n').filter(l=>l.startsWith('warden_decisions_total{')).reduce((n,l)=>n+Number(l.split(' ').at(-1)),0)))"
  return Number(compose(['exec', '-T', service, 'node', '-e', script]))
}

async function composeUp(nodeImage: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-compose-'))
  const [gwPort, agentsPort, dashPort] = [await freePort(), await freePort(), await freePort()]
  const envFile = join(dir, '.env')
  writeFileSync(
    envFile,
    [
      `POSTGRES_PASSWORD=${randomBytes(12).toString('hex')}`,
      `REDIS_PASSWORD=${randomBytes(12).toString('hex')}`,
      `WARDEN_IMAGE=${IMAGE}`,
      `NODE_IMAGE=${nodeImage}`,
      'WARDEN_BIND=127.0.0.1',
      `WARDEN_GATEWAY_PORT=${gwPort}`,
      `WARDEN_AGENTS_PORT=${agentsPort}`,
      `WARDEN_DASHBOARD_PORT=${dashPort}`,
    ].join('\n') + '\n',
  )
  composeArgs = [
    '-p',
    PROJECT,
    '--env-file',
    envFile,
    '-f',
    'compose.yaml',
    '-f',
    'docker/local/compose.local.yaml',
  ]
  try {
    let start = Date.now()
    compose(['build', 'postgres', 'redis', 'lb'])
    const built = (Date.now() - start) / 1000
    start = Date.now()
    compose(['up', '-d'])
    const lb = `http://127.0.0.1:${gwPort}`
    const services = ['postgres', 'redis', 'gateway-1', 'gateway-2', 'lb', 'agents', 'dashboard']
    await waitFor(
      'every compose service healthy',
      async () => {
        for (const s of services) {
          const id = compose(['ps', '-q', s])
          if (!id || !(await healthy(id)())) return false
        }
        return true
      },
      180,
    )
    const migrateId = compose(['ps', '-q', 'migrate'])
    const migrated = docker(['inspect', '--format', '{{.State.ExitCode}}', migrateId])
    record(
      'compose up: every service healthy, migrate exited 0',
      migrated === '0',
      `stand-ins built in ${built.toFixed(0)} s; healthy ${((Date.now() - start) / 1000).toFixed(0)} s after up`,
    )
    const failed = await runScenarios(lb)
    // Demo scenario runs are not counted in /metrics; agent calls are.
    for (let i = 0; i < 6; i++) {
      const res = await execute(lb, `compose ${i}`)
      if (res !== 200) failed.push(`execute ${i}: ${res}`)
    }
    const [one, two] = [decisionsOf('gateway-1'), decisionsOf('gateway-2')]
    record(
      'scenarios through the balancer; both gateways decided calls',
      failed.length === 0 && one > 0 && two > 0,
      failed.join('; ') || `gateway-1 ${one}, gateway-2 ${two} decisions`,
    )
    const viaDashboard = await fetch(`http://127.0.0.1:${dashPort}/api/health/ready`)
    const viaAgents = await fetch(`http://127.0.0.1:${agentsPort}/health`)
    record(
      'dashboard and agent API reach the gateways through lb',
      viaDashboard.ok && viaAgents.ok,
      `${viaDashboard.status}, ${viaAgents.status}`,
    )
    const chain = JSON.parse(
      compose(['exec', '-T', 'gateway-2', 'node', 'bin/warden.js', 'audit', 'verify', '--json']),
    ) as { ok: boolean; checked: number }
    record(
      'one chain in PostgreSQL verifies',
      chain.ok && chain.checked >= 8,
      `${chain.checked} events`,
    )
    compose(['stop', 'gateway-1'])
    const stillFailed = await runScenarios(lb)
    record(
      'with gateway-1 stopped, calls pass through gateway-2',
      stillFailed.length === 0,
      stillFailed.join('; '),
    )
  } finally {
    compose(['down', '-v', '--remove-orphans'], true)
    rmSync(dir, { recursive: true, force: true })
  }
}

let failure: Error | undefined
const began = Date.now()
try {
  await main()
} catch (err) {
  failure = err as Error
} finally {
  for (const c of containers) {
    if (failure)
      console.log(
        `--- logs of ${c} ---\n${docker(['logs', '--tail', '30', c], { allowFail: true })}`,
      )
    docker(['rm', '-f', c], { allowFail: true })
  }
  docker(['volume', 'rm', '-f', VOLUME], { allowFail: true })
}
const passed = results.filter((r) => r.ok).length
console.log(
  `\ntest:docker ${failure ? 'FAILED' : 'passed'}: ${passed} checks passed${failure ? `, failed at: ${failure.message}` : ''} (${((Date.now() - began) / 1000).toFixed(0)} s)`,
)
process.exit(failure ? 1 : 0)
