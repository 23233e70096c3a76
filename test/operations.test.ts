import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server, type ServerResponse } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyChain } from '../src/audit/verify.js'
import { sqliteStores } from '../src/store/sqlite.js'

/**
 * Operations on the built gateway (`bin/warden.js gateway`, so `npm run build` first), as an
 * orchestrator drives it: SIGTERM under load, and SIGHUP to reload the configuration. The tools
 * are a local HTTP server in this process that can hold its answers, so calls are provably in
 * flight when the signal arrives.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url))

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** A tool server that counts executions by `x-request-id` and answers when released. */
class Tool {
  readonly executions = new Map<string, number>()
  private held: ServerResponse[] = []
  private holding = false
  private server!: Server
  port = 0

  async start() {
    this.server = createHttpServer((req, res) => {
      const id = String(req.headers['x-request-id'])
      this.executions.set(id, (this.executions.get(id) ?? 0) + 1)
      req.resume()
      req.on('end', () => (this.holding ? this.held.push(res) : answer(res)))
    })
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.port = (this.server.address() as { port: number }).port
  }
  hold() {
    this.holding = true
  }
  get waiting() {
    return this.held.length
  }
  release() {
    this.holding = false
    for (const res of this.held) answer(res)
    this.held = []
  }
  close() {
    this.server.closeAllConnections()
    return new Promise((r) => this.server.close(r))
  }
}

function answer(res: ServerResponse) {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ order_id: 'ORD-1001', status: 'shipped' }))
}

/** A copy of the HTTP-upstream example configuration pointed at `tool`, writing to `dbPath`. */
function setUp(dir: string, toolPort: number, dbPath: string) {
  cpSync(join(ROOT, 'config/http-upstream'), join(dir, 'http'), { recursive: true })
  const edit = (file: string, f: (s: string) => string) =>
    writeFileSync(join(dir, file), f(readFileSync(join(dir, file), 'utf8')))
  // Rate limits out of reach: the load is decided on its merits.
  edit('http/agents.yaml', (s) => s.replace(/limit: \d+/g, 'limit: 1000000000'))
  edit('http/tools.yaml', (s) => s.replaceAll('127.0.0.1:9100', `127.0.0.1:${toolPort}`))
  edit('http/warden.yaml', (s) => s.replace(/sqlite_path: .*/, `sqlite_path: ${dbPath}`))
  return { config: join(dir, 'http/warden.yaml'), edit }
}

interface Gateway {
  child: ChildProcess
  exited: Promise<number | null>
  log: () => string
}

async function startGateway(dir: string, config: string, port: number): Promise<Gateway> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/warden.js'), 'gateway'], {
    cwd: dir,
    env: { ...process.env, WARDEN_CONFIG: config, PORT: String(port), LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok)
        return { child, exited, log: () => out }
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 50))
  }
  child.kill('SIGKILL')
  throw new Error(`the gateway did not start:\n${out}`)
}

/** Resolves once `check` is true (polled); fails the test with `what` if it never is. */
async function until(what: string, check: () => boolean | Promise<boolean>) {
  for (let i = 0; i < 400; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const dirs: string[] = []
const tools: Tool[] = []
afterAll(async () => {
  for (const t of tools) await t.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
async function workspace() {
  const dir = mkdtempSync(join(tmpdir(), 'warden-ops-'))
  dirs.push(dir)
  const tool = new Tool()
  await tool.start()
  tools.push(tool)
  const dbPath = join(dir, 'audit.db')
  return { dir, tool, dbPath, port: await freePort(), ...setUp(dir, tool.port, dbPath) }
}

interface Answer {
  status: number
  body: { request_id?: string; decision?: string; error?: { code: string } }
}

describe('SIGTERM under load', () => {
  let ws: Awaited<ReturnType<typeof workspace>>
  beforeAll(async () => {
    ws = await workspace()
  })

  it('exits 0; every call that was answered has its audit rows, every tool run is recorded, the chain verifies', async () => {
    const { tool, port, dbPath } = ws
    const gateway = await startGateway(ws.dir, ws.config, port)
    const answers: Answer[] = []
    let refusedConnections = 0
    let stop = false
    const call = (i: number) =>
      fetch(`http://127.0.0.1:${port}/gateway/execute`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer demo-support-agent-key',
        },
        body: JSON.stringify({
          agent_id: 'support-agent',
          tool: 'lookup_order',
          params: { order_id: `ORD-${1001 + (i % 5)}` },
        }),
      })
    // 16 clients, each sending one call after another until the gateway stops taking them.
    const workers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await call(w * 1000 + i)
          answers.push({ status: r.status, body: (await r.json()) as Answer['body'] })
        } catch {
          refusedConnections++
          return // the listener is closed: this client is done
        }
      }
    })
    // Let some calls complete, then hold the tool so that calls are running when SIGTERM comes.
    await until('calls to complete', () => answers.length >= 50)
    tool.hold()
    await until('calls in flight', () => tool.waiting >= 8)
    const inFlight = tool.waiting
    gateway.child.kill('SIGTERM')
    // The gateway is stopping with calls in flight; the tool answers them a moment later.
    await until('the gateway to stop listening', async () => {
      try {
        await fetch(`http://127.0.0.1:${port}/health/live`)
        return false
      } catch {
        return true
      }
    })
    tool.release()
    expect(await gateway.exited).toBe(0)
    stop = true
    await Promise.all(workers)
    expect(gateway.log()).toMatch(/shutting down/)

    // Calls refused while stopping say so with a catalog code, and were never decided.
    const refused = answers.filter((a) => a.body.error?.code === 'shutting_down')
    expect(refused.every((a) => a.status === 503)).toBe(true)
    const accepted = answers.filter((a) => a.body.error?.code !== 'shutting_down')
    expect(accepted.every((a) => a.status === 200 && typeof a.body.request_id === 'string')).toBe(
      true,
    )
    // The calls held in the tool at the signal finished: more answers than before the hold.
    expect(accepted.length).toBeGreaterThanOrEqual(50 + inFlight)

    // A restart on the same file starts clean; the store is then read directly.
    const again = await startGateway(ws.dir, ws.config, port)
    again.child.kill('SIGTERM')
    expect(await again.exited).toBe(0)
    const stores = sqliteStores(dbPath)
    try {
      const events = await stores.audit.query({ limit: 1_000_000 })
      const decided = new Set(
        events.filter((e) => e.type === 'tool_call_allowed').map((e) => e.request_id),
      )
      const executed = new Set(
        events.filter((e) => e.type === 'tool_call_executed').map((e) => e.request_id),
      )
      const ids = accepted.map((a) => a.body.request_id!)
      expect(ids.filter((id) => !decided.has(id))).toEqual([])
      expect(ids.filter((id) => !executed.has(id))).toEqual([])
      // No client left early: every run the tool saw is a call its client got the answer of.
      const answered = new Set(ids)
      expect([...tool.executions.keys()].filter((id) => !answered.has(id))).toEqual([])
      // Every run the tool saw is recorded.
      expect([...tool.executions.keys()].filter((id) => !executed.has(id))).toEqual([])
      expect([...tool.executions.values()].every((n) => n === 1)).toBe(true)
      const refusedIds = new Set(refused.map((a) => a.body.request_id))
      expect(events.filter((e) => refusedIds.has(e.request_id))).toEqual([])
      expect((await verifyChain(stores.audit)).ok).toBe(true)
      console.log(
        `sigterm: ${accepted.length} calls answered (${inFlight} in flight at the signal), ${refused.length} refused with shutting_down, ${refusedConnections} clients found the listener closed, ${events.length} audit rows`,
      )
    } finally {
      await stores.close()
    }
    const verify = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/warden.js'), 'audit', 'verify', '--db', dbPath],
      { encoding: 'utf8' },
    )
    expect(verify.stdout).toMatch(/^ok: \d+ events verified/)
    expect(verify.status).toBe(0)
  }, 120_000)
})

describe('SIGHUP', () => {
  it('reloads the configuration in a running process; a bad file is refused and the old kept', async () => {
    const ws = await workspace()
    const gateway = await startGateway(ws.dir, ws.config, ws.port)
    const base = `http://127.0.0.1:${ws.port}`
    const version = async () =>
      ((await (await fetch(`${base}/health`)).json()) as { policy_version: string }).policy_version
    const lookup = async () => {
      const r = await fetch(`${base}/gateway/execute`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer demo-support-agent-key',
        },
        body: JSON.stringify({
          agent_id: 'support-agent',
          tool: 'lookup_order',
          params: { order_id: 'ORD-1001' },
        }),
      })
      return { status: r.status, body: (await r.json()) as { policy_version: string } }
    }
    try {
      const before = await version()
      expect((await lookup()).status).toBe(200)
      ws.edit('http/policy.yaml', (s) =>
        s.replace(
          '  rules:\n',
          `  rules:
    - id: lookups-paused
      effect: forbid
      tools: [lookup_order]
      when: 'true'
      reason: order lookups are paused
`,
        ),
      )
      gateway.child.kill('SIGHUP')
      await until('the reload', async () => (await version()) !== before)
      const after = await version()
      const denied = await lookup()
      expect(denied.status).toBe(403)
      expect(denied.body.policy_version).toBe(after)

      // A broken file: the process keeps running on the configuration in force, and says why.
      ws.edit('http/policy.yaml', (s) => s.replace('effect: forbid', 'effect: maybe'))
      gateway.child.kill('SIGHUP')
      await until('the refusal in the log', () => /reload refused/.test(gateway.log()))
      expect(gateway.log()).toMatch(/config_invalid/)
      expect(gateway.log()).toContain(join(ws.dir, 'http/policy.yaml'))
      expect(await version()).toBe(after)
      expect((await lookup()).status).toBe(403)
    } finally {
      gateway.child.kill('SIGTERM')
      expect(await gateway.exited).toBe(0)
    }
    const stores = sqliteStores(ws.dbPath)
    try {
      const reloads = await stores.audit.query({ type: 'config_reloaded', limit: 10 })
      expect(reloads).toHaveLength(1)
      expect(reloads[0]).toMatchObject({ principal: 'signal:SIGHUP' })
    } finally {
      await stores.close()
    }
  }, 60_000)
})
