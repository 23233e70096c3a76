import type { FastifyPluginAsync } from 'fastify'
import type { Gateway } from '../../gateway/service.js'
import { bearer, requireReader } from '../guards.js'
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
    return send(
      reply,
      await approvals.resolve(body.approval_id, credential, body.decision, body.comment ?? null),
    )
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
    const deadline = Date.now() + Math.min(Math.max(Number(wait ?? 0) || 0, 0), 60) * 1000
    for (;;) {
      const r = await approvals.read(req.params.id, credential)
      if (settled(r.body) || Date.now() >= deadline || req.raw.destroyed) return send(reply, r)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  })

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    '/gateway/approvals/:id/decide',
    async (req, reply) => send(reply, await approvals.decideByLink(req.params.id, req.query)),
  )

  app.post('/gateway/callbacks/approvals', async (req, reply) => {
    const header = (name: string) => {
      const v = req.headers[name]
      return typeof v === 'string' ? v : undefined
    }
    // Signed over the exact bytes received (kept by the app's JSON parser).
    const raw = req.rawBody?.toString('utf8') ?? ''
    return send(
      reply,
      await approvals.decideByCallback(
        raw,
        header('x-warden-timestamp'),
        header('x-warden-signature'),
      ),
    )
  })
}

/** Nothing more to wait for: unknown, decided, expired, or approved and executed. */
function settled(body: Record<string, unknown>): boolean {
  const approval = body.approval as { status?: string; executed_at?: string | null } | undefined
  return (
    !approval ||
    (approval.status !== 'pending' && (approval.status !== 'approved' || !!approval.executed_at))
  )
}
