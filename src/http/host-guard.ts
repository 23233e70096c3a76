import type { FastifyInstance } from 'fastify'
import { errorBody } from '../domain/errors.js'

/** Names every server answers to: the loopback ones. */
const LOCAL_NAMES = ['localhost', '127.0.0.1', '[::1]']
/** Listen addresses that mean "every interface": not a name anyone reaches the server by. */
const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', ''])

export interface HostGuardOptions {
  /** Origins people reach the service at besides localhost (e.g. https://warden.example.com). */
  publicOrigins?: readonly string[]
  /** More host names (no port) the service may be called by: its listen host, a LAN name. */
  allowedHosts?: readonly (string | undefined)[]
  /** Check a browser's Origin on state-changing requests and upgrades (default: yes). */
  checkOrigin?: boolean
}

/** What the guard says of one request: admitted, or which header it refused. */
export type HostVerdict = 'ok' | 'host' | 'origin'

/** `example.com:8004` → `example.com`; `[::1]:80` → `[::1]`; nonsense → null. */
function hostnameOf(host: string): string | null {
  // Only a name and a port: nothing the URL parser would read as user, path or query.
  if (!/^[A-Za-z0-9.\-[\]:]{1,300}$/.test(host)) return null
  try {
    return new URL(`http://${host}`).hostname
  } catch {
    return null
  }
}

/** `::1` → `[::1]` (as a Host header and the URL parser write it). */
function asHostname(name: string): string {
  const n = name.trim().toLowerCase()
  return n.includes(':') && !n.startsWith('[') ? `[${n}]` : n
}

/**
 * Which requests a service takes: the Host must name it, by a loopback name, one of
 * `allowedHosts` or the host of one of `publicOrigins` (any port: a container or proxy may map
 * ports); that defeats DNS rebinding (a page at evil.example whose name now points here still
 * sends its own Host). A browser's Origin, when sent with a state-changing request or a
 * WebSocket upgrade, must be this service's own.
 */
export function hostGuard(opts: HostGuardOptions = {}) {
  const publicOrigins = new Set((opts.publicOrigins ?? []).map((o) => new URL(o).origin))
  const names = new Set([
    ...LOCAL_NAMES,
    ...[...publicOrigins].map((o) => new URL(o).hostname),
    ...(opts.allowedHosts ?? [])
      .filter((h): h is string => h !== undefined)
      .map(asHostname)
      .filter((h) => !WILDCARDS.has(h)),
  ])
  const checkOrigin = opts.checkOrigin ?? true
  return (host: string | undefined, origin: string | undefined, port: number | undefined) => {
    // No local port: not a network connection (an in-process `inject`), so no browser either.
    if (port === undefined) return 'ok'
    const name = host === undefined ? null : hostnameOf(host)
    if (name === null || !names.has(name)) return 'host'
    if (!checkOrigin || origin === undefined || origin === '') return 'ok'
    try {
      const o = new URL(origin)
      const own = o.host === host?.toLowerCase() && names.has(o.hostname)
      return publicOrigins.has(o.origin) || own ? 'ok' : 'origin'
    } catch {
      return 'origin'
    }
  }
}

/**
 * Refuse what `hostGuard` does not admit: 403 `host_not_allowed` for a Host that does not name
 * this service, 403 `origin_not_allowed` for another site's page.
 */
export function installHostGuard(app: FastifyInstance, opts: HostGuardOptions = {}) {
  const admitted = hostGuard(opts)
  app.addHook('onRequest', async (req, reply) => {
    const acting = req.method !== 'GET' && req.method !== 'HEAD'
    const upgrade = req.headers.upgrade?.toLowerCase() === 'websocket'
    const origin = acting || upgrade ? req.headers.origin : undefined
    const verdict = admitted(req.headers.host, origin, req.socket.localPort)
    if (verdict === 'ok') return
    const host = req.headers.host ?? 'no host'
    return reply
      .code(403)
      .send(
        verdict === 'host'
          ? errorBody('host_not_allowed', `requests for ${host} are not accepted`, req.id)
          : errorBody(
              'origin_not_allowed',
              `requests for ${host} from ${origin ?? ''} are not accepted`,
              req.id,
            ),
      )
  })
  return admitted
}
