import type { AuditEvent, AuditEventInput, StoredEvent } from '../domain/audit-event.js'

/** Filters for reading the audit log. */
export interface AuditQuery {
  agent_id?: string
  tool?: string
  decision?: string
  type?: string
  session_id?: string
  risk_level?: string
  /** ISO timestamps, inclusive. */
  from?: string
  to?: string
  /** Case-insensitive substring of reason, agent, tool or request id. */
  text?: string
  /** Only events with `seq` greater than this (catch-up after a reconnect). */
  after_seq?: number
  /** Only events with `seq` less than this (paging back through a view or an export). */
  before_seq?: number
  /** Only events whose credential proved this caller (`principal`), not merely claimed it. */
  principal?: string
  /**
   * For views: an event whose stored text is longer than this many bytes comes back without
   * `params` and `result`, with `truncated: true` and its stored size in `bytes`. Such an event
   * no longer matches its hash; exports never set this.
   */
  max_event_bytes?: number
  limit?: number
  order?: 'asc' | 'desc'
}

/** Counts for `/stats`, as aggregated by the store. */
export interface AuditCounts {
  rows: {
    type: string
    decision: string
    agent_id: string
    tool: string
    risk_level: string
    n: number
  }[]
  denyReasons: { reason: string; n: number }[]
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired'

/** A held call waiting for (or resolved by) a person. */
export interface ApprovalRecord {
  id: string
  status: ApprovalStatus
  request_id: string
  agent_id: string
  tool: string
  session_id: string | null
  /** The exact call to run if approved (unmasked: it is what will execute). */
  params: Record<string, unknown>
  context: Record<string, unknown>
  args_hash: string
  policy_version: string
  /** The agent's `Idempotency-Key`, when it sent one. */
  idempotency_key: string | null
  /** The person who started the agent run (`context.requested_by`); they may not approve it. */
  requested_by: string | null
  reason: string
  layer: string | null
  risk: { score: number; level: string }
  created_at: string
  expires_at: string
  decided_by: string | null
  decided_at: string | null
  comment: string | null
  executed_at: string | null
  outcome: 'ok' | 'error' | 'unknown' | null
  result: unknown
}

/** The statuses an approval can be resolved to (it starts `pending`). */
export type ResolvedStatus = Exclude<ApprovalStatus, 'pending'>

/** What a retry refers to: the same idempotency key, or the same call in the same session. */
export type PendingMatch =
  { idempotencyKey: string } | { tool: string; argsHash: string; sessionId: string }

/**
 * The hash-chained audit log. `seq` starts at 1 and grows by one per event; each event's hash
 * covers the previous hash and its exact stored text (`seal` in domain/audit-event.ts).
 * Failures throw `StoreError('audit_unavailable')`.
 */
export interface AuditLog {
  /**
   * Append events durably and in order; resolves once they are committed (group commit), with
   * each event numbered and chained. An event that cannot be encoded fails only its own call.
   */
  append(events: AuditEventInput[]): Promise<AuditEvent[]>
  /** Events matching every filter given, by `seq` (newest first unless `order: 'asc'`). */
  query(q: AuditQuery): Promise<AuditEvent[]>
  /** The same events as stored (exact hashed text and hash), for exports. */
  queryStored(q: AuditQuery): Promise<StoredEvent[]>
  /** Every stored event in sequence order, in pages (for verify and export). */
  scan(pageSize?: number): AsyncIterable<StoredEvent[]>
  counts(): Promise<AuditCounts>
}

/**
 * Held calls. Times are ISO strings compared as text; `now` is always the caller's, so expiry
 * is decided by the caller's clock. Failures throw `StoreError('approval_store_unavailable')`.
 */
export interface ApprovalStore {
  /** Store a new approval; fails when the id exists. */
  create(record: ApprovalRecord): Promise<void>
  get(id: string): Promise<ApprovalRecord | null>
  /** Every approval (or those with `status`), soonest to expire first. */
  list(status?: ApprovalStatus): Promise<ApprovalRecord[]>
  /** Unexpired pending approvals of one agent (the flood cap). */
  countPending(agentId: string, now: string): Promise<number>
  /** The unexpired pending approval of `agentId` a retry refers to. */
  findPending(agentId: string, match: PendingMatch, now: string): Promise<ApprovalRecord | null>
  /**
   * Compare-and-set from `pending`: false when it was no longer pending, or (for `approved` and
   * `denied`) already expired by `now`, or (for `expired`) not yet expired by `now`.
   */
  resolve(
    id: string,
    to: ResolvedStatus,
    by: string | null,
    comment: string | null,
    now: string,
  ): Promise<boolean>
  /**
   * Undo a decision that could not be recorded: back to `pending`, only if it is still the
   * decision `by` made and nothing has run. False when that is no longer the case.
   */
  reopen(id: string, from: 'approved' | 'denied', by: string): Promise<boolean>
  /** Record the execution of an approved call; false when it had already been recorded. */
  recordExecution(
    id: string,
    outcome: 'ok' | 'error' | 'unknown',
    result: unknown,
    now: string,
  ): Promise<boolean>
  /** Pending approvals whose TTL has passed by `now`. */
  expiredPending(now: string): Promise<ApprovalRecord[]>
}

/**
 * One-time tokens (approve/deny link and callback nonces). Failures throw
 * `StoreError('approval_store_unavailable')`.
 */
export interface NonceStore {
  /**
   * Mark `nonce` used until `expiresAt` (chosen by the caller past the last moment the signature
   * it came with can verify, with a margin for rounding and clock skew); false when it was used
   * before. Nonces expired by `now` are forgotten.
   */
  use(nonce: string, expiresAt: string, now?: string): Promise<boolean>
}

/** The backends `openStores` knows. */
export type StoreKind = 'sqlite' | 'memory' | 'postgres'

/**
 * Every durable capability of one backend, opened together and closed together. SQLite is the
 * embedded default, memory is for tests and throwaway worlds, PostgreSQL is for scale-out.
 */
export interface Stores {
  readonly kind: StoreKind
  readonly audit: AuditLog
  readonly approvals: ApprovalStore
  readonly nonces: NonceStore
  readonly idempotency: IdempotencyStore
  health(): Promise<{ ok: boolean; detail: string }>
  /** Wait for appends in flight to commit, then release the backend; later calls throw. */
  close(): Promise<void>
}

/** What reserving an idempotency key found. */
export type Reservation =
  /** The key was free (or expired): it is now held for this request. */
  | { kind: 'reserved' }
  /** The agent already holds `maxKeys` unexpired keys; nothing was reserved. */
  | { kind: 'full' }
  /** The key is held by a request that has not finished. */
  | { kind: 'in_progress'; fingerprint: string }
  /** The key's request finished; `response` is what it answered (opaque to the store). */
  | { kind: 'done'; fingerprint: string; response: unknown }

/**
 * `Idempotency-Key`s, scoped per agent, each with the fingerprint of the request that took it and,
 * once it finished, its response. Times are ISO strings; `now` is the caller's. Failures throw
 * `StoreError('idempotency_store_unavailable')`.
 */
export interface IdempotencyStore {
  /**
   * Atomically take `key` for `agentId` until `expiresAt`, unless an unexpired reservation of it
   * exists (then say what it holds) or the agent holds `maxKeys` unexpired keys. Of concurrent
   * reservations of one key exactly one gets `reserved`. Expired keys are forgotten.
   */
  reserve(
    agentId: string,
    key: string,
    fingerprint: string,
    expiresAt: string,
    maxKeys: number,
    now: string,
  ): Promise<Reservation>
  /** Store the response of a reserved key (JSON-serialisable); its expiry stays. */
  complete(agentId: string, key: string, response: unknown): Promise<void>
  /** Give up a reservation whose request did nothing that a retry could repeat. */
  release(agentId: string, key: string): Promise<void>
}
