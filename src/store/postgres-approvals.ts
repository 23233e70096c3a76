import type pg from 'pg'
import { column, inTransaction, nullable, query } from './postgres-pool.js'
import type {
  ApprovalRecord,
  ApprovalStore,
  IdempotencyStore,
  NonceStore,
  Reservation,
} from './types.js'

interface ApprovalRow {
  record: string
  status: ApprovalRecord['status']
  decided_by: string | null
  decided_at: string | null
  comment: string | null
  executed_at: string | null
  outcome: ApprovalRecord['outcome']
  result: string
}

const COLUMNS = 'record, status, decided_by, decided_at, comment, executed_at, outcome, result'

/** The record as created, with what decisions and executions changed since. */
function recordOf(row: ApprovalRow): ApprovalRecord {
  return {
    ...(JSON.parse(row.record) as ApprovalRecord),
    status: row.status,
    decided_by: row.decided_by,
    decided_at: row.decided_at,
    comment: row.comment,
    executed_at: row.executed_at,
    outcome: row.outcome,
    result: JSON.parse(row.result) as unknown,
  }
}

/**
 * Approvals in the `approvals` table. Every change is one conditional UPDATE on the row, so of
 * two instances deciding the same approval at once exactly one sees its row change.
 */
export function postgresApprovals(pool: pg.Pool): ApprovalStore {
  const run = <R extends pg.QueryResultRow>(sql: string, args: unknown[] = []) =>
    query<R>(pool, 'approval_store_unavailable', sql, args)
  const changed = async (sql: string, args: unknown[]) => (await run(sql, args)).rowCount === 1
  const records = async (sql: string, args: unknown[] = []) =>
    (await run<ApprovalRow>(sql, args)).rows.map(recordOf)
  return {
    async create(r) {
      await run(
        `INSERT INTO approvals (id, status, expires_at, agent_id, tool, args_hash, session_id,
           idempotency_key, decided_by, decided_at, comment, executed_at, outcome, result, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
        [
          r.id,
          r.status,
          r.expires_at,
          column(r.agent_id),
          column(r.tool),
          r.args_hash,
          nullable(r.session_id),
          nullable(r.idempotency_key),
          r.decided_by,
          r.decided_at,
          r.comment,
          r.executed_at,
          r.outcome,
          JSON.stringify(r.result ?? null),
          JSON.stringify(r),
        ],
      )
    },
    async get(id) {
      return (await records(`SELECT ${COLUMNS} FROM approvals WHERE id = $1`, [id]))[0] ?? null
    },
    async list(status) {
      return status
        ? records(`SELECT ${COLUMNS} FROM approvals WHERE status = $1 ORDER BY expires_at`, [
            status,
          ])
        : records(`SELECT ${COLUMNS} FROM approvals ORDER BY expires_at`)
    },
    async countPending(agentId, now) {
      const { rows } = await run<{ n: string }>(
        `SELECT count(*) AS n FROM approvals
         WHERE agent_id = $1 AND status = 'pending' AND expires_at > $2`,
        [column(agentId), now],
      )
      return Number(rows[0]?.n ?? 0)
    },
    async findPending(agentId, match, now) {
      const found =
        'idempotencyKey' in match
          ? await records(
              `SELECT ${COLUMNS} FROM approvals WHERE agent_id = $1 AND idempotency_key = $2
               AND status = 'pending' AND expires_at > $3 LIMIT 1`,
              [column(agentId), column(match.idempotencyKey), now],
            )
          : await records(
              `SELECT ${COLUMNS} FROM approvals WHERE agent_id = $1 AND tool = $2 AND args_hash = $3
               AND session_id = $4 AND status = 'pending' AND expires_at > $5 LIMIT 1`,
              [column(agentId), column(match.tool), match.argsHash, column(match.sessionId), now],
            )
      return found[0] ?? null
    },
    async resolve(id, to, by, comment, now) {
      // Compare-and-set in one statement: only one resolver can move a pending approval.
      const expiryGuard = to === 'expired' ? 'expires_at <= $5' : 'expires_at > $5'
      return changed(
        `UPDATE approvals SET status = $2, decided_by = $3, comment = $4, decided_at = $5
         WHERE id = $1 AND status = 'pending' AND ${expiryGuard} RETURNING id`,
        [id, to, by, comment, now],
      )
    },
    async reopen(id, from, by) {
      return changed(
        `UPDATE approvals SET status = 'pending', decided_by = NULL, decided_at = NULL, comment = NULL
         WHERE id = $1 AND status = $2 AND decided_by = $3 AND executed_at IS NULL RETURNING id`,
        [id, from, by],
      )
    },
    async recordExecution(id, outcome, result, now) {
      return changed(
        `UPDATE approvals SET executed_at = $2, outcome = $3, result = $4
         WHERE id = $1 AND status = 'approved' AND executed_at IS NULL RETURNING id`,
        [id, now, outcome, JSON.stringify(result ?? null)],
      )
    },
    async expiredPending(now) {
      return records(
        `SELECT ${COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= $1
         ORDER BY expires_at`,
        [now],
      )
    },
  }
}

/** Used nonces in `used_nonces`, each kept until its `expires_at`. */
export function postgresNonces(pool: pg.Pool): NonceStore {
  return {
    async use(nonce, expiresAt, now = new Date().toISOString()) {
      // Forget what can no longer be replayed: the caller's `expiresAt` is past the last moment
      // its signature could verify.
      await query(
        pool,
        'approval_store_unavailable',
        'DELETE FROM used_nonces WHERE expires_at < $1',
        [now],
      )
      // The primary key makes the first use win (a concurrent insert waits for the other's
      // commit, then does nothing); every later use is a replay.
      const { rowCount } = await query(
        pool,
        'approval_store_unavailable',
        `INSERT INTO used_nonces (nonce, used_at, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (nonce) DO NOTHING`,
        [column(nonce), now, expiresAt],
      )
      return rowCount === 1
    },
  }
}

/** Fixed first key of the per-agent idempotency lock; the second is the agent's hash. */
const IDEMPOTENCY_LOCK = 0x49646d70 // 'Idmp'

/** Idempotency keys in `idempotency_keys`, one row per (agent, key), until `expires_at`. */
export function postgresIdempotency(pool: pg.Pool): IdempotencyStore {
  const run = (sql: string, args: unknown[]) =>
    query(pool, 'idempotency_store_unavailable', sql, args)
  return {
    reserve(agentId, key, fingerprint, expiresAt, maxKeys, now) {
      const agent = column(agentId)
      return inTransaction(pool, 'idempotency_store_unavailable', async (client) => {
        // INVARIANT: one reservation per agent at a time, across instances, until COMMIT: the
        // check, the count under the cap and the insert see no other reservation in between.
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
          IDEMPOTENCY_LOCK,
          agent,
        ])
        await client.query('DELETE FROM idempotency_keys WHERE expires_at <= $1', [now])
        const found = await client.query<{ fingerprint: string; response: string | null }>(
          'SELECT fingerprint, response FROM idempotency_keys WHERE agent_id = $1 AND key = $2',
          [agent, column(key)],
        )
        const row = found.rows[0]
        if (row) return heldBy(row)
        const held = await client.query<{ n: string }>(
          'SELECT count(*) AS n FROM idempotency_keys WHERE agent_id = $1',
          [agent],
        )
        if (Number(held.rows[0]?.n ?? 0) >= maxKeys) return { kind: 'full' }
        await client.query(
          `INSERT INTO idempotency_keys (agent_id, key, fingerprint, expires_at, response)
           VALUES ($1, $2, $3, $4, NULL)`,
          [agent, column(key), fingerprint, expiresAt],
        )
        return { kind: 'reserved' }
      })
    },
    async complete(agentId, key, response) {
      await run('UPDATE idempotency_keys SET response = $1 WHERE agent_id = $2 AND key = $3', [
        JSON.stringify(response ?? null),
        column(agentId),
        column(key),
      ])
    },
    async release(agentId, key) {
      await run('DELETE FROM idempotency_keys WHERE agent_id = $1 AND key = $2', [
        column(agentId),
        column(key),
      ])
    },
  }
}

function heldBy(row: { fingerprint: string; response: string | null }): Reservation {
  return row.response === null
    ? { kind: 'in_progress', fingerprint: row.fingerprint }
    : { kind: 'done', fingerprint: row.fingerprint, response: JSON.parse(row.response) as unknown }
}
