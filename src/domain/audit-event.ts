import { createHash } from 'node:crypto'
import type { Check, DecisionOutcome } from './types.js'
import type { RiskLevel } from './config.js'

/** An event as stored: its exact JSON text (what the chain hash covers) and its hash. */
export interface StoredEvent {
  body: string
  hash: string
}

/**
 * Event types on the stream and in the log: the seed's nine, execution and expiry, rejections,
 * agent messages, MCP tool definitions pinned, changed (blocked) and accepted by an approver, and
 * a configuration reload (which policy version replaced which, who asked).
 */
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
  'agent_message_sent',
  'agent_message_denied',
  'tool_definition_pinned',
  'tool_definition_changed',
  'tool_definition_accepted',
  'config_reloaded',
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
  decision:
    | DecisionOutcome
    | 'executed'
    | 'approved'
    | 'denied'
    | 'expired'
    | 'rejected'
    | 'delivered'
    | 'pinned'
    | 'blocked'
    | 'reloaded'
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
  /** For untrusted tools: the injection detector's finding on the output, when it found something. */
  output_scan?: { score: number; categories: string[] }
  /**
   * For untrusted tools whose output scored in the judge's grey zone (decision 0023): what the
   * model said, which model, and how long it took, whatever the verdict.
   */
  output_judge?: {
    verdict: 'injection' | 'benign' | 'failed'
    reason: string
    provider: string
    model: string
    latency_ms: number
    score: number
    truncated?: true
    cached?: true
  }
  /** For delegated calls and agent messages: the agents involved, oldest first, this one last. */
  chain?: string[]
  /** The person who started a delegation chain, if known. */
  human?: string
  /**
   * A demo scenario's call (`POST /demo/run-scenario/{id}`), made by the `demo-scenario`
   * principal in a world of its own: it changed nothing of the real agents.
   */
  scenario?: true
  /**
   * The door a tool call came through, when it was not the HTTP one (`mcp`: the MCP front door).
   * Absent on HTTP calls, so their events and hashes are what they were before MCP existed.
   */
  door?: 'http' | 'mcp'
}

/** A stored event: numbered and chained. */
export interface AuditEvent extends AuditEventInput {
  seq: number
  prev_hash: string
  hash: string
}

export const GENESIS_HASH = '0'.repeat(64)

/**
 * The chain link: SHA-256 over the previous hash, a newline, and the event's stored JSON text
 * (which holds its `seq` and `prev_hash` first, then every other field). The hash covers the
 * exact bytes that are stored and exported, so any verifier in any language checks it without
 * re-encoding anything; reordering, renumbering or editing any field breaks the link.
 */
export function chainHash(prevHash: string, body: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(body).digest('hex')
}

/** An event's JSON text without `seq` and `prev_hash`; made before the write transaction. */
export function encodeInput(input: AuditEventInput): string {
  return JSON.stringify(input)
}

/** Number and chain an encoded event: returns the stored body text and its hash. */
export function seal(
  encoded: string,
  seq: number,
  prevHash: string,
): { body: string; hash: string } {
  // INVARIANT: `encoded` is a JSON object from `encodeInput`, which never has `seq` or `prev_hash`.
  const body = `{"seq":${seq},"prev_hash":"${prevHash}",${encoded.slice(1)}`
  return { body, hash: chainHash(prevHash, body) }
}

/** A stored row as the event it records. */
export function parseStored(row: StoredEvent): AuditEvent {
  return { ...(JSON.parse(row.body) as Omit<AuditEvent, 'hash'>), hash: row.hash }
}
