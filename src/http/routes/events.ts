import type { FastifyPluginAsync } from 'fastify'
import type { AuditEvent } from '../../domain/audit-event.js'
import { errorBody } from '../../domain/errors.js'
import type { EventBus } from '../../events/bus.js'
import type { Stats } from '../../events/stats.js'
import { readView, withholdResult } from '../../events/view.js'
import { streamEvents } from '../../events/websocket.js'
import type { Runtime } from '../../pipeline/runtime.js'
import type { AuditLog } from '../../store/types.js'
import { readerCheck, requireReader, subprotocolToken } from '../guards.js'
import { parseQuery, recentQuery, streamQuery, timelineQuery } from '../schemas.js'

export interface EventRoutesOptions {
  runtime: Runtime
  audit: AuditLog
  bus: EventBus
  stats: Stats
}

/** Reading decisions: `/stats`, `/events/recent`, `/events/timeline` and the `/ws/events` stream. */
export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (
  app,
  { runtime, audit, bus, stats },
) => {
  const { server } = runtime.config
  const allowedOrigins = new Set(server.allowed_origins.map((o) => new URL(o).origin))

  app.get('/stats', async (req) => {
    requireReader(runtime, req.headers.authorization)
    return stats.snapshot()
  })

  app.get('/events/recent', async (req) => {
    const entitled = requireReader(runtime, req.headers.authorization)
    const { limit, before_seq, ...filters } = parseQuery(recentQuery, req.query)
    const page = await readView(
      audit,
      { ...filters, before_seq: seqOf(before_seq), limit: clampLimit(limit, 50) },
      entitled ? undefined : withholdResult,
    )
    return { events: page.events, count: page.events.length, next_before_seq: page.next_before_seq }
  })

  app.get('/events/timeline', async (req) => {
    const entitled = requireReader(runtime, req.headers.authorization)
    const { limit, before_seq, ...filters } = parseQuery(timelineQuery, req.query)
    const page = await readView(
      audit,
      { ...filters, before_seq: seqOf(before_seq), limit: clampLimit(limit, 500) },
      entitled ? undefined : withholdResult,
    )
    return { ...timeline(page.events.reverse()), next_before_seq: page.next_before_seq }
  })

  app.route({
    method: 'GET',
    url: '/ws/events',
    schema: { hide: true },
    // A plain GET (no upgrade) gets the catalog's JSON 404, not an empty one.
    handler: async (req, reply) =>
      reply
        .code(404)
        .send(errorBody('not_found', 'GET /ws/events is a WebSocket: send an upgrade', req.id)),
    // Browsers send an Origin: only pages from an allowed origin may open the stream (another
    // site cannot read it through a visitor's browser). Clients without one are not browsers.
    preValidation: async (req, reply) => {
      const origin = req.headers.origin
      const protocol = subprotocolToken(req.headers['sec-websocket-protocol'])
      requireReader(runtime, req.headers.authorization ?? protocol)
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
    wsHandler: (socket, req) => {
      const raw = Number(parseQuery(streamQuery, req.query).last_seq)
      const lastSeq = Number.isSafeInteger(raw) && raw >= 0 ? raw : null
      const protocol = subprotocolToken(req.headers['sec-websocket-protocol'])
      const authorization = req.headers.authorization ?? protocol
      // preValidation admitted the reader; checked again for every event against the
      // configuration in force, so a reader whose token a reload removed stops receiving at once.
      const reader = readerCheck(runtime, authorization)
      const shown = (e: AuditEvent) => {
        const access = reader()
        return access === null ? null : access === 'full' ? e : withholdResult(e)
      }
      streamEvents(socket, { audit, bus, lastSeq, shown }).catch((err: unknown) => {
        req.log.error({ err }, 'websocket catch-up failed')
        socket.close(1011, 'catch-up failed')
      })
    },
  })
}

/** A `before_seq` cursor: a whole number from 1, else none. */
function seqOf(raw: string | undefined): number | undefined {
  const n = Number(raw)
  return raw !== undefined && Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/** `limit` as asked, when it is a whole number from 1 (at most 1000); else the default. */
export function clampLimit(raw: string | undefined, fallback: number): number {
  const n = Number(raw ?? fallback)
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1000) : fallback
}

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
