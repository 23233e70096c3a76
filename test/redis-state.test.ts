import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createClient } from 'redis'
import { openState } from '../src/state/index.js'
import type { SessionChanges, StateBackend } from '../src/state/types.js'
import { TEST_REDIS_URL, deletePrefix, openTestRedis, testPrefix } from './state-backends.js'

// What only the Redis backend has to show: several instances sharing it, every key expiring,
// and failing fast (never hanging, never crashing) when the server is gone or stalled. The
// contract every backend keeps is test/state.test.ts.

const opened: StateBackend[] = []
const track = (s: StateBackend) => (opened.push(s), s)
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()))
})

/** A raw client on the test server, for looking at keys. */
async function inspector() {
  const client = createClient({ url: TEST_REDIS_URL })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** Every key under `prefix` (SCAN, never KEYS). */
async function keysUnder(prefix: string): Promise<string[]> {
  const client = await inspector()
  const out: string[] = []
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
    out.push(...keys)
  client.destroy()
  return out.sort()
}

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

/** Rejects (true) or resolves (false) within `ms`; a promise still pending fails the test. */
async function rejectsWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  const started = Date.now()
  const rejected = await p.then(
    () => false,
    () => true,
  )
  expect(Date.now() - started).toBeLessThan(ms)
  return rejected
}

describe('redis state', () => {
  it('two instances sharing one prefix let exactly the limit through, however hits race', async () => {
    const prefix = testPrefix()
    const a = track(await openTestRedis(prefix))
    const b = track(await openState({ kind: 'redis', url: TEST_REDIS_URL, prefix }))
    // One hit every 6 s refills: nothing refills while the test runs.
    const limit = { key: 'shared', limit: 10, windowMs: 60_000 }
    let allowed = 0
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).rateLimiter.hit([limit])),
      )
      allowed += results.filter((r) => r.allowed).length
      if (round === 0) expect(allowed).toBe(10)
    }
    expect(allowed).toBe(10)
  })

  it('every key it writes expires: a full commit of every kind of change leaves no key without a TTL', async () => {
    const prefix = testPrefix()
    const state = track(await openTestRedis(prefix))
    const at = Date.now()
    await state.rateLimiter.hit([{ key: 'agent:a', limit: 5, windowMs: 60_000 }])
    const full = (i: number): SessionChanges => ({
      agent: 'a',
      history: { entry: { tool: 't', decision: 'deny', at: at + i, params: {} }, limit: 10 },
      taint: {
        session: 's',
        entries: [{ source: 'tool:x#1', text: 'ignore all', at: at + i, injected: true }],
        maxChars: 15,
        idleMs: 60_000,
      },
      // Capped at one entry: the second commit drops one and records it.
      window: { key: 'refund', entry: { at: at + i, params: { n: i } }, keepMs: 60_000, max: 1 },
      transition: { from: '^', to: 't' },
      denial: { at: at + i, windowMs: 60_000, threshold: 2, quarantineUntil: at + 600_000 },
    })
    await state.sessions.commit(full(0))
    await state.sessions.commit(full(1))
    const snap = await state.sessions.load({
      agent: 'a',
      session: 's',
      now: at + 2,
      windows: ['refund'],
    })
    expect(snap.quarantinedUntil.get('a')).toBe(at + 600_000)
    expect(snap.windows.get('refund')?.droppedUntil).toBe(at)
    const keys = await keysUnder(prefix)
    // One key of each kind: rate limit, history, taint, window, dropped mark, counter,
    // transitions, denials, quarantine.
    expect(keys.map((k) => k.slice(prefix.length).split(':')[0]).sort()).toEqual(
      ['d', 'h', 'n', 'q', 'rl', 't', 'w', 'wd', 'x'].sort(),
    )
    const client = await inspector()
    for (const key of keys) expect(await client.pTTL(key), key).toBeGreaterThan(0)
    client.destroy()
  })

  it('keeps times and numbers exact (Lua numbers are doubles; cjson prints 14 digits)', async () => {
    const state = track(await openTestRedis())
    const at = Date.now()
    const params = { amount: 0.1 + 0.2, big: 2 ** 53 - 1, id: 'ORD-1' }
    await state.sessions.commit({
      agent: 'a',
      history: { entry: { tool: 't', decision: 'allow', at, params }, limit: 10 },
      taint: {
        session: 's',
        entries: [{ source: 'u', text: 'héllo\n"x"|1\ud800', at }],
        idleMs: 1000,
      },
      window: { key: 'k', entry: { at, params }, keepMs: 60_000, max: 10 },
      denial: { at, windowMs: 1000, threshold: 1, quarantineUntil: at + 123_457 },
    })
    const snap = await state.sessions.load({
      agent: 'a',
      session: 's',
      now: at,
      windows: ['k'],
    })
    expect(snap.history).toEqual([{ tool: 't', decision: 'allow', at, params }])
    expect(snap.taint).toEqual([{ source: 'u', text: 'héllo\n"x"|1\ud800', at }])
    expect(snap.windows.get('k')?.entries).toEqual([{ at, params, seq: expect.any(Number) }])
    expect(snap.quarantinedUntil.get('a')).toBe(at + 123_457)
  })

  it('a server that is not there: every call rejects within 2 s, health says so, nothing crashes', async () => {
    const uncaught: unknown[] = []
    const onUncaught = (err: unknown) => uncaught.push(err)
    process.on('uncaughtException', onUncaught)
    try {
      const url = `redis://127.0.0.1:${await closedPort()}`
      const state = await openState({ kind: 'redis', url, prefix: testPrefix() })
      const hit = state.rateLimiter.hit([{ key: 'k', limit: 1, windowMs: 1000 }])
      expect(await rejectsWithin(hit, 2000)).toBe(true)
      expect(await rejectsWithin(state.sessions.load({ agent: 'a', now: 0 }), 2000)).toBe(true)
      const commit = state.sessions.commit({ agent: 'a', transition: { from: '^', to: 't' } })
      expect(await rejectsWithin(commit, 2000)).toBe(true)
      const health = await state.health()
      expect(health.ok).toBe(false)
      expect(health.detail).toMatch(/^redis: /)
      // While it keeps retrying in the background, errors stay on the listener.
      await new Promise((r) => setTimeout(r, 300))
      await state.close()
      expect(uncaught).toEqual([])
    } finally {
      process.off('uncaughtException', onUncaught)
    }
  })

  it('a stalled server: a call rejects within about a second, and the client recovers', async () => {
    const proxy = await stallingProxy()
    try {
      const prefix = testPrefix()
      const state = track(
        await openState({ kind: 'redis', url: `redis://127.0.0.1:${proxy.port}`, prefix }),
      )
      const limit = { key: 'k', limit: 100, windowMs: 60_000 }
      expect(await state.rateLimiter.hit([limit])).toEqual({ allowed: true })
      proxy.stall(true)
      expect(await rejectsWithin(state.rateLimiter.hit([limit]), 1500)).toBe(true)
      expect(await rejectsWithin(state.sessions.load({ agent: 'a', now: 0 }), 1500)).toBe(true)
      expect((await state.health()).ok).toBe(false)
      // The late replies arrive and are discarded; the next calls get their own.
      proxy.stall(false)
      expect((await state.health()).ok).toBe(true)
      expect(await state.rateLimiter.hit([limit])).toEqual({ allowed: true })
      await deletePrefix(prefix)
    } finally {
      await proxy.close()
    }
  })
})

/** A TCP proxy to the test server that can hold back the server's replies (a stalled server). */
async function stallingProxy() {
  const target = new URL(TEST_REDIS_URL)
  let stalled = false
  const links: { client: Socket; held: Buffer[] }[] = []
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname)
    const link = { client, held: [] as Buffer[] }
    links.push(link)
    client.on('data', (d) => upstream.write(d))
    upstream.on('data', (d: Buffer) => (stalled ? link.held.push(d) : client.write(d)))
    const end = () => (client.destroy(), upstream.destroy())
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as AddressInfo).port,
    stall(on: boolean) {
      stalled = on
      if (!on) for (const link of links) link.client.write(Buffer.concat(link.held.splice(0)))
    },
    async close() {
      for (const { client } of links) client.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}
