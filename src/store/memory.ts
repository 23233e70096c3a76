import {
  encodeInput,
  GENESIS_HASH,
  parseStored,
  seal,
  type AuditEvent,
  type AuditEventInput,
  type StoredEvent,
} from '../domain/audit-event.js'
import {
  batchCounts,
  groupKey,
  lumped,
  MAX_DENY_REASONS,
  MAX_GROUPS,
  OTHER_REASONS,
  topReasons,
  type CountGroup,
} from './counts.js'
import { StoreError, storeCall, type StoreErrorCode } from './errors.js'
import { queryLimit } from './query.js'
import type {
  ApprovalRecord,
  ApprovalStore,
  AuditCounts,
  IdempotencyStore,
  AuditLog,
  AuditQuery,
  NonceStore,
  Stores,
} from './types.js'

/** A stored event with the fields queries filter on, as the SQLite columns hold them. */
interface Row extends StoredEvent {
  seq: number
  input: AuditEventInput
}

/**
 * Every capability in this process's memory, with the SQLite backend's semantics (the same
 * contract suite runs on both): a sealed hash chain from `seq` 1, compare-and-set approvals,
 * single-use nonces. For tests and throwaway worlds (demo scenarios, replays): it keeps every
 * event and approval until it is dropped and bounds nothing, so it is never the gateway's store
 * for real traffic. After `close()` every call throws, as a lost database would.
 */
export function memoryStores(): Stores {
  let closed = false
  const open = (code: StoreErrorCode) => {
    if (closed) throw new StoreError(code, 'memory store is closed')
  }
  return {
    kind: 'memory',
    audit: memoryAuditLog(() => open('audit_unavailable')),
    approvals: memoryApprovals(() => open('approval_store_unavailable')),
    nonces: memoryNonces(() => open('approval_store_unavailable')),
    idempotency: memoryIdempotency(() => open('idempotency_store_unavailable')),
    async health() {
      return closed
        ? { ok: false, detail: 'memory store is closed' }
        : { ok: true, detail: 'memory' }
    },
    async close() {
      closed = true
    },
  }
}

function memoryAuditLog(check: () => void): AuditLog {
  const rows: Row[] = []
  const counters = memoryCounters()
  const head = () => rows[rows.length - 1]?.hash ?? GENESIS_HASH
  const select = (q: AuditQuery): StoredEvent[] => {
    check()
    const hits = rows.filter((r) => matches(r, q))
    if (q.order !== 'asc') hits.reverse()
    return hits.slice(0, queryLimit(q)).map(({ body, hash }) => ({
      body: q.max_event_bytes === undefined ? body : trimmed(body, q.max_event_bytes),
      hash,
    }))
  }
  const log: AuditLog = {
    async append(events) {
      check()
      let encoded: string[]
      try {
        encoded = events.map(encodeInput)
      } catch (err) {
        throw new StoreError(
          'audit_unavailable',
          `event cannot be encoded: ${(err as Error).message}`,
        )
      }
      // One synchronous step: no other append can interleave, so the batch is contiguous, and
      // the counters always describe exactly the events kept.
      const sealed = events.map((input, i): AuditEvent => {
        const seq = rows.length + 1
        const prev_hash = head()
        const { body, hash } = seal(encoded[i]!, seq, prev_hash)
        rows.push({ seq, body, hash, input })
        return { ...input, seq, prev_hash, hash }
      })
      counters.add(events)
      return sealed
    },
    async query(q) {
      return select(q).map(parseStored)
    },
    async queryStored(q) {
      return select(q)
    },
    async *scan(pageSize = 1000) {
      // By position, so events appended during the scan are read too (as SQLite's `seq > ?`).
      for (let at = 0; ; at += pageSize) {
        check()
        const page = rows.slice(at, at + pageSize)
        if (page.length === 0) return
        yield page.map(({ body, hash }) => ({ body, hash }))
      }
    },
    async counts() {
      check()
      return counters.read()
    },
  }
  return log
}

/** SQLite's `lower()`: ASCII letters only, so both backends match the same text. */
const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase())

/** An event's text without `params` and `result` when it is longer than `max` bytes (as SQLite). */
function trimmed(body: string, max: number): string {
  const bytes = Buffer.byteLength(body)
  if (bytes <= max) return body
  const { params: _p, result: _r, ...rest } = JSON.parse(body) as Record<string, unknown>
  return JSON.stringify({ ...rest, truncated: true, bytes })
}

function matches({ seq, input: e }: Row, q: AuditQuery): boolean {
  if (q.agent_id !== undefined && e.agent_id !== q.agent_id) return false
  if (q.tool !== undefined && e.tool !== q.tool) return false
  if (q.decision !== undefined && e.decision !== q.decision) return false
  if (q.type !== undefined && e.type !== q.type) return false
  if (q.session_id !== undefined && e.session_id !== q.session_id) return false
  if (q.risk_level !== undefined && e.risk.level !== q.risk_level) return false
  if (q.from !== undefined && e.timestamp < q.from) return false
  if (q.to !== undefined && e.timestamp > q.to) return false
  if (q.after_seq !== undefined && seq <= q.after_seq) return false
  if (q.before_seq !== undefined && seq >= q.before_seq) return false
  if (q.principal !== undefined && e.principal !== q.principal) return false
  if (q.text) {
    const t = q.text.toLowerCase()
    const found = [e.reason, e.agent_id, e.tool].some((f) => asciiLower(f).includes(t))
    if (!found && e.request_id !== q.text) return false
  }
  return true
}

/** The `/stats` counters (counts.ts) in two maps, bounded as SQLite's tables are. */
function memoryCounters() {
  const groups = new Map<string, CountGroup>()
  const reasons = new Map<string, number>()
  const addGroup = (g: CountGroup) => {
    const key = groupKey(g)
    const kept = groups.get(key)
    if (kept) kept.n += g.n
    else if (groups.size < MAX_GROUPS) groups.set(key, { ...g })
    else {
      const other = lumped(g)
      const otherKey = groupKey(other)
      const current = groups.get(otherKey)
      if (current) current.n += g.n
      else groups.set(otherKey, other)
    }
  }
  return {
    add(events: AuditEventInput[]) {
      const batch = batchCounts(events.map((e) => ({ ...e, risk_level: e.risk.level })))
      for (const g of batch.groups) addGroup(g)
      for (const [reason, n] of batch.reasons) {
        const key = reasons.has(reason) || reasons.size < MAX_DENY_REASONS ? reason : OTHER_REASONS
        reasons.set(key, (reasons.get(key) ?? 0) + n)
      }
    },
    read(): AuditCounts {
      return { rows: [...groups.values()].map((g) => ({ ...g })), denyReasons: topReasons(reasons) }
    },
  }
}

function memoryApprovals(check: () => void): ApprovalStore {
  // Records are kept as JSON text, as SQLite keeps them: callers never share an object with the
  // store, and what comes back is what JSON can carry.
  const records = new Map<string, string>()
  const all = () => [...records.values()].map((text) => JSON.parse(text) as ApprovalRecord)
  const load = (id: string) => {
    check()
    const text = records.get(id)
    return text === undefined ? null : (JSON.parse(text) as ApprovalRecord)
  }
  const save = (r: ApprovalRecord) =>
    storeCall('approval_store_unavailable', () => records.set(r.id, JSON.stringify(r)))
  const byExpiry = (rs: ApprovalRecord[]) =>
    rs.sort((a, b) => (a.expires_at < b.expires_at ? -1 : a.expires_at > b.expires_at ? 1 : 0))
  const pending = (agentId: string, now: string) => {
    check()
    return all().filter(
      (r) => r.agent_id === agentId && r.status === 'pending' && r.expires_at > now,
    )
  }
  return {
    async create(r) {
      check()
      if (records.has(r.id))
        throw new StoreError('approval_store_unavailable', `approval \`${r.id}\` already exists`)
      save(r)
    },
    async get(id) {
      return load(id)
    },
    async list(status) {
      check()
      return byExpiry(all().filter((r) => status === undefined || r.status === status))
    },
    async countPending(agentId, now) {
      return pending(agentId, now).length
    },
    async findPending(agentId, match, now) {
      const found = pending(agentId, now).find((r) =>
        'idempotencyKey' in match
          ? r.idempotency_key === match.idempotencyKey
          : r.tool === match.tool &&
            r.args_hash === match.argsHash &&
            r.session_id === match.sessionId,
      )
      return found ?? null
    },
    async resolve(id, to, by, comment, now) {
      const r = load(id)
      if (r?.status !== 'pending') return false
      // INVARIANT: as SQLite's one-statement UPDATE, check and set happen with nothing between.
      const expired = r.expires_at <= now
      if (expired !== (to === 'expired')) return false
      save({ ...r, status: to, decided_by: by, decided_at: now, comment })
      return true
    },
    async reopen(id, from, by) {
      const r = load(id)
      if (!r || r.status !== from || r.decided_by !== by || r.executed_at !== null) return false
      save({ ...r, status: 'pending', decided_by: null, decided_at: null, comment: null })
      return true
    },
    async recordExecution(id, outcome, result, now) {
      const r = load(id)
      if (!r || r.status !== 'approved' || r.executed_at !== null) return false
      save({ ...r, executed_at: now, outcome, result: result ?? null })
      return true
    },
    async expiredPending(now) {
      check()
      return byExpiry(all().filter((r) => r.status === 'pending' && r.expires_at <= now))
    },
  }
}

function memoryNonces(check: () => void): NonceStore {
  /** nonce → the time after which it can be forgotten. */
  const used = new Map<string, string>()
  return {
    async use(nonce, expiresAt, now = new Date().toISOString()) {
      check()
      // Forget what can no longer be replayed: the caller's `expiresAt` is past the last moment
      // its signature could verify.
      for (const [n, until] of used) if (until < now) used.delete(n)
      if (used.has(nonce)) return false
      used.set(nonce, expiresAt)
      return true
    },
  }
}

function memoryIdempotency(check: () => void): IdempotencyStore {
  interface Entry {
    fingerprint: string
    expiresAt: string
    /** The response as JSON text, once the request finished. */
    response: string | null
  }
  /** agent → key → entry. */
  const agents = new Map<string, Map<string, Entry>>()
  return {
    async reserve(agentId, key, fingerprint, expiresAt, maxKeys, now) {
      check()
      const keys = agents.get(agentId) ?? new Map<string, Entry>()
      agents.set(agentId, keys)
      for (const [k, e] of keys) if (e.expiresAt <= now) keys.delete(k)
      // One synchronous step from here: concurrent reservations cannot interleave.
      const found = keys.get(key)
      if (found)
        return found.response === null
          ? { kind: 'in_progress', fingerprint: found.fingerprint }
          : {
              kind: 'done',
              fingerprint: found.fingerprint,
              response: JSON.parse(found.response) as unknown,
            }
      if (keys.size >= maxKeys) return { kind: 'full' }
      keys.set(key, { fingerprint, expiresAt, response: null })
      return { kind: 'reserved' }
    },
    async complete(agentId, key, response) {
      check()
      const entry = agents.get(agentId)?.get(key)
      if (entry)
        entry.response = storeCall('idempotency_store_unavailable', () =>
          JSON.stringify(response ?? null),
        )
    },
    async release(agentId, key) {
      check()
      agents.get(agentId)?.delete(key)
    },
  }
}
