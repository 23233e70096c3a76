import type { AuditEvent } from '../domain/audit-event.js'
import type { AuditLog, AuditQuery } from '../store/types.js'

/** An event longer than this (as stored) is shown without its parameters and result. */
export const MAX_VIEW_EVENT_BYTES = 16 * 1024
/** A page of a view holds at most this many bytes of events; the rest is on the next page. */
export const VIEW_PAGE_BYTES = 2 * 1024 * 1024

export interface ViewPage {
  events: AuditEvent[]
  /** Pass as `before_seq` (newest-first views) to read on; null when nothing is left. */
  next_before_seq: number | null
  /** Pass as `after_seq` (oldest-first reads, the stream's catch-up) to read on; null when done. */
  next_after_seq: number | null
}

/**
 * The one way every read view (`/events/recent`, `/events/timeline`, the stream's catch-up)
 * reads the log: each event at most `MAX_VIEW_EVENT_BYTES` (trimmed by the store, so an
 * oversized row is never parsed whole), the page at most `VIEW_PAGE_BYTES`, and a cursor to
 * continue where the page stopped. Memory per request is bounded whatever the log holds.
 */
export async function readView(
  audit: Pick<AuditLog, 'queryStored'>,
  q: AuditQuery & { limit: number },
  withheld?: (e: AuditEvent) => AuditEvent,
): Promise<ViewPage> {
  const rows = await audit.queryStored({ ...q, max_event_bytes: MAX_VIEW_EVENT_BYTES })
  const events: AuditEvent[] = []
  let bytes = 0
  let full = rows.length >= q.limit
  for (const row of rows) {
    bytes += row.body.length
    if (bytes > VIEW_PAGE_BYTES && events.length > 0) {
      full = true
      break
    }
    const e = { ...(JSON.parse(row.body) as Omit<AuditEvent, 'hash'>), hash: row.hash }
    events.push(withheld ? withheld(e) : e)
  }
  const last = events[events.length - 1]
  const more = full && last !== undefined
  return {
    events,
    next_before_seq: more && q.order !== 'asc' ? last.seq : null,
    next_after_seq: more && q.order === 'asc' ? last.seq : null,
  }
}

/**
 * A tool's result as a reader may see it: in full for approvers, otherwise replaced by
 * `result_withheld: true` (results hold customer data the reader may not be entitled to).
 */
export function withholdResult(e: AuditEvent): AuditEvent {
  if (e.result === undefined) return e
  const { result: _result, ...rest } = e
  return { ...rest, result_withheld: true } as AuditEvent
}
