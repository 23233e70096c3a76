import type { AuditQuery } from './types.js'

/** The number of events a query returns at most: 100 unless told, between 1 and 10 000. */
export function queryLimit(q: AuditQuery): number {
  return Math.min(Math.max(q.limit ?? 100, 1), 10_000)
}
