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

  // Signed links: a GET only shows what the link would do (mail scanners and chat previewers
  // fetch links); the page's button POSTs the same URL, which decides. In a context of their own,
  // the one place a plain HTML form's body (ignored) is accepted.
  await app.register(async (links) => {
    links.addContentTypeParser(
      ['application/x-www-form-urlencoded', 'text/plain'],
      { parseAs: 'string', bodyLimit: 1024 },
      (_req, _body, done) => done(null, null),
    )
    links.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
      '/gateway/approvals/:id/decide',
      async (req, reply) =>
        reply
          .header('content-type', 'text/html; charset=utf-8')
          .header('cache-control', 'no-store')
          .header('referrer-policy', 'no-referrer')
          .header(
            'content-security-policy',
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
          )
          .send(confirmationPage(req.params.id, req.query, req.url)),
    )
    links.post<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
      '/gateway/approvals/:id/decide',
      async (req, reply) =>
        send(reply, approvalReply(await approvals.decideByLink(req.params.id, req.query))),
    )
  })

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

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}
const html = (text: string) => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c)

/** The page a signed link opens: what it would do, and a button that does it. */
function confirmationPage(id: string, query: Record<string, unknown>, url: string): string {
  const decision = query.decision === 'deny' ? 'deny' : 'approve'
  const approver = typeof query.approver === 'string' ? query.approver.slice(0, 128) : ''
  const verb = decision === 'deny' ? 'Deny' : 'Approve'
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Warden: ${verb} approval</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
button{font-size:1rem;padding:.5rem 1.25rem}</style></head>
<body><h1>${verb} this held call?</h1>
<p>Approval <code>${html(id.slice(0, 128))}</code>, as <code>${html(approver)}</code>.
Nothing has been decided yet.</p>
<form method="post" action="${html(url)}"><button type="submit">${verb}</button></form>
</body></html>
`
}
