import { randomUUID } from 'node:crypto'
import type { AuditEventInput } from '../domain/audit-event.js'
import { detectInjection } from '../detect/injection.js'
import { maskPii } from '../detect/pii.js'
import { WardenError, type ErrorCode } from '../domain/errors.js'
import { timeOrderedId } from '../domain/ids.js'
import { refused, unavailable, type Failure } from '../domain/outcome.js'
import type { Recorder } from '../audit/recorder.js'
import { riskOf } from '../pipeline/risk.js'
import type { Runtime } from '../pipeline/runtime.js'
import { principalOf } from '../auth/credentials.js'
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
  recorder: Recorder
}

/**
 * `POST /gateway/message`: one agent asks another to do something, through the gateway only.
 * The sender must be who its key says, the edge must be configured, the chain short enough and
 * free of loops; the content is scanned (refused at the injection deny threshold) and sanitized.
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
  const rt = deps.runtime
  const { messaging, injection } = rt.config
  const now = Date.now()
  const { agent } = principalOf(rt, credential)
  let human = body.requested_by
  const refuse = async (
    code: ErrorCode,
    message: string,
    chain: string[],
    score = 0,
  ): Promise<MessageOutcome> => {
    try {
      await deps.recorder.record([
        event(rt, body, requestId, now, 'denied', code, message, chain, score, human),
      ])
    } catch (err) {
      return notRecorded(err, requestId)
    }
    return refused(code, message, requestId)
  }

  if (!agent || agent.id !== body.agent_id)
    return refuse('unauthenticated', 'the credential does not belong to `agent_id`', [])
  let chain = [agent.id]
  if (body.delegation !== undefined) {
    const checked = await rt.delegation.verify(body.delegation, agent.id, now)
    if (!checked.ok || checked.delegation.to !== agent.id)
      return refuse(
        'unauthenticated',
        checked.ok ? 'the delegation is for another agent' : checked.why,
        chain,
      )
    chain = [...checked.delegation.chain, agent.id]
    human = checked.delegation.human
  }
  if (body.delegation !== undefined && body.requested_by !== undefined)
    throw new WardenError(
      'invalid_request',
      '`requested_by` comes from the delegation when one is given; send one or the other',
    )
  // A quarantined agent may not get others to act for it.
  const state = await rt.state.sessions.load({ agent: agent.id, chain, now })
  for (const member of chain) {
    const until = state.quarantinedUntil.get(member)
    if (until !== undefined)
      return refuse(
        'agent_quarantined',
        `agent \`${member}\` is quarantined until ${new Date(until).toISOString()}`,
        chain,
      )
  }
  const to = body.to_agent
  const path = [...chain, to]
  if (!messaging.edges.some((e) => e.from === agent.id && e.to === to))
    return refuse('message_not_allowed', `\`${agent.id}\` may not message \`${to}\``, path)
  if (chain.includes(to))
    return refuse('message_not_allowed', `\`${to}\` is already in the chain (a loop)`, path)
  if (path.length > messaging.max_chain)
    return refuse(
      'message_not_allowed',
      `the delegation chain would be ${path.length} agents long; at most ${messaging.max_chain}`,
      path,
    )
  if (body.content.length > messaging.max_message_chars)
    return refuse(
      'invalid_request',
      `\`content\` is longer than ${messaging.max_message_chars} characters`,
      path,
    )
  // Scanned as sent (hidden characters included), delivered sanitized.
  const scan = detectInjection(body.content)
  if (scan.score >= injection.deny_at)
    return refuse(
      'injection_detected',
      `the message carries a prompt injection (${scan.categories.join(', ')})`,
      path,
      scan.score,
    )
  const content = sanitizeMessage(body.content)
  const messageId = `msg_${randomUUID()}`
  const expiresAt = now + messaging.token_ttl_seconds * 1000
  const delegation = await rt.delegation.sign({
    chain,
    to,
    ...(human && { human }),
    ...(body.session_id && { session: body.session_id }),
    message_id: messageId,
    exp: expiresAt,
  })
  try {
    await deps.recorder.record([
      event(
        rt,
        { ...body, content },
        requestId,
        now,
        'delivered',
        null,
        `message to \`${to}\``,
        path,
        scan.score,
        human,
        messageId,
      ),
    ])
  } catch (err) {
    return notRecorded(err, requestId)
  }
  return {
    kind: 'delivered',
    message: {
      message_id: messageId,
      request_id: requestId,
      from_agent: agent.id,
      to_agent: to,
      content,
      chain: path,
      ...(human && { requested_by: human }),
      delegation,
      expires_at: new Date(expiresAt).toISOString(),
      scan: { score: scan.score, categories: scan.categories },
    },
  }
}

/** The audit log could not take the record: nothing was delivered. */
function notRecorded(err: unknown, requestId: string): MessageOutcome {
  const code: ErrorCode = err instanceof WardenError ? err.code : 'audit_unavailable'
  return unavailable(code, 'the message could not be recorded; it was not delivered', requestId)
}

function event(
  rt: Runtime,
  body: MessageRequest,
  requestId: string,
  now: number,
  outcome: 'delivered' | 'denied',
  code: ErrorCode | null,
  reason: string,
  chain: string[],
  score: number,
  human: string | undefined,
  messageId?: string,
): AuditEventInput & { message_id?: string } {
  const { value, masked } = maskPii({ to_agent: body.to_agent, content: body.content }, '/params')
  return {
    version: 1,
    id: timeOrderedId(),
    type: outcome === 'delivered' ? 'agent_message_sent' : 'agent_message_denied',
    timestamp: new Date(now).toISOString(),
    request_id: requestId,
    agent_id: body.agent_id,
    principal: code === 'unauthenticated' ? 'anonymous' : body.agent_id,
    tool: '',
    session_id: body.session_id ?? null,
    decision: outcome === 'delivered' ? 'delivered' : 'deny',
    layer: null,
    code,
    reason,
    risk: riskOf(score * 60),
    policy_version: rt.policyVersion,
    args_hash: '',
    params: value,
    masked,
    checks: [],
    ...(messageId && { message_id: messageId }),
    ...(chain.length > 0 && { chain }),
    ...(human && { human }),
  }
}
