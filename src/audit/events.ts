import { timeOrderedId } from '../domain/ids.js'
import type { AuditEventInput, EventType } from '../domain/audit-event.js'
import { canonicalHash } from '../domain/canonical.js'
import type { PinChange } from '../domain/tool-pins.js'
import type { Decision, LayerName, ToolCall } from '../domain/types.js'
import { maskPii, type Masked } from '../detect/pii.js'
import type { ApprovalRecord } from '../store/types.js'

/** Deny events get the seed's specific type when a detection layer decided. */
const DENY_TYPE: Partial<Record<LayerName, EventType>> = {
  injection: 'prompt_injection_detected',
  rate_limit: 'rate_limit_exceeded',
  taint: 'taint_detected',
  sequence: 'anomaly_detected',
}

export function eventTypeOf(d: Decision): EventType {
  if (d.decision === 'allow') return 'tool_call_allowed'
  if (d.decision === 'approval_required') return 'approval_required'
  return (d.layer && DENY_TYPE[d.layer]) || 'tool_call_denied'
}

/** Hash that binds an approval and an execution to exactly these parameters. */
export function argsHash(params: unknown): string {
  return canonicalHash(params)
}

/** Longest claimed agent id, tool or session id kept in the record of an anonymous call. */
export const MAX_ANONYMOUS_ID = 64

/**
 * What is kept of an anonymous call's parameters: their size and top-level shape, never their
 * content. Whoever failed authentication decides nothing about the size of its audit row.
 */
export function anonymousParams(params: unknown): {
  withheld: 'anonymous'
  bytes: number
  kind: string
  keys: number
} {
  const bytes = Buffer.byteLength(JSON.stringify(params) ?? 'null')
  const kind = params === null ? 'null' : Array.isArray(params) ? 'array' : typeof params
  const keys =
    params && typeof params === 'object' ? Object.keys(params as Record<string, unknown>).length : 0
  return { withheld: 'anonymous', bytes, kind, keys }
}

const clip = (s: string) => (s.length > MAX_ANONYMOUS_ID ? s.slice(0, MAX_ANONYMOUS_ID) : s)

/**
 * The decision record written (durably) before anything runs. A call whose credential proved
 * nothing (`principal` null) is recorded at a fixed size: claimed ids clipped, parameters
 * replaced by `anonymousParams`, so unauthenticated traffic cannot grow the log or its views.
 */
export function decisionEvent(
  call: ToolCall,
  d: Decision,
  principal: string | null,
  approvalId?: string,
): AuditEventInput {
  const anonymous = principal === null
  const { value, masked } = anonymous
    ? { value: anonymousParams(call.params), masked: [] }
    : maskPii(call.params, '/params')
  return {
    version: 1,
    id: timeOrderedId(),
    type: eventTypeOf(d),
    timestamp: new Date(call.receivedAt).toISOString(),
    request_id: call.requestId,
    agent_id: anonymous ? clip(call.agentId) : call.agentId,
    principal: principal ?? 'anonymous',
    tool: anonymous ? clip(call.tool) : call.tool,
    session_id: anonymous && call.sessionId ? clip(call.sessionId) : (call.sessionId ?? null),
    decision: d.decision,
    layer: d.layer,
    code: d.code,
    reason: d.reason,
    risk: d.risk,
    policy_version: d.policyVersion,
    args_hash: argsHash(call.params),
    params: value,
    masked,
    checks: d.checks,
    ...(approvalId && { approval_id: approvalId }),
    ...(d.chain && { chain: [...d.chain, call.agentId] }),
    ...(d.human && { human: d.human }),
    ...(call.door === 'mcp' && { door: 'mcp' as const }),
  }
}

const MAX_STORED_RESULT = 8192

/** The record of what a tool did (or that its outcome is unknown). Results are stored masked. */
export function executionEvent(
  base: Pick<
    AuditEventInput,
    | 'request_id'
    | 'agent_id'
    | 'principal'
    | 'tool'
    | 'session_id'
    | 'risk'
    | 'policy_version'
    | 'args_hash'
  >,
  outcome: 'ok' | 'error' | 'unknown',
  /** The result already masked with `maskPii(result, '/result')`. */
  result: Masked<unknown>,
  latencyMs: number,
  approvalId?: string,
): AuditEventInput {
  const { value, masked } = result
  const text = JSON.stringify(value) ?? 'null'
  return {
    ...base,
    version: 1,
    id: timeOrderedId(),
    type: 'tool_call_executed',
    timestamp: new Date().toISOString(),
    decision: 'executed',
    layer: null,
    code: null,
    reason:
      outcome === 'ok'
        ? 'tool call completed'
        : outcome === 'unknown'
          ? 'tool call timed out; outcome unknown'
          : 'tool call failed',
    params: null,
    masked,
    checks: [],
    outcome,
    result: text.length > MAX_STORED_RESULT ? { truncated: true, bytes: text.length } : value,
    latency_ms: Math.round(latencyMs * 10) / 10,
    ...(approvalId && { approval_id: approvalId }),
  }
}

/** The record of a request refused before any policy ran; nothing in it was trusted or parsed. */
export function rejectionEvent(
  requestId: string,
  code: string,
  message: string,
  policyVersion: string,
): AuditEventInput {
  return {
    version: 1,
    id: timeOrderedId(),
    type: 'request_rejected',
    timestamp: new Date().toISOString(),
    request_id: requestId,
    agent_id: 'unknown',
    principal: 'anonymous',
    tool: '',
    session_id: null,
    decision: 'rejected',
    layer: null,
    code,
    reason: message.slice(0, 500),
    risk: { score: 0, level: 'low' },
    policy_version: policyVersion,
    args_hash: '',
    params: null,
    masked: [],
    checks: [],
  }
}

/** The record of a person (or the timeout) resolving an approval. */
export function approvalEvent(
  a: ApprovalRecord,
  type: 'approval_granted' | 'approval_denied' | 'approval_expired',
  approver: string | null,
  comment: string | null,
): AuditEventInput {
  const { value, masked } = maskPii(a.params, '/params')
  const reason =
    type === 'approval_expired'
      ? 'approval timed out: denied by timeout, not by a person'
      : `${type === 'approval_granted' ? 'approved' : 'denied'} by \`${approver}\``
  return {
    version: 1,
    id: timeOrderedId(),
    type,
    timestamp: new Date().toISOString(),
    request_id: a.request_id,
    agent_id: a.agent_id,
    principal: a.agent_id,
    tool: a.tool,
    session_id: a.session_id,
    decision:
      type === 'approval_granted' ? 'approved' : type === 'approval_denied' ? 'denied' : 'expired',
    layer: a.layer,
    code: null,
    reason,
    risk: a.risk as AuditEventInput['risk'],
    policy_version: a.policy_version,
    args_hash: a.args_hash,
    params: value,
    masked,
    checks: [],
    approval_id: a.id,
    // How long the call waited for a person (or for its TTL).
    latency_ms: Date.now() - Date.parse(a.created_at),
    ...(approver && { approver }),
    ...(Array.isArray(a.context.chain) && { chain: a.context.chain as string[] }),
    ...(typeof a.context.human === 'string' && { human: a.context.human }),
    ...(comment && { comment }),
  }
}

/**
 * An MCP tool's definition pinned at first sight (`blocked` when its description was poisoned or
 * shadows another tool), or an upstream now offering another definition than the pinned one (the
 * tool is blocked). The log is the pins' durable copy: these events rebuild them at start-up
 * (decision 0021).
 */
export function toolPinEvent(change: PinChange, policyVersion: string): AuditEventInput {
  const base = {
    version: 1 as const,
    id: timeOrderedId(),
    timestamp: new Date().toISOString(),
    request_id: timeOrderedId(),
    agent_id: '',
    principal: 'warden',
    tool: change.tool,
    session_id: null,
    layer: null,
    code: null,
    risk: { score: 0, level: 'low' as const },
    policy_version: policyVersion,
    args_hash: '',
    masked: [],
    checks: [],
  }
  if (change.kind === 'changed')
    return {
      ...base,
      type: 'tool_definition_changed',
      decision: 'blocked',
      reason: `the upstream now offers another definition of \`${change.tool}\` (sha256 ${change.current}); blocked until an approver accepts it`,
      params: { pinned: change.pinned, current: change.current },
    }
  const why =
    change.blocked === 'poisoned'
      ? `the description of \`${change.tool}\` looks like a prompt injection (score ${change.score}); blocked until an approver accepts it`
      : change.blocked === 'shadowing'
        ? `the description of \`${change.tool}\` names other tools (${(change.shadows ?? []).map((t) => `\`${t}\``).join(', ')}); blocked until an approver accepts it`
        : `definition of \`${change.tool}\` pinned at first sight (sha256 ${change.hash})`
  return {
    ...base,
    type: 'tool_definition_pinned',
    decision: change.blocked ? 'blocked' : 'pinned',
    reason: why,
    params: {
      pinned: change.hash,
      ...(change.blocked && { blocked: change.blocked }),
      ...(change.score !== undefined && { score: change.score }),
      ...(change.shadows && { shadows: change.shadows }),
    },
  }
}

/** An approver accepted an MCP tool's changed or suspect definition: the tool may run again. */
export function toolAcceptedEvent(
  tool: string,
  approver: string,
  pinned: string,
  policyVersion: string,
): AuditEventInput {
  return {
    version: 1,
    id: timeOrderedId(),
    type: 'tool_definition_accepted',
    timestamp: new Date().toISOString(),
    request_id: timeOrderedId(),
    agent_id: '',
    principal: approver,
    tool,
    session_id: null,
    decision: 'approved',
    layer: null,
    code: null,
    reason: `approver \`${approver}\` accepted the definition of \`${tool}\` (sha256 ${pinned})`,
    risk: { score: 0, level: 'low' },
    policy_version: policyVersion,
    args_hash: '',
    params: { pinned },
    masked: [],
    checks: [],
    approver,
  }
}

/**
 * The configuration was reloaded: calls starting after this event are decided under `to`. The
 * event itself carries the new version (`policy_version`) and names the one it replaced; `by` is
 * the approver who asked, or `signal:SIGHUP` for the process signal.
 */
export function configReloadedEvent(
  by: string,
  from: string,
  to: string,
  file: string,
): AuditEventInput {
  return {
    version: 1,
    id: timeOrderedId(),
    type: 'config_reloaded',
    timestamp: new Date().toISOString(),
    request_id: timeOrderedId(),
    agent_id: '',
    principal: by,
    tool: '',
    session_id: null,
    decision: 'reloaded',
    layer: null,
    code: null,
    reason: `\`${by}\` reloaded ${file}: policy ${from} replaced by ${to}`,
    risk: { score: 0, level: 'low' },
    policy_version: to,
    args_hash: '',
    params: { file, previous_policy_version: from },
    masked: [],
    checks: [],
  }
}
