import type { FastifyInstance } from 'fastify'
import { errorBody } from '../domain/errors.js'

/**
 * Which requests a local service (the dashboard, the agent API) takes: the Host must be a
 * loopback name on the port it listens on, or the host of one of `publicOrigins`; that defeats
 * DNS rebinding (a page at evil.example whose name now points here still sends its own Host).
 * A browser's Origin, when sent with a state-changing request or a WebSocket upgrade, must be
 * this service's own.
 */
export function hostGuard(publicOriginList: readonly string[] = []) {
  const publicOrigins = new Set(publicOriginList.map((o) => new URL(o).origin))
  const publicHosts = new Set([...publicOrigins].map((o) => new URL(o).host))
  return (host: string | undefined, origin: string | undefined, port: number | undefined) => {
    // No local port: not a network connection (an in-process `inject`), so no browser either.
    if (port === undefined) return true
    const local = [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]
    if (host === undefined || !(local.includes(host) || publicHosts.has(host))) return false
    if (origin === undefined || origin === '') return true
    try {
      const o = new URL(origin)
      return publicOrigins.has(o.origin) || (o.host === host && local.includes(o.host))
    } catch {
      return false
    }
  }
}

/** Refuse, with 403 `origin_not_allowed`, what `hostGuard` does not admit. */
export function installHostGuard(app: FastifyInstance, publicOrigins: readonly string[] = []) {
  const admitted = hostGuard(publicOrigins)
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
  return admitted
}
