import type { AuditEvent } from '../domain/audit-event.js'
import type { AuditLog } from '../store/types.js'
import { memoryBus, type EventBus, type Listener } from './bus.js'

export interface FollowOptions {
  /** The shared log every instance appends to. */
  log: Pick<AuditLog, 'query'>
  /**
   * Notices that some writer (any instance) committed events, e.g. PostgreSQL `LISTEN`; returns
   * how to stop. Without it (or when a notice is lost) the log is read every `pollMs`.
   */
  wake?: (onCommit: () => void) => Promise<() => Promise<void>>
  /** How often the log is read when no notice came (ms; default 1,000). */
  pollMs?: number
  /** Events read per page (default 500). */
  pageSize?: number
  onError(err: unknown): void
}

/** An event bus that also has to be stopped. */
export interface FollowedBus extends EventBus {
  close(): Promise<void>
}

/**
 * The event bus of an instance that shares its audit log with others: every committed event, this
 * instance's and the others', reaches the local listeners (WebSocket clients, approval waiters)
 * once and in `seq` order, because the bus delivers only what it reads from the log, after the
 * last `seq` it delivered. A local append or a notice from another instance only says when to
 * read. Live listeners start at the log's head: history is for catch-up by `last_seq`.
 *
 * INVARIANT: the log gives `seq` in commit order with no gaps (one serialised chain, decision
 * 0017), so reading "after the last delivered seq" never skips an event that commits later.
 */
export async function followedBus(opts: FollowOptions): Promise<FollowedBus> {
  const local = memoryBus(opts.onError)
  const pageSize = opts.pageSize ?? 500
  const [newest] = await opts.log.query({ order: 'desc', limit: 1 })
  let delivered = newest?.seq ?? 0
  let running: Promise<void> | undefined
  let again = false
  let closed = false

  const drain = async () => {
    for (;;) {
      const page: AuditEvent[] = await opts.log.query({
        after_seq: delivered,
        order: 'asc',
        limit: pageSize,
      })
      if (page.length > 0) {
        delivered = page[page.length - 1]!.seq
        local.publish(page)
      }
      if (page.length < pageSize || closed) return
    }
  }
  /** Read the log up to its head; a call while a read runs asks for one more pass after it. */
  const catchUp = (): Promise<void> => {
    if (closed) return Promise.resolve()
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      try {
        do {
          again = false
          await drain()
        } while (again && !closed)
      } catch (err) {
        // The log is unreachable: the next notice or poll tries again from the same place.
        opts.onError(err)
      } finally {
        running = undefined
      }
    })()
    return running
  }

  const stopWake = opts.wake ? await opts.wake(() => void catchUp()) : undefined
  const timer = setInterval(() => void catchUp(), opts.pollMs ?? 1000)
  timer.unref()
  return {
    // This instance's own events are in the log already: read them from there, in order.
    publish: () => void catchUp(),
    subscribe: (listener: Listener) => local.subscribe(listener),
    async close() {
      closed = true
      clearInterval(timer)
      await stopWake?.()
      await running
    },
  }
}
