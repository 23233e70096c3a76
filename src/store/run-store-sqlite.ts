import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { runStoreSettings, type RunStore, type RunStoreOptions } from './run-store.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS agent_runs (
  id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  state TEXT NOT NULL,
  touched_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  lease_token TEXT,
  lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS agent_runs_expires ON agent_runs(expires_at);
CREATE INDEX IF NOT EXISTS agent_runs_touched ON agent_runs(touched_at);
`

interface Row {
  id: string
  agent_id: string
  state: string
}

const heldRun = (row: Row) => ({ id: row.id, agentId: row.agent_id, state: JSON.parse(row.state) })

/**
 * Held runs in a SQLite file (WAL), shared by every agent API process that opens the same file.
 * Each operation is one statement (or one immediate transaction), so a claim is a compare-and-set
 * that SQLite's write lock serializes across connections and processes.
 */
export function sqliteRunStore(path: string, opts: RunStoreOptions = {}): RunStore {
  const { ttlMs, maxRuns, leaseMs, now } = runStoreSettings(opts)
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  db.exec(SCHEMA)

  const sweep = db.prepare('DELETE FROM agent_runs WHERE expires_at < ?')
  const insert = db.prepare(
    `INSERT OR REPLACE INTO agent_runs (id, agent_id, state, touched_at, expires_at, lease_token, lease_until)
     VALUES (@id, @agentId, @state, @now, @expires, NULL, NULL)`,
  )
  // Past the cap, the runs touched least recently go (INSERT OR REPLACE gives the new run the
  // highest rowid, so it is never among them).
  const trim = db.prepare(
    `DELETE FROM agent_runs WHERE id IN (
       SELECT id FROM agent_runs ORDER BY touched_at, rowid
       LIMIT max(0, (SELECT count(*) FROM agent_runs) - @max))`,
  )
  const save = db.transaction((params: Record<string, unknown>) => {
    sweep.run(params.now)
    insert.run(params)
    trim.run({ max: maxRuns })
  })
  const select = db.prepare<[string, number], Row>(
    'SELECT id, agent_id, state FROM agent_runs WHERE id = ? AND expires_at >= ?',
  )
  // INVARIANT: a leased run expires no earlier than its lease ends.
  const claim = db.prepare<Record<string, unknown>, Row>(
    `UPDATE agent_runs SET lease_token = @token, lease_until = @until, touched_at = @now,
       expires_at = max(expires_at, @until)
     WHERE id = @id AND expires_at >= @now AND (lease_until IS NULL OR lease_until < @now)
     RETURNING id, agent_id, state`,
  )
  const renew = db.prepare(
    `UPDATE agent_runs SET lease_until = @until, touched_at = @now,
       expires_at = max(expires_at, @until)
     WHERE id = @id AND lease_token = @token`,
  )
  const holdAgain = db.prepare(
    `UPDATE agent_runs SET state = @state, lease_token = NULL, lease_until = NULL,
       touched_at = @now, expires_at = @expires
     WHERE id = @id AND lease_token = @token`,
  )
  const giveBack = db.prepare(
    `UPDATE agent_runs SET lease_token = NULL, lease_until = NULL
     WHERE id = @id AND lease_token = @token`,
  )
  const remove = db.prepare('DELETE FROM agent_runs WHERE id = @id AND lease_token = @token')

  return {
    leaseMs,
    async save(run) {
      const t = now()
      save.immediate({
        id: run.id,
        agentId: run.agentId,
        state: JSON.stringify(run.state),
        now: t,
        expires: t + ttlMs,
      })
    },
    async load(id) {
      const row = select.get(id, now())
      return row ? heldRun(row) : null
    },
    async claim(id) {
      const t = now()
      const token = randomUUID()
      const row = claim.get({ id, token, now: t, until: t + leaseMs })
      if (row) return { ok: true, run: heldRun(row), lease: { runId: id, token } }
      return { ok: false, reason: select.get(id, t) ? 'busy' : 'missing' }
    },
    async renew(lease) {
      const t = now()
      return (
        renew.run({ id: lease.runId, token: lease.token, now: t, until: t + leaseMs }).changes === 1
      )
    },
    async release(lease, state) {
      const key = { id: lease.runId, token: lease.token }
      if (state === undefined) return giveBack.run(key).changes === 1
      const t = now()
      return (
        holdAgain.run({ ...key, state: JSON.stringify(state), now: t, expires: t + ttlMs })
          .changes === 1
      )
    },
    async delete(lease) {
      return remove.run({ id: lease.runId, token: lease.token }).changes === 1
    },
    async close() {
      if (db.open) db.close()
    },
  }
}
