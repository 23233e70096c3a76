import websocket from '@fastify/websocket'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
} from 'fastify'
import { errorBody, statusOf } from '../domain/errors.js'
import { timeOrderedId } from '../domain/ids.js'
import type { ToolCall } from '../domain/types.js'
import type { EventBus } from '../events/bus.js'
import { Stats } from '../events/stats.js'
import { ConnectionCaps } from '../events/websocket.js'
import type { CallOutcome } from '../domain/outcome.js'
import type { Gateway } from '../gateway/service.js'
import type { Messenger } from '../messaging/service.js'
import { mcpRoutes } from '../mcp/routes.js'
import type { Stores } from '../store/types.js'
import { catalogCodeOf, replyFrameworkError, replyNotFound } from './errors.js'
import { TOKEN_PROTOCOL } from './guards.js'
import { installHostGuard } from './host-guard.js'
import { installIpLimits, replyLimited, timeoutOptions, trustedClient } from './limits.js'
import { Metrics } from './metrics.js'
import { registerOpenApi } from './openapi.js'
import { adminRoutes, type AdminRoutesOptions } from './routes/admin.js'
import { approvalRoutes } from './routes/approvals.js'
import { auditRoutes } from './routes/audit.js'
import { authRoutes } from './routes/auth.js'
import { configRoutes } from './routes/config.js'
import { demoRoutes } from './routes/demo.js'
import { detectRoutes } from './routes/detect.js'
import { eventRoutes } from './routes/events.js'
import { executeRoutes } from './routes/execute.js'
import { healthRoutes } from './routes/health.js'
import { mcpUpstreamRoutes, type UpstreamAdmin } from './routes/mcp-upstreams.js'
import { parseStrictJson } from './safe-json.js'

export { TOKEN_PROTOCOL } from './guards.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body as received (JSON bodies only). */
    rawBody: Buffer | null
  }
}

export interface AppDeps {
  gateway: Gateway
  stores: Pick<Stores, 'audit' | 'health'>
  bus: EventBus
  logger: FastifyBaseLogger
  metrics?: Metrics
  /** Runs a demo scenario in a world of its own; the demo routes exist only when it is given. */
  runScenario?: (call: ToolCall) => Promise<CallOutcome>
  /** Agent-to-agent messages (the engine's messenger). */
  messenger: Messenger
  /** The MCP upstreams' status and pins (empty without `mcp_upstreams`). */
  mcpAdmin?: UpstreamAdmin
  /** Reloads the configuration files (`POST /admin/reload`); see `Warden.reload`. */
  reload: AdminRoutesOptions['reload']
}

/**
 * Build the gateway HTTP app from injected parts; nothing here reads the environment. This file
 * is the app's frame (parsing, errors, docs); the routes are plugins in `./routes/`, one file
 * per resource, each given only the parts it uses.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { gateway, stores, bus } = deps
  const { audit } = stores
  const { runtime } = gateway
  const metrics = deps.metrics ?? new Metrics()
  // The agents and tools counted by name are the configured ones, after any reload.
  const known = new WeakMap<object, { agents: Set<string>; tools: Set<string> }>()
  const knownNow = () => {
    const { config } = runtime
    let sets = known.get(config)
    if (!sets) {
      sets = {
        agents: new Set(config.agents.map((a) => a.id)),
        tools: new Set(config.tools.map((t) => t.name)),
      }
      known.set(config, sets)
    }
    return sets
  }
  const stats = new Stats(audit, bus, {
    get agents() {
      return knownNow().agents
    },
    get tools() {
      return knownNow().tools
    },
  })
  const app = Fastify({
    loggerInstance: deps.logger,
    bodyLimit: runtime.config.server.body_limit_bytes,
    ...timeoutOptions(runtime.config.server.limits),
    genReqId: () => timeOrderedId(),
    // `req.ip` (what the per-address limits count) believes X-Forwarded-For only from these.
    trustProxy:
      runtime.config.server.trust_proxy.length > 0 ? [...runtime.config.server.trust_proxy] : false,
    requestIdHeader: false,
    // Decisions are logged and audited by the gateway; per-request access logs would double them.
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: replyFrameworkError,
    // Refused by the hook below instead, with a catalog code (Fastify's own 503 has none).
    return503OnClosing: false,
  })
  installShutdownRefusal(app)
  installLimits(app, gateway)
  await app.register(websocket, {
    options: {
      maxPayload: 4096,
      // A browser sends its token as a subprotocol; the server must pick one or the browser drops
      // the connection.
      handleProtocols: (protocols) =>
        [...protocols].find((p) => p.startsWith(TOKEN_PROTOCOL)) ?? false,
    },
  })
  // Before the routes: a route without documentation then fails construction.
  await registerOpenApi(app, runtime.config.version)
  installJsonParser(app, runtime.config.server)
  installErrorHandlers(app, gateway, metrics)

  // A new route: a file in ./routes/ and one line here (and its entry in ROUTE_DOCS).
  await app.register(executeRoutes, { gateway, messenger: deps.messenger, metrics })
  await app.register(approvalRoutes, { gateway, metrics })
  await app.register(detectRoutes, { runtime, limits: runtime.config.server.limits })
  await app.register(eventRoutes, { runtime, audit, bus, stats })
  await app.register(authRoutes, { runtime })
  await app.register(auditRoutes, { runtime, audit })
  await app.register(configRoutes, { runtime })
  await app.register(adminRoutes, { runtime, reload: deps.reload })
  if (deps.mcpAdmin) await app.register(mcpUpstreamRoutes, { runtime, admin: deps.mcpAdmin })
  if (deps.runScenario)
    await app.register(demoRoutes, {
      runScenario: deps.runScenario,
      allowedOrigins: runtime.config.server.allowed_origins,
    })
  await app.register(healthRoutes, { gateway, stores, metrics })
  // The MCP door (src/mcp/): the same engine, behind this app's Host guard, limits and parser.
  await app.register(mcpRoutes, {
    gateway,
    onError: (err) => deps.logger.warn({ err }, 'mcp: request failed'),
  })
  return app
}

/**
 * Shutdown (docs/operations.md): once the app is closing, a request that still arrives (on a
 * kept-alive connection) is refused with `shutting_down` and its connection closed, before
 * anything else looks at it: nothing new is decided, and the client knows it may retry the call
 * elsewhere. Requests already running are not affected; they finish.
 */
function installShutdownRefusal(app: FastifyInstance): void {
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onRequest', async (req, reply) => {
    if (!closing) return
    reply.header('connection', 'close')
    return reply
      .code(statusOf('shutting_down'))
      .send(errorBody('shutting_down', 'the gateway is stopping; nothing was decided', req.id))
  })
}

/**
 * What an outsider can reach before authentication, bounded (docs/limits.md): the Host must name
 * this gateway, each client address has a request bucket and an auth-failure bucket (failures
 * are audited), the event stream has connection caps, and slow requests time out.
 */
function installLimits(app: FastifyInstance, gateway: Gateway): void {
  const { server, approvals } = gateway.runtime.config
  const { limits } = server
  installIpLimits(app, limits, async (req, code) => {
    // A refused tool call is already audited as a decision.
    if (req.url.startsWith('/gateway/execute')) return
    const path = req.url.split('?')[0] ?? ''
    await gateway.recordRejection(
      req.id,
      code,
      `authentication failed: ${req.method} ${path.slice(0, 200)} from ${req.ip}`,
    )
  })
  installHostGuard(app, {
    allowedHosts: [
      server.host,
      ...server.allowed_hosts,
      ...(approvals.notify ? [new URL(approvals.notify.public_url).hostname] : []),
    ],
    // Browsers' origins are checked where they act: the stream (`allowed_origins`), the dashboard.
    checkOrigin: false,
  })
  const trustedIps = new Set(limits.trusted_ips)
  const caps = new ConnectionCaps(limits.websocket)
  app.addHook('onRequest', async (req, reply) => {
    if (req.headers.upgrade?.toLowerCase() !== 'websocket') return
    const release = caps.admit(req.ip, trustedClient(trustedIps, req))
    if (!release) {
      // A refused upgrade ends its connection, or a client could keep holding the socket.
      // (An in-process `inject()` request has a stand-in socket without `end`.)
      const socket = req.raw.socket as { end?: () => void } | undefined
      setImmediate(() => {
        if (typeof socket?.end === 'function') socket.end()
      })
      return replyLimited(req, reply, 'too_many_connections', 5, 'the event stream is full')
    }
    // The upgraded connection lives as long as its socket; a refused upgrade closes it too.
    req.raw.socket.once('close', release)
  })
}

/**
 * Our own JSON parser for every body: strict UTF-8, duplicate and prototype keys, depth and item
 * limits (src/http/safe-json.ts). Signed callbacks are verified over the exact bytes received, so
 * those are kept with the request.
 */
function installJsonParser(
  app: FastifyInstance,
  limits: { max_depth: number; max_items: number },
): void {
  app.removeAllContentTypeParsers()
  app.decorateRequest('rawBody', null)
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    req.rawBody = body as Buffer
    try {
      done(
        null,
        parseStrictJson(body as Buffer, { maxDepth: limits.max_depth, maxItems: limits.max_items }),
      )
    } catch (err) {
      done(err as Error, undefined)
    }
  })
}

/** Every error as `{ error: { code, message }, request_id }`, with a catalog code. */
function installErrorHandlers(app: FastifyInstance, gateway: Gateway, metrics: Metrics): void {
  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    const code = catalogCodeOf(err)
    if (statusOf(code) >= 500) req.log.error({ err }, 'request failed')
    if (statusOf(code) === 503) metrics.unavailable.inc({ code })
    const message = statusOf(code) >= 500 ? `${code}; see the gateway log` : err.message
    // A tool call refused before the pipeline still leaves a trace in the audit log.
    if (req.url.startsWith('/gateway/execute') && statusOf(code) < 500) {
      await gateway.recordRejection(req.id, code, message)
    }
    return reply.code(statusOf(code)).send(errorBody(code, message, req.id))
  })
  app.setNotFoundHandler(replyNotFound)
}
