import type { ErrorCode } from './errors.js'
import type { RiskLevel } from './config.js'

/** Untrusted text and provenance that came with a call. */
export interface CallContext {
  user_input?: string
  /** The person who started the agent run; they may not approve its held calls. */
  requested_by?: string
  [key: string]: unknown
}

/** One tool call, whichever door it came through (HTTP today, MCP later). */
export interface ToolCall {
  readonly requestId: string
  /** The agent id the caller claims; the identity layer checks it against the credential. */
  readonly agentId: string
  readonly tool: string
  readonly params: Readonly<Record<string, unknown>>
  readonly sessionId: string | undefined
  readonly context: Readonly<CallContext>
  /** Bearer secret as presented; never logged or stored. */
  readonly credential: string | undefined
  /** Epoch milliseconds when the gateway received the call. */
  readonly receivedAt: number
  /** The agent's `Idempotency-Key`: a retry with the same key gets the same pending approval. */
  readonly idempotencyKey?: string
  /** A delegation token from `POST /gateway/message`: the call is made on another agent's behalf. */
  readonly delegation?: string
  /** Which door the call came through; absent means HTTP (`POST /gateway/execute`). */
  readonly door?: 'http' | 'mcp'
}

/**
 * The pipeline's layers in order. `pipeline/index.ts` builds them and is checked against this
 * list at compile time; the list is here so that decisions and audit events can name layers
 * without importing the pipeline.
 */
export const LAYER_NAMES = [
  'identity',
  'tool_allowlist',
  'policy',
  'rate_limit',
  'params',
  'injection',
  'taint',
  'guards',
  'approval',
  'sequence',
] as const

export type LayerName = (typeof LAYER_NAMES)[number]

/** What a layer says. "No" is a value; throwing means the layer is broken (and the call is denied). */
export type Verdict =
  | { outcome: 'pass'; reason?: string; risk?: number; details?: Record<string, unknown> }
  | { outcome: 'hold'; reason: string; risk?: number; details?: Record<string, unknown> }
  | {
      outcome: 'deny'
      code: ErrorCode
      reason: string
      risk?: number
      retryAfterSeconds?: number
      details?: Record<string, unknown>
    }

/** One line of the per-layer trace. */
export interface Check {
  layer: LayerName
  outcome: Verdict['outcome']
  reason: string
  code?: ErrorCode
  risk?: number
  duration_us: number
  details?: Record<string, unknown>
}

export type DecisionOutcome = 'allow' | 'deny' | 'approval_required'

/** The pipeline's answer for one call. */
export interface Decision {
  requestId: string
  decision: DecisionOutcome
  /** Deciding layer: the denying one, else the first that held, else null for an allow. */
  layer: LayerName | null
  code: ErrorCode | null
  reason: string
  risk: { score: number; level: RiskLevel }
  checks: Check[]
  policyVersion: string
  retryAfterSeconds?: number
  /** For a delegated call: the agents it was delegated by, oldest first (verified). */
  chain?: string[]
  /** For a delegated call: the person who started the chain, if known. */
  human?: string
}

/** Keys that can reach `Object.prototype` through careless merging; refused in any request. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set([
  '__proto__',
  'constructor',
  'prototype',
])
