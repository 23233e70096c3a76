import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Database } from 'better-sqlite3'
import {
  encodeInput,
  parseStored,
  type AuditEvent,
  type AuditEventInput,
  type StoredEvent,
} from '../domain/audit-event.js'
import { MAX_DENY_REASONS, MAX_GROUPS, OTHER_NAMES, OTHER_REASONS, TOP_REASONS } from './counts.js'
import { StoreError, storeCall } from './errors.js'
import type { WriterReply, WriterRequest, WriterRow } from './sqlite-writer.js'
import { queryLimit } from './query.js'
import type { AuditCounts, AuditLog, AuditQuery } from './types.js'

interface Pending {
  events: AuditEventInput[]
  /** JSON text of each event, made before it is handed to the writer. */
  encoded: string[]
  resolve: (sealed: AuditEvent[]) => void
  reject: (err: Error) => void
}

/** The SQLite audit log and what its bundle needs to report health and close it. */
export interface SqliteAuditLog {
  log: AuditLog
  /** Why appends fail from now on (the writer thread is gone), or null. */
  broken(): string | null
  /** Wait for the batches in flight, then stop the writer thread. */
  close(): Promise<void>
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

const unavailable = (message: string) => new StoreError('audit_unavailable', message)

/**
 * Appends go to a writer thread (`sqlite-writer.ts`) one batch at a time; whatever arrives while
 * a batch is being committed forms the next batch (group commit), and the event loop never
 * blocks on an fsync. Reads use `db`, this thread's connection.
 */
export function sqliteAuditLog(
  db: Database,
  path: string,
  started?: (writer: Worker) => void,
): SqliteAuditLog {
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
    const rows = batch.flatMap((p) => p.events.map((e, i) => writerRow(e, p.encoded[i]!)))
    writer.postMessage({ kind: 'write', id: inFlight.id, rows } satisfies WriterRequest)
  }
  const fail = (batch: Pending[], message: string) => {
    const err = unavailable(`audit store write failed: ${message}`)
    for (const p of batch) p.reject(err)
  }
  writer.on('message', (reply: WriterReply) => {
    const batch = inFlight?.batch ?? []
    inFlight = null
    if (reply.ok) release(batch, reply)
    else fail(batch, reply.message)
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
  started?.(writer)

  const read = <T>(fn: () => T) => storeCall('audit_unavailable', fn)
  const log: AuditLog = {
    append(events) {
      if (broken) return Promise.reject(unavailable(broken))
      let encoded: string[]
      try {
        encoded = events.map(encodeInput)
      } catch (err) {
        // Only this caller's events are bad (e.g. a value with no JSON form); no batch is touched.
        return Promise.reject(unavailable(`event cannot be encoded: ${(err as Error).message}`))
      }
      return new Promise((resolve, reject) => {
        queue.push({ events, encoded, resolve, reject })
        send()
      })
    },
    async query(q) {
      return (await log.queryStored(q)).map(parseStored)
    },
    async queryStored(q) {
      const { sql, args } = buildQuery(q)
      return read(() => db.prepare<unknown[], StoredEvent>(sql).all(...args))
    },
    async *scan(pageSize = 1000) {
      const page = read(() =>
        db.prepare<[number, number], StoredEvent & { seq: number }>(
          'SELECT seq, body, hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?',
        ),
      )
      let after = 0
      for (;;) {
        const rows = read(() => page.all(after, pageSize))
        if (rows.length === 0) return
        after = rows[rows.length - 1]!.seq
        yield rows.map(({ body, hash }) => ({ body, hash }))
      }
    },
    async counts() {
      return read(() => counts(db))
    },
  }
  return {
    log,
    broken: () => broken,
    async close() {
      if (inFlight || queue.length > 0) await new Promise<void>((resolve) => (drained = resolve))
      broken ??= 'audit store is closed'
      writer.removeAllListeners('exit')
      await writer.terminate()
    },
  }
}

/** Number and chain the events of a committed batch and release their callers, in order. */
function release(batch: Pending[], reply: Extract<WriterReply, { ok: true }>): void {
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

function writerRow(e: AuditEventInput, encoded: string): WriterRow {
  return [
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
    encoded,
  ]
}

/** The `/stats` counters: two small tables the writer keeps (counts.ts), never the log itself. */
function counts(db: Database): AuditCounts {
  const rows = db
    .prepare<[], AuditCounts['rows'][number]>(
      'SELECT type, decision, agent_id, tool, risk_level, n FROM audit_counts',
    )
    .all()
  const denyReasons = db
    .prepare<[number], { reason: string; n: number }>(
      'SELECT reason, n FROM audit_deny_reasons ORDER BY n DESC, reason LIMIT ?',
    )
    .all(TOP_REASONS)
  return { rows, denyReasons }
}

/**
 * A log written before the counters existed gets them once, at open, from one pass over the log:
 * the largest groups and reasons by name, the rest counted together as the writer would. Inside
 * an IMMEDIATE transaction, so no append (of any process) falls between the check and the fill.
 */
export function backfillCounts(db: Database): void {
  db.transaction(() => {
    if (db.prepare('SELECT 1 FROM audit_counts LIMIT 1').get()) return
    if (!db.prepare('SELECT 1 FROM audit_events LIMIT 1').get()) return
    // Ranked by size, the largest groups and reasons keep their names (as many as the writer
    // would keep); the rest are summed under the names the writer lumps them into.
    db.prepare(
      `WITH counted AS (
         SELECT type, decision, agent_id, tool, risk_level, count(*) AS n,
                row_number() OVER (ORDER BY count(*) DESC) AS rank
         FROM audit_events GROUP BY 1, 2, 3, 4, 5)
       INSERT INTO audit_counts (type, decision, agent_id, tool, risk_level, n)
       SELECT type, decision, agent_id, tool, risk_level, sum(n) FROM (
         SELECT type, decision, risk_level, n,
                iif(rank < @max, agent_id, @other) AS agent_id,
                iif(rank < @max, tool, @other) AS tool
         FROM counted)
       GROUP BY 1, 2, 3, 4, 5`,
    ).run({ max: MAX_GROUPS, other: OTHER_NAMES })
    db.prepare(
      `WITH counted AS (
         SELECT reason, count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS rank
         FROM audit_events WHERE decision = 'deny' GROUP BY reason)
       INSERT INTO audit_deny_reasons (reason, n)
       SELECT reason, sum(n) FROM (SELECT iif(rank < @max, reason, @other) AS reason, n FROM counted)
       GROUP BY 1`,
    ).run({ max: MAX_DENY_REASONS, other: OTHER_REASONS })
  }).immediate()
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
  ['before_seq', 'seq < ?'],
  ['principal', "json_extract(body, '$.principal') = ?"],
]

/** Oversized events trimmed inside SQLite, so their text never reaches the JavaScript heap. */
const TRIMMED_BODY = `CASE WHEN length(CAST(body AS BLOB)) > ?
  THEN json_set(json_remove(body, '$.params', '$.result'), '$.truncated', json('true'),
                '$.bytes', length(CAST(body AS BLOB)))
  ELSE body END AS body`

function buildQuery(q: AuditQuery): { sql: string; args: unknown[] } {
  const where: string[] = []
  const args: unknown[] = []
  const trim = q.max_event_bytes !== undefined
  if (trim) args.push(q.max_event_bytes)
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
  const sql = `SELECT ${trim ? TRIMMED_BODY : 'body'}, hash FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${order} LIMIT ?`
  args.push(queryLimit(q))
  return { sql, args }
}
