import { timeOrderedId } from '../domain/ids.js'
import websocket from '@fastify/websocket'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify'
import type { AuditEvent } from '../domain/audit-event.js'
import { SCENARIOS } from '../demo/scenarios.js'
import { errorBody, statusOf, WardenError, type ErrorCode } from '../domain/errors.js'
import type { ToolCall } from '../domain/types.js'
import type { EventBus } from '../events/bus.js'
import { Stats } from '../events/stats.js'
import { streamEvents } from '../events/websocket.js'
import type { Gateway, Reply } from '../gateway/service.js'
import { parseApproveBody, parseExecuteBody, parseMessageBody } from './execute-body.js'
import { sendMessage } from '../messaging/service.js'
import { scanText } from '../detect/injection.js'
import { Metrics } from './metrics.js'
import { registerOpenApi } from './openapi.js'
import { parseStrictJson } from './safe-json.js'
import type { AuditQuery, Stores } from '../store/types.js'
import { EXPORT_FORMATS, exportHeader, exportLine, type ExportFormat } from '../audit/export.js'
import { verifyChain } from '../audit/verify.js'
import { principalOf } from '../auth/credentials.js'
import { replaySession } from '../replay/session.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body as received (JSON bodies only). */
    rawBody: Buffer | null
  }
}

export interface AppDeps {
  gateway: Gateway
  /** The audit log for the read routes, and the backend's health. */
  stores: Pick<Stores, 'audit' | 'health'>
  bus: EventBus
  logger: FastifyBaseLogger
  metrics?: Metrics
  /** Runs a demo scenario in a world of its own; the demo routes exist only when it is given. */
  runScenario?: (call: ToolCall) => Promise<Reply>
}

const EXPECTED_STATUS: Record<string, number> = { allow: 200, approval_required: 202 }

const FASTIFY_ERRORS: Record<string, WardenError['code']> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
}

/** Build the gateway HTTP app from injected parts; nothing here reads the environment. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { gateway, stores, bus } = deps
  const { audit } = stores
  const metrics = deps.metrics ?? new Metrics()
  const { server } = gateway.runtime.config
  const { config } = gateway.runtime
  const allowedOrigins = new Set(server.allowed_origins.map((o) => new URL(o).origin))
  const stats = new Stats(await audit.counts(), bus, {
    agents: new Set(config.agents.map((a) => a.id)),
    tools: new Set(config.tools.map((t) => t.name)),
  })
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: server.body_limit_bytes,
    genReqId: () => timeOrderedId(),
    requestIdHeader: false,
    // Decisions are logged and audited by the gateway; per-request access logs would double them.
    logController: new LogController({ disableRequestLogging: true }),
  })
  await app.register(websocket, {
    options: {
      maxPayload: 4096,
      // A browser sends its token as a subprotocol; the server must pick one or the browser drops
      // the connection.
      handleProtocols: (protocols) =>
        [...protocols].find((p) => p.startsWith(TOKEN_PROTOCOL)) ?? false,
    },
  })
  await registerOpenApi(app, config.version)

  app.removeAllContentTypeParsers()
  // Signed callbacks are verified over the exact bytes received, so keep them with the request.
  app.decorateRequest('rawBody', null)
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    req.rawBody = body as Buffer
    try {
      done(
        null,
        parseStrictJson(body as Buffer, { maxDepth: server.max_depth, maxItems: server.max_items }),
      )
    } catch (err) {
      done(err as Error, undefined)
    }
  })

  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    const code: ErrorCode =
      err instanceof WardenError
        ? err.code
        : (err.code && FASTIFY_ERRORS[err.code]) ||
          (err.statusCode && err.statusCode < 500 ? 'invalid_request' : 'internal_error')
    if (statusOf(code) >= 500) req.log.error({ err }, 'request failed')
    const message = statusOf(code) >= 500 ? `${code}; see the gateway log` : err.message
    // A tool call refused before the pipeline still leaves a trace in the audit log.
    if (req.url.startsWith('/gateway/execute') && statusOf(code) < 500) {
      await gateway.recordRejection(req.id, code, message)
    }
    return reply.code(statusOf(code)).send(errorBody(code, message, req.id))
  })
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}`, req.id)),
  )

  const send = (reply: FastifyReply, r: Reply) =>
    reply
      .code(r.status)
      .headers(r.headers ?? {})
      .send(r.body)

  /** Routes that show the audit whole or act need an approver token; agent keys never work. */
  const requireApprover = (authorization: string | undefined) => {
    const { approver } = principalOf(gateway.runtime, bearer(authorization))
    if (!approver)
      throw new WardenError(
        'approver_unauthenticated',
        'send an approver token: Authorization: Bearer <token>',
      )
    return approver
  }
  /** With `server.read_access: approver`, reading decisions needs an approver token too. */
  const requireReader = (authorization: string | undefined) => {
    if (server.read_access === 'approver') requireApprover(authorization)
  }

  app.post('/gateway/execute', async (req, reply) => {
    const body = parseExecuteBody(req.body)
    const call = {
      requestId: req.id,
      agentId: body.agent_id,
      tool: body.tool,
      params: body.params,
      sessionId: body.session_id,
      context: body.context ?? {},
      credential: bearer(req.headers.authorization),
      receivedAt: Date.now(),
      idempotencyKey: idempotencyKey(req.headers['idempotency-key']),
      ...(body.delegation !== undefined && { delegation: body.delegation }),
    }
    const result = await gateway.execute(call)
    const code = (result.body.error as { code?: string } | undefined)?.code
    if (code === 'audit_unavailable' || code === 'approval_store_unavailable')
      metrics.storeFailures.inc()
    return send(reply, result)
  })

  app.post('/gateway/message', async (req, reply) =>
    send(
      reply,
      await sendMessage(
        gateway,
        parseMessageBody(req.body),
        bearer(req.headers.authorization),
        req.id,
      ),
    ),
  )

  app.post('/gateway/approve', async (req, reply) => {
    const body = parseApproveBody(req.body)
    return send(
      reply,
      await gateway.approvals.resolve(
        body.approval_id,
        bearer(req.headers.authorization),
        body.decision,
        body.comment ?? null,
      ),
    )
  })

  app.get('/gateway/pending-approvals', async (req) => {
    requireReader(req.headers.authorization)
    const pending = await gateway.approvals.pending()
    metrics.approvalsPending.set(pending.length)
    return { approvals: pending, count: pending.length }
  })

  app.get<{ Params: { id: string }; Querystring: { wait?: string } }>(
    '/gateway/approvals/:id',
    async (req, reply) => {
      const credential = bearer(req.headers.authorization)
      const waitMs = Math.min(Math.max(Number(req.query.wait ?? 0) || 0, 0), 60) * 1000
      const deadline = Date.now() + waitMs
      for (;;) {
        const r = await gateway.approvals.read(req.params.id, credential)
        const approval = r.body.approval as
          { status?: string; executed_at?: string | null } | undefined
        const settled =
          !approval ||
          (approval.status !== 'pending' &&
            (approval.status !== 'approved' || approval.executed_at))
        if (settled || Date.now() >= deadline || req.raw.destroyed) return send(reply, r)
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    },
  )

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    '/gateway/approvals/:id/decide',
    async (req, reply) =>
      send(reply, await gateway.approvals.decideByLink(req.params.id, req.query)),
  )

  app.post('/gateway/callbacks/approvals', async (req, reply) => {
    const header = (name: string) => {
      const v = req.headers[name]
      return typeof v === 'string' ? v : undefined
    }
    const raw = req.rawBody?.toString('utf8') ?? ''
    return send(
      reply,
      await gateway.approvals.decideByCallback(
        raw,
        header('x-warden-timestamp'),
        header('x-warden-signature'),
      ),
    )
  })

  app.post('/detect/injection', async (req) => {
    const body = req.body as { text?: unknown } | null
    if (
      !body ||
      typeof body !== 'object' ||
      typeof body.text !== 'string' ||
      Object.keys(body).length !== 1
    ) {
      throw new WardenError('invalid_request', 'send `{ "text": "…" }`')
    }
    return scanText(body.text, config.injection.hold_at)
  })

  app.get('/stats', async (req) => {
    requireReader(req.headers.authorization)
    return stats.snapshot()
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/events/recent', async (req) => {
    requireReader(req.headers.authorization)
    const events = await audit.query({
      ...auditFilter(req.query),
      limit: clampLimit(req.query.limit, 50),
    })
    return { events, count: events.length }
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/events/timeline', async (req) => {
    requireReader(req.headers.authorization)
    const events = (
      await audit.query({ ...auditFilter(req.query), limit: clampLimit(req.query.limit, 500) })
    ).reverse()
    return timeline(events)
  })

  app.get('/auth/whoami', async (req) => {
    const a = requireApprover(req.headers.authorization)
    return { approver: { id: a.id, name: a.name, roles: a.roles } }
  })

  app.get<{ Querystring: Record<string, string | undefined> }>(
    '/audit/export',
    async (req, reply) => {
      requireApprover(req.headers.authorization)
      const format = req.query.format ?? 'jsonl'
      if (!(EXPORT_FORMATS as readonly string[]).includes(format))
        throw new WardenError('invalid_request', '`format` must be jsonl, csv or cef')
      const { format: _f, ...filters } = req.query
      // The filtered set, oldest first, as stored: a JSONL line carries the exact hashed text.
      const rows = await audit.queryStored({
        ...auditFilter(filters),
        order: 'asc',
        limit: EXPORT_LIMIT,
      })
      const header = exportHeader(format as ExportFormat)
      const lines = rows.map((r) => exportLine(r, format as ExportFormat))
      const body = `${[...(header ? [header] : []), ...lines].join('\n')}\n`
      const type = { jsonl: 'application/x-ndjson', csv: 'text/csv', cef: 'text/plain' }[format]
      return (
        reply
          .type(`${type}; charset=utf-8`)
          .header(
            'content-disposition',
            `attachment; filename="warden-audit.${format === 'cef' ? 'cef.txt' : format}"`,
          )
          .header('x-warden-count', String(rows.length))
          // At most EXPORT_LIMIT events per export: say so when there may be more (narrow the filter).
          .header('x-warden-truncated', String(rows.length >= EXPORT_LIMIT))
          .send(body)
      )
    },
  )

  app.get('/audit/verify', async (req) => {
    requireApprover(req.headers.authorization)
    return verifyChain(audit)
  })

  app.get<{ Params: { id: string } }>('/audit/sessions/:id/replay', async (req) => {
    requireApprover(req.headers.authorization)
    const events = await audit.query({ session_id: req.params.id, order: 'asc', limit: 1000 })
    return replaySession(gateway.runtime, req.params.id, events)
  })

  app.get('/config/agents', async () => ({
    agents: gateway.runtime.config.agents.map(({ key_sha256: _secret, ...agent }) => ({
      ...agent,
      // Whom the agent may message (delegate to) through POST /gateway/message.
      can_message: gateway.runtime.config.messaging.edges
        .filter((e) => e.from === agent.id)
        .map((e) => e.to),
    })),
  }))
  app.get('/config/tools', async () => ({
    tools: gateway.runtime.config.tools.map((t) => ({ ...t, executor: { type: t.executor.type } })),
  }))

  if (deps.runScenario) {
    const runScenario = deps.runScenario
    app.get('/demo/scenarios', async () => ({ scenarios: SCENARIOS }))
    app.post<{ Params: { id: string } }>('/demo/run-scenario/:id', async (req, reply) => {
      const scenario = SCENARIOS.find((s) => s.id === req.params.id)
      if (!scenario)
        return reply
          .code(404)
          .send(errorBody('not_found', `no scenario \`${req.params.id}\``, req.id))
      const result = await runScenario({
        requestId: req.id,
        agentId: scenario.call.agent_id,
        tool: scenario.call.tool,
        params: scenario.call.params,
        sessionId: `demo-${req.id}`,
        context: scenario.call.context ?? {},
        credential: `demo-${scenario.call.agent_id}-key`,
        receivedAt: Date.now(),
      })
      const decision = (result.body.decision as string | undefined) ?? 'error'
      const statusOk =
        decision === 'deny'
          ? result.status >= 400 && result.status < 500
          : result.status === EXPECTED_STATUS[decision]
      return {
        scenario: scenario.id,
        expected: scenario.expected,
        decision,
        passed: decision === scenario.expected && statusOk,
        status: result.status,
        response: result.body,
      }
    })
  }

  app.get('/health', async (_req, reply) => {
    const [storeHealth, stateHealth] = await Promise.all([
      stores.health(),
      gateway.runtime.state.health(),
    ])
    const ok = storeHealth.ok && stateHealth.ok
    const body = {
      status: ok ? 'ok' : 'unavailable',
      policy_version: gateway.runtime.policyVersion,
      demo_credentials: gateway.runtime.config.demo,
      checks: { store: storeHealth, state: stateHealth },
    }
    return reply.code(ok ? 200 : 503).send(body)
  })

  app.get('/metrics', async (_req, reply) => {
    // Gauges that describe the present are read at scrape time.
    const [storeHealth, stateHealth, pending] = await Promise.all([
      stores.health(),
      gateway.runtime.state.health(),
      gateway.approvals.pending().catch(() => null),
    ])
    metrics.dependencyUp.set({ dependency: 'store' }, storeHealth.ok ? 1 : 0)
    metrics.dependencyUp.set({ dependency: 'state' }, stateHealth.ok ? 1 : 0)
    if (pending) metrics.approvalsPending.set(pending.length)
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })

  app.get<{ Querystring: { last_seq?: string } }>(
    '/ws/events',
    {
      websocket: true,
      // Browsers send an Origin: only pages from an allowed origin may open the stream (another
      // site cannot read it through a visitor's browser). Clients without one are not browsers.
      preValidation: async (req, reply) => {
        const origin = req.headers.origin
        if (server.read_access === 'approver') {
          const token = String(req.headers['sec-websocket-protocol'] ?? '')
            .split(',')
            .map((p) => p.trim())
            .find((p) => p.startsWith(TOKEN_PROTOCOL))
            ?.slice(TOKEN_PROTOCOL.length)
          requireApprover(req.headers.authorization ?? (token && `Bearer ${token}`))
        }
        if (origin !== undefined && !allowedOrigins.has(originOf(origin)))
          return reply
            .code(403)
            .send(
              errorBody(
                'origin_not_allowed',
                `origin ${origin} may not open the event stream`,
                req.id,
              ),
            )
      },
    },
    (socket, req) => {
      const raw = Number(req.query.last_seq)
      const lastSeq =
        req.query.last_seq !== undefined && Number.isSafeInteger(raw) && raw >= 0 ? raw : null
      streamEvents(socket, { audit, bus, lastSeq }).catch((err: unknown) => {
        req.log.error({ err }, 'websocket catch-up failed')
        socket.close(1011, 'catch-up failed')
      })
    },
  )

  return app
}

/** `Idempotency-Key`: 1–128 visible ASCII characters, sent once. */
function idempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  if (typeof header !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(header)) {
    throw new WardenError(
      'invalid_request',
      'Idempotency-Key must be 1-128 visible ASCII characters, sent once',
    )
  }
  return header
}

function bearer(header: string | undefined): string | undefined {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i)
  return m?.[1]
}

function clampLimit(raw: string | undefined, fallback: number): number {
  const n = Number(raw ?? fallback)
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : fallback
}

const FILTER_KEYS = [
  'agent_id',
  'tool',
  'decision',
  'type',
  'session_id',
  'risk_level',
  'from',
  'to',
  'text',
] as const

function auditFilter(q: Record<string, unknown>): AuditQuery {
  const filter: AuditQuery = {}
  for (const key of FILTER_KEYS) {
    const value = q[key]
    if (value === undefined) continue
    if (typeof value !== 'string')
      throw new WardenError('invalid_request', `query parameter \`${key}\` may be given once`)
    filter[key] = value
  }
  return filter
}

/** WebSocket subprotocol prefix that carries an approver token from a browser. */
export const TOKEN_PROTOCOL = 'warden.token.'
const EXPORT_LIMIT = 10_000

function originOf(value: string): string {
  try {
    return new URL(value).origin
  } catch {
    return value
  }
}

/** Events grouped per agent and per session, each group in time order. */
function timeline(events: AuditEvent[]) {
  const group = (key: (e: AuditEvent) => string | null) => {
    const map = new Map<string, AuditEvent[]>()
    for (const e of events) {
      const k = key(e)
      if (k === null) continue
      const list = map.get(k)
      if (list) list.push(e)
      else map.set(k, [e])
    }
    return [...map]
  }
  return {
    agents: group((e) => e.agent_id).map(([agent_id, list]) => ({ agent_id, events: list })),
    sessions: group((e) => e.session_id).map(([session_id, list]) => ({
      session_id,
      agent_id: list[0]?.agent_id,
      events: list,
    })),
    count: events.length,
  }
}
