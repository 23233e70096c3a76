import { existsSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { MAX_SIGNED_AGE_SECONDS, NONCE_MARGIN_SECONDS } from '../domain/config.js'
import { sqliteApprovals, sqliteIdempotency, sqliteNonces } from './sqlite-approvals.js'
import { backfillCounts, sqliteAuditLog } from './sqlite-audit.js'
import type { Stores } from './types.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  request_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  session_id TEXT,
  decision TEXT NOT NULL,
  code TEXT,
  reason TEXT NOT NULL,
  risk_level TEXT NOT NULL,
  body TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_agent ON audit_events(agent_id, seq);
CREATE INDEX IF NOT EXISTS audit_session ON audit_events(session_id, seq);
CREATE INDEX IF NOT EXISTS audit_request ON audit_events(request_id);
CREATE INDEX IF NOT EXISTS audit_type ON audit_events(type, seq);
-- The /stats counters (counts.ts), upserted by the writer in each append's transaction.
CREATE TABLE IF NOT EXISTS audit_counts (
  type TEXT NOT NULL,
  decision TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  risk_level TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (type, decision, agent_id, tool, risk_level)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_deny_reasons (
  reason TEXT PRIMARY KEY,
  n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','expired')),
  expires_at TEXT NOT NULL,
  executed_at TEXT,
  agent_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  args_hash TEXT NOT NULL,
  session_id TEXT,
  idempotency_key TEXT,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, expires_at);
CREATE INDEX IF NOT EXISTS approvals_agent ON approvals(agent_id, status);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  agent_id TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  response TEXT,
  PRIMARY KEY (agent_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency_keys(expires_at);
CREATE TABLE IF NOT EXISTS used_nonces (
  nonce TEXT PRIMARY KEY,
  used_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);
`

/**
 * Nonces were once kept forever, without `expires_at`. Such a nonce came with a signature at most
 * `MAX_SIGNED_AGE_SECONDS` old, so it is kept that long after its use, plus the margin every nonce
 * gets. One transaction, and rows left with no expiry (`''`, which sorts before any time and
 * would be purged on the next use) are given it too, so an interrupted upgrade cannot forget them.
 */
function migrate(db: Database.Database): void {
  const keep = `+${MAX_SIGNED_AGE_SECONDS + NONCE_MARGIN_SECONDS} seconds`
  db.transaction(() => {
    const columns = db.prepare('PRAGMA table_info(used_nonces)').all() as { name: string }[]
    if (!columns.some((c) => c.name === 'expires_at'))
      db.exec(`ALTER TABLE used_nonces ADD COLUMN expires_at TEXT NOT NULL DEFAULT ''`)
    // A `used_at` that is not a time cannot be dated: such a nonce is kept for good.
    db.prepare(
      `UPDATE used_nonces
       SET expires_at = coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', used_at, ?), '9999-12-31T23:59:59.999Z')
       WHERE expires_at = ''`,
    ).run(keep)
  }).immediate()
  db.exec('CREATE INDEX IF NOT EXISTS used_nonces_expiry ON used_nonces(expires_at)')
}

/** Hooks into the SQLite stores' moving parts, for tests that must break the real thing. */
export interface SqliteStoreHooks {
  /** Told the audit writer thread once it is started (tests terminate it to kill the writer). */
  writerStarted?(worker: Worker): void
}

/**
 * Embedded stores on one SQLite file (better-sqlite3, WAL, `synchronous=FULL`): a resolved
 * `append` has reached the disk. The audit log appends on a writer thread with group commit
 * (`sqlite-audit.ts`); reads, approvals and nonces use this thread's connection.
 */
export function sqliteStores(path: string, hooks: SqliteStoreHooks = {}): Stores {
  if (path === ':memory:')
    throw new Error('the SQLite store needs a file: its writer thread opens it separately')
  mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  db.exec(SCHEMA)
  migrate(db)
  backfillCounts(db)
  const audit = sqliteAuditLog(db, path, hooks.writerStarted)
  return {
    kind: 'sqlite',
    audit: audit.log,
    approvals: sqliteApprovals(db),
    nonces: sqliteNonces(db),
    idempotency: sqliteIdempotency(db),
    async health() {
      const broken = audit.broken()
      if (broken) return { ok: false, detail: broken }
      try {
        db.prepare('SELECT 1').get()
        return { ok: true, detail: `sqlite ${path}` }
      } catch (err) {
        return { ok: false, detail: (err as Error).message }
      }
    },
    async close() {
      await audit.close()
      if (db.open) db.close()
    },
  }
}

/**
 * An online, consistent copy of the SQLite store at `path` into the new file `out`, taken with
 * SQLite's backup API (through better-sqlite3) while a gateway may keep writing: the copy is the
 * database as of one moment, WAL included, and opens as a store of its own. `out` must not exist,
 * so a backup never overwrites anything.
 */
export async function backupSqlite(path: string, out: string): Promise<{ pages: number }> {
  if (existsSync(out)) throw new Error(`${out} already exists; a backup is written to a new file`)
  const db = new Database(path, { fileMustExist: true })
  try {
    db.pragma('busy_timeout = 5000')
    mkdirSync(dirname(out), { recursive: true })
    const { totalPages } = await db.backup(out)
    return { pages: totalPages }
  } finally {
    db.close()
  }
}
