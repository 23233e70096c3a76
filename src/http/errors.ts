import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, statusOf, WardenError, type ErrorCode } from '../domain/errors.js'

/** Fastify's own errors that have a code of their own in the catalog. */
const FASTIFY_ERRORS: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
}

/**
 * The catalog code for anything an HTTP handler threw: a WardenError's own code, a known Fastify
 * error's mapping, any other client error `invalid_request`, and everything else
 * `internal_error`. Shared by the gateway app and the agent API.
 */
export function catalogCodeOf(err: FastifyError | WardenError): ErrorCode {
  if (err instanceof WardenError) return err.code
  const mapped = err.code ? FASTIFY_ERRORS[err.code] : undefined
  if (mapped) return mapped
  return err.statusCode && err.statusCode < 500 ? 'invalid_request' : 'internal_error'
}

/** Not-found handler for both apps: `not_found` naming the method and path. */
export function replyNotFound(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply
    .code(404)
    .send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}`, req.id))
}

/**
 * Fastify's `frameworkErrors` hook, for errors raised before routing (a URL that is not valid
 * percent-encoding, a bad Content-Type header): the catalog's JSON body instead of Fastify's own.
 */
export function replyFrameworkError(
  err: FastifyError,
  req: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const code = catalogCodeOf(err)
  return reply.code(statusOf(code)).send(errorBody(code, err.message, req.id))
}
