import { randomBytes } from 'node:crypto'
import { createClient } from 'redis'
import { openState, type StateBackend } from '../src/state/index.js'

/**
 * The clock the memory backend reads in tests. Backends with a clock of their own (Redis reads
 * `TIME`) ignore it; the contract suite then waits in real time instead.
 */
export const testClock = { now: 1_700_000_000_000 }

/** The Redis server the tests use; without one the Redis tests fail (they never skip). */
export const TEST_REDIS_URL = process.env.WARDEN_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A key prefix no other test run shares. */
export const testPrefix = () => `warden-test:${randomBytes(6).toString('hex')}:`

/** Delete every key under `prefix` (SCAN, never KEYS). */
export async function deletePrefix(prefix: string): Promise<void> {
  const client = createClient({ url: TEST_REDIS_URL })
  client.on('error', () => {})
  await client.connect()
  try {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
      if (keys.length > 0) await client.del(keys)
  } finally {
    client.destroy()
  }
}

/** The Redis backend under a fresh prefix; closing it deletes that prefix's keys. */
export async function openTestRedis(prefix = testPrefix()): Promise<StateBackend> {
  const state = await openState({ kind: 'redis', url: TEST_REDIS_URL, prefix })
  return {
    ...state,
    async close() {
      try {
        await deletePrefix(prefix)
      } finally {
        await state.close()
      }
    },
  }
}

/** Every state backend the contract suite runs against; a new backend is one more line. */
export const STATE_BACKENDS: readonly [name: string, open: () => Promise<StateBackend>][] = [
  ['memory', () => openState({ kind: 'memory', clock: () => testClock.now })],
  ['redis', () => openTestRedis()],
]

/** Backends whose rate-limit clock `testClock` drives. */
export const DRIVEN_CLOCK = new Set(['memory'])
