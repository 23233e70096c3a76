import { randomUUID } from 'node:crypto'
import type { AuditEventInput } from '../domain/audit-event.js'
import { maskPii } from '../detect/pii.js'
import { WardenError } from '../domain/errors.js'
import { timeOrderedId } from '../domain/ids.js'
import { notRecorded as notRecordedAs, refused, type Failure } from '../domain/outcome.js'
import type { Recorder } from '../audit/recorder.js'
import type { Decision, ToolCall } from '../domain/types.js'
import { MESSAGE_TOOL } from '../pipeline/layers/message-edge.js'
import type { Pipeline } from '../pipeline/runner.js'
import { snapshotOf, type Runtime } from '../pipeline/runtime.js'
import { sanitizeMessage } from '../auth/delegation.js'

/** A message as a door hands it over (already shape-checked). */
export interface MessageRequest {
  agent_id: string
  to_agent: string
  content: string
  session_id?: string | undefined
  /** The sender's own delegation, when it is itself acting for someone: the chain grows. */
  delegation?: string | undefined
  /** The person who started the work, if this is the first agent of the chain. */
  requested_by?: string | undefined
}

/** A delivered message: what the receiver gets, with the delegation to present. */
export interface DeliveredMessage {
  message_id: string
  request_id: string
  from_agent: string
  to_agent: string
  content: string
  chain: string[]
  requested_by?: string
  delegation: string
  expires_at: string
  scan: { score: number; categories: string[] }
}

export type MessageOutcome = Failure | { kind: 'delivered'; message: DeliveredMessage }

export interface MessagingDeps {
  runtime: Runtime
  pipeline: Pick<Pipeline, 'decideMessage'>
  recorder: Recorder
  onError?: (err: unknown, where: string) => void
}

/**
 * `POST /gateway/message`: one agent asks another to do something, through the gateway only.
 * The message goes through the pipeline's message layers (src/pipeline/index.ts): the sender must
 * be who its key says (and hold a valid delegation, if it presents one), the edge must be
 * configured, the chain short enough and free of loops, the content within the size limit, the
 * sender's rate limits not exhausted, the content free of injections, and no agent of the chain
 * quarantined. A message cannot wait for a person, so what would hold a tool call refuses it.
 * Delivered content is sanitized.
 * The receiver gets the content and a signed delegation token that it presents with every tool
 * call it makes for this message; those calls get only what every agent of the chain may do.
 * Both outcomes are audited with the chain.
 */
export async function sendMessage(
  deps: MessagingDeps,
  body: MessageRequest,
  credential: string | undefined,
  requestId: string,
): Promise<MessageOutcome> {
  // One runtime version for the whole message, as for a tool call.
  const rt = snapshotOf(deps.runtime)
  if (body.delegation !== undefined && body.requested_by !== undefined)
    throw new WardenError(
      'invalid_request',
      '`requested_by` comes from the delegation when one is given; send one or the other',
    )
  const call: ToolCall = {
    requestId,
    agentId: body.agent_id,
    tool: MESSAGE_TOOL,
    params: { to_agent: body.to_agent, content: body.content },
    sessionId: body.session_id,
    context: {},
    credential,
    receivedAt: Date.now(),
    ...(body.delegation !== undefined && { delegation: body.delegation }),
  }
  let decision = await deps.pipeline.decideMessage(call, rt)
  // A message cannot wait for a person: what would hold a tool call refuses a message.
  if (decision.decision === 'approval_required')
    decision = {
      ...decision,
      decision: 'deny',
      code: 'message_not_allowed',
      reason: `a message cannot wait for approval: ${decision.reason}`,
    }
  const authenticated = decision.checks[0]?.outcome === 'pass'
  const human = decision.human ?? body.requested_by
  // The chain as verified: the delegators, the sender, the receiver (nothing for a stranger).
  const path = authenticated ? [...(decision.chain ?? []), body.agent_id, body.to_agent] : []
  const record = (e: AuditEventInput) => deps.recorder.record([e]).then(() => null, notRecorded)
  if (decision.decision === 'deny') {
    const code = decision.code ?? 'message_not_allowed'
    const failed = await record(event(rt, body, decision, 'denied', { authenticated, path, human }))
    return failed ?? refused(code, decision.reason, requestId)
  }

  const content = sanitizeMessage(body.content)
  const messageId = `msg_${randomUUID()}`
  const expiresAt = call.receivedAt + rt.config.messaging.token_ttl_seconds * 1000
  const delegation = await rt.delegation.sign({
    chain: path.slice(0, -1),
    to: body.to_agent,
    ...(human && { human }),
    ...(body.session_id && { session: body.session_id }),
    message_id: messageId,
    exp: expiresAt,
    iat: call.receivedAt,
  })
  const delivered = { ...body, content }
  const failed = await record(
    event(rt, delivered, decision, 'delivered', { authenticated, path, human, messageId }),
  )
  if (failed) return failed
  const scan = decision.checks.find((c) => c.layer === 'injection')?.details as
    { score: number; categories: string[] } | undefined
  return {
    kind: 'delivered',
    message: {
      message_id: messageId,
      request_id: requestId,
      from_agent: body.agent_id,
      to_agent: body.to_agent,
      content,
      chain: path,
      ...(human && { requested_by: human }),
      delegation,
      expires_at: new Date(expiresAt).toISOString(),
      scan: { score: scan?.score ?? 0, categories: scan?.categories ?? [] },
    },
  }

  function notRecorded(err: unknown): MessageOutcome {
    const message = 'the message could not be recorded; it was not delivered'
    return notRecordedAs(err, message, requestId, (e) => deps.onError?.(e, 'store'))
  }
}

/** The audit record of a message: what the pipeline decided, and the chain it travels. */
/** The engine's messenger: `send` is what every door calls for a message. */
export interface Messenger {
  send(
    body: MessageRequest,
    credential: string | undefined,
    requestId: string,
  ): Promise<MessageOutcome>
}

export function messenger(deps: MessagingDeps): Messenger {
  return { send: (body, credential, requestId) => sendMessage(deps, body, credential, requestId) }
}

function event(
  rt: Runtime,
  body: MessageRequest,
  d: Decision,
  outcome: 'delivered' | 'denied',
  about: { authenticated: boolean; path: string[]; human: string | undefined; messageId?: string },
): AuditEventInput & { message_id?: string } {
  const { value, masked } = maskPii({ to_agent: body.to_agent, content: body.content }, '/params')
  const { path, human, messageId } = about
  return {
    version: 1,
    id: timeOrderedId(),
    type: outcome === 'delivered' ? 'agent_message_sent' : 'agent_message_denied',
    timestamp: new Date().toISOString(),
    request_id: d.requestId,
    agent_id: body.agent_id,
    principal: about.authenticated ? body.agent_id : 'anonymous',
    tool: '',
    session_id: body.session_id ?? null,
    decision: outcome === 'delivered' ? 'delivered' : 'deny',
    layer: d.layer,
    code: d.code,
    reason: outcome === 'delivered' ? `message to \`${body.to_agent}\`` : d.reason,
    risk: d.risk,
    policy_version: d.policyVersion,
    args_hash: '',
    params: value,
    masked,
    checks: d.checks,
    ...(messageId && { message_id: messageId }),
    ...(path.length > 0 && { chain: path }),
    ...(human && { human }),
  }
}
