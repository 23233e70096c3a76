import type pg from 'pg'
import {
  encodeInput,
  parseStored,
  seal,
  type AuditEvent,
  type AuditEventInput,
  type StoredEvent,
} from '../domain/audit-event.js'
import {
  batchCounts,
  MAX_DENY_REASONS,
  MAX_GROUPS,
  OTHER_NAMES,
  OTHER_REASONS,
  TOP_REASONS,
} from './counts.js'
import { asStoreError, StoreError } from './errors.js'
import { column, inTransaction, nullable, query } from './postgres-pool.js'
import { queryLimit } from './query.js'
import type { AuditLog, AuditQuery } from './types.js'

interface Pending {
  events: AuditEventInput[]
  /** JSON text of each event, made before it joins a batch. */
  encoded: string[]
  resolve: (sealed: AuditEvent[]) => void
  reject: (err: Error) => void
}

/** The channel each append transaction notifies with its last `seq` (as text). */
export const AUDIT_CHANNEL = 'warden_audit'

const unavailable = (message: string) => new StoreError('audit_unavailable', message)

/**
 * The PostgreSQL audit log. One transaction at a time per process; appends that arrive while it
 * runs form the next batch (group commit). Across processes, each batch locks the `audit_head`
 * row, so every instance appends to one chain, batches one after another.
 */
export function postgresAuditLog(pool: pg.Pool): {
  log: AuditLog
  close(): Promise<void>
} {
  let queue: Pending[] = []
  let inFlight = false
  let closed = false
  let drained: (() => void) | null = null

  const flush = () => {
    if (inFlight || queue.length === 0) return drained?.()
    const batch = queue
    queue = []
    inFlight = true
    writeBatch(pool, batch)
      .then(
        (sealed) => batch.forEach((p, i) => p.resolve(sealed[i]!)),
        (err: unknown) => {
          const failure = asStoreError('audit_unavailable', err)
          for (const p of batch) p.reject(failure)
        },
      )
      .finally(() => {
        inFlight = false
        flush()
      })
  }

  const log: AuditLog = {
    append(events) {
      if (closed) return Promise.reject(unavailable('audit store is closed'))
      let encoded: string[]
      try {
        encoded = events.map(encodeInput)
      } catch (err) {
        // Only this caller's events are bad (e.g. a value with no JSON form); no batch is touched.
        return Promise.reject(unavailable(`event cannot be encoded: ${(err as Error).message}`))
      }
      return new Promise((resolve, reject) => {
        queue.push({ events, encoded, resolve, reject })
        flush()
      })
    },
    async query(q) {
      return (await log.queryStored(q)).map(parseStored)
    },
    async queryStored(q) {
      const { sql, args } = buildQuery(q)
      const { rows } = await query<StoredEvent & { bytes?: number; trimmed?: boolean }>(
        pool,
        'audit_unavailable',
        sql,
        args,
      )
      return rows.map(({ body, hash, trimmed, bytes }) => ({
        body: trimmed ? JSON.stringify({ ...JSON.parse(body), truncated: true, bytes }) : body,
        hash,
      }))
    },
    async *scan(pageSize = 1000) {
      let after = 0
      for (;;) {
        const { rows } = await query<StoredEvent & { seq: string }>(
          pool,
          'audit_unavailable',
          'SELECT seq, body, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2',
          [after, pageSize],
        )
        if (rows.length === 0) return
        after = Number(rows[rows.length - 1]!.seq)
        yield rows.map(({ body, hash }) => ({ body, hash }))
      }
    },
    async counts() {
      const [rows, reasons] = await Promise.all([
        query<{
          type: string
          decision: string
          agent_id: string
          tool: string
          risk_level: string
          n: string
        }>(
          pool,
          'audit_unavailable',
          'SELECT type, decision, agent_id, tool, risk_level, n FROM audit_counts',
        ),
        query<{ reason: string; n: string }>(
          pool,
          'audit_unavailable',
          'SELECT reason, n FROM audit_deny_reasons ORDER BY n DESC, reason LIMIT $1',
          [TOP_REASONS],
        ),
      ])
      return {
        rows: rows.rows.map((r) => ({ ...r, n: Number(r.n) })),
        denyReasons: reasons.rows.map((r) => ({ reason: r.reason, n: Number(r.n) })),
      }
    },
  }
  return {
    log,
    async close() {
      closed = true
      if (inFlight || queue.length > 0) await new Promise<void>((resolve) => (drained = resolve))
    },
  }
}

/**
 * Append one batch in one transaction: lock the chain head, seal each event after it, insert,
 * add to the counters, move the head, notify, commit. Resolves with each caller's events.
 */
async function writeBatch(pool: pg.Pool, batch: Pending[]): Promise<AuditEvent[][]> {
  const items = batch.flatMap((p) => p.events.map((e, i) => ({ e, encoded: p.encoded[i]! })))
  if (items.length === 0) return batch.map(() => [])
  const sealed = await inTransaction(pool, 'audit_unavailable', async (client) => {
    // INVARIANT: the head row stays locked until COMMIT, so no other transaction (of any
    // instance) reads the same head: the chain has no fork and no gap.
    const head = await client.query<{ seq: string; hash: string }>(
      'SELECT seq, hash FROM audit_head FOR UPDATE',
    )
    const at = head.rows[0]
    if (!at) throw new Error('the audit_head row is missing')
    let seq = Number(at.seq)
    let prev = at.hash
    const rows = items.map(({ e, encoded }) => {
      seq++
      const { body, hash } = seal(encoded, seq, prev)
      const event: AuditEvent = { ...e, seq, prev_hash: prev, hash }
      prev = hash
      return { event, body }
    })
    await insertEvents(client, rows)
    // INVARIANT: the counters change in the transaction that appends, so they always agree.
    await addCounts(
      client,
      rows.map((r) => r.event),
    )
    await client.query('UPDATE audit_head SET seq = $1, hash = $2', [seq, prev])
    await client.query('SELECT pg_notify($1, $2)', [AUDIT_CHANNEL, String(seq)])
    return rows.map((r) => r.event)
  })
  let k = 0
  return batch.map((p) => sealed.slice(k, (k += p.events.length)))
}

/** One INSERT for the whole batch: each column as an array, unnested into rows. */
async function insertEvents(
  client: pg.ClientBase,
  rows: { event: AuditEvent; body: string }[],
): Promise<void> {
  const col = <T>(f: (r: { event: AuditEvent; body: string }) => T) => rows.map(f)
  await client.query(
    `INSERT INTO audit_events (seq, id, type, timestamp, request_id, agent_id, tool, session_id,
                               decision, code, reason, risk_level, body, hash)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                          $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                          $13::text[], $14::text[])`,
    [
      col((r) => r.event.seq),
      col((r) => column(r.event.id)),
      col((r) => r.event.type),
      col((r) => column(r.event.timestamp)),
      col((r) => column(r.event.request_id)),
      col((r) => column(r.event.agent_id)),
      col((r) => column(r.event.tool)),
      col((r) => nullable(r.event.session_id)),
      col((r) => r.event.decision),
      col((r) => nullable(r.event.code)),
      col((r) => column(r.event.reason)),
      col((r) => column(r.event.risk.level)),
      col((r) => r.body),
      col((r) => r.event.hash),
    ],
  )
}

const GROUP_MATCH = `c.type = b.type AND c.decision = b.decision AND c.agent_id = b.agent_id
  AND c.tool = b.tool AND c.risk_level = b.risk_level`
const GROUP_ROWS = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])`

/**
 * Add a batch to the `/stats` counters (counts.ts) with set statements, within the append's
 * transaction: known groups and reasons are bumped; new ones keep their names while there is
 * room under the cap, in the order they first appear, and the rest are counted together, which
 * is what adding them one at a time would do.
 */
async function addCounts(client: pg.ClientBase, events: AuditEvent[]): Promise<void> {
  const { groups, reasons } = batchCounts(
    events.map((e) => ({
      type: e.type,
      decision: e.decision,
      agent_id: column(e.agent_id),
      tool: column(e.tool),
      risk_level: column(e.risk.level),
      reason: column(e.reason),
    })),
  )
  const g = [
    groups.map((x) => x.type),
    groups.map((x) => x.decision),
    groups.map((x) => x.agent_id),
    groups.map((x) => x.tool),
    groups.map((x) => x.risk_level),
    groups.map((x) => x.n),
  ]
  await client.query(
    `UPDATE audit_counts c SET n = c.n + b.n
     FROM ${GROUP_ROWS} AS b(type, decision, agent_id, tool, risk_level, n) WHERE ${GROUP_MATCH}`,
    g,
  )
  await client.query(
    `WITH b AS (SELECT * FROM ${GROUP_ROWS} WITH ORDINALITY
                AS b(type, decision, agent_id, tool, risk_level, n, ord)),
          fresh AS (SELECT b.*, row_number() OVER (ORDER BY ord) AS rank FROM b
                    WHERE NOT EXISTS (SELECT 1 FROM audit_counts c WHERE ${GROUP_MATCH})),
          room AS (SELECT $7::bigint - count(*) AS room FROM audit_counts)
     INSERT INTO audit_counts (type, decision, agent_id, tool, risk_level, n)
     SELECT type, decision, CASE WHEN rank <= room THEN agent_id ELSE $8 END,
            CASE WHEN rank <= room THEN tool ELSE $8 END, risk_level, sum(n)
     FROM fresh, room GROUP BY 1, 2, 3, 4, 5
     ON CONFLICT (type, decision, agent_id, tool, risk_level)
     DO UPDATE SET n = audit_counts.n + excluded.n`,
    [...g, MAX_GROUPS, OTHER_NAMES],
  )
  if (reasons.size === 0) return
  const r = [[...reasons.keys()], [...reasons.values()]]
  await client.query(
    `UPDATE audit_deny_reasons c SET n = c.n + b.n
     FROM unnest($1::text[], $2::bigint[]) AS b(reason, n) WHERE c.reason = b.reason`,
    r,
  )
  await client.query(
    `WITH b AS (SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS b(reason, n, ord)),
          fresh AS (SELECT b.*, row_number() OVER (ORDER BY ord) AS rank FROM b
                    WHERE NOT EXISTS (SELECT 1 FROM audit_deny_reasons c WHERE c.reason = b.reason)),
          room AS (SELECT $3::bigint - count(*) AS room FROM audit_deny_reasons)
     INSERT INTO audit_deny_reasons (reason, n)
     SELECT CASE WHEN rank <= room THEN reason ELSE $4 END, sum(n) FROM fresh, room GROUP BY 1
     ON CONFLICT (reason) DO UPDATE SET n = audit_deny_reasons.n + excluded.n`,
    [...r, MAX_DENY_REASONS, OTHER_REASONS],
  )
}

const FILTERS: [keyof AuditQuery, string][] = [
  ['agent_id', 'agent_id = $'],
  ['tool', 'tool = $'],
  ['decision', 'decision = $'],
  ['type', 'type = $'],
  ['session_id', 'session_id = $'],
  ['risk_level', 'risk_level = $'],
  ['from', 'timestamp >= $'],
  ['to', 'timestamp <= $'],
  ['after_seq', 'seq > $'],
  ['before_seq', 'seq < $'],
  ['principal', "(body::json ->> 'principal') = $"],
]

/** Lower-case ASCII letters only, as SQLite's lower() and the memory backend do. */
const asciiLower = (col: string) =>
  `translate(${col}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')`

/**
 * Oversized events trimmed inside PostgreSQL, so their text never reaches the JavaScript heap:
 * the fields but `params` and `result`, in their stored order (then `truncated` and `bytes`
 * are added as the other backends add them).
 */
const TRIMMED_BODY = `CASE WHEN octet_length(body) > $1 THEN
    (SELECT json_object_agg(f.key, f.value ORDER BY f.n)::text
     FROM json_each(body::json) WITH ORDINALITY AS f(key, value, n)
     WHERE f.key NOT IN ('params', 'result'))
  ELSE body END AS body,
  octet_length(body) > $1 AS trimmed, octet_length(body) AS bytes`

function buildQuery(q: AuditQuery): { sql: string; args: unknown[] } {
  const where: string[] = []
  const args: unknown[] = []
  const arg = (value: unknown) => `$${args.push(value)}`
  const trim = q.max_event_bytes !== undefined
  if (trim) arg(q.max_event_bytes)
  for (const [key, clause] of FILTERS) {
    if (q[key] !== undefined) where.push(clause + String(args.push(q[key])))
  }
  if (q.text) {
    const t = arg(q.text.toLowerCase())
    where.push(
      `(strpos(${asciiLower('reason')}, ${t}) > 0 OR strpos(${asciiLower('agent_id')}, ${t}) > 0
        OR strpos(${asciiLower('tool')}, ${t}) > 0 OR request_id = ${arg(q.text)})`,
    )
  }
  const order = q.order === 'asc' ? 'ASC' : 'DESC'
  const limit = arg(queryLimit(q))
  const sql = `SELECT ${trim ? TRIMMED_BODY : 'body'}, hash FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${order} LIMIT ${limit}`
  return { sql, args }
}
