import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'

type Schema = Record<string, unknown>
interface RouteDoc {
  summary: string
  tags: string[]
  description?: string
  body?: Schema
  query?: Schema
  /** Status → description; bodies are in the API contract and docs/errors.md. */
  responses: Record<string, string>
  security?: 'agent' | 'approver' | 'agent or approver'
}

const error = 'error body: `{ "error": { "code", "message" }, "request_id" }`'
const filters: Schema = {
  type: 'object',
  properties: Object.fromEntries(
    ['agent_id', 'tool', 'decision', 'type', 'session_id', 'risk_level', 'from', 'to', 'text'].map(
      (k) => [k, { type: 'string' }],
    ),
  ),
}

/**
 * The gateway API as OpenAPI, served at `/docs` (UI) and `/docs/json`. Request bodies are
 * described here, not as Fastify route schemas: the gateway parses bodies itself (strict JSON,
 * zod), and a route schema would validate them a second time with different error codes.
 * A test keeps this table and the registered routes in step.
 */
export const ROUTE_DOCS: Record<string, RouteDoc> = {
  'POST /gateway/execute': {
    summary: 'Decide a tool call, and run it when allowed',
    tags: ['gateway'],
    security: 'agent',
    body: {
      type: 'object',
      required: ['agent_id', 'tool', 'params'],
      additionalProperties: false,
      properties: {
        agent_id: { type: 'string' },
        tool: { type: 'string' },
        params: { type: 'object' },
        session_id: { type: 'string', description: 'groups calls for taint and history' },
        context: {
          type: 'object',
          description: 'untrusted text the call came from, e.g. user_input',
        },
      },
    },
    responses: {
      200: 'allowed and executed: `decision`, `request_id`, `result`, `risk`, `checks`',
      202: 'held for a person: `approval_id`, `expires_at`, `risk`, `checks`',
      400: `malformed input; ${error}`,
      401: 'missing or wrong agent key',
      403: 'denied: `layer`, `error`, `risk`, `checks`',
      429: 'rate limited (`Retry-After`)',
      503: 'a dependency the decision needs is down; nothing ran',
    },
  },
  'POST /gateway/message': {
    summary: 'Send a message to another agent (delegate work) through the gateway',
    tags: ['gateway'],
    security: 'agent',
    description:
      'The receiver gets the sanitized content and a delegation token to present (`delegation`) with the tool calls it makes for this message; those calls get only what every agent of the chain may do.',
    body: {
      type: 'object',
      required: ['agent_id', 'to_agent', 'content'],
      properties: {
        agent_id: { type: 'string' },
        to_agent: { type: 'string' },
        content: { type: 'string' },
        session_id: { type: 'string' },
        delegation: { type: 'string', description: "the sender's own delegation, if any" },
        requested_by: { type: 'string', description: 'the person who started the work' },
      },
    },
    responses: {
      200: '`message_id`, `content` (sanitized), `chain`, `delegation`, `expires_at`, `scan`',
      401: 'wrong key or delegation',
      403: '`message_not_allowed` or `injection_detected`',
    },
  },
  'POST /gateway/approve': {
    summary: 'Approve or deny a held call',
    tags: ['approvals'],
    security: 'approver',
    body: {
      type: 'object',
      required: ['approval_id', 'decision'],
      properties: {
        approval_id: { type: 'string' },
        decision: { type: 'string', enum: ['approve', 'deny'] },
        comment: { type: 'string' },
      },
    },
    responses: {
      200: 'the resolved approval (and the tool result when approved)',
      403: 'not allowed to decide this',
      404: 'unknown approval',
      409: 'already decided or expired',
    },
  },
  'GET /gateway/pending-approvals': {
    summary: 'Held calls waiting for a person',
    tags: ['approvals'],
    responses: { 200: '`approvals` (parameters masked), `count`' },
  },
  'GET /gateway/approvals/:id': {
    summary: 'One approval; `?wait=N` long-polls up to N seconds',
    tags: ['approvals'],
    security: 'agent or approver',
    query: { type: 'object', properties: { wait: { type: 'integer', maximum: 60 } } },
    responses: {
      200: '`approval`',
      403: 'not the requesting agent nor an approver',
      404: 'unknown',
    },
  },
  'GET /gateway/approvals/:id/decide': {
    summary: 'Signed, expiring, single-use approve/deny link from a notification',
    tags: ['approvals'],
    responses: { 200: 'decided', 403: 'bad or expired signature', 409: 'already decided' },
  },
  'POST /gateway/callbacks/approvals': {
    summary: 'Signed decision callback (Standard Webhooks: webhook-id, -timestamp, -signature)',
    tags: ['approvals'],
    responses: { 200: 'decided', 401: 'bad, old or replayed signature' },
  },
  'POST /detect/injection': {
    summary: 'Score text with the prompt-injection detector',
    tags: ['detection'],
    body: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } },
    responses: { 200: '`score`, `detected`, `categories`' },
  },
  'GET /stats': {
    summary: 'Totals, per agent, per tool, per risk level, block rate, top block reasons',
    tags: ['observability'],
    responses: { 200: 'statistics' },
  },
  'GET /events/recent': {
    summary: 'Newest audit events first',
    tags: ['audit'],
    query: {
      ...filters,
      properties: { ...(filters.properties as Schema), limit: { type: 'integer' } },
    },
    responses: { 200: '`events`, `count`' },
  },
  'GET /events/timeline': {
    summary: 'Events per agent and per session, in time order',
    tags: ['audit'],
    query: filters,
    responses: { 200: '`agents`, `sessions`' },
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
    query: {
      ...filters,
      properties: {
        ...(filters.properties as Schema),
        format: { type: 'string', enum: ['jsonl', 'csv', 'cef'] },
      },
    },
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
    responses: { 200: '`agents`' },
  },
  'GET /config/tools': { summary: 'Tools', tags: ['configuration'], responses: { 200: '`tools`' } },
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
  'GET /metrics': {
    summary: 'Prometheus metrics',
    tags: ['observability'],
    responses: { 200: 'text exposition format' },
  },
  'GET /ws/events': {
    summary: 'WebSocket: audit events live as JSON text frames; `?last_seq=N` catches up first',
    tags: ['audit'],
    query: { type: 'object', properties: { last_seq: { type: 'integer' } } },
    responses: { 101: 'switching protocols', 403: 'browser origin not allowed' },
  },
}

const SECURITY: Record<NonNullable<RouteDoc['security']>, Record<string, string[]>[]> = {
  agent: [{ agentKey: [] }],
  approver: [{ approverToken: [] }],
  'agent or approver': [{ agentKey: [] }, { approverToken: [] }],
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
        securitySchemes: {
          agentKey: { type: 'http', scheme: 'bearer', description: 'an agent key' },
          approverToken: { type: 'http', scheme: 'bearer', description: 'an approver token' },
        },
      },
    },
    // @fastify/swagger leaves WebSocket routes out; the event stream is part of the API.
    transformObject: (doc) => {
      const spec = ('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject) as Record<
        string,
        unknown
      > & { paths?: Record<string, unknown> }
      const ws = ROUTE_DOCS['GET /ws/events']!
      spec.paths = {
        ...spec.paths,
        '/ws/events': {
          get: {
            summary: ws.summary,
            tags: ws.tags,
            parameters: [{ name: 'last_seq', in: 'query', schema: { type: 'integer' } }],
            responses: Object.fromEntries(
              Object.entries(ws.responses).map(([code, description]) => [code, { description }]),
            ),
          },
        },
      }
      // The document we were given, with one path added; its declared type is a union.
      return spec as never
    },
    transform: ({ schema, url, route }) => {
      const method = Array.isArray(route.method) ? route.method[0] : route.method
      const doc = ROUTE_DOCS[`${method} ${route.url}`]
      if (!doc) return { schema: { ...schema, hide: true }, url }
      return {
        url,
        schema: {
          ...schema,
          summary: doc.summary,
          tags: doc.tags,
          ...(doc.description && { description: doc.description }),
          ...(doc.body && { body: doc.body }),
          ...(doc.query && { querystring: doc.query }),
          ...(doc.security && { security: SECURITY[doc.security] }),
          response: Object.fromEntries(
            Object.entries(doc.responses).map(([code, description]) => [code, { description }]),
          ),
        },
      }
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
}
