/**
 * The one catalog of error codes Warden puts on the wire. Every code maps to one HTTP status;
 * `docs/errors.md` documents each (a test keeps the two in sync).
 */
export const ERROR_CATALOG = {
  // 400: rejected before any policy runs
  invalid_json: { status: 400, summary: 'the body is not valid JSON' },
  duplicate_key: { status: 400, summary: 'an object in the body repeats a key' },
  forbidden_key: {
    status: 400,
    summary: 'a key such as `__proto__`, `constructor` or `prototype`',
  },
  max_depth: { status: 400, summary: 'the body nests deeper than the limit' },
  max_items: { status: 400, summary: 'an object or array has more members than the limit' },
  invalid_encoding: { status: 400, summary: 'invalid UTF-8 or a lone surrogate in a string' },
  invalid_tool_name: { status: 400, summary: 'the tool name is not a plain identifier' },
  invalid_request: { status: 400, summary: 'the body does not have the documented shape' },
  // The API contract answers every malformed request with 400; the code says which kind it is.
  unsupported_media_type: { status: 400, summary: 'the body is not `application/json`' },
  payload_too_large: { status: 400, summary: 'the body is larger than the limit' },
  session_required: { status: 400, summary: 'the configuration requires a `session_id`' },
  context_too_large: { status: 400, summary: 'the call context is larger than 64 KiB' },
  mcp_method_mismatch: {
    status: 400,
    summary: 'MCP: the `Mcp-Method` header names another method than the body',
  },
  not_found: { status: 404, summary: 'no such route or resource' },
  definition_changed: {
    status: 409,
    summary: 'an MCP tool definition changed again after it was shown to the approver',
  },

  // 400 / 401 / 403 / 429: decisions
  unauthenticated: { status: 401, summary: 'missing or unknown credential, or one for another id' },
  tool_not_allowed: { status: 403, summary: 'the tool is not on the agent allowlist (or unknown)' },
  tool_definition_blocked: {
    status: 403,
    summary: "an upstream tool's definition changed or looks poisoned; an approver must accept it",
  },
  policy_denied: { status: 403, summary: 'a policy rule forbids the call or none permits it' },
  param_invalid: { status: 400, summary: 'the parameters do not match the tool schema' },
  injection_detected: { status: 403, summary: 'the call carries a prompt injection' },
  taint_violation: { status: 403, summary: 'a sensitive parameter comes from untrusted text' },
  guard_denied: { status: 403, summary: 'a business guard (threshold, environment) forbids it' },
  sequence_anomaly: { status: 403, summary: 'a session rule over recent calls forbids it' },
  message_not_allowed: {
    status: 403,
    summary: 'no configured edge, a loop, a chain too long, or a message that would need a person',
  },
  unknown_agent: { status: 404, summary: 'agent API: no such agent in the gateway configuration' },
  agent_key_missing: { status: 503, summary: 'agent API: no key for this agent is configured' },
  provider_not_configured: {
    status: 503,
    summary: 'agent API: the model provider is not set up (no API key, unknown provider)',
  },
  provider_unavailable: { status: 502, summary: 'agent API: the model provider did not answer' },
  provider_bad_response: {
    status: 502,
    summary: 'agent API: the model provider answered something unusable',
  },
  run_not_found: { status: 404, summary: 'agent API: no held run with that id' },
  run_not_pending: { status: 409, summary: 'agent API: the run is not waiting on an approval' },
  gateway_unavailable: { status: 503, summary: 'agent API: the gateway did not answer' },
  delegation_session_mismatch: {
    status: 403,
    summary: 'a delegated call made outside the session its token carries (`bind_session`)',
  },
  risk_too_high: { status: 403, summary: "the call's risk level is configured to be refused" },
  agent_quarantined: { status: 403, summary: 'the agent is quarantined after repeated denials' },
  rate_limited: { status: 429, summary: 'a per-agent or per-tool rate limit is exhausted' },

  // resource limits before authentication (docs/limits.md)
  host_not_allowed: { status: 403, summary: 'the Host header does not name this server' },
  ip_rate_limited: { status: 429, summary: 'too many requests from one client address' },
  auth_rate_limited: {
    status: 429,
    summary: 'too many failed authentication attempts from one client address',
  },
  too_many_connections: {
    status: 429,
    summary: 'the event stream has as many connections as it takes (in total or from one address)',
  },

  // approvals
  approver_unauthenticated: { status: 401, summary: 'missing or unknown approver token' },
  origin_not_allowed: { status: 403, summary: 'a browser page from another origin' },
  approver_not_authorized: { status: 403, summary: 'the approver may not decide this approval' },
  approval_not_found: { status: 404, summary: 'no approval with that id' },
  approval_already_decided: { status: 409, summary: 'the approval was already resolved' },
  approval_expired: { status: 409, summary: 'the approval expired before it was decided' },
  approval_denied: { status: 403, summary: 'a person denied the held call' },
  approval_mismatch: {
    status: 403,
    summary: 'the stored call no longer matches what was approved',
  },
  self_approval_forbidden: {
    status: 403,
    summary: 'the person who started the agent run cannot approve it',
  },
  too_many_pending_approvals: {
    status: 429,
    summary: 'the agent has too many calls waiting for approval',
  },
  signature_invalid: { status: 401, summary: 'a signed link or callback has a bad signature' },
  signature_expired: { status: 401, summary: 'a signed link or callback is too old' },
  replayed: { status: 409, summary: 'a single-use link or callback was already used' },
  idempotency_conflict: {
    status: 409,
    summary: 'the Idempotency-Key was used for a different call',
  },
  idempotency_in_progress: {
    status: 409,
    summary: 'the first request with this Idempotency-Key has not finished',
  },
  too_many_idempotency_keys: {
    status: 429,
    summary: 'the agent holds too many unexpired Idempotency-Keys',
  },

  // operations (docs/operations.md)
  config_invalid: {
    status: 422,
    summary: 'a reload found the configuration files invalid; the one in force is kept',
  },
  config_needs_restart: {
    status: 409,
    summary: 'a reload changes a field that takes effect only at a restart; nothing changed',
  },
  shutting_down: { status: 503, summary: 'the gateway is stopping; retry on another instance' },

  // 5xx: could not decide or could not execute; never a silent allow
  layer_failed: { status: 503, summary: 'a pipeline layer failed; the call was denied' },
  audit_unavailable: { status: 503, summary: 'the audit store could not record the decision' },
  approval_store_unavailable: { status: 503, summary: 'the approval store failed' },
  idempotency_store_unavailable: { status: 503, summary: 'the idempotency store failed' },
  state_unavailable: { status: 503, summary: 'the state store (history, limits, taint) failed' },
  upstream_error: { status: 502, summary: 'the tool failed or answered with an error' },
  upstream_timeout: { status: 504, summary: 'the tool did not answer within its deadline' },
  internal_error: { status: 500, summary: 'an unexpected error; details are in the log' },
} as const satisfies Record<string, { status: number; summary: string }>

export type ErrorCode = keyof typeof ERROR_CATALOG

/** Status for a code from the catalog. */
export function statusOf(code: ErrorCode): number {
  return ERROR_CATALOG[code].status
}

/** An error that maps to a catalog code; anything else thrown becomes `internal_error`. */
export class WardenError extends Error {
  readonly code: ErrorCode
  readonly status: number

  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'WardenError'
    this.code = code
    this.status = statusOf(code)
  }
}

/** Wire body for an error: `{ "error": { "code", "message" } }`. */
export function errorBody(code: ErrorCode, message: string, requestId?: string) {
  return requestId
    ? { error: { code, message }, request_id: requestId }
    : { error: { code, message } }
}

/** Denials that say "not now" rather than "not this": they do not count as the agent's misconduct. */
export const THROTTLING_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'rate_limited',
  'agent_quarantined',
])
