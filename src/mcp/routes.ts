import { toNodeHandler } from '@modelcontextprotocol/node'
import { createMcpHandler, type McpRequestContext } from '@modelcontextprotocol/server'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { bearer, principalOf } from '../auth/credentials.js'
import { errorBody } from '../domain/errors.js'
import type { Gateway } from '../gateway/service.js'
import { mcpServer, type McpCaller } from './server.js'

export interface McpRoutesOptions {
  gateway: Gateway
  /** Told about errors the SDK reports out of band (a response it could not write). */
  onError?: (err: Error) => void
}

/**
 * The MCP front door: `/mcp`, streamable HTTP, on the gateway app, so the app's Host guard,
 * per-address limits, body limit and strict JSON parser run before anything here.
 *
 * The SDK's serving entry (`createMcpHandler`) answers both protocol generations from one
 * factory: 2026-07-28 requests (per-request `_meta` envelope, no session) on its modern path,
 * 2025-11-25 clients (`initialize`, then calls) on its stateless legacy fallback, which builds a
 * fresh server per request and issues no `Mcp-Session-Id`. Nothing is kept between requests, so
 * there are no sessions to cap or expire; GET and DELETE (2025 session operations) are answered
 * `405` by the SDK, which old clients take to mean "no standalone stream".
 */
export const mcpRoutes: FastifyPluginAsync<McpRoutesOptions> = async (
  app,
  { gateway, onError },
) => {
  const { runtime } = gateway
  const handler = createMcpHandler(
    (ctx: McpRequestContext) => mcpServer(gateway, callerOf(gateway, ctx), runtime.config.version),
    { legacy: 'stateless', onerror: onError },
  )
  const serve = toNodeHandler(handler, { onerror: onError })
  app.addHook('onClose', async () => handler.close())

  const route = async (req: FastifyRequest, reply: FastifyReply) => {
    const credential = bearer(req.headers.authorization)
    const agent = principalOf(runtime, credential).agent
    if (!agent || credential === undefined) return unauthenticated(req, reply, credential)
    // MCP removed JSON-RPC batching (2025-06-18); one POST carrying thousands of calls would
    // multiply what one request costs (threat matrix B12), so an array is refused whole.
    if (Array.isArray(req.body))
      return reply
        .code(400)
        .send(
          errorBody(
            'invalid_request',
            'JSON-RPC batches are not accepted: send one message per request',
            req.id,
          ),
        )
    const mismatch = methodMismatch(req.headers['mcp-method'], req.body)
    if (mismatch) return reply.code(400).send(errorBody('mcp_method_mismatch', mismatch, req.id))
    // From here the SDK writes the response itself; Fastify must not send one too.
    reply.hijack()
    // The SDK passes `auth` through to the factory untouched; it is never read from headers there.
    // INVARIANT: the key goes no further than `Gateway.execute` (the identity layer checks it);
    // no tool, upstream or log is given it.
    const raw = Object.assign(req.raw, {
      auth: { token: credential, clientId: agent.id, scopes: [] as string[] },
    })
    await serve(raw, reply.raw, req.body)
  }
  app.post('/mcp', route)
  app.get('/mcp', route)
  app.delete('/mcp', route)
}

/**
 * The agent the factory builds a server for, from the key the route authenticated (looked up
 * again rather than trusted from `clientId`: the key is the proof).
 */
function callerOf(gateway: Gateway, ctx: McpRequestContext): McpCaller {
  const credential = ctx.authInfo?.token
  const agent = principalOf(gateway.runtime, credential).agent
  if (credential === undefined || !agent)
    throw new Error('MCP request reached the server factory unauthenticated')
  return { agent, credential }
}

/**
 * 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750), as MCP clients expect. The app's
 * limits count it against the client address and audit it as `request_rejected`.
 */
function unauthenticated(req: FastifyRequest, reply: FastifyReply, credential: string | undefined) {
  const challenge =
    credential === undefined
      ? 'Bearer realm="warden"'
      : 'Bearer realm="warden", error="invalid_token"'
  return reply
    .code(401)
    .header('www-authenticate', challenge)
    .send(
      errorBody('unauthenticated', 'an agent key is required: Authorization: Bearer <key>', req.id),
    )
}

/**
 * When the client names the method in `Mcp-Method` (required of 2026-07-28 clients), it must be
 * the body's: a proxy or rule that routes on the header must see what the server will run.
 */
function methodMismatch(header: string | string[] | undefined, body: unknown): string | null {
  if (header === undefined) return null
  const method =
    typeof body === 'object' && body !== null && !Array.isArray(body)
      ? (body as { method?: unknown }).method
      : undefined
  if (typeof header === 'string' && (method === undefined || method === header)) return null
  return `the Mcp-Method header (${String(header).slice(0, 64)}) does not match the body's method`
}
