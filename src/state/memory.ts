import type { HistoryEntry, RateLimitResult, StateStore, TaintEntry } from './types.js'

const MAX_TAINT_ENTRIES = 64
const MAX_KEYS = 100_000

/** Single-process state. Bounded: old keys are dropped once a map grows past `MAX_KEYS`. */
export function memoryState(): StateStore {
  const tat = new Map<string, number>()
  const taint = new Map<string, TaintEntry[]>()
  const history = new Map<string, HistoryEntry[]>()
  const denials = new Map<string, number[]>()
  const quarantined = new Map<string, number>()
  // agent → `from` tool → next tool → count. Bounded by the configuration (agents × tools²).
  const transitions = new Map<string, Map<string, Record<string, number>>>()

  return {
    async rateLimit(key, limit, windowMs, now): Promise<RateLimitResult> {
      // GCRA: each hit moves the theoretical arrival time on by one emission interval;
      // a hit is refused while that time would be more than one window ahead of now.
      const interval = windowMs / limit
      const current = Math.max(tat.get(key) ?? now, now)
      const next = current + interval
      const allowAt = next - windowMs
      if (allowAt > now) return { allowed: false, retryAfterMs: Math.ceil(allowAt - now) }
      bounded(tat, (v) => v < now)
      tat.set(key, next)
      return { allowed: true, retryAfterMs: 0 }
    },
    async addTaint(session, entry) {
      const list = taint.get(session) ?? []
      list.push(entry)
      if (list.length > MAX_TAINT_ENTRIES) list.shift()
      bounded(taint, () => false)
      taint.set(session, list)
    },
    async taints(session) {
      return taint.get(session) ?? []
    },
    async recordCall(agent, entry, limit) {
      const list = history.get(agent) ?? []
      list.push(entry)
      while (list.length > limit) list.shift()
      history.set(agent, list)
    },
    async history(agent) {
      return history.get(agent) ?? []
    },
    async recordDenial(agent, now, windowMs) {
      const recent = (denials.get(agent) ?? []).filter((t) => t > now - windowMs)
      recent.push(now)
      denials.set(agent, recent)
      return recent.length
    },
    async recordTransition(agent, from, to) {
      let rows = transitions.get(agent)
      if (!rows) transitions.set(agent, (rows = new Map()))
      let row = rows.get(from)
      if (!row) rows.set(from, (row = Object.create(null) as Record<string, number>))
      row[to] = (row[to] ?? 0) + 1
    },
    async transitions(agent, from) {
      return transitions.get(agent)?.get(from) ?? {}
    },
    async quarantine(agent, until) {
      quarantined.set(agent, until)
    },
    async quarantinedUntil(agent) {
      return quarantined.get(agent) ?? null
    },
    async health() {
      return {
        ok: true,
        detail: `memory (${tat.size} rate-limit keys, ${history.size} agent histories)`,
      }
    },
    async close() {},
  }
}

/** Keep a map under `MAX_KEYS` by dropping stale entries first, then the oldest inserted. */
function bounded<V>(map: Map<string, V>, stale: (v: V) => boolean): void {
  if (map.size < MAX_KEYS) return
  for (const [k, v] of map) if (stale(v)) map.delete(k)
  for (const k of map.keys()) {
    if (map.size < MAX_KEYS) break
    map.delete(k)
  }
}
