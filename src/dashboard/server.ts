import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import proxy from '@fastify/http-proxy'
import fastifyStatic from '@fastify/static'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { installHostGuard } from '../http/host-guard.js'
import {
  DEFAULT_LIMITS,
  installIpLimits,
  timeoutOptions,
  type ServerLimits,
} from '../http/limits.js'

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
  /** More host names it may be called by (its listen host, a LAN name); see host-guard.ts. */
  allowedHosts?: (string | undefined)[]
  /** Per-address buckets and timeouts (default: `DEFAULT_LIMITS`, docs/limits.md). */
  limits?: ServerLimits
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
  const limits = opts.limits ?? DEFAULT_LIMITS
  const app = Fastify({
    loggerInstance: opts.logger,
    // Not a line per proxied request (the page and its API calls would drown the log).
    logController: new LogController({ disableRequestLogging: true }),
    ...timeoutOptions(limits),
  })

  // Another site's page must not drive an approver's browser into approving (CSRF), read the
  // stream, or reach the gateway through a rebound DNS name.
  installIpLimits(app, limits)
  const admitted = installHostGuard(app, {
    publicOrigins: opts.publicOrigins ?? [],
    allowedHosts: opts.allowedHosts ?? [],
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
      }) => admitted(info.req.headers.host, info.origin, info.req.socket.localPort) === 'ok',
    },
  })
  return app
}
