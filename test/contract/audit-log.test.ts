import { afterEach, describe, expect, it } from 'vitest'
import { verifyChain } from '../../src/audit/verify.js'
import {
  chainHash,
  GENESIS_HASH,
  parseStored,
  type StoredEvent,
} from '../../src/domain/audit-event.js'
import { StoreError } from '../../src/store/errors.js'
import type { Stores } from '../../src/store/types.js'
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
