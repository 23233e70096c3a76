import type { FastifyPluginAsync } from 'fastify'
import type { Gateway } from '../../gateway/service.js'
import { bearer, requireReader } from '../guards.js'
import { approvalReply } from '../outcomes.js'
import { send } from '../send.js'
import type { Metrics } from '../metrics.js'
import { approvalQuery, approveBody, parseBody, parseQuery } from '../schemas.js'

export interface ApprovalRoutesOptions {
  gateway: Gateway
  metrics: Metrics
}

/** Held calls: decide, list, read (long-poll), signed links and signed callbacks. */
export const approvalRoutes: FastifyPluginAsync<ApprovalRoutesOptions> = async (
  app,
  { gateway, metrics },
) => {
  const { approvals } = gateway

  app.post('/gateway/approve', async (req, reply) => {
    const body = parseBody(approveBody, req.body)
    const credential = bearer(req.headers.authorization)
    const outcome = await approvals.resolve(
      body.approval_id,
      credential,
      body.decision,
      body.comment ?? null,
    )
    return send(reply, approvalReply(outcome))
  })

  app.get('/gateway/pending-approvals', async (req) => {
    requireReader(gateway.runtime, req.headers.authorization)
    const pending = await approvals.pending()
    metrics.approvalsPending.set(pending.length)
    return { approvals: pending, count: pending.length }
  })

  app.get<{ Params: { id: string } }>('/gateway/approvals/:id', async (req, reply) => {
    const credential = bearer(req.headers.authorization)
    const { wait } = parseQuery(approvalQuery, req.query)
    const waitMs = Math.min(Math.max(Number(wait ?? 0) || 0, 0), 60) * 1000
    // A client that hangs up stops the wait.
    const gone = new AbortController()
    req.raw.once('close', () => gone.abort())
    const outcome = await approvals.read(req.params.id, credential, { waitMs, signal: gone.signal })
    return send(reply, approvalReply(outcome))
  })

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    '/gateway/approvals/:id/decide',
    async (req, reply) =>
      send(reply, approvalReply(await approvals.decideByLink(req.params.id, req.query))),
  )

  app.post('/gateway/callbacks/approvals', async (req, reply) => {
    const header = (name: string) => {
      const v = req.headers[name]
      return typeof v === 'string' ? v : undefined
    }
    // Signed over the exact bytes received (kept by the app's JSON parser).
    const raw = req.rawBody?.toString('utf8') ?? ''
    const outcome = await approvals.decideByCallback(raw, {
      'webhook-id': header('webhook-id'),
      'webhook-timestamp': header('webhook-timestamp'),
      'webhook-signature': header('webhook-signature'),
    })
    return send(reply, approvalReply(outcome))
  })
}
