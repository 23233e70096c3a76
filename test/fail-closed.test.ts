import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig, type LoadedConfig } from '../src/config/loader.js'
import type { AuditEvent } from '../src/domain/audit-event.js'
import { DemoBackend } from '../src/demo/backend.js'
import { openState } from '../src/state/index.js'
import type { StateBackend } from '../src/state/types.js'
import { StoreError } from '../src/store/errors.js'
import { sqliteStores } from '../src/store/sqlite.js'
import type { Stores } from '../src/store/types.js'
import { approve, DEMO_CONFIG, execute, startWarden } from './helpers.js'

/**
 * The fail-closed promises (README, docs/architecture.md, decision 0004), each against the real
 * gateway with one real part made to fail: a layer whose input breaks denies the call, a store
 * that cannot record a hold or a decision answers 503, and approvals and quarantines end when
 * their time is up, with the timers Warden runs in production. Nothing stands in for the thing
 * under test: the state and the stores are the real backends, with one method made to throw or
 * the real writer thread terminated.
 */

type Started = Awaited<ReturnType<typeof startWarden>>
const running: Started[] = []
const dirs: string[] = []
afterEach(async () => {
  for (const w of running.splice(0)) await w.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function start(opts: Parameters<typeof startWarden>[0]): Promise<Started> {
  const w = await startWarden(opts)
  running.push(w)
  return w
}

function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-fail-closed-'))
  dirs.push(dir)
  return join(dir, 'audit.db')
}

/** The real memory state backend; `broken` names the one operation that throws while set. */
async function breakableState() {
  const real = await openState({ kind: 'memory' })
  const switches = { broken: null as 'hit' | 'load' | 'commit' | null }
  const fail = (what: string) => Promise.reject(new Error(`state backend lost (${what})`))
  const state: StateBackend = {
    rateLimiter: {
      hit: (limits) => (switches.broken === 'hit' ? fail('hit') : real.rateLimiter.hit(limits)),
    },
    sessions: {
      load: (scope) => (switches.broken === 'load' ? fail('load') : real.sessions.load(scope)),
      commit: (changes) =>
        switches.broken === 'commit' ? fail('commit') : real.sessions.commit(changes),
    },
    health: () => real.health(),
    close: () => real.close(),
  }
  return { state, switches }
}

const refund = (w: Started, amount: number, order = 'ORD-1001') =>
  execute(w, 'refund-agent', 'issue_refund', { order_id: order, amount, reason: 'late' })
const balance = (backend: DemoBackend, order = 'ORD-1001') =>
  backend.lookup_order({ order_id: order }).balance

/** Every recorded event of one request, oldest first. */
async function eventsOf(w: Started, requestId: string): Promise<AuditEvent[]> {
  const all = await w.stores.audit.query({ limit: 10_000, order: 'asc' })
  return all.filter((e) => e.request_id === requestId)
}

const metric = async (w: Started, pattern: RegExp) => {
  const text = (await w.app.inject({ url: '/metrics' })).body
  return Number(pattern.exec(text)?.[1] ?? 0)
}

describe('promise 1: a layer that breaks denies the call', () => {
  it('the rate-limit layer’s state throws: 503 layer_failed, nothing runs, audited, counted', async () => {
    const backend = new DemoBackend()
    const { state, switches } = await breakableState()
    const w = await start({ state, demoBackend: backend })
    // The same call goes through while the state answers: what follows is the failure's doing.
    expect((await refund(w, 5)).statusCode).toBe(200)
    const before = balance(backend)

    switches.broken = 'hit'
    const res = await refund(w, 5)
    expect(res.statusCode).toBe(503)
    const body = res.json()
    expect(body.error.code).toBe('layer_failed')
    expect(body.error.message).toContain('rate_limit')
    expect(balance(backend)).toBe(before)
    const events = await eventsOf(w, body.request_id)
    // One event: the denial, on the failed layer's line (its type is the layer's own event type).
    expect(events.map((e) => [e.decision, e.code, e.layer])).toEqual([
      ['deny', 'layer_failed', 'rate_limit'],
    ])
    expect(await metric(w, /warden_layer_failures_total\{layer="rate_limit"\} (\d+)/)).toBe(1)

    // Back to health, the next call is decided normally: the failure left nothing behind.
    switches.broken = null
    expect((await refund(w, 5)).statusCode).toBe(200)
  })

  it('a message whose rate-limit state throws is refused with layer_failed too', async () => {
    const { state, switches } = await breakableState()
    const w = await start({ state })
    switches.broken = 'hit'
    const res = await w.app.inject({
      method: 'POST',
      url: '/gateway/message',
      headers: { authorization: 'Bearer demo-support-agent-key' },
      payload: { agent_id: 'support-agent', to_agent: 'refund-agent', content: 'hello' },
    })
    expect(res.statusCode).toBe(503)
    expect(res.json().error.code).toBe('layer_failed')
    const sent = await w.stores.audit.query({ type: 'agent_message_sent', limit: 10 })
    expect(sent).toEqual([])
  })

  it.each(['load', 'commit'] as const)(
    'the session state fails to %s: 503 state_unavailable and the tool does not run',
    async (what) => {
      const backend = new DemoBackend()
      const { state, switches } = await breakableState()
      const w = await start({ state, demoBackend: backend })
      const before = balance(backend)
      switches.broken = what
      const res = await refund(w, 5)
      expect(res.statusCode).toBe(503)
      expect(res.json().error.code).toBe('state_unavailable')
      expect(balance(backend)).toBe(before)
      const types = (await eventsOf(w, res.json().request_id)).map((e) => e.type)
      expect(types).not.toContain('tool_call_executed')
      expect(types).not.toContain('tool_call_allowed')
    },
  )
})

describe('promise 2: a store that cannot record answers 503, and nothing runs', () => {
  it('the approval store fails to create the hold: 503, nothing pending, nothing run', async () => {
    const backend = new DemoBackend()
    const real = sqliteStores(tempDb())
    const stores: Stores = {
      ...real,
      approvals: {
        ...real.approvals,
        create: () =>
          Promise.reject(new StoreError('approval_store_unavailable', 'disk I/O error')),
      },
    }
    const w = await start({ stores, demoBackend: backend })
    try {
      const before = balance(backend)
      const res = await refund(w, 250) // over $100: held by the refund guard
      expect(res.statusCode).toBe(503)
      expect(res.json().error.code).toBe('approval_store_unavailable')
      expect(res.json().approval_id).toBeUndefined()
      expect(await real.approvals.list()).toEqual([])
      const pending = await w.app.inject({
        url: '/gateway/pending-approvals',
        headers: { authorization: 'Bearer demo-approver-token' },
      })
      expect(pending.statusCode).toBe(200)
      expect(pending.json().approvals).toEqual([])
      expect(balance(backend)).toBe(before)
      const types = (await eventsOf(w, res.json().request_id)).map((e) => e.type)
      expect(types).not.toContain('tool_call_executed')
    } finally {
      await real.close()
    }
  })

  it('the audit writer thread dies: every later call is 503 and /health says the store is down', async () => {
    const backend = new DemoBackend()
    let writer: Worker | undefined
    const stores = sqliteStores(tempDb(), { writerStarted: (worker) => (writer = worker) })
    const w = await start({ stores, demoBackend: backend })
    try {
      expect((await refund(w, 5)).statusCode).toBe(200)
      expect((await w.app.inject({ url: '/health' })).statusCode).toBe(200)

      const exited = once(writer!, 'exit')
      await writer!.terminate()
      await exited
      const before = balance(backend)
      const calls = [
        () => refund(w, 5), // allowed
        () => refund(w, 250), // held
        () => execute(w, 'support-agent', 'issue_refund', { order_id: 'ORD-1001', amount: 1 }), // denied
        () => refund(w, 5), // and again: the failure is not a one-off
      ]
      for (const call of calls) {
        const res = await call()
        expect(res.statusCode).toBe(503)
        expect(res.json().error.code).toBe('audit_unavailable')
      }
      expect(balance(backend)).toBe(before)
      expect(await stores.approvals.list('pending')).toEqual([])
      const health = await w.app.inject({ url: '/health' })
      expect(health.statusCode).toBe(503)
      expect(health.json().checks.store).toEqual({
        ok: false,
        detail: expect.stringContaining('audit writer exited'),
      })
      expect(await metric(w, /warden_dependency_up\{dependency="store"\} (\d+)/)).toBe(0)
    } finally {
      await stores.close()
    }
  })
})

/** The demo or approvals configuration with some sections changed. */
function variant(file: string, change: (c: LoadedConfig['config']) => object): LoadedConfig {
  const loaded = loadConfig(file)
  return { ...loaded, config: { ...loaded.config, ...change(loaded.config) } }
}

/** Resolves with the first committed event that `match` accepts. */
function nextEvent(w: Started, match: (e: AuditEvent) => boolean): Promise<AuditEvent> {
  return new Promise((resolve) => {
    const stop = w.bus.subscribe((e) => {
      if (!match(e)) return
      stop()
      resolve(e)
    })
  })
}

/** Wait for the wall clock to pass `at` (epoch ms): what a TTL is measured against. */
async function clockPast(at: number): Promise<void> {
  while (Date.now() <= at) await new Promise((r) => setTimeout(r, at - Date.now() + 5))
}

describe('promise 4: time limits end with the timers Warden runs', () => {
  const ONE_SECOND_TTL = variant(DEMO_CONFIG, (c) => ({
    approvals: { ...c.approvals, ttl_seconds: 1, ttl_by_risk: {}, ttl_by_tool: {} },
  }))

  it('the sweeper timer expires a held call at its TTL; approving it afterwards is refused', async () => {
    const backend = new DemoBackend()
    const w = await start({ config: ONE_SECOND_TTL, demoBackend: backend, sweepIntervalMs: 50 })
    const before = balance(backend)
    const held = await refund(w, 250)
    expect(held.statusCode).toBe(202)
    const id = held.json().approval_id as string
    const expired = await nextEvent(w, (e) => e.type === 'approval_expired' && e.approval_id === id)
    expect(expired.decision).toBe('expired')
    expect(expired.approver).toBeUndefined()
    expect(Date.parse(expired.timestamp)).toBeGreaterThanOrEqual(Date.parse(held.json().expires_at))
    expect((await w.stores.approvals.get(id))!.status).toBe('expired')

    const late = await approve(w, id)
    expect(late.statusCode).toBe(409)
    expect(late.json().error.code).toBe('approval_expired')
    expect(balance(backend)).toBe(before)
  })

  it('approving after the TTL, before any sweep, expires the call then and there', async () => {
    const backend = new DemoBackend()
    const w = await start({ config: ONE_SECOND_TTL, demoBackend: backend, sweepIntervalMs: 0 })
    const before = balance(backend)
    const held = (await refund(w, 250)).json()
    await clockPast(Date.parse(held.expires_at))
    expect((await w.stores.approvals.get(held.approval_id))!.status).toBe('pending')

    const late = await approve(w, held.approval_id)
    expect(late.statusCode).toBe(409)
    expect(late.json().error).toMatchObject({
      code: 'approval_expired',
      message: expect.stringContaining(`expired at ${held.expires_at}`),
    })
    expect((await w.stores.approvals.get(held.approval_id))!.status).toBe('expired')
    const types = (await eventsOf(w, held.request_id)).map((e) => e.type)
    expect(types).toEqual(['approval_required', 'approval_expired'])
    expect(balance(backend)).toBe(before)
  })

  it('a quarantine ends at its time: refused while it runs, decided normally after', async () => {
    const config = variant(DEMO_CONFIG, (c) => ({
      sequence: {
        ...c.sequence,
        quarantine: { denials: 2, within_seconds: 60, duration_seconds: 1 },
      },
    }))
    const w = await start({ config })
    // support-agent may not refund: two denials of its own doing quarantine it for a second.
    for (let i = 0; i < 2; i++) {
      const denied = await execute(w, 'support-agent', 'issue_refund', {
        order_id: 'ORD-1001',
        amount: 1,
        reason: 'x',
      })
      expect(denied.json().error.code).toBe('tool_not_allowed')
    }
    const lookup = () => execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    const refused = await lookup()
    expect(refused.statusCode).toBe(403)
    expect(refused.json().error.code).toBe('agent_quarantined')
    const until = /quarantined until (\S+) /.exec(refused.json().error.message)![1]!
    await clockPast(Date.parse(until))
    const after = await lookup()
    expect(after.statusCode).toBe(200)
    expect(after.json().decision).toBe('allow')
  })
})
