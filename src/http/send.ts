import type { FastifyReply } from 'fastify'
import type { Reply } from './reply.js'

// The one place a route puts a reply on the wire; `outcomes.ts` says which reply an engine
// outcome is.

/** Put an engine reply on the wire as it is: status, headers, body. */
export function send(reply: FastifyReply, r: Reply): FastifyReply {
  return reply
    .code(r.status)
    .headers(r.headers ?? {})
    .send(r.body)
}
