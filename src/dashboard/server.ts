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

  // Another site's page must not drive an approver's browser into approving (CSRF) or read
  // the stream: anything but a read, and every WebSocket, must carry this origin if any.
  app.addHook('onRequest', async (req, reply) => {
    const origin = req.headers.origin
    const acting = req.method !== 'GET' && req.method !== 'HEAD'
    const upgrade = req.headers.upgrade?.toLowerCase() === 'websocket'
    if (origin === undefined || (!acting && !upgrade)) return
    if (sameOrigin(origin, req.headers.host)) return
    return reply
      .code(403)
      .send(errorBody('origin_not_allowed', `requests from ${origin} are not accepted`, req.id))
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
      // The onRequest hook does not see upgrades made by the proxy's own WebSocket server.
      verifyClient: (info: { origin?: string; req: { headers: { host?: string } } }) =>
        info.origin === undefined ||
        info.origin === '' ||
        sameOrigin(info.origin, info.req.headers.host),
    },
  })
  return app
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host
  } catch {
    return false
  }
}
