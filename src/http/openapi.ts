import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import * as s from './schemas.js'

/** A response: its description, and the zod schema of its body when it is JSON. */
type ResponseDoc = string | [description: string, body: z.ZodType]

interface RouteDoc {
  summary: string
  tags: string[]
  description?: string
  /** The schema the handler parses the body with (src/http/schemas.ts). */
  body?: z.ZodType
  /** The schema the handler parses the query string with. */
  query?: z.ZodType
  /** Request headers the handler reads beyond `Authorization` (each optional unless required). */
  headers?: z.ZodType
  /** Status → description (and body). A 4xx/5xx without a body schema is the error body. */
  responses: Record<string, ResponseDoc>
  security?: 'agent' | 'approver' | 'agent or approver'
}

const error = 'error body: `{ "error": { "code", "message" }, "request_id" }`'

/**
 * What the schemas do not say about each route: summary, tags, security, response descriptions.
 * A test keeps this table and the registered routes in step; the app refuses a route without an
 * entry.
 */
export const ROUTE_DOCS: Record<string, RouteDoc> = {
  'POST /gateway/execute': {
    summary: 'Decide a tool call, and run it when allowed',
    tags: ['gateway'],
    security: 'agent',
    body: s.executeBody,
    headers: s.executeHeaders,
    responses: {
      200: ['allowed and executed', s.executeAllowed],
      202: ['held for a person', s.executeHeld],
      400: `malformed input; ${error}`,
      401: 'missing or wrong agent key',
      403: ['denied by a layer', s.executeDenied],
      409: `\`Idempotency-Key\` reused for another call, or its first call is still running; ${error}`,
      429: ['rate limited (`Retry-After`)', s.executeDenied],
      502: ['allowed, but the tool failed', s.executeToolFailed],
      503: 'a dependency the decision needs is down; nothing ran',
      504: [
        'allowed, but the tool did not answer in time (it may have acted)',
        s.executeToolFailed,
      ],
    },
  },
  'POST /mcp': {
    summary: 'MCP front door (streamable HTTP): JSON-RPC tools/list and tools/call',
    tags: ['mcp'],
    security: 'agent',
    description:
      "Model Context Protocol 2026-07-28 and 2025-11-25 (stateless: no `Mcp-Session-Id`). `tools/list` lists the agent's allowlist; every `tools/call` is decided by the same pipeline as `POST /gateway/execute`. Denials, holds and tool failures are tool results with `isError`. See README, MCP.",
    responses: {
      200: 'a JSON-RPC response (JSON, or an SSE stream when progress is sent)',
      202: 'a notification was accepted',
      400: `malformed JSON, or \`Mcp-Method\` disagrees with the body; ${error}`,
      401: 'missing or wrong agent key (`WWW-Authenticate: Bearer`)',
    },
  },
  'GET /mcp': {
    summary: 'MCP standalone stream: not offered (stateless door)',
    tags: ['mcp'],
    security: 'agent',
    responses: { 401: 'missing or wrong agent key', 405: 'no standalone stream on this door' },
  },
  'DELETE /mcp': {
    summary: 'MCP session end: not offered (stateless door)',
    tags: ['mcp'],
    security: 'agent',
    responses: { 401: 'missing or wrong agent key', 405: 'no sessions on this door' },
  },
  'POST /gateway/message': {
    summary: 'Send a message to another agent (delegate work) through the gateway',
    tags: ['gateway'],
    security: 'agent',
    description:
      'The receiver gets the sanitized content and a delegation token to present (`delegation`) with the tool calls it makes for this message; those calls get only what every agent of the chain may do.',
    body: s.messageBody,
    responses: {
      200: ['delivered', s.messageResponse],
      401: 'wrong key or delegation',
      403: '`message_not_allowed` or `injection_detected`',
    },
  },
  'POST /gateway/approve': {
    summary: 'Approve or deny a held call',
    tags: ['approvals'],
    security: 'approver',
    body: s.approveBody,
    responses: {
      200: ['the resolved approval (with the tool result when approved)', s.approvalResponse],
      403: 'not allowed to decide this',
      404: 'unknown approval',
      409: 'already decided or expired',
    },
  },
  'GET /gateway/pending-approvals': {
    summary: 'Held calls waiting for a person',
    tags: ['approvals'],
    responses: { 200: ['pending approvals, parameters masked', s.pendingApprovals] },
  },
  'GET /gateway/approvals/:id': {
    summary: 'One approval; `?wait=N` long-polls up to N seconds',
    tags: ['approvals'],
    security: 'agent or approver',
    query: s.approvalQuery,
    responses: {
      200: ['the approval', s.approvalResponse],
      403: 'not the requesting agent nor an approver',
      404: 'unknown',
    },
  },
  'GET /gateway/approvals/:id/decide': {
    summary: 'Signed approve/deny link from a notification: a confirmation page only',
    tags: ['approvals'],
    description:
      'Changes nothing (link previewers and scanners open links); the page has a button that POSTs the same URL.',
    responses: { 200: 'an HTML page with a confirm button' },
  },
  'POST /gateway/approvals/:id/decide': {
    summary: 'Decide through a signed, expiring, single-use approve/deny link',
    tags: ['approvals'],
    responses: {
      200: 'decided',
      401: 'bad or expired signature',
      409: 'already decided, or the link was already used',
    },
  },
  'POST /gateway/callbacks/approvals': {
    summary: 'Signed decision callback (Standard Webhooks: webhook-id, -timestamp, -signature)',
    tags: ['approvals'],
    responses: { 200: 'decided', 401: 'bad, old or replayed signature' },
  },
  'POST /detect/injection': {
    summary: 'Score text with the prompt-injection detector',
    tags: ['detection'],
    body: s.detectBody,
    responses: { 200: '`score`, `detected`, `categories`' },
  },
  'GET /stats': {
    summary: 'Totals, per agent, per tool, per risk level, block rate, top block reasons',
    tags: ['observability'],
    responses: { 200: ['statistics', s.stats] },
  },
  'GET /events/recent': {
    summary: 'Newest audit events first',
    tags: ['audit'],
    query: s.recentQuery,
    responses: { 200: ['events, newest first', s.recentEvents] },
  },
  'GET /events/timeline': {
    summary: 'Events per agent and per session, in time order',
    tags: ['audit'],
    query: s.timelineQuery,
    responses: { 200: ['events grouped', s.timeline] },
  },
  'GET /auth/whoami': {
    summary: 'Who an approver token belongs to',
    tags: ['audit'],
    security: 'approver',
    responses: { 200: '`approver`', 401: 'not an approver token' },
  },
  'GET /audit/export': {
    summary: 'The filtered audit events as JSONL (exact hashed text + hash), CSV or CEF',
    tags: ['audit'],
    security: 'approver',
    query: s.exportQuery,
    responses: {
      200: 'the export, oldest first (at most 10,000 events)',
      401: 'not an approver token',
    },
  },
  'GET /audit/verify': {
    summary: 'Walk the audit hash chain',
    tags: ['audit'],
    security: 'approver',
    responses: { 200: '`ok`, `checked`, `head`, `firstBad`' },
  },
  'GET /audit/sessions/:id/replay': {
    summary: 'A recorded session decided again under the current configuration (nothing runs)',
    tags: ['audit'],
    security: 'approver',
    responses: { 200: '`calls` with the original and the new decision' },
  },
  'GET /config/agents': {
    summary: 'Agents (never their keys)',
    tags: ['configuration'],
    responses: { 200: ['agents', s.configAgents] },
  },
  'GET /config/tools': {
    summary: 'Tools',
    tags: ['configuration'],
    responses: { 200: ['tools (of the executor, only its type)', s.configTools] },
  },
  'GET /demo/scenarios': {
    summary: 'The demo scenarios (demo configuration only)',
    tags: ['demo'],
    responses: { 200: '`scenarios`' },
  },
  'POST /demo/run-scenario/:id': {
    summary: 'Run one demo scenario through the real pipeline',
    tags: ['demo'],
    responses: {
      200: '`scenario`, `expected`, `decision`, `passed`, `response`',
      404: 'unknown scenario',
    },
  },
  'GET /health': {
    summary: 'Liveness and readiness of each dependency',
    tags: ['observability'],
    responses: { 200: 'ready', 503: 'a dependency is down' },
  },
  'GET /mcp/upstreams': {
    summary:
      'MCP upstreams: status, pinned tool definitions, blocked and unlisted tools (approver)',
    tags: ['mcp'],
    security: 'approver',
    responses: {
      200: ['upstreams, pins and unlisted tools', s.mcpUpstreams],
      401: 'not an approver',
    },
  },
  'POST /mcp/upstreams/accept': {
    summary: "Accept an MCP tool's current definition (approver); recorded in the audit log",
    tags: ['mcp'],
    security: 'approver',
    body: s.mcpAcceptBody,
    responses: {
      200: ['accepted, with the new pin', s.mcpAccepted],
      401: 'not an approver',
      404: 'unknown tool',
      409: '`definition_changed`: the upstream changed the tool again since it was shown',
    },
  },
  'POST /admin/reload': {
    summary:
      'Reload the configuration files without a restart (approver); recorded in the audit log',
    description:
      'Validates first and keeps the configuration in force on any error. Calls already started finish under the policy version they started with; calls after the reload are decided under the new one. Changing `server`, `store`, `state`, `mcp_upstreams`, `demo`, `sessions.max_sessions` or `approvals.notify` needs a restart and is refused. See docs/operations.md.',
    tags: ['configuration'],
    security: 'approver',
    responses: {
      200: ['the new configuration is in force', s.reloadResponse],
      401: 'not an approver',
      403: 'not an approver',
      409: '`config_needs_restart`: a field that takes effect only at a restart changed',
      422: '`config_invalid`: the files do not validate (the message names file and field)',
      503: '`audit_unavailable`: the reload could not be recorded; nothing changed',
    },
  },
  'GET /health/live': {
    summary: 'Liveness: the process serves requests (no dependency is checked)',
    tags: ['observability'],
    responses: { 200: 'alive' },
  },
  'GET /health/ready': {
    summary: 'Readiness for a load balancer: every dependency answered within a second',
    tags: ['observability'],
    responses: { 200: 'ready', 503: 'a dependency is down or stalled: take this instance out' },
  },
  'GET /metrics': {
    summary: 'Prometheus metrics',
    tags: ['observability'],
    responses: { 200: 'text exposition format' },
  },
  'GET /ws/events': {
    summary: 'WebSocket: audit events live as JSON text frames; `?last_seq=N` catches up first',
    tags: ['audit'],
    query: s.streamQuery,
    responses: { 101: 'switching protocols', 403: 'browser origin not allowed' },
  },
}

const SECURITY: Record<NonNullable<RouteDoc['security']>, Record<string, string[]>[]> = {
  agent: [{ agentKey: [] }],
  approver: [{ approverToken: [] }],
  'agent or approver': [{ agentKey: [] }, { approverToken: [] }],
}

/**
 * A zod schema as the JSON Schema in the document: what a client may send (`io: 'input'`, so a
 * field with a default is optional) or what it receives (`io: 'output'`).
 */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    // A literal as `enum: [x]` rather than `const: x`: @fastify/swagger rewrites it so anyway, and
    // writing it here keeps the document exactly what this function returns.
    override: ({ jsonSchema }) => {
      if (jsonSchema.const !== undefined) {
        jsonSchema.enum = [jsonSchema.const]
        delete jsonSchema.const
      }
    },
  })
  return json
}

const ERROR_REF = { $ref: '#/components/schemas/ErrorResponse' }

function responsesOf(doc: RouteDoc): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(doc.responses).map(([status, r]) => {
      const [description, body] =
        typeof r === 'string' ? [r, Number(status) >= 400 ? s.errorResponse : undefined] : r
      // The error body is one shared component, not a copy per response.
      const schema = body === s.errorResponse ? ERROR_REF : body && jsonSchemaOf(body, 'output')
      const content = schema && { 'application/json': { schema } }
      return [status, { description, ...(content && { content }) }]
    }),
  )
}

/**
 * The OpenAPI fields of one route, in Fastify's route-schema form.
 *
 * The schemas reach the document only through @fastify/swagger's `transform`, never as route
 * schemas: a route schema would make Fastify validate bodies a second time (with its own error
 * codes, before our strict parser's and zod's) and serialize replies with fast-json-stringify
 * (dropping fields the schema does not list), both changes to the wire.
 */
function routeSchema(doc: RouteDoc, url: string): Record<string, unknown> {
  const params = pathParams(url)
  return {
    summary: doc.summary,
    tags: doc.tags,
    ...(doc.description && { description: doc.description }),
    ...(doc.body && { body: jsonSchemaOf(doc.body, 'input') }),
    ...(doc.query && { querystring: jsonSchemaOf(doc.query, 'input') }),
    ...(doc.headers && { headers: jsonSchemaOf(doc.headers, 'input') }),
    ...(params && { params }),
    ...(doc.security && { security: SECURITY[doc.security] }),
    response: responsesOf(doc),
  }
}

/** A route's `:name` segments as required string path parameters (so typed clients can fill them). */
function pathParams(url: string): Record<string, unknown> | undefined {
  const names = [...url.matchAll(/:(\w+)/g)].map((m) => m[1] ?? '')
  if (!names.length) return undefined
  return {
    type: 'object',
    properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])),
    required: names,
  }
}

/** The WebSocket route as an OpenAPI operation (@fastify/swagger leaves WebSocket routes out). */
function streamOperation(): Record<string, unknown> {
  const doc = ROUTE_DOCS['GET /ws/events']!
  const query = jsonSchemaOf(doc.query!, 'input') as { properties: Record<string, object> }
  return {
    summary: doc.summary,
    tags: doc.tags,
    parameters: Object.entries(query.properties).map(([name, schema]) => ({
      name,
      in: 'query',
      schema,
    })),
    responses: Object.fromEntries(
      Object.entries(responsesOf(doc)).map(([code, { description }]) => [code, { description }]),
    ),
  }
}

/**
 * Register OpenAPI generation and the UI at `/docs`. Call before the routes are added: a route
 * without an entry in ROUTE_DOCS then fails the app's construction, so the docs cannot drift.
 */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const method of methods) {
      if (method === 'HEAD' || route.url.startsWith('/docs')) continue
      if (!ROUTE_DOCS[`${method} ${route.url}`])
        throw new Error(
          `route ${method} ${route.url} has no entry in ROUTE_DOCS (src/http/openapi.ts)`,
        )
    }
  })
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Warden gateway API',
        version,
        description:
          'Security gateway for AI agents: every tool call is allowed, denied or held for a person, and audited.',
      },
      components: {
        schemas: { ErrorResponse: jsonSchemaOf(s.errorResponse, 'output') },
        securitySchemes: {
          agentKey: { type: 'http', scheme: 'bearer', description: 'an agent key' },
          approverToken: { type: 'http', scheme: 'bearer', description: 'an approver token' },
        },
      },
    },
    transformObject: (doc) => {
      const spec = ('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject) as Record<
        string,
        unknown
      > & { paths?: Record<string, unknown> }
      spec.paths = { ...spec.paths, '/ws/events': { get: streamOperation() } }
      // The document we were given, with one path added; its declared type is a union.
      return spec as never
    },
    transform: ({ schema, url, route }) => {
      const method = Array.isArray(route.method) ? route.method[0] : route.method
      const doc = ROUTE_DOCS[`${method} ${route.url}`]
      if (!doc) return { schema: { ...schema, hide: true }, url }
      return { url, schema: { ...schema, ...routeSchema(doc, route.url) } }
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}
