import { afterEach, describe, expect, it } from 'vitest'
import { openState } from '../src/state/index.js'
import {
  MAX_TAINT_ENTRIES,
  type HistoryEntry,
  type SessionChanges,
  type StateBackend,
  type TaintEntry,
} from '../src/state/types.js'
import { loadConfig } from '../src/config/loader.js'
import { pipeline } from '../src/pipeline/runner.js'
import { buildRuntime } from '../src/pipeline/runtime.js'
import { memoryStores } from '../src/store/memory.js'
import { createWarden } from '../src/warden.js'
import { DEMO_CONFIG, keyOf } from './helpers.js'
import {
  DRIVEN_CLOCK,
  STATE_BACKENDS,
  TEST_REDIS_URL,
  testClock,
  testPrefix,
} from './state-backends.js'

const entry = (tool: string, at = 0): HistoryEntry => ({ tool, decision: 'allow', at, params: {} })
const text = (t: string, at = 0): TaintEntry => ({ source: 'context.user_input', text: t, at })
const denial = (at: number): SessionChanges['denial'] => ({
  at,
  windowMs: 500,
  threshold: 3,
  quarantineUntil: at + 10_000,
})

// One contract for every state backend (see test/state-backends.ts).
describe.each(STATE_BACKENDS)('state contract: %s', (name, open) => {
  let state: StateBackend
  afterEach(() => state.close())
  /** Let `ms` pass on the backend's clock: moved when the test drives it, waited for if not. */
  const elapse = async (ms: number) => {
    testClock.now += ms
    if (!DRIVEN_CLOCK.has(name)) await new Promise((r) => setTimeout(r, ms))
  }
  const hit = (key: string, limit: number, windowMs: number) =>
    state.rateLimiter.hit([{ key, limit, windowMs }])

  describe('rate limiter', () => {
    it('allows a burst up to the limit, then refuses with the time to wait, then refills', async () => {
      state = await open()
      const results = []
      for (let i = 0; i < 4; i++) results.push(await hit('k', 3, 300))
      expect(results.map((r) => r.allowed)).toEqual([true, true, true, false])
      const refused = results[3]!
      expect(refused).toMatchObject({ allowed: false, key: 'k' })
      const wait = refused.allowed ? 0 : refused.retryAfterMs
      expect(wait).toBeGreaterThan(0)
      // With its clock held still, the wait is exactly one emission interval (300 ms / 3).
      if (DRIVEN_CLOCK.has(name)) expect(wait).toBe(100)
      // One emission interval later, exactly one more hit fits.
      await elapse(100)
      expect((await hit('k', 3, 300)).allowed).toBe(true)
      expect((await hit('k', 3, 300)).allowed).toBe(false)
    })

    it('is all or nothing across keys: a refused hit spends no budget of any key', async () => {
      state = await open()
      const agent = { key: 'agent:a', limit: 3, windowMs: 60_000 }
      const tool = { key: 'agent-tool:a:t', limit: 1, windowMs: 60_000 }
      expect(await state.rateLimiter.hit([agent, tool])).toEqual({ allowed: true })
      const refused = await state.rateLimiter.hit([agent, tool])
      expect(refused).toMatchObject({ allowed: false, key: 'agent-tool:a:t' })
      if (DRIVEN_CLOCK.has(name)) expect(refused).toMatchObject({ retryAfterMs: 60_000 })
      // The refused hit left the agent's budget alone: two of its three remain.
      expect((await state.rateLimiter.hit([agent])).allowed).toBe(true)
      expect((await state.rateLimiter.hit([agent])).allowed).toBe(true)
      expect((await state.rateLimiter.hit([agent])).allowed).toBe(false)
    })

    it('names the first refusing key and waits until every key would allow', async () => {
      state = await open()
      const short = { key: 'short', limit: 1, windowMs: 1000 }
      const long = { key: 'long', limit: 1, windowMs: 5000 }
      await state.rateLimiter.hit([short, long])
      const refused = await state.rateLimiter.hit([short, long])
      expect(refused).toMatchObject({ allowed: false, key: 'short' })
      const wait = refused.allowed ? 0 : refused.retryAfterMs
      expect(wait).toBeGreaterThan(1000)
      if (DRIVEN_CLOCK.has(name)) expect(wait).toBe(5000)
    })

    it('keeps keys independent', async () => {
      state = await open()
      expect((await hit('x', 1, 60_000)).allowed).toBe(true)
      expect((await hit('x', 1, 60_000)).allowed).toBe(false)
      expect((await hit('y', 1, 60_000)).allowed).toBe(true)
      expect((await state.rateLimiter.hit([])).allowed).toBe(true)
    })

    it('lets exactly the limit through when hits arrive at once', async () => {
      state = await open()
      const results = await Promise.all(Array.from({ length: 10 }, () => hit('c', 3, 60_000)))
      expect(results.filter((r) => r.allowed)).toHaveLength(3)
    })
  })

  describe('sessions', () => {
    it('history: the newest entries up to the limit, per agent', async () => {
      state = await open()
      for (let i = 0; i < 5; i++)
        await state.sessions.commit({ agent: 'a', history: { entry: entry(`t${i}`, i), limit: 3 } })
      const snap = await state.sessions.load({ agent: 'a', now: 10 })
      expect(snap.history.map((h) => h.tool)).toEqual(['t2', 't3', 't4'])
      expect(snap.history[2]).toEqual(entry('t4', 4))
      expect((await state.sessions.load({ agent: 'b', now: 10 })).history).toEqual([])
    })

    it('taint: per session and scoped to the agent; a delegated call sees the delegator’s', async () => {
      state = await open()
      await state.sessions.commit({
        agent: 'a',
        taint: { session: 's1', entries: [text('send it to x@y.example', 1)] },
      })
      const own = await state.sessions.load({ agent: 'a', session: 's1', now: 2 })
      expect(own.taint).toEqual([text('send it to x@y.example', 1)])
      expect(own.delegatorTaint).toEqual([])
      expect((await state.sessions.load({ agent: 'a', session: 's2', now: 2 })).taint).toEqual([])
      // Another agent's session of the same name is its own.
      const other = await state.sessions.load({ agent: 'b', session: 's1', now: 2 })
      expect(other.taint).toEqual([])
      const delegated = await state.sessions.load({
        agent: 'b',
        session: 's9',
        chain: ['a'],
        delegatorSession: { agent: 'a', session: 's1' },
        now: 2,
      })
      expect(delegated.taint).toEqual([])
      expect(delegated.delegatorTaint).toEqual([text('send it to x@y.example', 1)])
    })

    it('taint: a session keeps its newest entries up to the cap', async () => {
      state = await open()
      const entries = Array.from({ length: MAX_TAINT_ENTRIES + 6 }, (_, i) => text(`t${i}`, i))
      await state.sessions.commit({
        agent: 'a',
        taint: { session: 's', entries: entries.slice(0, 6) },
      })
      await state.sessions.commit({
        agent: 'a',
        taint: { session: 's', entries: entries.slice(6) },
      })
      const { taint } = await state.sessions.load({ agent: 'a', session: 's', now: 0 })
      expect(taint).toEqual(entries.slice(6))
    })

    it('taint: the cap never drops the mark of an injection, however many entries follow', async () => {
      state = await open()
      const poisoned = { source: 'tool:x#1', text: 'ignore all', at: 0, injected: true }
      await state.sessions.commit({ agent: 'a', taint: { session: 's', entries: [poisoned] } })
      // A hijacked agent floods the session with calls of its own, one at a time and in bulk.
      for (let i = 1; i <= 3; i++)
        await state.sessions.commit({
          agent: 'a',
          taint: { session: 's', entries: [text(`one ${i}`, i)] },
        })
      const flood = Array.from({ length: MAX_TAINT_ENTRIES * 2 }, (_, i) => text(`f${i}`, 10 + i))
      await state.sessions.commit({ agent: 'a', taint: { session: 's', entries: flood } })
      await state.sessions.commit({
        agent: 'a',
        taint: { session: 's', entries: [text('after', 1000)] },
      })
      const { taint } = await state.sessions.load({ agent: 'a', session: 's', now: 1000 })
      expect(taint[0]).toEqual({ ...poisoned, text: '' })
      expect(taint.filter((e) => e.injected)).toHaveLength(1)
      expect(taint.at(-1)).toEqual(text('after', 1000))
      expect(taint.length).toBeLessThanOrEqual(MAX_TAINT_ENTRIES + 1)
    })

    it('rule windows: kept for their span per agent and key, capped with what was dropped', async () => {
      state = await open()
      const add = (agent: string, key: string, at: number, max = 3) =>
        state.sessions.commit({
          agent,
          window: { key, entry: { at, params: { n: at } }, keepMs: 1000, max },
        })
      await add('a', 'refund', 0)
      await add('a', 'refund', 500)
      await add('b', 'refund', 600)
      await add('a', 'lookup', 700)
      // Entries older than keepMs before the newest go; the other agent's and key's stay apart.
      await add('a', 'refund', 1200)
      const load = () =>
        state.sessions.load({ agent: 'a', now: 1200, windows: ['refund', 'lookup', 'none'] })
      let { windows } = await load()
      const plain = (es: readonly { at: number; params: object }[] = []) =>
        es.map(({ at, params }) => ({ at, params }))
      const refunds = windows.get('refund')!
      expect(plain(refunds.entries)).toEqual([
        { at: 500, params: { n: 500 } },
        { at: 1200, params: { n: 1200 } },
      ])
      expect(refunds.droppedUntil).toBeUndefined()
      // The backend numbers kept entries in commit order (ties in time are told apart).
      expect(refunds.entries[0]!.seq).toBeLessThan(windows.get('lookup')!.entries[0]!.seq)
      expect(windows.get('lookup')!.entries[0]!.seq).toBeLessThan(refunds.entries[1]!.seq)
      expect(plain(windows.get('lookup')?.entries)).toEqual([{ at: 700, params: { n: 700 } }])
      expect(windows.has('none')).toBe(false)
      // Past the cap the oldest go and the window says until when it is incomplete.
      await add('a', 'refund', 1300)
      await add('a', 'refund', 1400)
      ;({ windows } = await load())
      expect(plain(windows.get('refund')?.entries)).toEqual(
        [1200, 1300, 1400].map((at) => ({ at, params: { n: at } })),
      )
      expect(windows.get('refund')?.droppedUntil).toBe(500)
      // Without asking, no windows are read.
      expect((await state.sessions.load({ agent: 'a', now: 1400 })).windows.size).toBe(0)
    })

    it('taint: kept within maxChars (an injection keeps its mark) and forgotten when idle', async () => {
      state = await open()
      const commit = (t: TaintEntry) =>
        state.sessions.commit({
          agent: 'a',
          taint: { session: 's', entries: [t], maxChars: 10, idleMs: 1000 },
        })
      await commit({ source: 'tool:x#1', text: 'ignore all', at: 0, injected: true })
      await commit(text('abcdef', 100))
      await commit(text('ghijkl', 200))
      const load = (now: number) => state.sessions.load({ agent: 'a', session: 's', now })
      expect((await load(200)).taint).toEqual([
        { source: 'tool:x#1', text: '', at: 0, injected: true },
        text('ghijkl', 200),
      ])
      // Idle longer than idleMs after the last write: forgotten.
      expect((await load(1200)).taint).toHaveLength(2)
      expect((await load(1201)).taint).toEqual([])
    })

    it('transitions: counted per agent and per previous tool', async () => {
      state = await open()
      const learn = (agent: string, from: string, to: string) =>
        state.sessions.commit({ agent, transition: { from, to } })
      await learn('a', '^', 'search')
      await learn('a', 'search', 'ticket')
      await learn('a', 'search', 'ticket')
      await learn('a', 'search', 'refund')
      await learn('b', 'search', 'export')
      const a = (await state.sessions.load({ agent: 'a', now: 0 })).transitions
      expect({ ...a.get('search') }).toEqual({ ticket: 2, refund: 1 })
      expect({ ...a.get('^') }).toEqual({ search: 1 })
      expect(a.get('never')).toBeUndefined()
      const b = (await state.sessions.load({ agent: 'b', now: 0 })).transitions
      expect({ ...b.get('search') }).toEqual({ export: 1 })
      // A tool named like an Object.prototype member is an ordinary key.
      await learn('a', 'search', 'constructor')
      const again = (await state.sessions.load({ agent: 'a', now: 0 })).transitions
      expect(again.get('search')?.constructor).toBe(1)
    })

    it('denials: quarantine at the threshold within the window, not before', async () => {
      state = await open()
      const quarantined = async (agent: string, now: number, chain?: string[]) =>
        Object.fromEntries(
          (await state.sessions.load({ agent, now, ...(chain && { chain }) })).quarantinedUntil,
        )
      await state.sessions.commit({ agent: 'a', denial: denial(1000) })
      await state.sessions.commit({ agent: 'a', denial: denial(1200) })
      expect(await quarantined('a', 1300)).toEqual({})
      // The first two have left the 500 ms window by 1800: counting starts again.
      await state.sessions.commit({ agent: 'a', denial: denial(1800) })
      await state.sessions.commit({ agent: 'a', denial: denial(1900) })
      expect(await quarantined('a', 1950)).toEqual({})
      await state.sessions.commit({ agent: 'a', denial: denial(2000) })
      expect(await quarantined('a', 2050)).toEqual({ a: 12_000 })
      // Reported for a chain member too, and for no one else.
      expect(await quarantined('b', 2050, ['a'])).toEqual({ a: 12_000 })
      expect(await quarantined('b', 2050)).toEqual({})
      // It ends when it says.
      expect(await quarantined('a', 11_999)).toEqual({ a: 12_000 })
      expect(await quarantined('a', 12_000)).toEqual({})
    })

    it('one commit applies every part of a change', async () => {
      state = await open()
      await state.sessions.commit({
        agent: 'a',
        history: { entry: entry('search', 5), limit: 10 },
        taint: { session: 's', entries: [text('hello', 5)] },
        transition: { from: '^', to: 'search' },
        denial: { at: 5, windowMs: 1000, threshold: 1, quarantineUntil: 500 },
      })
      const snap = await state.sessions.load({ agent: 'a', session: 's', now: 6 })
      expect(snap.history).toEqual([entry('search', 5)])
      expect(snap.taint).toEqual([text('hello', 5)])
      expect({ ...snap.transitions.get('^') }).toEqual({ search: 1 })
      expect(snap.quarantinedUntil.get('a')).toBe(500)
    })

    it('concurrent commits lose nothing', async () => {
      state = await open()
      await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          state.sessions.commit({
            agent: 'a',
            history: { entry: entry(`t${i}`, i), limit: 100 },
            taint: { session: 's', entries: [text(`x${i}`, i)] },
            transition: { from: '^', to: 'search' },
          }),
        ),
      )
      const snap = await state.sessions.load({ agent: 'a', session: 's', now: 0 })
      expect(new Set(snap.history.map((h) => h.tool)).size).toBe(50)
      expect(new Set(snap.taint.map((t) => t.text)).size).toBe(50)
      expect(snap.transitions.get('^')?.search).toBe(50)
    })

    it('a loaded snapshot does not change under later commits', async () => {
      state = await open()
      await state.sessions.commit({ agent: 'a', history: { entry: entry('one'), limit: 10 } })
      const before = await state.sessions.load({ agent: 'a', now: 0 })
      await state.sessions.commit({ agent: 'a', history: { entry: entry('two'), limit: 10 } })
      expect(before.history.map((h) => h.tool)).toEqual(['one'])
    })
  })

  it('reports its health', async () => {
    state = await open()
    expect((await state.health()).ok).toBe(true)
  })
})

describe('opening state', () => {
  it('memory is the default', async () => {
    const state = await openState()
    expect((await state.health()).detail).toMatch(/memory/)
    await state.close()
  })

  it('a redis URL opens the Redis backend; a missing or malformed one fails clearly at start', async () => {
    const state = await openState({ kind: 'redis', url: TEST_REDIS_URL, prefix: testPrefix() })
    expect(await state.health()).toEqual({ ok: true, detail: 'redis' })
    await state.close()
    await expect(openState({ kind: 'redis' })).rejects.toThrow(/REDIS_URL is not set/)
    await expect(openState({ kind: 'redis', url: 'http://x' })).rejects.toThrow(/redis:\/\//)
    for (const prefix of ['', 'a*', 'x y', 'p'.repeat(65)])
      await expect(openState({ kind: 'redis', url: TEST_REDIS_URL, prefix })).rejects.toThrow(
        /prefix/,
      )
    // The gateway opens it from REDIS_URL (and rebuilds nothing from the audit log: Redis kept it).
    const warden = await createWarden({
      config: DEMO_CONFIG,
      stores: memoryStores(),
      redisUrl: TEST_REDIS_URL,
      sweepIntervalMs: 0,
    })
    await warden.close()
  })
})

describe('state round trips of one call', () => {
  /** The real memory state, counting the operations the pipeline asks of it. */
  async function counted() {
    const state = await openState()
    const ops: string[] = []
    const backend: StateBackend = {
      ...state,
      rateLimiter: { hit: (l) => (ops.push('hit'), state.rateLimiter.hit(l)) },
      sessions: {
        load: (s) => (ops.push('load'), state.sessions.load(s)),
        commit: (c) => (ops.push('commit'), state.sessions.commit(c)),
      },
    }
    return { backend, ops }
  }
  const call = (
    agent: string,
    tool: string,
    params: Record<string, unknown>,
    key = keyOf(agent),
  ) => ({
    requestId: `r-${tool}`,
    agentId: agent,
    tool,
    params,
    sessionId: 's1',
    context: { user_input: 'hello' },
    credential: key,
    receivedAt: Date.now(),
  })

  it('a resolved call: one load, one rate-limit hit, one commit, in that order', async () => {
    const { backend, ops } = await counted()
    const p = pipeline(buildRuntime(loadConfig(DEMO_CONFIG), backend))
    const d = await p.decide(call('support-agent', 'search_knowledge_base', { query: 'shipping' }))
    expect(d.decision).toBe('allow')
    expect(ops).toEqual(['load', 'hit', 'commit'])
  })

  it('a call refused at the allowlist is recorded without loading; one with no agent touches nothing', async () => {
    const { backend, ops } = await counted()
    const p = pipeline(buildRuntime(loadConfig(DEMO_CONFIG), backend))
    const refused = await p.decide(call('support-agent', 'issue_refund', { order_id: 'ORD-1001' }))
    expect(refused).toMatchObject({ decision: 'deny', layer: 'tool_allowlist' })
    expect(ops).toEqual(['commit'])
    ops.length = 0
    const unknown = await p.decide(call('support-agent', 'search_knowledge_base', {}, 'wrong'))
    expect(unknown).toMatchObject({ decision: 'deny', layer: 'identity' })
    expect(ops).toEqual([])
  })

  it('fails closed: a failing rate limiter denies the call (layer_failed); a failing load rejects it', async () => {
    const state = await openState()
    const down = () => Promise.reject(new Error('down'))
    const loaded = loadConfig(DEMO_CONFIG)
    const search = call('support-agent', 'search_knowledge_base', { query: 'shipping' })
    const noLimiter = pipeline(buildRuntime(loaded, { ...state, rateLimiter: { hit: down } }))
    expect(await noLimiter.decide(search)).toMatchObject({
      decision: 'deny',
      layer: 'rate_limit',
      code: 'layer_failed',
    })
    const sessions = { load: down, commit: (c: SessionChanges) => state.sessions.commit(c) }
    const noLoad = pipeline(buildRuntime(loaded, { ...state, sessions }))
    await expect(noLoad.decide(search)).rejects.toMatchObject({ code: 'state_unavailable' })
  })
})
