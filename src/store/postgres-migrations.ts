import type pg from 'pg'
import { GENESIS_HASH } from '../domain/audit-event.js'

/** One step of the PostgreSQL schema; shipped in the build as code, applied once, in order. */
export interface Migration {
  version: number
  name: string
  sql: string
}

/**
 * The schema, oldest first. A released migration is never edited: a change is a new entry.
 * Text that is compared or ordered (times, reasons) is `COLLATE "C"`, so it sorts by bytes as
 * in SQLite and in JavaScript, whatever the database's locale.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'audit log, counters, approvals, nonces, idempotency keys',
    sql: `
CREATE TABLE audit_events (
  seq BIGINT PRIMARY KEY,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  timestamp TEXT COLLATE "C" NOT NULL,
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
CREATE INDEX audit_agent ON audit_events(agent_id, seq);
CREATE INDEX audit_session ON audit_events(session_id, seq);
CREATE INDEX audit_request ON audit_events(request_id);
-- The chain head: one row, locked FOR UPDATE by each append transaction, so every instance
-- appends to one chain, one batch after another.
CREATE TABLE audit_head (
  one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL
);
INSERT INTO audit_head (one, seq, hash) VALUES (TRUE, 0, '${GENESIS_HASH}');
-- The /stats counters (counts.ts), upserted in each append's transaction.
CREATE TABLE audit_counts (
  type TEXT NOT NULL,
  decision TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  risk_level TEXT NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (type, decision, agent_id, tool, risk_level)
);
CREATE TABLE audit_deny_reasons (
  reason TEXT COLLATE "C" PRIMARY KEY,
  n BIGINT NOT NULL
);
-- The record as created, plus the fields a decision and an execution change, as columns: a
-- compare-and-set is then one plain UPDATE.
CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','expired')),
  expires_at TEXT COLLATE "C" NOT NULL,
  agent_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  args_hash TEXT NOT NULL,
  session_id TEXT,
  idempotency_key TEXT,
  decided_by TEXT,
  decided_at TEXT,
  comment TEXT,
  executed_at TEXT,
  outcome TEXT,
  result TEXT NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX approvals_status ON approvals(status, expires_at);
CREATE INDEX approvals_agent ON approvals(agent_id, status);
CREATE TABLE idempotency_keys (
  agent_id TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  expires_at TEXT COLLATE "C" NOT NULL,
  response TEXT,
  PRIMARY KEY (agent_id, key)
);
CREATE INDEX idempotency_expiry ON idempotency_keys(expires_at);
CREATE TABLE used_nonces (
  nonce TEXT PRIMARY KEY,
  used_at TEXT NOT NULL,
  expires_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX used_nonces_expiry ON used_nonces(expires_at);
`,
  },
  {
    version: 2,
    name: 'audit events by type (MCP tool pins are read back by type at start-up)',
    sql: `CREATE INDEX audit_type ON audit_events(type, seq);`,
  },
]

/** Fixed first key of the migration advisory lock; the second is the schema's hash. */
const MIGRATION_LOCK = 0x57617264 // 'Ward'

/**
 * Bring the schema up to date on `client` and return the migrations this call applied. Under a
 * session advisory lock scoped to the schema, so instances starting together wait for each other
 * instead of racing; each migration commits with its row in `warden_migrations`, so one that
 * fails leaves the earlier ones applied and itself not at all.
 */
export async function applyMigrations(
  client: pg.ClientBase,
  schema: string | undefined,
): Promise<Migration[]> {
  const scope = schema ?? 'public'
  await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK, scope])
  try {
    // Inside the lock: two first starts would otherwise race on creating the schema itself.
    if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted(schema)}`)
    await client.query(
      `CREATE TABLE IF NOT EXISTS warden_migrations (
         version INTEGER PRIMARY KEY,
         name TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
    )
    const done = await client.query<{ version: number }>('SELECT version FROM warden_migrations')
    const applied = new Set(done.rows.map((r) => r.version))
    const todo = MIGRATIONS.filter((m) => !applied.has(m.version))
    for (const m of todo) await applyOne(client, m)
    return todo
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK, scope])
  }
}

async function applyOne(client: pg.ClientBase, m: Migration): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query(m.sql)
    await client.query('INSERT INTO warden_migrations (version, name) VALUES ($1, $2)', [
      m.version,
      m.name,
    ])
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {
      cause: err,
    })
  }
}

/** A schema name Warden accepts: a plain lower-case identifier, so it needs no escaping. */
export function checkSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new Error(
      `invalid PostgreSQL schema name \`${schema}\`: use lower-case letters, digits and _`,
    )
  return schema
}

export const quoted = (identifier: string) => `"${checkSchemaName(identifier)}"`
