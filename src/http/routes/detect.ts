import type { FastifyPluginAsync } from 'fastify'
import type { WardenConfig } from '../../domain/config.js'
import { scanText } from '../../detect/injection.js'
import type { Runtime } from '../../pipeline/runtime.js'
import { replyLimited, TokenBuckets, trustedClient } from '../limits.js'
import { parseDetectBody } from '../schemas.js'

export interface DetectRoutesOptions {
  runtime: Runtime
  limits: WardenConfig['server']['limits']
}

/**
 * `POST /detect/injection`: the prompt-injection detector on any text. It takes no credential,
 * so its cost is bounded on its own: a small body limit and a bucket per client address.
 */
export const detectRoutes: FastifyPluginAsync<DetectRoutesOptions> = async (
  app,
  { runtime, limits },
) => {
  const trusted = new Set(limits.trusted_ips)
  const buckets = new TokenBuckets(limits.detect, limits.max_tracked_ips)
  app.post(
    '/detect/injection',
    {
      bodyLimit: limits.detect_body_limit_bytes,
      // Before the body is read: a limited client costs no parsing.
      onRequest: async (req, reply) => {
        if (trustedClient(trusted, req)) return
        const wait = buckets.take(req.ip)
        if (wait > 0)
          return replyLimited(req, reply, 'ip_rate_limited', wait, 'too many detector requests')
      },
    },
    async (req) => scanText(parseDetectBody(req.body).text, runtime.config.injection.hold_at),
  )
}
