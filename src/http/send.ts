import type { FastifyReply } from 'fastify'
import type { Reply } from './reply.js'

// The one place a route turns an engine result into a response. When the engine returns typed
// outcomes, their mapping to status codes goes here, and each route changes one line.

/** Put an engine reply on the wire as it is: status, headers, body. */
export function send(reply: FastifyReply, r: Reply): FastifyReply {
  return reply
    .code(r.status)
    .headers(r.headers ?? {})
    .send(r.body)
}
