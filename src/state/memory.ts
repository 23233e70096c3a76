import { LRUCache } from 'lru-cache'
import {
  MAX_TAINT_ENTRIES,
  type HistoryEntry,
  type RateLimit,
  type RateLimiter,
  type RateLimitResult,
  type RuleWindow,
  type SessionChanges,
  type SessionScope,
  type SessionSnapshot,
  type SessionState,
  type StateBackend,
  type TaintEntry,
} from './types.js'

/** Keys per map; past this the least recently used go. */
const MAX_KEYS = 100_000

export interface MemoryStateOptions {
  /** The clock rate limits read (epoch ms); tests and replays drive their own. */
  clock?: () => number
  /** Sessions whose taint is kept at once; past it the least recently used go. */
  maxSessions?: number
  /**
   * True while restart recovery replays recorded hits: each is counted whatever it would answer
   * now (the call did spend its budget), so a replay cannot hand budget back.
   */
  replaying?: () => boolean
}

type Row = Readonly<Record<string, number>>
const NO_ENTRIES: readonly never[] = Object.freeze([])
const NO_ROWS: ReadonlyMap<string, Row> = new Map()
const NO_QUARANTINES: ReadonlyMap<string, number> = new Map()
const NO_WINDOWS: ReadonlyMap<string, RuleWindow> = new Map()

/**
 * Single-process state. Stored lists and rows are replaced, never changed in place, so a
 * snapshot stays what it was when it was loaded.
 */
export function memoryState(options: MemoryStateOptions = {}): StateBackend {
  const rateLimiter = memoryRateLimiter(options.clock ?? Date.now, options.replaying)
  const sessions = memorySessions(options.maxSessions ?? MAX_KEYS)
  return {
    rateLimiter,
    sessions,
    async health() {
      return { ok: true, detail: 'memory' }
    },
    async close() {},
  }
}

function memoryRateLimiter(clock: () => number, replaying?: () => boolean): RateLimiter {
  // Theoretical arrival time per key (GCRA).
  const tat = new LRUCache<string, number>({ max: MAX_KEYS })
  return {
    async hit(limits: readonly RateLimit[]): Promise<RateLimitResult> {
      const now = clock()
      const forced = replaying?.() === true
      // Work out every key first and store only if all allow: a refused hit spends nothing.
      const next = new Map<string, number>()
      let refused: { key: string; retryAfterMs: number } | undefined
      for (const { key, limit, windowMs } of limits) {
        // Each hit moves the key's theoretical arrival time on by one emission interval; a hit
        // is refused while that time would be more than one window ahead of now.
        const current = Math.max(next.get(key) ?? tat.get(key) ?? now, now)
        const after = current + windowMs / limit
        const wait = after - windowMs - now
        if (wait > 0 && !forced) {
          refused = {
            key: refused?.key ?? key,
            retryAfterMs: Math.max(refused?.retryAfterMs ?? 0, Math.ceil(wait)),
          }
        } else next.set(key, after)
      }
      if (refused) return { allowed: false, ...refused }
      for (const [key, after] of next) tat.set(key, after)
      return { allowed: true }
    },
  }
}

interface StoredTaint {
  entries: readonly TaintEntry[]
  /** Forgotten after this time (epoch ms, the call's clock). */
  until: number
}

function memorySessions(maxSessions: number): SessionState {
  const history = new LRUCache<string, readonly HistoryEntry[]>({ max: MAX_KEYS })
  // Keyed by agent and session (see `taintKey`).
  const taint = new LRUCache<string, StoredTaint>({ max: maxSessions })
  const taintAt = (key: string, now: number): readonly TaintEntry[] => {
    const stored = taint.get(key)
    return stored && stored.until >= now ? stored.entries : NO_ENTRIES
  }
  const transitions = new LRUCache<string, ReadonlyMap<string, Row>>({ max: MAX_KEYS })
  const denials = new LRUCache<string, readonly number[]>({ max: MAX_KEYS })
  const quarantined = new LRUCache<string, number>({ max: MAX_KEYS })
  // Keyed by agent and window key (see `taintKey`).
  const windows = new LRUCache<string, RuleWindow>({ max: MAX_KEYS })
  let windowSeq = 0

  const quarantines = (scope: SessionScope): ReadonlyMap<string, number> => {
    let out: Map<string, number> | undefined
    for (let i = -1; i < (scope.chain?.length ?? 0); i++) {
      const id = i < 0 ? scope.agent : scope.chain![i]!
      const until = quarantined.get(id)
      if (until !== undefined && until > scope.now) (out ??= new Map()).set(id, until)
    }
    return out ?? NO_QUARANTINES
  }

  const windowsOf = (scope: SessionScope): ReadonlyMap<string, RuleWindow> => {
    if (!scope.windows?.length) return NO_WINDOWS
    const out = new Map<string, RuleWindow>()
    for (const key of scope.windows) {
      const w = windows.get(taintKey(scope.agent, key))
      if (w) out.set(key, w)
    }
    return out
  }

  return {
    async load(scope): Promise<SessionSnapshot> {
      const from = scope.delegatorSession
      return {
        history: history.get(scope.agent) ?? NO_ENTRIES,
        taint:
          scope.session === undefined
            ? NO_ENTRIES
            : taintAt(taintKey(scope.agent, scope.session), scope.now),
        delegatorTaint: from ? taintAt(taintKey(from.agent, from.session), scope.now) : NO_ENTRIES,
        quarantinedUntil: quarantines(scope),
        transitions: transitions.get(scope.agent) ?? NO_ROWS,
        windows: windowsOf(scope),
      }
    },
    async commit(c: SessionChanges): Promise<void> {
      // INVARIANT: nothing below awaits, so one commit is applied whole before any other.
      if (c.history) {
        const list = appendNewest(history.get(c.agent), [c.history.entry], c.history.limit)
        history.set(c.agent, list)
      }
      if (c.taint && c.taint.entries.length > 0) {
        const { session, entries, maxChars = Infinity, idleMs = Infinity } = c.taint
        const key = taintKey(c.agent, session)
        const at = entries[entries.length - 1]!.at
        const all = newestTaint(taintAt(key, at), entries)
        taint.set(key, { entries: withinChars(all, maxChars), until: at + idleMs })
      }
      if (c.window) {
        const { key, entry, keepMs, max } = c.window
        const k = taintKey(c.agent, key)
        const old = windows.get(k)
        const kept = (old?.entries ?? []).filter((e) => e.at > entry.at - keepMs)
        kept.push({ ...entry, seq: ++windowSeq })
        let droppedUntil = old?.droppedUntil
        if (kept.length > max)
          droppedUntil = Math.max(droppedUntil ?? 0, kept[kept.length - max - 1]!.at)
        const entries = kept.length > max ? kept.slice(-max) : kept
        windows.set(k, droppedUntil === undefined ? { entries } : { entries, droppedUntil })
      }
      if (c.transition) {
        const { from, to } = c.transition
        const rows = new Map(transitions.get(c.agent))
        // Null prototype: a tool named like an Object.prototype member is an ordinary key.
        const row = Object.assign(Object.create(null) as Record<string, number>, rows.get(from))
        row[to] = (row[to] ?? 0) + 1
        transitions.set(c.agent, rows.set(from, row))
      }
      if (c.denial) {
        const { at, windowMs, threshold, quarantineUntil } = c.denial
        const recent = (denials.get(c.agent) ?? []).filter((t) => t > at - windowMs)
        recent.push(at)
        denials.set(c.agent, recent)
        if (recent.length >= threshold)
          quarantined.set(c.agent, Math.max(quarantined.get(c.agent) ?? 0, quarantineUntil))
      }
    },
  }
}

/**
 * The newest entries whose texts fit in `maxChars` together; an older injected entry stays as a
 * mark with its text emptied, so a poisoned session stays poisoned.
 */
function withinChars(list: TaintEntry[], maxChars: number): TaintEntry[] {
  let chars = 0
  for (let i = list.length - 1; i >= 0; i--) {
    const e = list[i]!
    chars += e.text.length
    if (chars <= maxChars) continue
    const marks = list.slice(0, i + 1).flatMap((o) => (o.injected ? [{ ...o, text: '' }] : []))
    return [...marks, ...list.slice(i + 1)]
  }
  return list
}

/**
 * `list` and `added`, the newest MAX_TAINT_ENTRIES of them. INVARIANT: the count cap never
 * forgets that the session read an injection: the oldest injected entry it drops stays in front
 * as a mark (text emptied), so the session stays poisoned and later user input stays `late`.
 */
function newestTaint(list: readonly TaintEntry[] = [], added: readonly TaintEntry[]): TaintEntry[] {
  const kept = appendNewest(list, added, MAX_TAINT_ENTRIES)
  const dropped = list.length + added.length - kept.length
  if (dropped === 0) return kept
  const mark = [...list, ...added].slice(0, dropped).find((e) => e.injected === true)
  return mark ? [{ ...mark, text: '' }, ...kept] : kept
}

/** A new list: `list` and `added`, keeping the newest `limit` (one allocation, one copy). */
function appendNewest<T>(list: readonly T[] = [], added: readonly T[], limit: number): T[] {
  const size = Math.min(limit, list.length + added.length)
  const out = new Array<T>(size)
  for (let i = size - 1, j = added.length - 1, k = list.length - 1; i >= 0; i--)
    out[i] = j >= 0 ? added[j--]! : list[k--]!
  return out
}

/**
 * Taint is scoped to the agent, so one agent cannot taint another agent's session. Agent ids
 * have no `:`, so the key is unambiguous.
 */
function taintKey(agent: string, session: string): string {
  return `${agent}:${session}`
}
