import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyChain } from '../src/audit/verify.js'
import { sqliteStores } from '../src/store/sqlite.js'

/**
 * Crash consistency: the built gateway (`bin/warden.js start`, so run `npm run build` first) on a
 * temp SQLite file, with its tools pointed at a local HTTP tool in this process that counts every
 * execution by the `x-request-id` Warden sends. Each trial drives a small mix of calls (allowed
 * refunds, held refunds, approvals of held ones, one approval decided twice), `kill -9`s the
 * gateway at a random moment while they are in flight, starts it again on the same file (that
 * process is the next trial's gateway), and checks: every execution the tool saw has its
 * committed decision row, the hash chain verifies, and no approval or request ran twice.
 * Size: WARDEN_CRASH_TRIALS trials (CI default 50; 1,000 on demand).
 */
const TRIALS = Number(process.env.WARDEN_CRASH_TRIALS ?? 50)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** SHA-256 of `demo-approver-token`, as config/demo/warden.yaml lists it. */
const DEMO_APPROVER_SHA256 = '13398dbc5ccc9670af6606f261884ed54db3b3a773eae74d7e140a6b6e4abc3c'

/** Resolves when `child` has exited, including when it already had (an `exit` event missed). */
function exitOf(child: ChildProcess): Promise<unknown> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((r) => child.once('exit', r))
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

describe('crash consistency under kill -9', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-crash-'))
  const dbPath = join(dir, 'audit.db')
  /** x-request-id → how many times the tool executed it. */
  const executions = new Map<string, number>()
  /** While set, the tool takes calls and never answers them (an upstream that hangs). */
  let hang: ((requestId: string) => void) | null = null
  let tool: Server
  let port: number
  /** `warden start` runs the agent API and the dashboard too: on free ports, never 8005/8006. */
  let sidePorts: { agents: number; dashboard: number }

  beforeAll(async () => {
    tool = createHttpServer((req, res) => {
      const id = String(req.headers['x-request-id'])
      executions.set(id, (executions.get(id) ?? 0) + 1)
      if (hang) return hang(id)
      req.resume()
      req.on('end', () => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ ok: true }))
      })
    })
    await new Promise<void>((r) => tool.listen(0, '127.0.0.1', r))
    const toolPort = (tool.address() as { port: number }).port
    cpSync(join(ROOT, 'config/http-upstream'), join(dir, 'http'), { recursive: true })
    const edit = (file: string, f: (s: string) => string) =>
      writeFileSync(join(dir, file), f(readFileSync(join(dir, file), 'utf8')))
    // Rate limits out of reach: every trial's calls reach the decision they are meant to.
    edit('http/agents.yaml', (s) => s.replace(/limit: \d+/g, 'limit: 1000000000'))
    edit('http/tools.yaml', (s) => s.replaceAll('127.0.0.1:9100', `127.0.0.1:${toolPort}`))
    edit('http/warden.yaml', (s) => s.replace(/sqlite_path: .*/, `sqlite_path: ${dbPath}`))
    // The HTTP example has no approvers: the demo's, so held calls can be approved (without
    // them every approval in this file was refused 401 and nothing approved ever ran), and no
    // cap on pending calls, which trials killed before their approvals would otherwise reach.
    edit(
      'http/warden.yaml',
      (s) =>
        `${s}\napprovals:\n  max_pending_per_agent: 1000000\n  approvers:\n` +
        `    - { id: demo-approver, token_sha256: ${DEMO_APPROVER_SHA256}, roles: [billing-lead] }\n`,
    )
    port = await freePort()
    sidePorts = { agents: await freePort(), dashboard: await freePort() }
  })
  afterAll(async () => {
    tool.closeAllConnections()
    await new Promise((r) => tool.close(r))
    rmSync(dir, { recursive: true, force: true })
  })

  async function start(): Promise<ChildProcess> {
    const child = spawn(process.execPath, [join(ROOT, 'bin/warden.js'), 'start'], {
      cwd: dir,
      env: {
        ...process.env,
        WARDEN_CONFIG: join(dir, 'http/warden.yaml'),
        PORT: String(port),
        AGENTS_PORT: String(sidePorts.agents),
        DASHBOARD_PORT: String(sidePorts.dashboard),
        LOG_LEVEL: 'fatal',
        AGENT_RUNS_PATH: join(dir, 'agent-runs.db'),
      },
      stdio: 'ignore',
    })
    for (let i = 0; i < 200; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return child
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    child.kill('SIGKILL')
    throw new Error('the gateway did not start')
  }

  const post = (path: string, token: string, body: unknown) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    })
      .then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }))
      .catch(() => null) // the gateway died under it: fine, that is the point

  const refund = (amount: number) =>
    post('/gateway/execute', 'demo-refund-agent-key', {
      agent_id: 'refund-agent',
      tool: 'issue_refund',
      params: { order_id: 'ORD-1001', amount, reason: 'crash trial' },
    })
  const decide = (id: string) =>
    post('/gateway/approve', 'demo-approver-token', { approval_id: id, decision: 'approve' })

  /** A small workload; returns when all of it answered or the process died. */
  async function workload(): Promise<void> {
    const held: string[] = []
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const r = await refund(i % 2 ? 40 : 250)
        const id = r?.body.approval_id
        if (typeof id === 'string') held.push(id)
      }),
    )
    // Each held call approved twice at once: at most one may run.
    await Promise.all(held.flatMap((id) => [decide(id), decide(id)]))
  }

  it('an approval that committed while the tool hangs is not run again after kill -9 and a restart', async () => {
    let gateway = await start()
    let requestId = ''
    try {
      const held = await refund(250) // held by the refund guard (over $100)
      expect(held?.status).toBe(202)
      const id = String(held!.body.approval_id)
      requestId = String(held!.body.request_id)
      // The approval commits, then the tool is called and never answers: kill -9 in that window.
      const called = new Promise<string>((resolve) => (hang = resolve))
      const approving = decide(id)
      expect(await called).toBe(requestId)
      const exited = exitOf(gateway)
      gateway.kill('SIGKILL')
      await exited
      expect(await approving).toBeNull()
      hang = null
      tool.closeAllConnections()

      gateway = await start()
      const read = await fetch(`http://127.0.0.1:${port}/gateway/approvals/${id}`, {
        headers: { authorization: 'Bearer demo-approver-token' },
      }).then((r) => r.json() as Promise<{ approval: Record<string, unknown> }>)
      // Approved, and not re-run by the restart: nothing is known of how the run ended.
      expect(read.approval).toMatchObject({ id, status: 'approved', request_id: requestId })
      const again = await decide(id)
      expect(again).toMatchObject({
        status: 409,
        body: { error: { code: 'approval_already_decided' } },
      })
      // The same call retried is a new request with its own approval, not this one run again.
      const pending = await fetch(`http://127.0.0.1:${port}/gateway/pending-approvals`, {
        headers: { authorization: 'Bearer demo-approver-token' },
      }).then((r) => r.json() as Promise<{ approvals: { request_id: string }[] }>)
      expect(pending.approvals.filter((a) => a.request_id === requestId)).toEqual([])
    } finally {
      gateway.kill('SIGKILL')
      await exitOf(gateway)
    }

    const verify = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/warden.js'), 'audit', 'verify', '--db', dbPath],
      { encoding: 'utf8' },
    )
    expect(verify.status, verify.stdout + verify.stderr).toBe(0)
    const stores = sqliteStores(dbPath)
    try {
      // One approval for the call: the restart made no second one.
      const approvals = await stores.approvals.list()
      expect(approvals.filter((a) => a.request_id === requestId)).toHaveLength(1)
      // The tool saw the call once, and once only, across the crash and the restart.
      expect(executions.get(requestId)).toBe(1)
      const events = (await stores.audit.query({ limit: 100_000, order: 'asc' })).filter(
        (e) => e.request_id === requestId,
      )
      expect(events.map((e) => e.type)).toEqual(['approval_required', 'approval_granted'])
    } finally {
      await stores.close()
    }
  }, 120_000)

  it(`${TRIALS} trials: executed calls have decision rows, the chain verifies, nothing ran twice`, async () => {
    let gateway = await start()
    let kills = 0
    try {
      for (let t = 0; t < TRIALS; t++) {
        const exited = exitOf(gateway)
        const work = workload()
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)))
        gateway.kill('SIGKILL')
        await exited
        await work
        kills++
        gateway = await start()
      }
    } finally {
      gateway.kill('SIGKILL')
      await exitOf(gateway)
    }
    expect(kills).toBe(TRIALS)

    const stores = sqliteStores(dbPath)
    try {
      const events = await stores.audit.query({ limit: 1_000_000 })
      const decisions = new Set(
        events
          .filter((e) => e.type === 'tool_call_allowed' || e.type === 'approval_granted')
          .map((e) => e.request_id),
      )
      const executedBy = new Map<string, number>()
      for (const e of events)
        if (e.type === 'tool_call_executed' && e.approval_id)
          executedBy.set(e.approval_id, (executedBy.get(e.approval_id) ?? 0) + 1)

      const types: Record<string, number> = {}
      for (const e of events) types[e.type] = (types[e.type] ?? 0) + 1
      const ranTwice = [...executions].filter(([, n]) => n > 1)
      const noDecision = [...executions.keys()].filter((id) => !decisions.has(id))
      expect(executions.size).toBeGreaterThan(0)
      expect(ranTwice).toEqual([])
      expect(noDecision).toEqual([])
      expect([...executedBy].filter(([, n]) => n > 1)).toEqual([])
      expect((await verifyChain(stores.audit)).ok).toBe(true)
      console.log(
        `crash: ${kills} kill -9 trials, ${executions.size} executions seen by the tool, ${events.length} audit rows`,
        types,
      )
    } finally {
      await stores.close()
    }
  }, 1_800_000)
})
