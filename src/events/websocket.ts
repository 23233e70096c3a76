import type { WebSocket } from 'ws'
import type { AuditEvent } from '../domain/audit-event.js'
import type { AuditLog } from '../store/types.js'
import type { EventBus } from './bus.js'
import { readView } from './view.js'

const PAGE = 500
/** A client this far behind on live events is cut off (it can reconnect with `last_seq`). */
const MAX_BUFFERED = 4 * 1024 * 1024
/** During catch-up, wait for the client to read before sending the next page. */
const DRAIN_BELOW = 1024 * 1024

/**
 * Stream committed events to one client: first everything after `lastSeq` from the store, in
 * pages that wait for the client to keep up, then live events from the bus. Each event is sent
 * once and in order (`seq` only grows), with no gap between the stored and the live part.
 */
export async function streamEvents(
  socket: WebSocket,
  opts: {
    audit: Pick<AuditLog, 'queryStored'>
    bus: EventBus
    lastSeq: number | null
    /** How a reader sees each event (e.g. results withheld); as stored when absent. */
    shown?: (e: AuditEvent) => AuditEvent
  },
): Promise<void> {
  // Sequence numbers start at 1, so 0 means "nothing sent yet".
  let sentUpTo = opts.lastSeq ?? 0
  const open = () => socket.readyState === socket.OPEN
  const deliver = (e: AuditEvent) => {
    if (e.seq <= sentUpTo) return
    if (socket.bufferedAmount > MAX_BUFFERED) return socket.close(1013, 'client too slow')
    sentUpTo = e.seq
    // The stream carries the same object the log stores.
    socket.send(JSON.stringify(opts.shown ? opts.shown(e) : e))
  }
  const readFromStore = async () => {
    for (;;) {
      // Bounded like every view: oversized events trimmed, the page within a byte budget.
      const page = await readView(opts.audit, { after_seq: sentUpTo, order: 'asc', limit: PAGE })
      for (const e of page.events) deliver(e)
      if (page.next_after_seq === null || !open()) return
      while (open() && socket.bufferedAmount > DRAIN_BELOW)
        await new Promise((r) => setTimeout(r, 10))
    }
  }
  if (opts.lastSeq !== null) await readFromStore()
  // Subscribe, then read once more: anything committed before the subscription is in the store,
  // anything after it arrives on the bus; `deliver` drops what was already sent.
  let backlog: AuditEvent[] | null = []
  const unsubscribe = opts.bus.subscribe((e) => (backlog ? backlog.push(e) : deliver(e)))
  socket.on('close', unsubscribe)
  if (opts.lastSeq !== null) await readFromStore()
  for (const e of backlog) deliver(e)
  backlog = null
}
