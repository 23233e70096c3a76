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

/**
 * Durable records: the hash-chained audit log and approvals. SQLite is the embedded default;
 * PostgreSQL implements the same interface for scale-out.
 */
export interface Store {
  /** Append events durably, in order; resolves once they are committed (group commit). */
  append(events: AuditEventInput[]): Promise<AuditEvent[]>
  query(q: AuditQuery): Promise<AuditEvent[]>
  /** The same events as stored (exact hashed text and hash), for exports. */
  queryStored(q: AuditQuery): Promise<StoredEvent[]>
  /** Every stored event in sequence order, in pages (for verify and export). */
  scan(pageSize?: number): AsyncIterable<StoredEvent[]>
  counts(): Promise<AuditCounts>
  createApproval(record: ApprovalRecord): Promise<void>
  /** Unexpired pending approvals of one agent (the flood cap). */
  countPending(agentId: string, now: string): Promise<number>
  /** The unexpired pending approval a retry refers to: same idempotency key, or same call in the same session. */
  findPending(
    agentId: string,
    match: { idempotencyKey: string } | { tool: string; argsHash: string; sessionId: string },
    now: string,
  ): Promise<ApprovalRecord | null>
  getApproval(id: string): Promise<ApprovalRecord | null>
  listApprovals(status?: ApprovalStatus): Promise<ApprovalRecord[]>
  /** Compare-and-set from `pending`; false when it was no longer pending (or expired by `now`). */
  resolveApproval(
    id: string,
    to: Exclude<ApprovalStatus, 'pending'>,
    by: string | null,
    comment: string | null,
    now: string,
  ): Promise<boolean>
  /**
   * Undo a decision that could not be recorded: back to `pending`, only if it is still the
   * decision `by` made and nothing has run. False when that is no longer the case.
   */
  reopenApproval(id: string, from: 'approved' | 'denied', by: string): Promise<boolean>
  /** Record the execution of an approved call; false when it had already been recorded. */
  recordExecution(
    id: string,
    outcome: 'ok' | 'error' | 'unknown',
    result: unknown,
    now: string,
  ): Promise<boolean>
  /** Mark a one-time token (a link or callback nonce) used; false when it was used before. */
  useNonce(nonce: string, now: string): Promise<boolean>
  /** Pending approvals whose TTL has passed. */
  expiredPending(now: string): Promise<ApprovalRecord[]>
  health(): Promise<{ ok: boolean; detail: string }>
  close(): Promise<void>
}
