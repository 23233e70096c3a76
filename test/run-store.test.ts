import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { memoryRunStore } from '../src/store/run-store-memory.js'
import { sqliteRunStore } from '../src/store/run-store-sqlite.js'
import type { RunLease, RunStore, RunStoreOptions } from '../src/store/run-store.js'

const dir = mkdtempSync(join(tmpdir(), 'warden-run-store-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

/**
 * One contract for every run-store backend; PostgreSQL joins this list. A factory returns an
 * opener: each `open()` is a handle on the same runs (SQLite: another connection to the file, as
 * another agent API instance would have; memory: the one store, since it cannot be shared).
 */
export const runStoreBackends: [string, (opts: RunStoreOptions) => () => RunStore][] = [
  [
    'memory',
    (opts) => {
      const store = memoryRunStore(opts)
      return () => store
    },
  ],
  [
    'sqlite',
    (opts) => {
      const path = join(dir, `runs-${++files}.db`)
      return () => sqliteRunStore(path, opts)
    },
  ],
]

const TTL = 60_000
const LEASE = 10_000

describe.each(runStoreBackends)('run store contract: %s', (_name, make) => {
  let t: number
  let handles: RunStore[]
  let open: () => RunStore
  const setup = (over: RunStoreOptions = {}) => {
    open = make({ ttlMs: TTL, leaseMs: LEASE, maxRuns: 100, now: () => t, ...over })
    const store = open()
    handles.push(store)
    return store
  }
  const another = () => {
    const store = open()
    handles.push(store)
    return store
  }
  const run = (id: string, state: unknown = { step: id }) => ({
    id,
    agentId: 'refund-agent',
    state,
  })
  const claimed = async (store: RunStore, id: string): Promise<RunLease> => {
    const claim = await store.claim(id)
    if (!claim.ok) throw new Error(`claim of ${id} failed: ${claim.reason}`)
    return claim.lease
  }

  beforeEach(() => {
    t = 1_700_000_000_000
    handles = []
  })
  afterEach(async () => {
    for (const h of new Set(handles)) await h.close()
  })

  it('saves and loads a run as JSON; later changes to the caller’s object do not leak in', async () => {
    const store = setup()
    const state = { messages: [{ role: 'user', content: 'refund $250' }], turns: 1, held: null }
    await store.save(run('r1', state))
    state.turns = 99
    expect(await store.load('r1')).toEqual({
      id: 'r1',
      agentId: 'refund-agent',
      state: { messages: [{ role: 'user', content: 'refund $250' }], turns: 1, held: null },
    })
    expect(await another().load('r1')).toMatchObject({ id: 'r1' })
    expect(await store.load('nope')).toBeNull()
  })

  it('a claim is exclusive: of two concurrent claims exactly one wins, the other is told busy', async () => {
    const store = setup()
    await store.save(run('r1'))
    const results = await Promise.all([store.claim('r1'), another().claim('r1')])
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    expect(results.find((r) => !r.ok)).toEqual({ ok: false, reason: 'busy' })
    expect(results.find((r) => r.ok)).toMatchObject({ run: { id: 'r1', state: { step: 'r1' } } })
    expect(await store.claim('missing')).toEqual({ ok: false, reason: 'missing' })
  })

  it('a released run can be claimed again; with a new state it is held again with that state', async () => {
    const store = setup()
    await store.save(run('r1'))
    const first = await claimed(store, 'r1')
    expect(await store.release(first)).toBe(true)
    expect(await store.release(first)).toBe(false)
    const second = await claimed(another(), 'r1')
    expect(await store.release(second, { step: 'held again' })).toBe(true)
    expect((await store.load('r1'))?.state).toEqual({ step: 'held again' })
    expect(await store.renew(second)).toBe(false)
  })

  it('a stale lease can be taken over; the old driver can then renew, release or delete nothing', async () => {
    const store = setup()
    await store.save(run('r1'))
    const crashed = await claimed(store, 'r1')
    t += LEASE
    expect(await another().claim('r1')).toEqual({ ok: false, reason: 'busy' })
    t += 1
    const taker = await claimed(another(), 'r1')
    expect(await store.renew(crashed)).toBe(false)
    expect(await store.release(crashed, { step: 'stale' })).toBe(false)
    expect(await store.delete(crashed)).toBe(false)
    expect((await store.load('r1'))?.state).toEqual({ step: 'r1' })
    expect(await store.delete(taker)).toBe(true)
  })

  it('renewing keeps the lease past its first end', async () => {
    const store = setup()
    expect(store.leaseMs).toBe(LEASE)
    await store.save(run('r1'))
    const lease = await claimed(store, 'r1')
    t += LEASE - 1
    expect(await store.renew(lease)).toBe(true)
    t += LEASE - 1
    expect(await another().claim('r1')).toEqual({ ok: false, reason: 'busy' })
    expect(await store.release(lease)).toBe(true)
    expect((await another().claim('r1')).ok).toBe(true)
  })

  it('runs expire after the TTL, counted from the latest hold; a leased run outlives it', async () => {
    const store = setup()
    await store.save(run('old'))
    await store.save(run('driven'))
    t += TTL
    expect(await store.load('old')).not.toBeNull()
    const lease = await claimed(store, 'driven')
    t += 1
    expect(await store.load('old')).toBeNull()
    expect(await store.claim('old')).toEqual({ ok: false, reason: 'missing' })
    // Past its TTL but under its driver's lease: still there, and held again for a new TTL.
    expect(await store.load('driven')).not.toBeNull()
    expect(await store.release(lease, { step: 'new hold' })).toBe(true)
    t += TTL
    expect((await store.load('driven'))?.state).toEqual({ step: 'new hold' })
    t += 1
    expect(await store.load('driven')).toBeNull()
  })

  it('keeps at most `maxRuns`: a save past the cap evicts the run touched least recently', async () => {
    const store = setup({ maxRuns: 3 })
    for (const id of ['r1', 'r2', 'r3']) {
      await store.save(run(id))
      t += 1
    }
    // A claim touches r1, so r2 is now the least recently touched.
    expect(await store.release(await claimed(store, 'r1'))).toBe(true)
    t += 1
    await store.save(run('r4'))
    const kept = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((id) => store.load(id)))
    expect(kept.map((r) => r?.id ?? null)).toEqual(['r1', null, 'r3', 'r4'])
  })

  it('a finished run is deleted: gone for every handle, and deleting twice does nothing', async () => {
    const store = setup()
    await store.save(run('r1'))
    const lease = await claimed(store, 'r1')
    expect(await store.delete(lease)).toBe(true)
    expect(await another().load('r1')).toBeNull()
    expect(await another().claim('r1')).toEqual({ ok: false, reason: 'missing' })
    expect(await store.delete(lease)).toBe(false)
  })
})

describe('sqlite run store', () => {
  it('keeps runs across closing and reopening the file (a restart)', async () => {
    const path = join(dir, 'restart.db')
    const first = sqliteRunStore(path)
    await first.save({ id: 'r1', agentId: 'refund-agent', state: { turns: 2 } })
    await first.close()
    const second = sqliteRunStore(path)
    try {
      const claim = await second.claim('r1')
      expect(claim).toMatchObject({ ok: true, run: { state: { turns: 2 } } })
    } finally {
      await second.close()
    }
  })
})
