import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import {
  encodeInput,
  GENESIS_HASH,
  parseStored,
  seal,
  type AuditEvent,
  type AuditEventInput,
} from '../audit/event.js'
import { WardenError } from '../domain/errors.js'
import type { ApprovalRecord, ApprovalStatus, AuditQuery, Store, StoredEvent } from './types.js'

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
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('pending','approved','denied','expired')),
  expires_at TEXT NOT NULL,
  executed_at TEXT,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, expires_at);
`

interface Pending {
  events: AuditEventInput[]
  /** JSON text of each event, made outside the write transaction. */
  encoded: string[]
  sealed: AuditEvent[]
  resolve: (sealed: AuditEvent[]) => void
  reject: (err: Error) => void
}

/**
 * Embedded store on better-sqlite3 in WAL mode with `synchronous=FULL`: a resolved `append` has
 * reached the disk. Concurrent appends are committed together in one transaction (group
 * commit), which is what makes durable writes cheap. The head of the chain is read inside an
 * IMMEDIATE transaction, so two processes sharing the file still produce one chain.
 */
export function sqliteStore(path: string): Store {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  db.exec(SCHEMA)

  const head = db.prepare<[], { seq: number; hash: string }>(
    'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
  )
  const insert = db.prepare(
    `INSERT INTO audit_events (seq, id, type, timestamp, request_id, agent_id, tool, session_id, decision, code, reason, risk_level, body, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const writeBatch = db.transaction((batch: Pending[]): void => {
    const last = head.get()
    let seq = last?.seq ?? 0
    let prev = last?.hash ?? GENESIS_HASH
    for (const p of batch) {
      p.events.forEach((e, i) => {
        const { body, hash } = seal(p.encoded[i]!, ++seq, prev)
        insert.run(
          seq,
          e.id,
          e.type,
          e.timestamp,
          e.request_id,
          e.agent_id,
          e.tool,
          e.session_id,
          e.decision,
          e.code,
          e.reason,
          e.risk.level,
          body,
          hash,
        )
        p.sealed.push({ ...e, seq, prev_hash: prev, hash })
        prev = hash
      })
    }
  })

  let queue: Pending[] = []
  let scheduled = false
  const flush = () => {
    scheduled = false
    const batch = queue
    queue = []
    try {
      writeBatch.immediate(batch)
      for (const p of batch) p.resolve(p.sealed)
    } catch (err) {
      const failure = new WardenError(
        'audit_unavailable',
        `audit store write failed: ${(err as Error).message}`,
      )
      for (const p of batch) p.reject(failure)
    }
  }

  const approvalRow = db.prepare<[string], { record: string }>(
    'SELECT record FROM approvals WHERE id = ?',
  )

  return {
    append(events) {
      if (!db.open)
        return Promise.reject(new WardenError('audit_unavailable', 'audit store is closed'))
      let encoded: string[]
      try {
        encoded = events.map(encodeInput)
      } catch (err) {
        // Only this caller's events are bad (e.g. a value with no JSON form); the batch is not touched.
        return Promise.reject(
          new WardenError(
            'audit_unavailable',
            `event cannot be encoded: ${(err as Error).message}`,
          ),
        )
      }
      return new Promise((resolve, reject) => {
        queue.push({ events, encoded, sealed: [], resolve, reject })
        if (!scheduled) {
          scheduled = true
          setImmediate(flush)
        }
      })
    },
    async query(q: AuditQuery) {
      const { sql, args } = buildQuery(q)
      return db
        .prepare<unknown[], StoredEvent>(sql)
        .all(...args)
        .map(parseStored)
    },
    async *scan(pageSize = 1000) {
      const page = db.prepare<[number, number], StoredEvent & { seq: number }>(
        'SELECT seq, body, hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?',
      )
      let after = 0
      for (;;) {
        const rows = page.all(after, pageSize)
        if (rows.length === 0) return
        after = rows[rows.length - 1]!.seq
        yield rows.map(({ body, hash }) => ({ body, hash }))
      }
    },
    async counts() {
      const rows = db
        .prepare(
          `SELECT type, decision, agent_id, tool, risk_level, count(*) AS n FROM audit_events GROUP BY 1, 2, 3, 4, 5`,
        )
        .all() as {
        type: string
        decision: string
        agent_id: string
        tool: string
        risk_level: string
        n: number
      }[]
      const denyReasons = db
        .prepare(
          `SELECT reason, count(*) AS n FROM audit_events WHERE decision = 'deny' GROUP BY reason ORDER BY n DESC LIMIT 10`,
        )
        .all() as { reason: string; n: number }[]
      return { rows, denyReasons }
    },
    async createApproval(record) {
      db.prepare(
        'INSERT INTO approvals (id, status, expires_at, executed_at, record) VALUES (?, ?, ?, NULL, ?)',
      ).run(record.id, record.status, record.expires_at, JSON.stringify(record))
    },
    async getApproval(id) {
      const row = approvalRow.get(id)
      return row ? (JSON.parse(row.record) as ApprovalRecord) : null
    },
    async listApprovals(status?: ApprovalStatus) {
      const rows = (
        status
          ? db
              .prepare('SELECT record FROM approvals WHERE status = ? ORDER BY expires_at')
              .all(status)
          : db.prepare('SELECT record FROM approvals ORDER BY expires_at').all()
      ) as { record: string }[]
      return rows.map((r) => JSON.parse(r.record) as ApprovalRecord)
    },
    async resolveApproval(id, to, by, comment, now) {
      // Compare-and-set in one statement: only one resolver can move a pending approval.
      const expiryGuard = to === 'expired' ? 'expires_at <= @now' : 'expires_at > @now'
      const changed = db
        .prepare(
          `UPDATE approvals SET status = @to,
             record = json_set(record, '$.status', @to, '$.decided_by', @by, '$.decided_at', @now, '$.comment', @comment)
           WHERE id = @id AND status = 'pending' AND ${expiryGuard}`,
        )
        .run({ id, to, by, comment, now }).changes
      return changed === 1
    },
    async recordExecution(id, outcome, result, now) {
      const changed = db
        .prepare(
          `UPDATE approvals SET executed_at = @now,
             record = json_set(record, '$.executed_at', @now, '$.outcome', @outcome, '$.result', json(@result))
           WHERE id = @id AND status = 'approved' AND executed_at IS NULL`,
        )
        .run({ id, now, outcome, result: JSON.stringify(result ?? null) }).changes
      return changed === 1
    },
    async expiredPending(now) {
      const rows = db
        .prepare(`SELECT record FROM approvals WHERE status = 'pending' AND expires_at <= ?`)
        .all(now) as { record: string }[]
      return rows.map((r) => JSON.parse(r.record) as ApprovalRecord)
    },
    async health() {
      try {
        db.prepare('SELECT 1').get()
        return { ok: true, detail: `sqlite ${path}` }
      } catch (err) {
        return { ok: false, detail: (err as Error).message }
      }
    },
    async close() {
      if (queue.length > 0) flush()
      if (db.open) db.close()
    },
  }
}

const FILTERS: [keyof AuditQuery, string][] = [
  ['agent_id', 'agent_id = ?'],
  ['tool', 'tool = ?'],
  ['decision', 'decision = ?'],
  ['type', 'type = ?'],
  ['session_id', 'session_id = ?'],
  ['risk_level', 'risk_level = ?'],
  ['from', 'timestamp >= ?'],
  ['to', 'timestamp <= ?'],
  ['after_seq', 'seq > ?'],
]

function buildQuery(q: AuditQuery): { sql: string; args: unknown[] } {
  const where: string[] = []
  const args: unknown[] = []
  for (const [key, clause] of FILTERS) {
    if (q[key] !== undefined) {
      where.push(clause)
      args.push(q[key])
    }
  }
  if (q.text) {
    where.push(
      `(instr(lower(reason), ?) > 0 OR instr(lower(agent_id), ?) > 0 OR instr(lower(tool), ?) > 0 OR request_id = ?)`,
    )
    const t = q.text.toLowerCase()
    args.push(t, t, t, q.text)
  }
  const order = q.order === 'asc' ? 'ASC' : 'DESC'
  const sql = `SELECT body, hash FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${order} LIMIT ?`
  args.push(Math.min(Math.max(q.limit ?? 100, 1), 10_000))
  return { sql, args }
}
