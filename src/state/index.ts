import type { StateConfig } from '../domain/config.js'
import { memoryState } from './memory.js'
import { redisState } from './redis.js'
import type { StateBackend } from './types.js'

export type { StateBackend } from './types.js'

export interface StateOptions {
  kind: StateConfig['kind']
  /** For `redis`: the server (`REDIS_URL`, which only `main.ts` reads). */
  url?: string
  /** For `redis`: the start of every key (default `warden:`); instances sharing state share it. */
  prefix?: string
  /** For `memory`: the clock rate limits read (replays and tests drive their own). */
  clock?: () => number
  /** For `memory`: sessions whose taint is kept at once (`sessions.max_sessions`). */
  maxSessions?: number
  /** For `memory`: true while restart recovery replays recorded hits (counted unconditionally). */
  replaying?: () => boolean
}

/** Open the configured state backend. Another backend is one more case here. */
export async function openState(options: StateOptions = { kind: 'memory' }): Promise<StateBackend> {
  switch (options.kind) {
    case 'memory':
      return memoryState({
        ...(options.clock && { clock: options.clock }),
        ...(options.maxSessions !== undefined && { maxSessions: options.maxSessions }),
        ...(options.replaying && { replaying: options.replaying }),
      })
    case 'redis': {
      if (options.url === undefined)
        throw new Error('`state.kind` is `redis` but REDIS_URL is not set')
      if (!/^rediss?:\/\//.test(options.url))
        throw new Error('REDIS_URL must be a `redis://` or `rediss://` URL')
      return redisState({
        url: options.url,
        ...(options.prefix !== undefined && { prefix: options.prefix }),
      })
    }
  }
}
