import { WardenError, type ErrorCode } from './errors.js'
import type { Decision } from './types.js'

/**
 * The engine's answer, whatever the door. Doors map these to their protocol (HTTP status codes
 * in `http/`, JSON-RPC results and tool errors in `mcp/`); the engine never speaks HTTP.
 */

/** The call was not taken up: a refusal (4xx in HTTP terms) or a dependency that is down (5xx). */
export interface Failure {
  kind: 'refused' | 'unavailable'
  code: ErrorCode
  message: string
  requestId?: string
}

/** A dependency the operation needs is down: nothing was done (503 in HTTP terms). */
export type Unavailable = Failure & { kind: 'unavailable' }

/** A finding about a tool's output that the agent should know (an injection in untrusted data). */
export interface OutputWarning {
  code: 'injection_in_output'
  score: number
  categories: string[]
  /** Set when the judge was asked (decision 0023): `injection`, or `failed` (held as one). */
  judge?: 'injection' | 'failed'
}

/**
 * What happened to one tool call. `replayed`: the answer a first request with the same
 * `Idempotency-Key` got; nothing was decided or run again.
 */
export type CallOutcome = { replayed?: true } &
  /** Allowed, run, and its (masked) result is here. */
  (
    | { kind: 'executed'; decision: Decision; result: unknown; warnings?: OutputWarning[] }
    /** Allowed and run, but the tool failed (`upstream_error`) or timed out (`upstream_timeout`). */
    | { kind: 'tool_failed'; decision: Decision; code: ErrorCode; message: string }
    /** Denied by a layer (or by the approval queue: flood cap, reused key); nothing ran. */
    | { kind: 'denied'; decision: Decision }
    /** Held for a person; nothing ran yet. `duplicateOf` names the original request of a retry. */
    | {
        kind: 'held'
        decision: Decision
        approval: { id: string; expiresAt: string; argsHash: string }
        duplicateOf?: string
      }
    /** Could not be decided or recorded; nothing ran (or, when the message says so, its outcome is unrecorded). */
    | (Unavailable & { decision?: Decision })
    /** Refused before deciding (over its `Idempotency-Key`); nothing was decided or run. */
    | (Failure & { kind: 'refused' })
  )

/** The code a denied outcome carries (the catalog's catch-all for a deny without one). */
export function deniedCode(d: Decision): ErrorCode {
  return d.code ?? 'policy_denied'
}

/** Shorthand for a refusal. */
export function refused(code: ErrorCode, message: string, requestId?: string): Failure {
  return requestId === undefined
    ? { kind: 'refused', code, message }
    : { kind: 'refused', code, message, requestId }
}

/** Shorthand for a dependency failure. */
export function unavailable(code: ErrorCode, message: string, requestId?: string): Unavailable {
  return requestId === undefined
    ? { kind: 'unavailable', code, message }
    : { kind: 'unavailable', code, message, requestId }
}

/**
 * The audit log could not take a record: the store's own code (a `StoreError`), else
 * `audit_unavailable`. An error that is not ours is a surprise, told to `onUnexpected`.
 */
export function notRecorded(
  err: unknown,
  message: string,
  requestId: string,
  onUnexpected?: (err: unknown) => void,
): Unavailable {
  if (err instanceof WardenError) return unavailable(err.code, message, requestId)
  onUnexpected?.(err)
  return unavailable('audit_unavailable', message, requestId)
}

/**
 * Whether an approval has reached its end: decided against, expired, or approved and run.
 * An approved call that has not run yet is still in flight.
 */
export function approvalSettled(a: { status: string; executed_at?: string | null }): boolean {
  return a.status !== 'pending' && (a.status !== 'approved' || Boolean(a.executed_at))
}
