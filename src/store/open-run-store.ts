import { memoryRunStore } from './run-store-memory.js'
import { sqliteRunStore } from './run-store-sqlite.js'
import type { RunStore, RunStoreOptions } from './run-store.js'

export type OpenRunStoreOptions = RunStoreOptions &
  ({ kind: 'memory' } | { kind: 'sqlite'; sqlitePath: string })

/** Open the run store of the given kind (PostgreSQL will be one more case). */
export function openRunStore(opts: OpenRunStoreOptions): RunStore {
  return opts.kind === 'sqlite' ? sqliteRunStore(opts.sqlitePath, opts) : memoryRunStore(opts)
}
