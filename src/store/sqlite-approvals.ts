import type { Database } from 'better-sqlite3'
import { storeCall } from './errors.js'
import type { ApprovalRecord, ApprovalStore, IdempotencyStore, NonceStore } from './types.js'

const parse = (row: { record: string } | undefined) =>
  row ? (JSON.parse(row.record) as ApprovalRecord) : null
const parseAll = (rows: unknown[]) => (rows as { record: string }[]).map((r) => parse(r)!)

/** Approvals in the `approvals` table: the record as JSON, plus the columns queries need. */
export function sqliteApprovals(db: Database): ApprovalStore {
  const run = <T>(fn: () => T) => storeCall('approval_store_unavailable', fn)
  return {
    async create(r) {
      run(() =>
        db
          .prepare(
            `INSERT INTO approvals (id, status, expires_at, executed_at, agent_id, tool, args_hash, session_id, idempotency_key, record)
             VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            r.id,
            r.status,
            r.expires_at,
            r.agent_id,
            r.tool,
            r.args_hash,
            r.session_id,
            r.idempotency_key,
            JSON.stringify(r),
          ),
      )
    },
    async get(id) {
      return run(() =>
        parse(
          db
            .prepare<[string], { record: string }>('SELECT record FROM approvals WHERE id = ?')
            .get(id),
        ),
      )
    },
    async list(status) {
      return run(() =>
        parseAll(
          status
            ? db
                .prepare('SELECT record FROM approvals WHERE status = ? ORDER BY expires_at')
                .all(status)
            : db.prepare('SELECT record FROM approvals ORDER BY expires_at').all(),
        ),
      )
    },
    async countPending(agentId, now) {
      const row = run(
        () =>
          db
            .prepare(
              `SELECT count(*) AS n FROM approvals WHERE agent_id = ? AND status = 'pending' AND expires_at > ?`,
            )
            .get(agentId, now) as { n: number },
      )
      return row.n
    },
    async findPending(agentId, match, now) {
      const row = run(() =>
        'idempotencyKey' in match
          ? db
              .prepare(
                `SELECT record FROM approvals WHERE agent_id = ? AND idempotency_key = ? AND status = 'pending' AND expires_at > ?`,
              )
              .get(agentId, match.idempotencyKey, now)
          : db
              .prepare(
                `SELECT record FROM approvals WHERE agent_id = ? AND tool = ? AND args_hash = ? AND session_id = ? AND status = 'pending' AND expires_at > ?`,
              )
              .get(agentId, match.tool, match.argsHash, match.sessionId, now),
      )
      return parse(row as { record: string } | undefined)
    },
    async resolve(id, to, by, comment, now) {
      // Compare-and-set in one statement: only one resolver can move a pending approval.
      const expiryGuard = to === 'expired' ? 'expires_at <= @now' : 'expires_at > @now'
      const changed = run(
        () =>
          db
            .prepare(
              `UPDATE approvals SET status = @to,
                 record = json_set(record, '$.status', @to, '$.decided_by', @by, '$.decided_at', @now, '$.comment', @comment)
               WHERE id = @id AND status = 'pending' AND ${expiryGuard}`,
            )
            .run({ id, to, by, comment, now }).changes,
      )
      return changed === 1
    },
    async reopen(id, from, by) {
      const changed = run(
        () =>
          db
            .prepare(
              `UPDATE approvals SET status = 'pending',
                 record = json_set(record, '$.status', 'pending', '$.decided_by', NULL, '$.decided_at', NULL, '$.comment', NULL)
               WHERE id = ? AND status = ? AND json_extract(record, '$.decided_by') = ? AND executed_at IS NULL`,
            )
            .run(id, from, by).changes,
      )
      return changed === 1
    },
    async recordExecution(id, outcome, result, now) {
      const changed = run(
        () =>
          db
            .prepare(
              `UPDATE approvals SET executed_at = @now,
                 record = json_set(record, '$.executed_at', @now, '$.outcome', @outcome, '$.result', json(@result))
               WHERE id = @id AND status = 'approved' AND executed_at IS NULL`,
            )
            .run({ id, now, outcome, result: JSON.stringify(result ?? null) }).changes,
      )
      return changed === 1
    },
    async expiredPending(now) {
      return run(() =>
        parseAll(
          db
            .prepare(
              `SELECT record FROM approvals WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at`,
            )
            .all(now),
        ),
      )
    },
  }
}

/** Used nonces in `used_nonces`, each kept until its `expires_at`. */
export function sqliteNonces(db: Database): NonceStore {
  return {
    async use(nonce, expiresAt, now = new Date().toISOString()) {
      return storeCall('approval_store_unavailable', () => {
        // Forget what can no longer be replayed: the caller's `expiresAt` is past the last moment
        // its signature could verify.
        db.prepare('DELETE FROM used_nonces WHERE expires_at < ?').run(now)
        // The primary key makes the first use win; every later use is a replay.
        return (
          db
            .prepare(
              'INSERT OR IGNORE INTO used_nonces (nonce, used_at, expires_at) VALUES (?, ?, ?)',
            )
            .run(nonce, now, expiresAt).changes === 1
        )
      })
    },
  }
}

/** Idempotency keys in `idempotency_keys`, one row per (agent, key), until `expires_at`. */
export function sqliteIdempotency(db: Database): IdempotencyStore {
  const run = <T>(fn: () => T) => storeCall('idempotency_store_unavailable', fn)
  const reserve = db.transaction(
    (
      agentId: string,
      key: string,
      fingerprint: string,
      expiresAt: string,
      maxKeys: number,
      now: string,
    ) => {
      db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?').run(now)
      const found = db
        .prepare<[string, string], { fingerprint: string; response: string | null }>(
          'SELECT fingerprint, response FROM idempotency_keys WHERE agent_id = ? AND key = ?',
        )
        .get(agentId, key)
      if (found)
        return found.response === null
          ? ({ kind: 'in_progress', fingerprint: found.fingerprint } as const)
          : ({
              kind: 'done',
              fingerprint: found.fingerprint,
              response: JSON.parse(found.response) as unknown,
            } as const)
      const held = db
        .prepare<[string], number>('SELECT count(*) FROM idempotency_keys WHERE agent_id = ?')
        .pluck()
        .get(agentId)
      if ((held ?? 0) >= maxKeys) return { kind: 'full' } as const
      db.prepare(
        'INSERT INTO idempotency_keys (agent_id, key, fingerprint, expires_at, response) VALUES (?, ?, ?, ?, NULL)',
      ).run(agentId, key, fingerprint, expiresAt)
      return { kind: 'reserved' } as const
    },
  )
  return {
    async reserve(agentId, key, fingerprint, expiresAt, maxKeys, now) {
      // IMMEDIATE: the check and the insert happen under the write lock, across processes too.
      return run(() => reserve.immediate(agentId, key, fingerprint, expiresAt, maxKeys, now))
    },
    async complete(agentId, key, response) {
      run(() =>
        db
          .prepare('UPDATE idempotency_keys SET response = ? WHERE agent_id = ? AND key = ?')
          .run(JSON.stringify(response ?? null), agentId, key),
      )
    },
    async release(agentId, key) {
      run(() =>
        db.prepare('DELETE FROM idempotency_keys WHERE agent_id = ? AND key = ?').run(agentId, key),
      )
    },
  }
}
