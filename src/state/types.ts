/**
 * Fast, shared, short-lived state the pipeline reads and writes on every call: rate-limit
 * counters, session taint, per-agent history and quarantine. In memory by default; Redis for
 * scale-out implements the same interface (and the same contract tests).
 */
export interface StateStore {
  /** Count one hit against `key` (GCRA: `limit` per `windowMs`, bursts up to `limit`). */
  rateLimit(key: string, limit: number, windowMs: number, now: number): Promise<RateLimitResult>
  addTaint(session: string, entry: TaintEntry): Promise<void>
  taints(session: string): Promise<readonly TaintEntry[]>
  /** Append to the agent's history, keeping the newest `limit` entries. */
  recordCall(agent: string, entry: HistoryEntry, limit: number): Promise<void>
  history(agent: string): Promise<readonly HistoryEntry[]>
  /** Record a denial and return how many the agent had within `windowMs`. */
  recordDenial(agent: string, now: number, windowMs: number): Promise<number>
  /** Count one allowed `from → to` tool transition of the agent (the sequence anomaly model). */
  recordTransition(agent: string, from: string, to: string): Promise<void>
  /** The agent's counts of transitions out of `from`, by next tool. */
  transitions(agent: string, from: string): Promise<Readonly<Record<string, number>>>
  quarantine(agent: string, until: number): Promise<void>
  quarantinedUntil(agent: string): Promise<number | null>
  health(): Promise<{ ok: boolean; detail: string }>
  close(): Promise<void>
}

export interface RateLimitResult {
  allowed: boolean
  /** Milliseconds until the next hit would be allowed (0 when allowed). */
  retryAfterMs: number
}

/** Text that arrived from an untrusted source in a session. */
export interface TaintEntry {
  /** Where it came from, e.g. `context.user_input` or `tool:search_knowledge_base#<request id>`. */
  source: string
  text: string
  at: number
  /** The text scored as a prompt injection (untrusted tool output): the session is poisoned. */
  injected?: boolean
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
