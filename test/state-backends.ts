import { openState, type StateBackend } from '../src/state/index.js'

/**
 * The clock the memory backend reads in tests. Backends with a clock of their own (Redis reads
 * `TIME`) ignore it; the contract suite then waits in real time instead.
 */
export const testClock = { now: 1_700_000_000_000 }

/** Every state backend the contract suite runs against; a new backend is one more line. */
export const STATE_BACKENDS: readonly [name: string, open: () => Promise<StateBackend>][] = [
  ['memory', () => openState({ kind: 'memory', clock: () => testClock.now })],
]

/** Backends whose rate-limit clock `testClock` drives. */
export const DRIVEN_CLOCK = new Set(['memory'])
