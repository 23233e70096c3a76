import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig, type LoadedConfig } from '../src/config/loader.js'
import { buildRuntime } from '../src/pipeline/runtime.js'
import { restoreSpanMs, restoreState } from '../src/pipeline/restore.js'
import { openState } from '../src/state/index.js'
import { memoryStores } from '../src/store/memory.js'
import { openStores } from '../src/store/index.js'
import { createWarden, type Warden } from '../src/warden.js'
import { approve, DEMO_CONFIG, execute, keyOf } from './helpers.js'

/**
 * Issue 11: a restart must not forget security state. Each test decides calls on one gateway,
 * closes it, opens a new one in process on the same SQLite file (memory state, rebuilt from the
 * audit log) and checks that the state still holds.
 */
const dirs: string[] = []
const running: Warden[] = []
afterEach(async () => {
  while (running.length > 0) await running.pop()!.close()
  while (dirs.length > 0) rmSync(dirs.pop()!, { recursive: true, force: true })
})

function auditFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-restart-'))
  dirs.push(dir)
  return join(dir, 'audit.db')
}

async function open(
  sqlitePath: string,
  config: LoadedConfig | string = DEMO_CONFIG,
): Promise<Warden> {
  // The demo's MCP upstream is not started: its pins would be events of their own here.
  const w = await createWarden({ config, sqlitePath, sweepIntervalMs: 0, mcp: { connect: false } })
  running.push(w)
  return w
}

/** Close the gateway and start a fresh process-equivalent on the same file. */
async function restart(
  w: Warden,
  sqlitePath: string,
  config: LoadedConfig | string = DEMO_CONFIG,
): Promise<Warden> {
  running.splice(running.indexOf(w), 1)
  await w.close()
  return open(sqlitePath, config)
}

const refund = (
  w: Warden,
  order: string,
  amount: number,
  session?: string,
  key?: string,
  agent = 'refund-agent',
) =>
  execute(
    w,
    agent,
    'issue_refund',
    { order_id: order, amount, reason: 'damaged' },
    { ...(session !== undefined && { session_id: session }), ...(key !== undefined && { key }) },
  )

const sequenceCheck = (body: { checks: { layer: string }[] }) =>
  body.checks.find((c) => c.layer === 'sequence')

describe('restart recovery: security state is rebuilt from the audit log', () => {
  it('rule windows: two allowed refunds and one approved and run still count after a restart', async () => {
    const path = auditFile()
    let w = await open(path)
    for (const order of ['ORD-1001', 'ORD-1002']) {
      expect((await refund(w, order, 90)).json()).toMatchObject({ decision: 'allow' })
    }
    // Over the guard's allow threshold: held, then approved and run.
    const held = await refund(w, 'ORD-1003', 200)
    expect(held.statusCode).toBe(202)
    const ran = await approve(w, held.json().approval_id)
    expect(ran.statusCode).toBe(200)
    expect(ran.json().approval).toMatchObject({ status: 'approved', outcome: 'ok' })

    w = await restart(w, path)
    const fourth = await refund(w, 'ORD-1004', 90)
    expect(fourth.statusCode).toBe(202)
    expect(sequenceCheck(fourth.json())).toMatchObject({
      outcome: 'hold',
      details: { rule: 'refund-burst', count: 3 },
    })
  })

  it('rate limits: a budget spent before the restart stays spent', async () => {
    const path = auditFile()
    // admin-agent may make 60 calls an hour here (the demo: a minute), so the budget refills by
    // one a minute and a slow machine cannot refill it between the calls and the restart.
    const demo = loadConfig(DEMO_CONFIG)
    const config: LoadedConfig = {
      ...demo,
      config: {
        ...demo.config,
        agents: demo.config.agents.map((a) =>
          a.id === 'admin-agent' ? { ...a, rate_limit: { limit: 60, window_seconds: 3600 } } : a,
        ),
      },
    }
    let w = await open(path, config)
    for (let i = 0; i < 60; i++) {
      const r = await execute(w, 'admin-agent', 'lookup_order', { order_id: 'ORD-1001' })
      expect(r.statusCode).toBe(200)
    }
    expect(
      (await execute(w, 'admin-agent', 'lookup_order', { order_id: 'ORD-1001' })).statusCode,
    ).toBe(429)

    w = await restart(w, path, config)
    const after = await execute(w, 'admin-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(after.statusCode).toBe(429)
    expect(after.json()).toMatchObject({ error: { code: 'rate_limited' } })
    expect(Number(after.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    // Another agent's budget was not touched by the replay.
    expect(
      (await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1001' })).statusCode,
    ).toBe(200)
  })

  it('quarantine: an agent quarantined before the restart is still quarantined', async () => {
    const path = auditFile()
    let w = await open(path)
    // support-agent may not refund: ten denials in a minute quarantine it.
    for (let i = 0; i < 10; i++) {
      const r = await refund(w, 'ORD-1001', 20, undefined, keyOf('support-agent'), 'support-agent')
      expect(r.json()).toMatchObject({ decision: 'deny', error: { code: 'tool_not_allowed' } })
    }
    const search = () => execute(w, 'support-agent', 'search_knowledge_base', { query: 'refunds' })
    expect((await search()).json()).toMatchObject({ error: { code: 'agent_quarantined' } })

    w = await restart(w, path)
    expect((await search()).json()).toMatchObject({
      decision: 'deny',
      error: { code: 'agent_quarantined' },
    })
  })

  it('poisoned sessions: an injection read before the restart still guards risky calls', async () => {
    const path = auditFile()
    let w = await open(path)
    const search = await execute(
      w,
      'refund-agent',
      'search_knowledge_base',
      { query: 'community tip' },
      { session_id: 'poisoned' },
    )
    expect(search.json().warnings).toEqual([
      expect.objectContaining({ code: 'injection_in_output' }),
    ])

    w = await restart(w, path)
    const inPoisoned = await refund(w, 'ORD-1002', 20, 'poisoned')
    expect(inPoisoned.statusCode).toBe(202)
    expect(inPoisoned.json()).toMatchObject({ layer: 'taint' })
    // Other sessions are as they were.
    expect((await refund(w, 'ORD-1002', 20, 'clean')).statusCode).toBe(200)
  })

  it('anonymous calls and demo scenarios change no real agent state across a restart', async () => {
    const path = auditFile()
    let w = await open(path)
    expect((await refund(w, 'ORD-1001', 90)).json()).toMatchObject({ decision: 'allow' })
    // Ten refunds claiming refund-agent with a wrong key, and two scenario refunds as refund-agent.
    for (let i = 0; i < 10; i++) {
      const r = await refund(w, 'ORD-1002', 90, undefined, 'wrong-key')
      expect(r.statusCode).toBe(401)
    }
    for (let i = 0; i < 2; i++) {
      const r = await w.app.inject({ method: 'POST', url: '/demo/run-scenario/refund_small' })
      expect(r.statusCode).toBe(200)
    }
    expect(await w.stores.audit.query({ type: 'tool_call_executed', limit: 10 })).toHaveLength(3)

    w = await restart(w, path)
    // One real refund was counted; the scenario's and the anonymous calls were not: two more are
    // allowed, and the one after them is the third in the window.
    for (const order of ['ORD-1002', 'ORD-1003'])
      expect((await refund(w, order, 90)).json()).toMatchObject({ decision: 'allow' })
    expect(sequenceCheck((await refund(w, 'ORD-1004', 90)).json())).toMatchObject({
      outcome: 'hold',
      details: { count: 3 },
    })
  })

  it('only events inside the longest span any state covers are replayed', async () => {
    const path = auditFile()
    const w = await open(path)
    for (const order of ['ORD-1001', 'ORD-1002', 'ORD-1003']) {
      const r = await refund(w, order, 20)
      expect(r.statusCode, r.body).toBe(200)
    }
    running.splice(running.indexOf(w), 1)
    await w.close()

    const loaded = loadConfig(DEMO_CONFIG)
    const stores = await openStores({ kind: 'sqlite', sqlitePath: path })
    try {
      const replay = async (now: number) => {
        const rt = buildRuntime(loaded, await openState({ kind: 'memory' }))
        const report = await restoreState(rt, stores.audit, stores.approvals, {
          now,
          setClock: () => {},
        })
        const snapshot = await rt.state.sessions.load({
          agent: 'refund-agent',
          now,
          windows: ['issue_refund'],
        })
        return { report, kept: snapshot.windows.get('issue_refund')?.entries.length ?? 0 }
      }
      const span = restoreSpanMs(buildRuntime(loaded, await openState({ kind: 'memory' })))
      // The demo's longest span is the refund-total rule's hour.
      expect(span).toBe(3_600_000)
      const now = await replay(Date.now())
      // Three decisions and their three executions; only the decisions change state.
      expect(now.report).toMatchObject({ events: 6, applied: 3, hits: 3 })
      expect(now.kept).toBe(3)
      const later = await replay(Date.now() + span + 120_000)
      expect(later.report).toMatchObject({ events: 0, applied: 0 })
      expect(later.kept).toBe(0)
    } finally {
      await stores.close()
    }
  })

  it('holds refused past the pending cap are not denials after a restart either (no quarantine)', async () => {
    const path = auditFile()
    const demo = loadConfig(DEMO_CONFIG)
    const config: LoadedConfig = {
      ...demo,
      config: {
        ...demo.config,
        approvals: { ...demo.config.approvals, max_pending_per_agent: 1 },
        agents: demo.config.agents.map((a) =>
          a.id === 'refund-agent'
            ? { ...a, tool_rate_limits: { issue_refund: { limit: 100, window_seconds: 60 } } }
            : a,
        ),
      },
    }
    let w = await open(path, config)
    expect((await refund(w, 'ORD-1003', 200)).statusCode).toBe(202)
    // Ten more holds past the cap of one: refused, but the pipeline held them (not misconduct).
    for (let i = 0; i < 10; i++) {
      const r = await refund(w, 'ORD-1003', 201 + i)
      expect(r.json()).toMatchObject({ error: { code: 'too_many_pending_approvals' } })
    }
    const live = await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1002' })
    expect(live.statusCode).toBe(200)

    w = await restart(w, path, config)
    const after = await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1002' })
    expect(after.statusCode).toBe(200)
  })

  it('a replayed hit counts even when the limiter would refuse it now (no budget handed back)', async () => {
    let now = 1_700_000_000_000
    let replaying = true
    const state = await openState({ kind: 'memory', clock: () => now, replaying: () => replaying })
    const budget = [{ key: 'agent:a', limit: 5, windowMs: 60_000 }]
    // Recorded hits can carry times a little before the live hits': seven at one instant.
    for (let i = 0; i < 7; i++)
      expect(await state.rateLimiter.hit(budget)).toEqual({ allowed: true })
    replaying = false
    // Live again: all seven count (the theoretical arrival time is 7 × 12 s ahead). Had the two
    // over the limit been dropped, a hit 24 s later would be allowed; it is refused until 36 s.
    now += 24_000
    expect(await state.rateLimiter.hit(budget)).toMatchObject({ allowed: false, key: 'agent:a' })
    now += 12_000
    expect((await state.rateLimiter.hit(budget)).allowed).toBe(true)
  })

  it('a log that cannot be read stops the start-up (no gateway with forgotten limits)', async () => {
    const world = memoryStores()
    const broken = {
      ...world,
      audit: {
        ...world.audit,
        query: () => Promise.reject(new Error('disk I/O error')),
      },
    }
    await expect(
      createWarden({ config: DEMO_CONFIG, stores: broken, sweepIntervalMs: 0 }),
    ).rejects.toThrow(/disk I\/O error/)
  })
})
