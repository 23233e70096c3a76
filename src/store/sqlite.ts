import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import {
  encodeInput,
  parseStored,
  type AuditEvent,
  type AuditEventInput,
  type StoredEvent,
} from '../domain/audit-event.js'
import { WardenError, type ErrorCode } from '../domain/errors.js'
import type { WriterReply, WriterRequest, WriterRow } from './sqlite-writer.js'
import type { AuditCounts, ApprovalRecord, ApprovalStatus, AuditQuery, Store } from './types.js'

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
  agent_id TEXT NOT NULL,
  tool TEXT NOT NULL,
  args_hash TEXT NOT NULL,
  session_id TEXT,
  idempotency_key TEXT,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, expires_at);
CREATE INDEX IF NOT EXISTS approvals_agent ON approvals(agent_id, status);
CREATE TABLE IF NOT EXISTS used_nonces (
  nonce TEXT PRIMARY KEY,
  used_at TEXT NOT NULL
);
`

interface Pending {
  events: AuditEventInput[]
  /** JSON text of each event, made before it is handed to the writer. */
  encoded: string[]
  resolve: (sealed: AuditEvent[]) => void
  reject: (err: Error) => void
}

/** Start the writer thread; from source (tests, benchmarks) it loads through tsx like its caller. */
function startWriter(path: string): Worker {
  const workerData = { warden: 'audit-writer', path }
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./sqlite-writer.js', import.meta.url), { workerData })
  const source = fileURLToPath(new URL('./sqlite-writer.ts', import.meta.url))
  const boot = `require('tsx/cjs/api').register(); require(${JSON.stringify(source)})`
  return new Worker(boot, { eval: true, workerData })
}

/**
 * Embedded store on better-sqlite3 in WAL mode with `synchronous=FULL`: a resolved `append` has
 * reached the disk. Appends go to a writer thread (`sqlite-writer.ts`) one batch at a time;
 * whatever arrives while a batch is being committed forms the next batch (group commit), and
 * the event loop never blocks on an fsync. Reads and approvals use this thread's connection.
 */
export function sqliteStore(path: string): Store {
  if (path === ':memory:')
    throw new Error('the SQLite store needs a file: its writer thread opens it separately')
  mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  db.exec(SCHEMA)

  const writer = startWriter(path)
  let queue: Pending[] = []
  let inFlight: { id: number; batch: Pending[] } | null = null
  let nextId = 0
  let broken: string | null = null
  let drained: (() => void) | null = null

  const send = () => {
    if (inFlight || queue.length === 0) return drained?.()
    const batch = queue
    queue = []
    inFlight = { id: ++nextId, batch }
    const rows = batch.flatMap((p) =>
      p.events.map((e, i): WriterRow => [
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
        p.encoded[i]!,
      ]),
    )
    writer.postMessage({ kind: 'write', id: inFlight.id, rows } satisfies WriterRequest)
  }
  const fail = (batch: Pending[], message: string) => {
    const err = new WardenError('audit_unavailable', `audit store write failed: ${message}`)
    for (const p of batch) p.reject(err)
  }
  writer.on('message', (reply: WriterReply) => {
    const batch = inFlight?.batch ?? []
    inFlight = null
    if (!reply.ok) fail(batch, reply.message)
    else {
      let k = 0
      let prev = reply.prevHash
      for (const p of batch) {
        p.resolve(
          p.events.map((e) => {
            const event = { ...e, seq: reply.firstSeq + k, prev_hash: prev, hash: reply.hashes[k]! }
            prev = event.hash
            k++
            return event
          }),
        )
      }
    }
    send()
  })
  const die = (message: string) => {
    // INVARIANT: with the writer gone nothing can be made durable, so every append fails from now on.
    broken ??= message
    fail([...(inFlight?.batch ?? []), ...queue], message)
    inFlight = null
    queue = []
    drained?.()
  }
  writer.on('error', (err) => die(`audit writer failed: ${err.message}`))
  writer.on('exit', (code) => die(`audit writer exited (${code})`))

  const approvalRow = db.prepare<[string], { record: string }>(
    'SELECT record FROM approvals WHERE id = ?',
  )

  const store: Store = {
    append(events) {
      if (broken) return Promise.reject(new WardenError('audit_unavailable', broken))
      let encoded: string[]
      try {
        encoded = events.map(encodeInput)
      } catch (err) {
        // Only this caller's events are bad (e.g. a value with no JSON form); no batch is touched.
        return Promise.reject(
          new WardenError(
            'audit_unavailable',
            `event cannot be encoded: ${(err as Error).message}`,
          ),
        )
      }
      return new Promise((resolve, reject) => {
        queue.push({ events, encoded, resolve, reject })
        send()
      })
    },
    async query(q: AuditQuery) {
      return (await store.queryStored(q)).map(parseStored)
    },
    async queryStored(q: AuditQuery) {
      const { sql, args } = buildQuery(q)
      return db.prepare<unknown[], StoredEvent>(sql).all(...args)
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
        .all() as AuditCounts['rows']
      const denyReasons = db
        .prepare(
          `SELECT reason, count(*) AS n FROM audit_events WHERE decision = 'deny' GROUP BY reason ORDER BY n DESC LIMIT 10`,
        )
        .all() as { reason: string; n: number }[]
      return { rows, denyReasons }
    },
    async createApproval(r) {
      db.prepare(
        `INSERT INTO approvals (id, status, expires_at, executed_at, agent_id, tool, args_hash, session_id, idempotency_key, record)
         VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)`,
      ).run(
        r.id,
        r.status,
        r.expires_at,
        r.agent_id,
        r.tool,
        r.args_hash,
        r.session_id,
        r.idempotency_key,
        JSON.stringify(r),
      )
    },
    async countPending(agentId, now) {
      const row = db
        .prepare(
          `SELECT count(*) AS n FROM approvals WHERE agent_id = ? AND status = 'pending' AND expires_at > ?`,
        )
        .get(agentId, now) as { n: number }
      return row.n
    },
    async findPending(agentId, match, now) {
      const row = (
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
              .get(agentId, match.tool, match.argsHash, match.sessionId, now)
      ) as { record: string } | undefined
      return row ? (JSON.parse(row.record) as ApprovalRecord) : null
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
    async reopenApproval(id, from, by) {
      const changed = db
        .prepare(
          `UPDATE approvals SET status = 'pending',
             record = json_set(record, '$.status', 'pending', '$.decided_by', NULL, '$.decided_at', NULL, '$.comment', NULL)
           WHERE id = ? AND status = ? AND json_extract(record, '$.decided_by') = ? AND executed_at IS NULL`,
        )
        .run(id, from, by).changes
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
    async useNonce(nonce, now) {
      // The primary key makes the first use win; every later use is a replay.
      return (
        db
          .prepare('INSERT OR IGNORE INTO used_nonces (nonce, used_at) VALUES (?, ?)')
          .run(nonce, now).changes === 1
      )
    },
    async expiredPending(now) {
      const rows = db
        .prepare(`SELECT record FROM approvals WHERE status = 'pending' AND expires_at <= ?`)
        .all(now) as { record: string }[]
      return rows.map((r) => JSON.parse(r.record) as ApprovalRecord)
    },
    async health() {
      if (broken) return { ok: false, detail: broken }
      try {
        db.prepare('SELECT 1').get()
        return { ok: true, detail: `sqlite ${path}` }
      } catch (err) {
        return { ok: false, detail: (err as Error).message }
      }
    },
    async close() {
      if (inFlight || queue.length > 0) await new Promise<void>((resolve) => (drained = resolve))
      broken ??= 'audit store is closed'
      writer.removeAllListeners('exit')
      await writer.terminate()
      if (db.open) db.close()
    },
  }
  // A failing read or write is a dependency outage: callers get the store's 503 code, never a
  // raw database error (which the HTTP layer would have to guess a code for).
  failAs(store, ['query', 'counts'], 'audit_unavailable')
  failAs(store, APPROVAL_METHODS, 'approval_store_unavailable')
  return store
}

const APPROVAL_METHODS = [
  'createApproval',
  'countPending',
  'findPending',
  'getApproval',
  'listApprovals',
  'resolveApproval',
  'reopenApproval',
  'recordExecution',
  'useNonce',
  'expiredPending',
] as const satisfies readonly (keyof Store)[]

/** Wrap `methods` of `store` so that any failure they throw becomes a `WardenError(code)`. */
function failAs(store: Store, methods: readonly (keyof Store)[], code: ErrorCode): void {
  const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  for (const name of methods) {
    const method = target[name]!
    target[name] = async (...args) => {
      try {
        return await method(...args)
      } catch (err) {
        throw err instanceof WardenError
          ? err
          : new WardenError(code, `store failed: ${(err as Error).message}`)
      }
    }
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
