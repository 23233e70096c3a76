import pg from 'pg'
import { asStoreError, type StoreErrorCode } from './errors.js'
import { checkSchemaName } from './postgres-migrations.js'

/** How long a call may wait for a connection, and a statement may run, before it fails. */
const CONNECT_TIMEOUT_MS = 5000
const STATEMENT_TIMEOUT_MS = 5000

export interface PostgresOptions {
  url: string
  /** Tables go in this schema (created if missing) instead of the connection's default. */
  schema?: string | undefined
}

/**
 * A pool whose calls fail instead of hanging when the server stalls (connect and statement
 * timeouts, the client-side timeout a little later in case the server cannot even say so), with
 * every connection's `search_path` on the chosen schema.
 */
export function openPool(options: PostgresOptions): pg.Pool {
  const schema = options.schema === undefined ? undefined : checkSchemaName(options.schema)
  const pool = new pg.Pool({
    connectionString: options.url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    query_timeout: STATEMENT_TIMEOUT_MS + 1000,
    ...(schema !== undefined && { options: `-c search_path=${schema}` }),
  })
  // An idle client whose connection drops emits this on the pool; unhandled, it would end the
  // process. The pool has already discarded that client and opens a new one on the next call.
  pool.on('error', () => undefined)
  return pool
}

/**
 * A text value PostgreSQL can store in a column: it refuses NUL, which a caller-chosen name or a
 * reason quoting a value may hold. Only for the columns queries compare; the hashed body keeps
 * the exact text (JSON escapes NUL).
 */
export const column = (s: string) => s.replaceAll('\u0000', '\uFFFD')
export const nullable = (s: string | null) => (s === null ? null : column(s))

/** Run `fn` with a pooled client, turning any failure into a `StoreError(code)`. */
export async function withClient<T>(
  pool: pg.Pool,
  code: StoreErrorCode,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  let client: pg.PoolClient
  try {
    client = await pool.connect()
  } catch (err) {
    throw asStoreError(code, err)
  }
  try {
    const result = await fn(client)
    client.release()
    return result
  } catch (err) {
    // A client that failed mid-transaction may be in any state: drop it rather than reuse it.
    client.release(err instanceof Error ? err : true)
    throw asStoreError(code, err)
  }
}

/** Run `fn` in one transaction (READ COMMITTED) on a pooled client. */
export function inTransaction<T>(
  pool: pg.Pool,
  code: StoreErrorCode,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return withClient(pool, code, async (client) => {
    await client.query('BEGIN')
    try {
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw err
    }
  })
}

/** One query on the pool, failing with `StoreError(code)`. */
export async function query<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  code: StoreErrorCode,
  sql: string,
  args: unknown[] = [],
): Promise<pg.QueryResult<R>> {
  try {
    return await pool.query<R>(sql, args)
  } catch (err) {
    throw asStoreError(code, err)
  }
}
