import { WardenError } from '../domain/errors.js'

/** The catalog codes a store fails with: one per capability. */
export type StoreErrorCode =
  'audit_unavailable' | 'approval_store_unavailable' | 'idempotency_store_unavailable'

/**
 * A store could not do what was asked: a dependency outage, never a decision. Every backend
 * throws this itself (callers answer 503 with its code) rather than a raw database error.
 */
export class StoreError extends WardenError {
  declare readonly code: StoreErrorCode

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message)
    this.name = 'StoreError'
    if (options && 'cause' in options) this.cause = options.cause
  }
}

/**
 * Run `fn` and turn whatever it throws into a `StoreError(code)` (a `StoreError` passes as it
 * is). Backends wrap each database call in this, so a failure carries its capability's code.
 */
export function storeCall<T>(code: StoreErrorCode, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw asStoreError(code, err)
  }
}

/** `err` as a `StoreError(code)`, keeping it as the cause. */
export function asStoreError(code: StoreErrorCode, err: unknown): StoreError {
  if (err instanceof StoreError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new StoreError(code, `store failed: ${message}`, { cause: err })
}
