import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { verifyChain } from '../../src/audit/verify.js'
import {
  chainHash,
  GENESIS_HASH,
  parseStored,
  type AuditEventInput,
  type StoredEvent,
} from '../../src/domain/audit-event.js'
import { MAX_DENY_REASONS, MAX_GROUPS } from '../../src/store/counts.js'
import { sqliteStores } from '../../src/store/sqlite.js'
import { StoreError } from '../../src/store/errors.js'
import type { AuditCounts, Stores } from '../../src/store/types.js'
import { auditInput, BACKENDS } from './backends.js'

describe.each(BACKENDS)('audit log contract: %s', (_name, open) => {
  let stores: Stores
  afterEach(() => stores.close())

  it('numbers appended events from 1, in call order, each linked to the one before', async () => {
    stores = await open()
    const first = await stores.audit.append([auditInput({ id: 'a' }), auditInput({ id: 'b' })])
    const [c, d] = await Promise.all([
      stores.audit.append([auditInput({ id: 'c' })]),
      stores.audit.append([auditInput({ id: 'd' })]),
    ])
    const all = [...first, ...c!, ...d!]
    expect(all.map((e) => [e.id, e.seq])).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ])
    expect(all[0]!.prev_hash).toBe(GENESIS_HASH)
    for (let i = 1; i < all.length; i++) expect(all[i]!.prev_hash).toBe(all[i - 1]!.hash)
    const stored = await stores.audit.query({ order: 'asc' })
    expect(stored.map((e) => e.id)).toEqual(['a', 'b', 'c', 'd'])
    expect(stored).toEqual(all)
  })

  it('keeps a chain that verifies, whose head is the last hash', async () => {
    stores = await open()
    await stores.audit.append([auditInput(), auditInput()])
    const last = await stores.audit.append([auditInput({ reason: 'ünïcödé and "quotes"' })])
    expect(await verifyChain(stores.audit)).toEqual({ ok: true, checked: 3, head: last[0]!.hash })
  })

  it('stores the exact text the hash covers: seq and prev_hash first, then the event', async () => {
    stores = await open()
    const input = auditInput({ params: { note: 'line\nbreak', n: 1.5 } })
    const [sealed] = await stores.audit.append([input])
    const [row] = await stores.audit.queryStored({})
    const expected = `{"seq":1,"prev_hash":"${GENESIS_HASH}",${JSON.stringify(input).slice(1)}`
    expect(row).toEqual({ body: expected, hash: chainHash(GENESIS_HASH, expected) })
    expect(parseStored(row!)).toEqual(sealed)
  })

  it('fails only the append whose event cannot be encoded', async () => {
    stores = await open()
    const results = await Promise.allSettled([
      stores.audit.append([auditInput({ id: 'ok-1' })]),
      stores.audit.append([auditInput({ params: { n: 10n } })]),
      stores.audit.append([auditInput({ id: 'ok-2' })]),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    const err = (results[1] as PromiseRejectedResult).reason
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('audit_unavailable')
    expect((await stores.audit.query({ order: 'asc' })).map((e) => [e.id, e.seq])).toEqual([
      ['ok-1', 1],
      ['ok-2', 2],
    ])
    expect((await verifyChain(stores.audit)).ok).toBe(true)
  })

  it('filters on every field, newest first unless asked, within the limit', async () => {
    stores = await open()
    await stores.audit.append([
      auditInput({ id: 'e1', timestamp: '2030-01-01T00:00:01.000Z', session_id: 's1' }),
      auditInput({
        id: 'e2',
        timestamp: '2030-01-01T00:00:02.000Z',
        type: 'tool_call_denied',
        decision: 'deny',
        agent_id: 'hacker-bot',
        tool: 'issue_refund',
        reason: 'Tool `issue_refund` is NOT allowed',
        risk: { score: 90, level: 'critical' },
      }),
      auditInput({ id: 'e3', timestamp: '2030-01-01T00:00:03.000Z', session_id: 's1' }),
      auditInput({ id: 'e4', timestamp: '2030-01-01T00:00:04.000Z', request_id: 'REQ-Exact' }),
    ])
    const ids = async (q: Parameters<Stores['audit']['query']>[0]) =>
      (await stores.audit.query(q)).map((e) => e.id)
    expect(await ids({})).toEqual(['e4', 'e3', 'e2', 'e1'])
    expect(await ids({ order: 'asc' })).toEqual(['e1', 'e2', 'e3', 'e4'])
    expect(await ids({ agent_id: 'hacker-bot' })).toEqual(['e2'])
    expect(await ids({ tool: 'lookup_order', order: 'asc' })).toEqual(['e1', 'e3', 'e4'])
    expect(await ids({ decision: 'deny' })).toEqual(['e2'])
    expect(await ids({ type: 'tool_call_denied' })).toEqual(['e2'])
    expect(await ids({ session_id: 's1' })).toEqual(['e3', 'e1'])
    expect(await ids({ risk_level: 'critical' })).toEqual(['e2'])
    // `from` and `to` are inclusive.
    expect(await ids({ from: '2030-01-01T00:00:02.000Z', to: '2030-01-01T00:00:03.000Z' })).toEqual(
      ['e3', 'e2'],
    )
    expect(await ids({ after_seq: 2, order: 'asc' })).toEqual(['e3', 'e4'])
    expect(await ids({ limit: 2 })).toEqual(['e4', 'e3'])
    expect(await ids({ limit: 0 })).toEqual(['e4'])
    // Text: case-insensitive in reason, agent and tool; the request id only exactly.
    expect(await ids({ text: 'not allowed' })).toEqual(['e2'])
    expect(await ids({ text: 'HACKER' })).toEqual(['e2'])
    expect(await ids({ text: 'REQ-Exact' })).toEqual(['e4'])
    expect(await ids({ text: 'req-exact' })).toEqual([])
    expect(await ids({ agent_id: 'support-agent', decision: 'deny' })).toEqual([])
    expect(await stores.audit.queryStored({ agent_id: 'hacker-bot' })).toEqual(
      await rowsOf(stores, [2]),
    )
  })

  it('scans every event in sequence order, in pages', async () => {
    stores = await open()
    for (let i = 0; i < 7; i++) await stores.audit.append([auditInput()])
    const pages: StoredEvent[][] = []
    for await (const page of stores.audit.scan(3)) pages.push(page)
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1])
    expect(pages.flat().map((r) => parseStored(r).seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(pages.flat()).toEqual(await stores.audit.queryStored({ order: 'asc' }))
  })

  it('counts events by type, decision, agent, tool and risk, and the top deny reasons', async () => {
    stores = await open()
    const deny = (reason: string) =>
      auditInput({ type: 'tool_call_denied', decision: 'deny', reason, agent_id: 'hacker-bot' })
    await stores.audit.append([
      auditInput(),
      auditInput(),
      auditInput({ tool: 'search' }),
      deny('rate'),
      deny('policy'),
      deny('policy'),
      ...Array.from({ length: 11 }, (_, i) => deny(`once ${i}`)),
    ])
    const counts = await stores.audit.counts()
    const key = (r: (typeof counts.rows)[number]) =>
      [r.type, r.decision, r.agent_id, r.tool, r.risk_level, r.n].join(' ')
    expect(counts.rows.map(key).sort()).toEqual([
      'tool_call_allowed allow support-agent lookup_order low 2',
      'tool_call_allowed allow support-agent search low 1',
      'tool_call_denied deny hacker-bot lookup_order low 14',
    ])
    expect(counts.denyReasons).toHaveLength(10)
    expect(counts.denyReasons[0]).toEqual({ reason: 'policy', n: 2 })
    expect(counts.denyReasons.slice(1).every((r) => r.n === 1)).toBe(true)
  })

  it('keeps counts equal to a GROUP BY of every event appended, however appends interleave', async () => {
    stores = await open()
    const events = mixedEvents(120)
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => stores.audit.append(events.slice(i * 10, i * 10 + 10))),
    )
    expect(sorted(await stores.audit.counts())).toEqual(groupBy(events))
  })

  it('bounds deny reasons: past the cap new ones are counted together, known ones still by name', async () => {
    stores = await open()
    const deny = (reason: string) => auditInput({ decision: 'deny', reason })
    await stores.audit.append(Array.from({ length: 100 }, () => deny('frequent')))
    // One name is taken by `frequent`: 999 more keep their names, the last 201 do not.
    await stores.audit.append(
      Array.from({ length: MAX_DENY_REASONS + 200 }, (_, i) => deny(`reason ${i}`)),
    )
    await stores.audit.append(Array.from({ length: 3 }, () => deny('reason 5')))
    const { denyReasons } = await stores.audit.counts()
    expect(denyReasons.slice(0, 3)).toEqual([
      { reason: '(other reasons)', n: 201 },
      { reason: 'frequent', n: 100 },
      { reason: 'reason 5', n: 4 },
    ])
    expect(denyReasons).toHaveLength(10)
  })

  it('bounds groups: past the cap new agent and tool names are counted as (unknown)', async () => {
    stores = await open()
    await stores.audit.append([auditInput()])
    const made = (i: number) => auditInput({ decision: 'deny', agent_id: `made-up-${i}` })
    await stores.audit.append(Array.from({ length: MAX_GROUPS + 49 }, (_, i) => made(i)))
    const { rows } = await stores.audit.counts()
    expect(rows).toHaveLength(MAX_GROUPS + 1)
    expect(rows.reduce((sum, r) => sum + r.n, 0)).toBe(MAX_GROUPS + 50)
    expect(rows.find((r) => r.agent_id === '(unknown)')).toMatchObject({ tool: '(unknown)', n: 50 })
    expect(rows.find((r) => r.agent_id === 'support-agent')).toMatchObject({ n: 1 })
  })

  it('reports health, and after close fails every call with audit_unavailable', async () => {
    stores = await open()
    await stores.audit.append([auditInput()])
    expect((await stores.health()).ok).toBe(true)
    await stores.close()
    expect((await stores.health()).ok).toBe(false)
    const failures = [
      stores.audit.append([auditInput()]),
      stores.audit.query({}),
      stores.audit.queryStored({}),
      stores.audit.counts(),
      verifyChain(stores.audit),
    ]
    for (const result of await Promise.allSettled(failures)) {
      expect(result.status).toBe('rejected')
      const err = (result as PromiseRejectedResult).reason
      expect(err).toBeInstanceOf(StoreError)
      expect(err.code).toBe('audit_unavailable')
    }
  })
})

async function rowsOf(stores: Stores, seqs: number[]): Promise<StoredEvent[]> {
  const all = await stores.audit.queryStored({ order: 'asc' })
  return all.filter((r) => seqs.includes(parseStored(r).seq))
}

/** Events over a few types, decisions, agents, tools, risk levels and reasons. */
function mixedEvents(n: number): AuditEventInput[] {
  const pick = <T>(xs: readonly T[], i: number) => xs[i % xs.length]!
  return Array.from({ length: n }, (_, i) => {
    const decision = pick(['allow', 'deny', 'approval_required', 'deny'] as const, i)
    return auditInput({
      type:
        decision === 'deny'
          ? pick(['tool_call_denied', 'rate_limit_exceeded'] as const, i >> 1)
          : 'tool_call_allowed',
      decision,
      agent_id: pick(['a', 'b', 'c'], i),
      tool: pick(['t1', 't2', 't3', 't4', 't5'], i),
      risk: { score: 1, level: pick(['low', 'medium', 'high', 'critical', 'low'], i * 7) },
      reason: pick(['r1', 'r2', 'r2', 'r3', 'r3', 'r3', 'r4'], i),
    })
  })
}

/** What `counts()` should say, computed from the events themselves. */
function groupBy(events: AuditEventInput[]): AuditCounts {
  const rows = new Map<string, number>()
  const reasons = new Map<string, number>()
  for (const e of events) {
    const key = [e.type, e.decision, e.agent_id, e.tool, e.risk.level].join(' ')
    rows.set(key, (rows.get(key) ?? 0) + 1)
    if (e.decision === 'deny') reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1)
  }
  return {
    rows: [...rows]
      .map(([key, n]) => {
        const [type, decision, agent_id, tool, risk_level] = key.split(' ') as string[]
        return {
          type: type!,
          decision: decision!,
          agent_id: agent_id!,
          tool: tool!,
          risk_level: risk_level!,
          n,
        }
      })
      .sort(byKey),
    denyReasons: [...reasons]
      .map(([reason, n]) => ({ reason, n }))
      .sort((a, b) => b.n - a.n || a.reason.localeCompare(b.reason))
      .slice(0, 10),
  }
}

const byKey = (a: AuditCounts['rows'][number], b: AuditCounts['rows'][number]) => {
  const ka = JSON.stringify(Object.values(a))
  const kb = JSON.stringify(Object.values(b))
  return ka < kb ? -1 : ka > kb ? 1 : 0
}
const sorted = (c: AuditCounts): AuditCounts => ({ ...c, rows: [...c.rows].sort(byKey) })

describe('sqlite counts across restarts', () => {
  let dir: string
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('are the same after reopening the file, and are rebuilt once for a log without them', async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-counts-'))
    const path = join(dir, 'warden.db')
    const events = mixedEvents(60)
    let stores = sqliteStores(path)
    await stores.audit.append(events.slice(0, 30))
    await stores.close()
    stores = sqliteStores(path)
    await stores.audit.append(events.slice(30))
    expect(sorted(await stores.audit.counts())).toEqual(groupBy(events))
    await stores.close()
    // A log written before the counters existed: the tables are empty, the events are there.
    const raw = new Database(path)
    raw.exec('DELETE FROM audit_counts; DELETE FROM audit_deny_reasons')
    raw.close()
    stores = sqliteStores(path)
    try {
      expect(sorted(await stores.audit.counts())).toEqual(groupBy(events))
      await stores.audit.append([auditInput({ decision: 'deny', reason: 'r1' })])
      const after = await stores.audit.counts()
      expect(after.denyReasons.find((r) => r.reason === 'r1')!.n).toBe(
        groupBy(events).denyReasons.find((r) => r.reason === 'r1')!.n + 1,
      )
    } finally {
      await stores.close()
    }
  })
})
