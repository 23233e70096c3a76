import type { AuditEvent, AuditEventInput } from '../domain/audit-event.js'
import type { EventBus } from '../events/bus.js'
import type { AuditLog } from '../store/types.js'

/** Writes audit events durably, then tells live consumers; the one way events enter the log. */
export interface Recorder {
  /** Resolves once the events are committed; throws the store's error (e.g. `audit_unavailable`). */
  record(events: AuditEventInput[]): Promise<AuditEvent[]>
}

/** A recorder over an audit log and an event bus. */
export function recorder(log: Pick<AuditLog, 'append'>, bus: EventBus): Recorder {
  return {
    async record(events) {
      const sealed = await log.append(events)
      // INVARIANT: published only after commit, so nobody sees an event the log lacks.
      bus.publish(sealed)
      return sealed
    },
  }
}
