import { createHash } from 'node:crypto'
import { canonicalJson } from '../domain/canonical.js'
import type { Check, DecisionOutcome } from '../domain/types.js'
import type { RiskLevel } from '../config/schema.js'

/** Event types on the stream and in the log: the seed's nine plus execution and expiry. */
export const EVENT_TYPES = [
  'tool_call_allowed',
  'tool_call_denied',
  'approval_required',
  'approval_granted',
  'approval_denied',
  'approval_expired',
  'prompt_injection_detected',
  'rate_limit_exceeded',
  'taint_detected',
  'anomaly_detected',
  'tool_call_executed',
  'request_rejected',
] as const
export type EventType = (typeof EVENT_TYPES)[number]

/**
 * An audit event as the caller builds it. Stored parameters and results are already masked;
 * `masked` lists the JSON Pointers that were. `args_hash` is the hash of the unmasked canonical
 * parameters, so an approval and an execution can be matched without keeping the secret.
 */
export interface AuditEventInput {
  version: 1
  id: string
  type: EventType
  timestamp: string
  request_id: string
  agent_id: string
  /** Who the credential proved the caller to be (`anonymous` when it proved nothing). */
  principal: string
  tool: string
  session_id: string | null
  decision: DecisionOutcome | 'executed' | 'approved' | 'denied' | 'expired' | 'rejected'
  layer: string | null
  code: string | null
  reason: string
  risk: { score: number; level: RiskLevel }
  policy_version: string
  args_hash: string
  params: unknown
  masked: string[]
  checks: Check[]
  approval_id?: string
  approver?: string
  comment?: string
  /** For `tool_call_executed`: `ok`, `error`, or `unknown` (timed out: the tool may have acted). */
  outcome?: 'ok' | 'error' | 'unknown'
  result?: unknown
  latency_ms?: number
}

/** A stored event: numbered and chained. */
export interface AuditEvent extends AuditEventInput {
  seq: number
  prev_hash: string
  hash: string
}

export const GENESIS_HASH = '0'.repeat(64)

/**
 * The chain link: SHA-256 over the previous hash and the canonical (RFC 8785) encoding of the
 * event without its own hash. `seq`, `timestamp` and `prev_hash` are inside the encoding, so
 * reordering, renumbering or editing any field breaks the link.
 */
export function chainHash(event: Omit<AuditEvent, 'hash'>): string {
  return createHash('sha256')
    .update(event.prev_hash)
    .update('\n')
    .update(canonicalJson(event))
    .digest('hex')
}

/** Attach sequence number and chain hash. */
export function seal(input: AuditEventInput, seq: number, prevHash: string): AuditEvent {
  const body = { ...input, seq, prev_hash: prevHash }
  return { ...body, hash: chainHash(body) }
}
