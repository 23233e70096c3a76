import type pg from 'pg'
import { postgresApprovals, postgresIdempotency, postgresNonces } from './postgres-approvals.js'
import { postgresAuditLog } from './postgres-audit.js'
import { applyMigrations, type Migration } from './postgres-migrations.js'
import { openPool, type PostgresOptions } from './postgres-pool.js'

export type { PostgresOptions }
import type { Stores } from './types.js'

const HEALTH_TIMEOUT_MS = 2000

/**
 * Shared stores on PostgreSQL: several instances may open the same database (and schema) and
 * append to one hash chain. Migrations are applied at open (`postgres-migrations.ts`).
 */
export async function postgresStores(options: PostgresOptions): Promise<Stores> {
  const pool = openPool(options)
  try {
    await migrateWith(pool, options.schema)
  } catch (err) {
    await pool.end()
    throw err
  }
  const audit = postgresAuditLog(pool)
  let closed = false
  return {
    kind: 'postgres',
    audit: audit.log,
    approvals: postgresApprovals(pool),
    nonces: postgresNonces(pool),
    idempotency: postgresIdempotency(pool),
    async health() {
      if (closed) return { ok: false, detail: 'postgres store is closed' }
      try {
        await pool.query({ text: 'SELECT 1', query_timeout: HEALTH_TIMEOUT_MS } as pg.QueryConfig)
        return { ok: true, detail: `postgres${options.schema ? ` (${options.schema})` : ''}` }
      } catch (err) {
        return { ok: false, detail: (err as Error).message }
      }
    },
    async close() {
      if (closed) return
      closed = true
      await audit.close()
      await pool.end()
    },
  }
}

async function migrateWith(pool: pg.Pool, schema: string | undefined): Promise<Migration[]> {
  const client = await pool.connect()
  try {
    const applied = await applyMigrations(client, schema)
    client.release()
    return applied
  } catch (err) {
    client.release(true)
    throw err
  }
}

/** Apply the migrations not yet applied (`warden migrate`); returns those it applied. */
export async function migratePostgres(url: string, schema?: string): Promise<Migration[]> {
  const pool = openPool({ url, schema })
  try {
    return await migrateWith(pool, schema)
  } finally {
    await pool.end()
  }
}

/** Whether the audit log's table exists: `warden audit` does not create an empty log to check. */
export async function postgresHasAuditLog(options: PostgresOptions): Promise<boolean> {
  const pool = openPool(options)
  try {
    const { rows } = await pool.query<{ found: boolean }>(
      `SELECT to_regclass('audit_events') IS NOT NULL AS found`,
    )
    return rows[0]?.found === true
  } finally {
    await pool.end()
  }
}
