import type { FastifyPluginAsync } from 'fastify'
import { exportHeader, exportLine } from '../../audit/export.js'
import { verifyChain } from '../../audit/verify.js'
import type { Runtime } from '../../pipeline/runtime.js'
import { replaySession } from '../../replay/session.js'
import type { AuditLog } from '../../store/types.js'
import { requireApprover } from '../guards.js'
import { exportQuery, parseQuery } from '../schemas.js'

export interface AuditRoutesOptions {
  runtime: Runtime
  audit: AuditLog
}

/**
 * At most this many events per export, the newest matches; `x-warden-truncated` says when there
 * may be more and `x-warden-next-before-seq` is the `before_seq` that exports the older ones.
 */
const EXPORT_LIMIT = 10_000
const CONTENT_TYPES = { jsonl: 'application/x-ndjson', csv: 'text/csv', cef: 'text/plain' }

/** The whole audit, for approvers: export, chain verification, session replay. */
export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (
  app,
  { runtime, audit },
) => {
  app.get('/audit/export', async (req, reply) => {
    requireApprover(runtime, req.headers.authorization)
    const {
      format = 'jsonl',
      agent_id,
      before_seq,
      ...filters
    } = parseQuery(exportQuery, req.query)
    const cursor = Number(before_seq)
    // The newest matches, as stored (a JSONL line carries the exact hashed text), then written
    // oldest first. `agent_id` selects what that agent's credential did: the authenticated
    // principal, never a claimed id that anyone can write.
    const rows = await audit.queryStored({
      ...filters,
      ...(agent_id !== undefined && { principal: agent_id }),
      ...(before_seq !== undefined &&
        Number.isSafeInteger(cursor) &&
        cursor > 0 && { before_seq: cursor }),
      order: 'desc',
      limit: EXPORT_LIMIT,
    })
    rows.reverse()
    const truncated = rows.length >= EXPORT_LIMIT
    const oldest = rows[0]
    const header = exportHeader(format)
    const lines = rows.map((r) => exportLine(r, format))
    const filename = `warden-audit.${format === 'cef' ? 'cef.txt' : format}`
    if (truncated && oldest)
      reply.header(
        'x-warden-next-before-seq',
        String((JSON.parse(oldest.body) as { seq: number }).seq),
      )
    return reply
      .type(`${CONTENT_TYPES[format]}; charset=utf-8`)
      .header('content-disposition', `attachment; filename="${filename}"`)
      .header('x-warden-count', String(rows.length))
      .header('x-warden-truncated', String(truncated))
      .send(`${[...(header ? [header] : []), ...lines].join('\n')}\n`)
  })

  app.get('/audit/verify', async (req) => {
    requireApprover(runtime, req.headers.authorization)
    return verifyChain(audit)
  })

  app.get<{ Params: { id: string } }>('/audit/sessions/:id/replay', async (req) => {
    requireApprover(runtime, req.headers.authorization)
    const events = await audit.query({ session_id: req.params.id, order: 'asc', limit: 1000 })
    return replaySession(runtime, req.params.id, events)
  })
}
