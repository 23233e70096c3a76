/**
 * The audit writer thread. It owns the only connection that appends to `audit_events`, so the
 * gateway's event loop never waits for an insert or an fsync: it hands over a batch, keeps
 * serving requests, and releases the batch's callers when this thread reports the commit.
 */
import { parentPort, workerData } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { GENESIS_HASH, seal } from '../domain/audit-event.js'
import {
  batchCounts,
  lumped,
  MAX_DENY_REASONS,
  MAX_GROUPS,
  OTHER_REASONS,
  type CountGroup,
} from './counts.js'

/** One event to append: its index columns, then its JSON text from `encodeInput`. */
export type WriterRow = [
  id: string,
  type: string,
  timestamp: string,
  request_id: string,
  agent_id: string,
  tool: string,
  session_id: string | null,
  decision: string,
  code: string | null,
  reason: string,
  risk_level: string,
  encoded: string,
]

export type WriterRequest = { kind: 'write'; id: number; rows: WriterRow[] }
export type WriterReply =
  | { id: number; ok: true; firstSeq: number; prevHash: string; hashes: string[] }
  | { id: number; ok: false; message: string }

/** Open the writer connection; the schema already exists (the store created it). */
export function openWriter(
  path: string,
): (rows: WriterRow[]) => Omit<Extract<WriterReply, { ok: true }>, 'id'> {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  // Every commit reaches the disk before its callers are released.
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  const head = db.prepare<[], { seq: number; hash: string }>(
    'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
  )
  const insert = db.prepare(
    `INSERT INTO audit_events (seq, id, type, timestamp, request_id, agent_id, tool, session_id, decision, code, reason, risk_level, body, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  )
  const count = counters(db)
  const write = db.transaction((rows: WriterRow[]) => {
    // Reading the head inside the IMMEDIATE transaction keeps one chain across processes.
    const last = head.get()
    const firstSeq = (last?.seq ?? 0) + 1
    const prevHash = last?.hash ?? GENESIS_HASH
    let prev = prevHash
    const hashes = rows.map((row, i) => {
      const { body, hash } = seal(row[11], firstSeq + i, prev)
      insert.run(firstSeq + i, ...row.slice(0, 11), body, hash)
      prev = hash
      return hash
    })
    // INVARIANT: the counters change in the transaction that appends, so they always agree.
    count(rows)
    return { ok: true as const, firstSeq, prevHash, hashes }
  })
  return (rows) => write.immediate(rows)
}

/** Add a batch to the `/stats` counters (counts.ts), within the caller's transaction. */
function counters(db: Database.Database): (rows: WriterRow[]) => void {
  const bump = db.prepare<CountGroup>(
    `UPDATE audit_counts SET n = n + @n
     WHERE type = @type AND decision = @decision AND agent_id = @agent_id AND tool = @tool AND risk_level = @risk_level`,
  )
  const upsert = db.prepare<CountGroup>(
    `INSERT INTO audit_counts (type, decision, agent_id, tool, risk_level, n)
     VALUES (@type, @decision, @agent_id, @tool, @risk_level, @n)
     ON CONFLICT (type, decision, agent_id, tool, risk_level) DO UPDATE SET n = n + excluded.n`,
  )
  const groups = db.prepare<[], number>('SELECT count(*) FROM audit_counts').pluck()
  const bumpReason = db.prepare<[number, string]>(
    'UPDATE audit_deny_reasons SET n = n + ? WHERE reason = ?',
  )
  const upsertReason = db.prepare<[string, number]>(
    `INSERT INTO audit_deny_reasons (reason, n) VALUES (?, ?)
     ON CONFLICT (reason) DO UPDATE SET n = n + excluded.n`,
  )
  const reasons = db.prepare<[], number>('SELECT count(*) FROM audit_deny_reasons').pluck()
  return (rows) => {
    const batch = batchCounts(
      rows.map((r) => ({
        type: r[1],
        agent_id: r[4],
        tool: r[5],
        decision: r[7],
        reason: r[9],
        risk_level: r[10],
      })),
    )
    for (const g of batch.groups) {
      if (bump.run(g).changes === 1) continue
      upsert.run((groups.get() ?? 0) < MAX_GROUPS ? g : lumped(g))
    }
    for (const [reason, n] of batch.reasons) {
      if (bumpReason.run(n, reason).changes === 1) continue
      const kept = (reasons.get() ?? 0) < MAX_DENY_REASONS
      upsertReason.run(kept ? reason : OTHER_REASONS, n)
    }
  }
}

if (parentPort && workerData?.warden === 'audit-writer') {
  const port = parentPort
  const write = openWriter(workerData.path as string)
  port.on('message', (req: WriterRequest) => {
    let reply: WriterReply
    try {
      reply = { id: req.id, ...write(req.rows) }
    } catch (err) {
      reply = { id: req.id, ok: false, message: (err as Error).message }
    }
    port.postMessage(reply)
  })
}
