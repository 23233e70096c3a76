import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { chainHash } from '../src/domain/audit-event.js'
import { verifyChain } from '../src/audit/verify.js'
import { main } from '../src/main.js'
import { sqliteStores } from '../src/store/sqlite.js'
import { DemoBackend } from '../src/demo/backend.js'
import { execute, startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>
let w: Started | undefined
afterEach(async () => {
  await w?.close()
  w = undefined
})

/** A busy log: concurrent calls of every outcome, so group commit batches many events. */
async function busyLog(n = 60): Promise<Started> {
  const warden = await startWarden()
  const calls = Array.from({ length: n }, (_, i) => {
    switch (i % 4) {
      case 0:
        return execute(warden, 'support-agent', 'search_knowledge_base', { query: `shipping ${i}` })
      case 1:
        // hacker-bot is denied every time (and quarantined after ten): one event each.
        return execute(warden, 'hacker-bot', 'issue_refund', {
          order_id: 'ORD-1001',
          amount: 1,
          reason: 'asked',
        })
      case 2:
        return execute(warden, 'refund-agent', 'lookup_order', { order_id: 'ORD-1002' })
      default:
        return execute(warden, 'admin-agent', 'get_system_health', { environment: 'dev' })
    }
  })
  await Promise.all(calls)
  return warden
}

async function cli(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = []
  const log = console.log
  console.log = (l: string) => lines.push(l)
  try {
    return { code: await main(args, {}), out: lines.join('\n') }
  } finally {
    console.log = log
  }
}

describe('hash-chained audit log', () => {
  it('verifies a busy log written by concurrent calls', async () => {
    w = await busyLog()
    const result = await verifyChain(w.stores.audit)
    // 15 allowed searches + 15 lookups + 15 health checks, each decision + execution, + 15 denials.
    expect(result).toMatchObject({ ok: true, checked: 105 })
    const { code, out } = await cli(['audit', 'verify', '--db', w.dbPath])
    expect(code).toBe(0)
    expect(out).toContain('ok: 105 events verified')
  })

  it('fails after one stored row is edited, naming that event', async () => {
    w = await busyLog(20)
    const db = new Database(w.dbPath)
    const row = db.prepare('SELECT body FROM audit_events WHERE seq = 7').get() as { body: string }
    db.prepare('UPDATE audit_events SET body = ? WHERE seq = 7').run(
      row.body.replace(/"reason":"[^"]*"/, '"reason":"nothing to see"'),
    )
    db.close()
    expect(await verifyChain(w.stores.audit)).toMatchObject({
      ok: false,
      firstBad: { seq: 7, problem: expect.stringContaining('edited') },
    })
    const { code, out } = await cli(['audit', 'verify', '--db', w.dbPath])
    expect(code).toBe(1)
    expect(out).toMatch(/FAILED at event seq 7/)
  })

  it('detects a deleted middle row and reordered rows', async () => {
    w = await busyLog(20)
    const db = new Database(w.dbPath)
    db.prepare('DELETE FROM audit_events WHERE seq = 5').run()
    db.close()
    expect(await verifyChain(w.stores.audit)).toMatchObject({
      ok: false,
      firstBad: { seq: 6, problem: expect.stringContaining('missing') },
    })
  })

  it('detects a row rewritten with a recomputed own hash at the next link', async () => {
    w = await busyLog(20)
    const db = new Database(w.dbPath)
    const row = db.prepare('SELECT body FROM audit_events WHERE seq = 4').get() as { body: string }
    const edited = row.body.replace(/"reason":"[^"]*"/, '"reason":"approved by the CEO"')
    const prev = (JSON.parse(row.body) as { prev_hash: string }).prev_hash
    db.prepare('UPDATE audit_events SET body = ?, hash = ? WHERE seq = 4').run(
      edited,
      chainHash(prev, edited),
    )
    db.close()
    expect(await verifyChain(w.stores.audit)).toMatchObject({
      ok: false,
      firstBad: { seq: 5, problem: expect.stringContaining('prev_hash') },
    })
  })

  it('stores parameters masked and lists what was masked; the hash covers the masked form', async () => {
    w = await startWarden()
    await execute(w, 'support-agent', 'create_support_ticket', {
      customer_id: '12345',
      subject: 'Card 4111 1111 1111 1111 charged twice',
      description: 'Reach me at ada@example.com or +1 415 555 0101',
    })
    const raw =
      readFileSync(w.dbPath).toString('latin1') + readFileSync(`${w.dbPath}-wal`).toString('latin1')
    expect(raw).not.toContain('4111 1111 1111 1111')
    expect(raw).not.toContain('ada@example.com')
    const [event] = await w.stores.audit.query({ type: 'tool_call_allowed', limit: 1 })
    expect(event!.masked.sort()).toEqual(['/params/description', '/params/subject'])
    expect(event!.params).toMatchObject({ subject: 'Card [card ****1111] charged twice' })
    expect((await verifyChain(w.stores.audit)).ok).toBe(true)
  })
})

describe('write-ahead audit', () => {
  it('a call whose decision cannot be stored gets 503 and never runs', async () => {
    const backend = new DemoBackend()
    w = await startWarden({ demoBackend: backend })
    const before = backend.lookup_order({ order_id: 'ORD-1001' }).balance
    // Make every later write fail, as a full disk or a lost database would.
    const db = new Database(w.dbPath)
    db.exec(
      `CREATE TRIGGER no_writes BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END`,
    )
    db.close()
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1001',
      amount: 10,
      reason: 'damaged',
    })
    expect(res.statusCode).toBe(503)
    expect(res.json().error.code).toBe('audit_unavailable')
    expect(backend.lookup_order({ order_id: 'ORD-1001' }).balance).toBe(before)
    // The process stays up and answers.
    expect((await w.app.inject({ url: '/health' })).statusCode).toBe(200)
  })

  it('every executed call has a committed decision before its execution record', async () => {
    w = await busyLog(40)
    const events = await w.stores.audit.query({ order: 'asc', limit: 1000 })
    const decided = new Map<string, number>()
    for (const e of events) {
      if (e.type === 'tool_call_allowed') decided.set(e.request_id, e.seq)
      if (e.type === 'tool_call_executed') expect(decided.get(e.request_id)).toBeLessThan(e.seq)
    }
    expect(events.filter((e) => e.type === 'tool_call_executed')).toHaveLength(30)
  })
})

describe('export', () => {
  it('writes JSONL with the whole records and CSV with a header', async () => {
    w = await busyLog(8)
    const out = join(w.dir, 'audit.jsonl')
    expect(
      (await cli(['audit', 'export', '--format', 'jsonl', '--db', w.dbPath, '--out', out])).code,
    ).toBe(0)
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines).toHaveLength(14)
    expect(lines.map((e) => e.seq)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1))
    expect(lines[1].prev_hash).toBe(lines[0].hash)

    const csv = await cli(['audit', 'export', '--format', 'csv', '--db', w.dbPath])
    const rows = csv.out.split('\n')
    expect(rows[0]).toMatch(/^seq,id,timestamp,type,request_id,agent_id/)
    expect(rows).toHaveLength(15)
  })

  it('reads the same log from another process-level handle (store reopen)', async () => {
    w = await busyLog(8)
    const other = sqliteStores(w.dbPath)
    expect((await verifyChain(other.audit)).checked).toBe(14)
    await other.close()
  })
})

describe('hostile values in a batch', () => {
  it('a non-finite number in one request does not fail the other requests committed with it', async () => {
    w = await startWarden()
    const raw = (amount: string) =>
      w!.app.inject({
        method: 'POST',
        url: '/gateway/execute',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer demo-refund-agent-key',
        },
        payload: `{"agent_id":"refund-agent","tool":"issue_refund","params":{"order_id":"ORD-1003","amount":${amount},"reason":"damaged"}}`,
      })
    const [bad, good] = await Promise.all([raw('1e309'), raw('5')])
    expect(bad.statusCode).toBe(400)
    expect(good.statusCode).toBe(200)
    expect((await verifyChain(w.stores.audit)).ok).toBe(true)
  })
})

describe('group commit isolation', () => {
  it('an event that cannot be written fails only its own caller, not the batch', async () => {
    w = await startWarden()
    const event = (params: unknown) => ({
      version: 1 as const,
      id: crypto.randomUUID(),
      type: 'tool_call_denied' as const,
      timestamp: new Date().toISOString(),
      request_id: crypto.randomUUID(),
      agent_id: 'support-agent',
      principal: 'support-agent',
      tool: 'lookup_order',
      session_id: null,
      decision: 'deny' as const,
      layer: 'params',
      code: 'param_invalid',
      reason: 'test',
      risk: { score: 10, level: 'low' as const },
      policy_version: 'v',
      args_hash: '0'.repeat(64),
      params,
      masked: [],
      checks: [],
    })
    // A BigInt has no JSON form: that caller's append must fail, the others must commit.
    const results = await Promise.allSettled([
      w.stores.audit.append([event({ n: 1 })]),
      w.stores.audit.append([event({ n: 10n })]),
      w.stores.audit.append([event({ n: 3 })]),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('audit_unavailable')
    expect(await verifyChain(w.stores.audit)).toMatchObject({ ok: true, checked: 2 })
  })
})

describe('requests refused before the pipeline', () => {
  it('leave a request_rejected event with the error code (threat matrix B1)', async () => {
    w = await startWarden()
    const res = await w.app.inject({
      method: 'POST',
      url: '/gateway/execute',
      headers: { 'content-type': 'application/json' },
      payload: '{"tool":"issue_refund","params":{"amount":',
    })
    expect(res.statusCode).toBe(400)
    const [event] = await w.stores.audit.query({ type: 'request_rejected', limit: 1 })
    expect(event).toMatchObject({
      decision: 'rejected',
      code: 'invalid_json',
      request_id: res.json().request_id,
      principal: 'anonymous',
    })
    expect((await verifyChain(w.stores.audit)).ok).toBe(true)
  })
})
