import type { WardenConfig } from '../domain/config.js'
import { memoryStores } from './memory.js'
import { postgresStores } from './postgres.js'
import { sqliteStores } from './sqlite.js'
export { backupSqlite } from './sqlite.js'
import type { Stores } from './types.js'

export { StoreError } from './errors.js'
export { migratePostgres, postgresHasAuditLog } from './postgres.js'
export type * from './types.js'

/** Which backend to open, and what it needs. */
export type StoreOptions =
  | { kind: 'sqlite'; sqlitePath: string }
  | { kind: 'memory' }
  /** `schema` (a plain identifier) keeps the tables apart from others in one database. */
  | { kind: 'postgres'; url: string; schema?: string }

/**
 * Resolve the backend from the `store:` configuration and `DATABASE_URL` (read by main.ts and
 * passed in): a `postgres://` URL selects PostgreSQL, otherwise `store.kind` decides.
 */
export function storeOptions(
  config: WardenConfig['store'],
  overrides: {
    sqlitePath?: string | undefined
    databaseUrl?: string | undefined
    databaseSchema?: string | undefined
  } = {},
): StoreOptions {
  const url = overrides.databaseUrl
  if (url !== undefined && url !== '') {
    if (!/^postgres(ql)?:\/\//.test(url))
      throw new Error('DATABASE_URL must be a postgres:// or postgresql:// URL')
    const schema = overrides.databaseSchema
    return { kind: 'postgres', url, ...(schema !== undefined && schema !== '' && { schema }) }
  }
  if (config.kind === 'memory') return { kind: 'memory' }
  return { kind: 'sqlite', sqlitePath: overrides.sqlitePath ?? config.sqlite_path }
}

/** Open every store capability on the chosen backend. A backend is one case here. */
export async function openStores(options: StoreOptions): Promise<Stores> {
  switch (options.kind) {
    case 'sqlite':
      return sqliteStores(options.sqlitePath)
    case 'memory':
      return memoryStores()
    case 'postgres':
      return postgresStores({ url: options.url, schema: options.schema })
  }
}
