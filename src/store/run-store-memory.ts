import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { runStoreSettings, type RunStore, type RunStoreOptions } from './run-store.js'

interface Entry {
  id: string
  agentId: string
  /** JSON text, as the SQLite store keeps it: the caller's later changes do not leak in. */
  state: string
  expiresAt: number
  lease?: { token: string; until: number }
}

const heldRun = (e: Entry) => ({ id: e.id, agentId: e.agentId, state: JSON.parse(e.state) })

/**
 * Held runs in this process only (a restart loses them): an LRU cache with the cap as its size
 * and a TTL per entry. Every operation is synchronous, so a claim cannot interleave with another.
 */
export function memoryRunStore(opts: RunStoreOptions = {}): RunStore {
  const { ttlMs, maxRuns, leaseMs, now } = runStoreSettings(opts)
  // ttlResolution 0: ask the clock every time (the cache would otherwise reuse a reading for 1 ms).
  const cache = new LRUCache<string, Entry>({
    max: maxRuns,
    ttl: ttlMs,
    ttlResolution: 0,
    perf: { now },
  })
  // Stale when `now > expiresAt`, as in SQLite; a TTL of 0 would mean "forever" to the cache.
  const keepUntil = (e: Entry, t: number) =>
    cache.set(e.id, e, { ttl: Math.max(1, e.expiresAt - t) })
  const leased = (id: string, token: string) => {
    const e = cache.peek(id)
    return e?.lease?.token === token ? e : undefined
  }

  return {
    leaseMs,
    async save(run) {
      const t = now()
      const state = JSON.stringify(run.state)
      keepUntil({ id: run.id, agentId: run.agentId, state, expiresAt: t + ttlMs }, t)
    },
    async load(id) {
      const e = cache.peek(id)
      return e ? heldRun(e) : null
    },
    async claim(id) {
      const t = now()
      const e = cache.get(id)
      if (!e) return { ok: false, reason: 'missing' }
      if (e.lease && e.lease.until >= t) return { ok: false, reason: 'busy' }
      const token = randomUUID()
      e.lease = { token, until: t + leaseMs }
      // INVARIANT: a leased run expires no earlier than its lease ends.
      e.expiresAt = Math.max(e.expiresAt, e.lease.until)
      keepUntil(e, t)
      return { ok: true, run: heldRun(e), lease: { runId: id, token } }
    },
    async renew(lease) {
      const e = leased(lease.runId, lease.token)
      if (!e?.lease) return false
      const t = now()
      e.lease.until = t + leaseMs
      e.expiresAt = Math.max(e.expiresAt, e.lease.until)
      keepUntil(e, t)
      return true
    },
    async release(lease, state) {
      const e = leased(lease.runId, lease.token)
      if (!e) return false
      delete e.lease
      if (state !== undefined) {
        const t = now()
        e.state = JSON.stringify(state)
        e.expiresAt = t + ttlMs
        keepUntil(e, t)
      }
      return true
    },
    async delete(lease) {
      return leased(lease.runId, lease.token) !== undefined && cache.delete(lease.runId)
    },
    async close() {
      cache.clear()
    },
  }
}
