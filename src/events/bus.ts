import type { AuditEvent } from '../domain/audit-event.js'

export type Listener = (event: AuditEvent) => void

/**
 * Fan-out of committed audit events to live consumers (WebSocket clients, stats). Events are
 * published only after they are durable, so a client never sees something the log lacks.
 * In process by default; a Redis implementation carries events between instances.
 */
export interface EventBus {
  publish(events: readonly AuditEvent[]): void
  subscribe(listener: Listener): () => void
}

export function memoryBus(onListenerError?: (err: unknown) => void): EventBus {
  const listeners = new Set<Listener>()
  return {
    publish(events) {
      for (const event of events) {
        for (const listener of listeners) {
          try {
            listener(event)
          } catch (err) {
            onListenerError?.(err)
          }
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
