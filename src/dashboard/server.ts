import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import proxy from '@fastify/http-proxy'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { errorBody } from '../domain/errors.js'

/** The built dashboard (`vite build dashboard`, run by `npm ci` through `prepare`). */
export const DASHBOARD_DIST = fileURLToPath(new URL('../../dashboard/dist/', import.meta.url))

export interface DashboardOptions {
  /** Where the gateway answers, e.g. http://localhost:8004 (any host). */
  gatewayUrl: string
  logger: FastifyBaseLogger
  distDir?: string
  /**
   * Origins people reach the dashboard at besides localhost (e.g. https://warden.example.com).
   * Requests naming any other host are refused, which also defeats DNS rebinding.
   */
  publicOrigins?: string[]
}

/**
 * The dashboard server (port 8006): the static web app, and `/api/*` proxied to the gateway,
 * WebSocket included, so the browser talks to one origin whatever host the gateway is on. The app
 * uses only the gateway's public API; approver tokens pass through untouched and are checked by
 * the gateway. State-changing requests and the event stream must come from this origin.
 */
export async function buildDashboard(opts: DashboardOptions): Promise<FastifyInstance> {
  const root = opts.distDir ?? DASHBOARD_DIST
  if (!existsSync(`${root}/index.html`))
    throw new Error(`the dashboard is not built (${root}); run \`npm run build\``)
  const upstream = new URL(opts.gatewayUrl)
  const app = Fastify({ loggerInstance: opts.logger, disableRequestLogging: true })

  const publicOrigins = new Set((opts.publicOrigins ?? []).map((o) => new URL(o).origin))
  const publicHosts = new Set([...publicOrigins].map((o) => new URL(o).host))
  /** Whether a request (by its Host, and Origin if any) comes through a name this server owns. */
  const admitted = (
    host: string | undefined,
    origin: string | undefined,
    port: number | undefined,
  ) => {
    const local =
      port === undefined ? [] : [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]
    if (host === undefined || !(local.includes(host) || publicHosts.has(host))) return false
    if (origin === undefined || origin === '') return true
    try {
      const o = new URL(origin)
      return publicOrigins.has(o.origin) || (o.host === host && local.includes(o.host))
    } catch {
      return false
    }
  }

  // Another site's page must not drive an approver's browser into approving (CSRF), read the
  // stream, or reach the gateway through a rebound DNS name: every request must name this server
  // (Host), and a browser's Origin must be this server's.
  app.addHook('onRequest', async (req, reply) => {
    const acting = req.method !== 'GET' && req.method !== 'HEAD'
    const upgrade = req.headers.upgrade?.toLowerCase() === 'websocket'
    const origin = acting || upgrade ? req.headers.origin : undefined
    if (admitted(req.headers.host, origin, req.socket.localPort)) return
    return reply
      .code(403)
      .send(
        errorBody(
          'origin_not_allowed',
          `requests for ${req.headers.host ?? 'no host'}${origin ? ` from ${origin}` : ''} are not accepted`,
          req.id,
        ),
      )
  })

  await app.register(fastifyStatic, { root, index: ['index.html'] })
  app.get('/enterprise_dashboard.html', (_req, reply) => reply.sendFile('index.html'))
  app.get('/dashboard/config.json', async () => ({ gateway_url: upstream.origin }))

  await app.register(proxy, {
    upstream: upstream.origin,
    prefix: '/api',
    rewritePrefix: '',
    websocket: true,
    wsServerOptions: {
      // The same check again where the proxy's WebSocket server accepts the upgrade.
      verifyClient: (info: {
        origin?: string
        req: { headers: { host?: string }; socket: { localPort?: number } }
      }) => admitted(info.req.headers.host, info.origin, info.req.socket.localPort),
    },
  })
  return app
}
