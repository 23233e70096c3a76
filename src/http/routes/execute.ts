import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import { WardenError } from '../../domain/errors.js'
import type { ToolCall } from '../../domain/types.js'
import type { CallOutcome } from '../../domain/outcome.js'
import type { Gateway } from '../../gateway/service.js'
import type { Messenger } from '../../messaging/service.js'
import { callReply, messageReply } from '../outcomes.js'
import { bearer } from '../guards.js'
import { send } from '../send.js'
import type { Metrics } from '../metrics.js'
import { messageBody, parseBody, parseExecuteBody, type ExecuteBody } from '../schemas.js'

export interface ExecuteRoutesOptions {
  gateway: Gateway
  messenger: Messenger
  metrics: Metrics
}

/** `POST /gateway/execute` (decide a tool call, run it when allowed) and `POST /gateway/message`. */
export const executeRoutes: FastifyPluginAsync<ExecuteRoutesOptions> = async (
  app,
  { gateway, messenger, metrics },
) => {
  app.post('/gateway/execute', async (req, reply) => {
    const body = parseExecuteBody(req.body)
    // Taint, split-injection and session rules need a session; a deployment can insist on one.
    if (body.session_id === undefined && gateway.runtime.config.sessions.required)
      throw new WardenError(
        'session_required',
        'this gateway requires a `session_id` on every call',
      )
    const outcome = await gateway.execute(toolCall(req, body))
    countStoreFailure(metrics, outcome)
    return send(reply, callReply(outcome))
  })

  app.post('/gateway/message', async (req, reply) => {
    const body = parseBody(messageBody, req.body)
    const credential = bearer(req.headers.authorization)
    return send(reply, messageReply(await messenger.send(body, credential, req.id)))
  })
}

/** Largest `context` a call may carry (as JSON): a held call keeps it until it is decided. */
export const MAX_CONTEXT_BYTES = 64 * 1024

function toolCall(req: FastifyRequest, body: ExecuteBody): ToolCall {
  if (body.context && Buffer.byteLength(JSON.stringify(body.context)) > MAX_CONTEXT_BYTES)
    throw new WardenError(
      'context_too_large',
      `\`context\` may hold at most ${MAX_CONTEXT_BYTES} bytes of JSON`,
    )
  return {
    requestId: req.id,
    agentId: body.agent_id,
    tool: body.tool,
    params: body.params,
    sessionId: body.session_id,
    context: body.context ?? {},
    credential: bearer(req.headers.authorization),
    receivedAt: Date.now(),
    idempotencyKey: idempotencyKey(req.headers['idempotency-key']),
    ...(body.delegation !== undefined && { delegation: body.delegation }),
  }
}

function countStoreFailure(metrics: Metrics, outcome: CallOutcome): void {
  if (outcome.kind !== 'unavailable') return
  metrics.unavailable.inc({ code: outcome.code })
  if (outcome.code === 'audit_unavailable' || outcome.code === 'approval_store_unavailable')
    metrics.storeFailures.inc()
}

/** `Idempotency-Key`: 1–128 visible ASCII characters, sent once. */
function idempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  if (typeof header !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(header)) {
    throw new WardenError(
      'invalid_request',
      'Idempotency-Key must be 1-128 visible ASCII characters, sent once',
    )
  }
  return header
}
