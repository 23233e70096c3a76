import type { WebSocket } from 'ws'
import type { AuditEvent } from '../domain/audit-event.js'
import type { AuditLog } from '../store/types.js'
import type { EventBus } from './bus.js'
import { readView } from './view.js'

const PAGE = 500
/**
 * A client this far behind is cut off (it can reconnect with `last_seq`): what one connection
 * may hold in memory however slowly it reads (docs/limits.md).
 */
export const MAX_BUFFERED = 1024 * 1024
/** During catch-up, wait for the client to read before sending more. */
const DRAIN_BELOW = 256 * 1024
/** A catch-up client that reads nothing for this long is cut off. */
const STALL_MS = 30_000

/**
 * How many event streams are open, in total and per client address: a place is reserved at the
 * upgrade and given back when the connection closes. Trusted addresses (the dashboard's proxy)
 * count only towards the total.
 */
export class ConnectionCaps {
  private total = 0
  private readonly byIp = new Map<string, number>()

  constructor(private readonly limits: { max_connections: number; max_per_ip: number }) {}

  /**
   * A release function (call it once, when the connection ends), or null when full. `trusted`:
   * the client is exempt from the per-address cap (the caller knows its addresses).
   */
  admit(ip: string, trusted: boolean): (() => void) | null {
    const mine = this.byIp.get(ip) ?? 0
    if (this.total >= this.limits.max_connections) return null
    if (!trusted && mine >= this.limits.max_per_ip) return null
    this.total += 1
    this.byIp.set(ip, mine + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.total -= 1
      const left = (this.byIp.get(ip) ?? 1) - 1
      if (left > 0) this.byIp.set(ip, left)
      else this.byIp.delete(ip)
    }
  }

  get open(): number {
    return this.total
  }
}

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
    /**
     * How the reader sees each event (e.g. results withheld), asked again for every event so
     * that a reload that takes the reader's token away ends the stream: `null` closes it (1008).
     * As stored when absent.
     */
    shown?: (e: AuditEvent) => AuditEvent | null
  },
): Promise<void> {
  // Sequence numbers start at 1, so 0 means "nothing sent yet".
  let sentUpTo = opts.lastSeq ?? 0
  const open = () => socket.readyState === socket.OPEN
  const deliver = (e: AuditEvent) => {
    if (e.seq <= sentUpTo) return
    if (socket.bufferedAmount > MAX_BUFFERED) return socket.close(1013, 'client too slow')
    const view = opts.shown ? opts.shown(e) : e
    if (view === null) return socket.close(1008, 'credentials no longer valid')
    sentUpTo = e.seq
    // The stream carries the same object the log stores.
    socket.send(JSON.stringify(view))
  }
  const readFromStore = async () => {
    for (;;) {
      // Bounded like every view: oversized events trimmed, the page within a byte budget.
      const page = await readView(opts.audit, { after_seq: sentUpTo, order: 'asc', limit: PAGE })
      for (const e of page.events) {
        // Wait for the client to read before each event past the drain mark; give up on one
        // that reads nothing at all.
        const since = Date.now()
        while (open() && socket.bufferedAmount > DRAIN_BELOW) {
          if (Date.now() - since > STALL_MS) return socket.close(1013, 'client too slow')
          await new Promise((r) => setTimeout(r, 10))
        }
        if (!open()) return
        deliver(e)
      }
      if (page.next_after_seq === null || !open()) return
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
