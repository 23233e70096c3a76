/**
 * Fast, shared, short-lived state the pipeline reads and writes on every call, split by
 * capability: rate limits, and what the layers know about agents and sessions (history, taint,
 * tool transitions, denials and quarantine). Every operation is one round trip, so a call costs
 * three (load, rate-limit hit, commit) whether the backend is in memory or remote. Each backend
 * passes the same contract suite (test/state.test.ts).
 */
export interface StateBackend {
  readonly rateLimiter: RateLimiter
  readonly sessions: SessionState
  health(): Promise<{ ok: boolean; detail: string }>
  close(): Promise<void>
}

/** Taint entries a backend keeps per session: the newest ones. */
export const MAX_TAINT_ENTRIES = 64

/** One budget: at most `limit` hits per `windowMs`, bursts up to `limit` (GCRA). */
export interface RateLimit {
  key: string
  limit: number
  windowMs: number
}

export type RateLimitResult =
  | { allowed: true }
  | {
      allowed: false
      /** The first of the given keys that refused. */
      key: string
      /** Milliseconds until every given key would allow the hit again. */
      retryAfterMs: number
    }

export interface RateLimiter {
  /**
   * Count one hit against every given budget, by the backend's own clock.
   * INVARIANT: all or nothing; a refused hit spends no budget of any key.
   */
  hit(limits: readonly RateLimit[]): Promise<RateLimitResult>
}

/** What one call needs to know; the backend scopes taint to the agent's own sessions. */
export interface SessionScope {
  agent: string
  session?: string
  /** The agents that delegated the call, oldest first. */
  chain?: readonly string[]
  /** For a delegated call: the delegating agent's session, whose taint the call inherits. */
  delegatorSession?: { agent: string; session: string }
  /** The call's time: quarantines that ended by then are not reported. */
  now: number
  /** The agent's rule windows the call's sequence rules read (see `SessionChanges.window`). */
  windows?: readonly string[]
}

/** Everything the layers read for one call, read at once. */
export interface SessionSnapshot {
  /** The agent's recent calls, oldest first. */
  readonly history: readonly HistoryEntry[]
  /** Untrusted text seen in the agent's session (empty without a session). */
  readonly taint: readonly TaintEntry[]
  /** Untrusted text seen in the delegator's session (empty unless delegated from one). */
  readonly delegatorTaint: readonly TaintEntry[]
  /** Agent id → quarantined until (epoch ms), for the agent and its chain, at the scope's time. */
  readonly quarantinedUntil: ReadonlyMap<string, number>
  /** The agent's tool transitions: previous tool → next tool → count. */
  readonly transitions: ReadonlyMap<string, Readonly<Record<string, number>>>
  /** The agent's rule windows asked for in the scope, by key (a missing key has no entries). */
  readonly windows: ReadonlyMap<string, RuleWindow>
}

/**
 * The calls a sequence rule counts (allowed or approved and run), per agent and key, kept for the
 * rule's whole time window; unlike `history`, nothing else pushes them out.
 */
export interface RuleWindow {
  /** Oldest first. */
  readonly entries: readonly KeptWindowEntry[]
  /**
   * Set when entries inside the window were dropped because the window reached its cap: the
   * newest dropped entry's time. A rule whose window reaches back to it cannot see everything.
   */
  readonly droppedUntil?: number
}

export interface WindowEntry {
  at: number
  /** Only the parameters rules compare, count or sum. */
  params: Readonly<Record<string, string | number | boolean>>
}

export interface KeptWindowEntry extends WindowEntry {
  /** Increases with each entry the backend keeps for the agent: orders calls of the same time. */
  seq: number
}

/** What one call (or one tool output, or one approved call) changes; applied atomically. */
export interface SessionChanges {
  agent: string
  /** Append to the agent's history, keeping the newest `limit` entries. */
  history?: { entry: HistoryEntry; limit: number }
  /**
   * Append to the agent's session taint. The oldest entries go past a fixed count and past
   * `maxChars` of text in all (an injected entry's mark stays, its text emptied); a session not
   * written for `idleMs` is forgotten.
   */
  taint?: { session: string; entries: readonly TaintEntry[]; maxChars?: number; idleMs?: number }
  /**
   * Append to the agent's rule window `key`: entries older than `entry.at - keepMs` go; past `max`
   * entries the oldest go and the window records that it dropped some (`droppedUntil`).
   */
  window?: { key: string; entry: WindowEntry; keepMs: number; max: number }
  /** Count one allowed `from → to` transition (the sequence anomaly model). */
  transition?: { from: string; to: string }
  /**
   * Count a denial at `at`; when the agent has `threshold` within `windowMs`, the backend
   * quarantines it until `quarantineUntil` in the same step.
   */
  denial?: { at: number; windowMs: number; threshold: number; quarantineUntil: number }
}

export interface SessionState {
  /** One read per call. */
  load(scope: SessionScope): Promise<SessionSnapshot>
  /** One write per call. */
  commit(changes: SessionChanges): Promise<void>
}

/** Text that arrived from an untrusted source in a session. */
export interface TaintEntry {
  /** Where it came from, e.g. `context.user_input` or `tool:search_knowledge_base#<request id>`. */
  source: string
  text: string
  at: number
  /** The text scored as a prompt injection (untrusted tool output): the session is poisoned. */
  injected?: boolean
  /** The text was longer than Warden keeps: `text` is only its start. */
  truncated?: boolean
}

export interface HistoryEntry {
  tool: string
  /** The session the call belonged to, if any (the anomaly model's transitions are per session). */
  session?: string
  decision: 'allow' | 'deny' | 'approval_required'
  at: number
  /** For a denial: its error code (throttling is told apart from misconduct). */
  code?: string
  /** Parameter values kept for sequence rules (only scalar values). */
  params: Record<string, string | number | boolean>
}
