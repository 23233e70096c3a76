import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { canTransition, TRANSITIONS } from '../src/approvals/state.js'
import { DemoBackend } from '../src/demo/backend.js'
import { StoreError } from '../src/store/errors.js'
import { memoryStores } from '../src/store/memory.js'
import type { ApprovalStatus, Stores } from '../src/store/types.js'
import { APPROVER, approve, execute, keyOf, startWarden } from './helpers.js'

const CONFIG = fileURLToPath(new URL('./fixtures/approvals/warden.yaml', import.meta.url))
/** Race trials per test; raise it for a longer run (`WARDEN_RACE_TRIALS=1000 npx vitest run test/approvals.test.ts`). */
const TRIALS = Number(process.env.WARDEN_RACE_TRIALS ?? 200)
type Started = Awaited<ReturnType<typeof startWarden>>

describe('the approval state machine', () => {
  it('pending resolves to approved, denied or expired; nothing leaves a resolved state', () => {
    const all: ApprovalStatus[] = ['pending', 'approved', 'denied', 'expired']
    const allowed = all.flatMap((from) =>
      all.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`),
    )
    expect(allowed).toEqual(['pending->approved', 'pending->denied', 'pending->expired'])
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...all].sort())
  })
})

describe('approvals', () => {
  let w: Started
  let backend: DemoBackend
  beforeAll(async () => {
    backend = new DemoBackend()
    w = await startWarden({ config: CONFIG, demoBackend: backend })
  })
  afterAll(() => w.close())

  const refund = (
    amount: number,
    extra: Parameters<typeof execute>[4] = {},
    headers?: Record<string, string>,
  ) =>
    headers
      ? w.app.inject({
          method: 'POST',
          url: '/gateway/execute',
          headers: {
            'content-type': 'application/json',
            authorization: 'Bearer demo-refund-agent-key',
            ...headers,
          },
          payload: {
            agent_id: 'refund-agent',
            tool: 'issue_refund',
            params: { order_id: 'ORD-12345', amount, reason: 'late' },
            ...extra,
          },
        })
      : execute(
          w,
          'refund-agent',
          'issue_refund',
          { order_id: 'ORD-12345', amount, reason: 'late' },
          extra,
        )
  const decide = (id: string, token: string, decision: 'approve' | 'deny' = 'approve') =>
    w.app.inject({
      method: 'POST',
      url: '/gateway/approve',
      headers: { authorization: `Bearer ${token}` },
      payload: { approval_id: id, decision },
    })
  const restarts = () =>
    backend.get_system_health({ service: 'worker', environment: 'dev' }).services[0]!.restarts
  const holdRestart = async () => {
    const res = await execute(w, 'admin-agent', 'restart_service', {
      service: 'worker',
      environment: 'dev',
    })
    expect(res.statusCode).toBe(202)
    return res.json().approval_id as string
  }

  it('TTL comes from the tool, else the risk level, else the default', async () => {
    // Exact: the stored approval's expiry is its creation time (the call's arrival) plus the TTL.
    const ttl = async (res: { json(): { approval_id: string; expires_at: string } }) => {
      const { approval_id, expires_at } = res.json()
      const a = (await w.stores.approvals.get(approval_id))!
      expect(a.expires_at).toBe(expires_at)
      return (Date.parse(a.expires_at) - Date.parse(a.created_at)) / 1000
    }
    expect(await ttl(await refund(200))).toBe(900)
    const exp = await execute(w, 'admin-agent', 'export_customer_data', {
      segment: 'vip',
      destination: 's3://warehouse/x',
    })
    expect(exp.json().risk.level).toBe('critical')
    expect(await ttl(exp)).toBe(300)
    const restart = await execute(w, 'admin-agent', 'restart_service', {
      service: 'api',
      environment: 'staging',
    })
    expect(await ttl(restart)).toBe(120)
  })

  it('approver roles: refunds over $300 need a billing lead', async () => {
    const big = (await refund(400)).json().approval_id
    const denied = await decide(big, 'alice-token')
    expect(denied.statusCode).toBe(403)
    expect(denied.json().error).toMatchObject({
      code: 'approver_not_authorized',
      message: expect.stringContaining('large-refunds'),
    })
    expect((await decide(big, 'bob-token')).statusCode).toBe(200)
    // Under the line no rule matches, so any approver may decide.
    expect((await decide((await refund(200)).json().approval_id, 'alice-token')).statusCode).toBe(
      200,
    )
  })

  it('approver roles: critical calls need a security lead', async () => {
    const id = (
      await execute(w, 'admin-agent', 'export_customer_data', {
        segment: 'vip',
        destination: 's3://w/y',
      })
    ).json().approval_id
    expect((await decide(id, 'bob-token')).json().error.code).toBe('approver_not_authorized')
    expect((await decide(id, APPROVER)).statusCode).toBe(200)
  })

  it('the person who started the run cannot approve it', async () => {
    const held = await execute(
      w,
      'refund-agent',
      'issue_refund',
      { order_id: 'ORD-1006', amount: 350, reason: 'late' },
      { context: { requested_by: 'bob' } },
    )
    const id = held.json().approval_id
    const res = await decide(id, 'bob-token')
    expect(res.statusCode).toBe(403)
    expect(res.json().error.code).toBe('self_approval_forbidden')
    expect((await decide(id, APPROVER)).statusCode).toBe(200)
  })

  it('an approval is bound to the policy version that held it', async () => {
    const id = (await refund(220)).json().approval_id
    const db = new Database(w.dbPath)
    db.prepare(
      `UPDATE approvals SET record = json_set(record, '$.policy_version', 'older-policy') WHERE id = ?`,
    ).run(id)
    db.close()
    const res = await decide(id, APPROVER)
    expect(res.statusCode).toBe(403)
    expect(res.json().error).toMatchObject({
      code: 'approval_mismatch',
      message: expect.stringContaining('older-policy'),
    })
    // Denying it is still possible, so it does not linger until its TTL.
    expect((await decide(id, APPROVER, 'deny')).json().approval.status).toBe('denied')
  })

  it('approval events carry the approver, the comment and how long the call waited', async () => {
    const id = (await refund(230)).json().approval_id
    // The call has waited an hour: its record says it was created then.
    const created = Date.now() - 3_600_000
    const db = new Database(w.dbPath)
    db.prepare(
      `UPDATE approvals SET record = json_set(record, '$.created_at', ?) WHERE id = ?`,
    ).run(new Date(created).toISOString(), id)
    db.close()
    await w.app.inject({
      method: 'POST',
      url: '/gateway/approve',
      headers: { authorization: `Bearer ${APPROVER}` },
      payload: { approval_id: id, decision: 'approve', comment: 'customer called' },
    })
    const [granted] = await w.stores.audit
      .query({ type: 'approval_granted', text: '', limit: 50 })
      .then((all) => all.filter((e) => e.approval_id === id))
    expect(granted).toMatchObject({
      approver: 'demo-approver',
      comment: 'customer called',
      decision: 'approved',
    })
    // From its creation to the decision: at least the hour, at most until now.
    expect(granted!.latency_ms).toBeGreaterThanOrEqual(3_600_000)
    expect(granted!.latency_ms).toBeLessThanOrEqual(Date.now() - created)
  })

  it('a retry with the same Idempotency-Key gets the same pending approval', async () => {
    const first = (await refund(250, {}, { 'idempotency-key': 'retry-1' })).json()
    const again = (await refund(250, {}, { 'idempotency-key': 'retry-1' })).json()
    expect(again.approval_id).toBe(first.approval_id)
    expect(again.duplicate_of).toBe(first.request_id)
    const other = await refund(260, {}, { 'idempotency-key': 'retry-1' })
    expect(other.statusCode).toBe(409)
    expect(other.json().error.code).toBe('idempotency_conflict')
  })

  it('an identical call in the same session (keys reordered) gets the same pending approval', async () => {
    const raw = (payload: string) =>
      w.app.inject({
        method: 'POST',
        url: '/gateway/execute',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer demo-refund-agent-key',
        },
        payload,
      })
    const a = await raw(
      '{"agent_id":"refund-agent","tool":"issue_refund","session_id":"s-retry","params":{"order_id":"ORD-12345","amount":275,"reason":"late"}}',
    )
    const b = await raw(
      '{"session_id":"s-retry","params":{"reason":"late","amount":275,"order_id":"ORD-12345"},"tool":"issue_refund","agent_id":"refund-agent"}',
    )
    expect(b.json().approval_id).toBe(a.json().approval_id)
    const otherSession = await refund(275, { session_id: 's-other' })
    expect(otherSession.json().approval_id).not.toBe(a.json().approval_id)
  })

  it(`50 concurrent approvals, ${TRIALS} trials: one succeeds each time, the rest 409, the tool runs once`, async () => {
    const before = restarts()
    for (let trial = 0; trial < TRIALS; trial++) {
      const id = await holdRestart()
      const results = await Promise.all(Array.from({ length: 50 }, () => decide(id, APPROVER)))
      const codes = results.map((r) => r.statusCode)
      expect(codes.filter((c) => c === 200)).toHaveLength(1)
      expect(codes.filter((c) => c === 409)).toHaveLength(49)
    }
    expect(restarts() - before).toBe(TRIALS)
  })

  it(`approve and deny racing, ${TRIALS} trials: exactly one wins; the call runs only when approve won`, async () => {
    const before = restarts()
    let approvals = 0
    for (let trial = 0; trial < TRIALS; trial++) {
      const id = await holdRestart()
      const [a, d] = await Promise.all([
        decide(id, APPROVER, 'approve'),
        decide(id, APPROVER, 'deny'),
      ])
      expect([a.statusCode, d.statusCode].sort()).toEqual([200, 409])
      if (a.statusCode === 200) approvals++
    }
    expect(restarts() - before).toBe(approvals)
  })
})

describe('approval flooding', () => {
  it('more pending approvals than the cap are refused with 429, and recorded', async () => {
    // The approvals fixture with a cap of 3 pending approvals per agent.
    const dir = mkdtempSync(join(tmpdir(), 'warden-flood-'))
    const text = readFileSync(CONFIG, 'utf8')
      .replace('max_pending_per_agent: 1000', 'max_pending_per_agent: 3')
      .replaceAll('../../../config/', `${fileURLToPath(new URL('../config/', import.meta.url))}`)
    writeFileSync(join(dir, 'warden.yaml'), text)
    const w = await startWarden({ config: join(dir, 'warden.yaml') })
    try {
      const hold = (amount: number) =>
        execute(w, 'refund-agent', 'issue_refund', {
          order_id: 'ORD-12345',
          amount,
          reason: 'late',
        })
      const statuses = [await hold(150), await hold(160), await hold(170)].map((r) => r.statusCode)
      expect(statuses).toEqual([202, 202, 202])
      const fourth = await hold(180)
      expect(fourth.statusCode).toBe(429)
      expect(fourth.json()).toMatchObject({
        decision: 'deny',
        layer: 'approval',
        error: { code: 'too_many_pending_approvals' },
      })
      const [event] = await w.stores.audit.query({ type: 'tool_call_denied', limit: 1 })
      expect(event).toMatchObject({
        code: 'too_many_pending_approvals',
        request_id: fourth.json().request_id,
      })
      // Other agents are not affected.
      expect(
        (await execute(w, 'admin-agent', 'restart_service', { service: 'api', environment: 'dev' }))
          .statusCode,
      ).toBe(202)
    } finally {
      await w.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('a decision the audit log cannot record does not take effect', () => {
  it('approve while the log is down: 503, still pending; approve again once it is back: runs once', async () => {
    const backend = new DemoBackend()
    const w = await startWarden({ config: CONFIG, demoBackend: backend })
    try {
      const held = await execute(w, 'admin-agent', 'restart_service', {
        service: 'search',
        environment: 'dev',
      })
      const id = held.json().approval_id
      const db = new Database(w.dbPath)
      db.exec(
        `CREATE TRIGGER down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END`,
      )
      const approve = () =>
        w.app.inject({
          method: 'POST',
          url: '/gateway/approve',
          headers: { authorization: `Bearer ${APPROVER}` },
          payload: { approval_id: id, decision: 'approve' },
        })
      const failed = await approve()
      expect(failed.statusCode).toBe(503)
      expect((await w.stores.approvals.get(id))!.status).toBe('pending')
      expect(
        backend.get_system_health({ service: 'search', environment: 'dev' }).services[0]!.restarts,
      ).toBe(0)
      db.exec('DROP TRIGGER down')
      db.close()
      expect((await approve()).json().approval).toMatchObject({ status: 'approved', outcome: 'ok' })
      expect(
        backend.get_system_health({ service: 'search', environment: 'dev' }).services[0]!.restarts,
      ).toBe(1)
    } finally {
      await w.close()
    }
  })
})

describe('session totals count approved calls too', () => {
  it('two approved $300 refunds, then a $50 one: the hour total passes $600 and the call is held', async () => {
    const w = await startWarden()
    try {
      const refund = (amount: number) =>
        execute(w, 'refund-agent', 'issue_refund', { order_id: 'ORD-1006', amount, reason: 'late' })
      for (const amount of [300, 300]) {
        const id = (await refund(amount)).json().approval_id
        const ok = await w.app.inject({
          method: 'POST',
          url: '/gateway/approve',
          headers: { authorization: `Bearer ${APPROVER}` },
          payload: { approval_id: id, decision: 'approve' },
        })
        expect(ok.json().approval.outcome).toBe('ok')
      }
      const third = await refund(50)
      expect(third.statusCode).toBe(202)
      expect(third.json()).toMatchObject({
        layer: 'sequence',
        reason: expect.stringContaining('`amount` totals 650'),
      })
    } finally {
      await w.close()
    }
  })
})

describe('an approved call whose execution the approval store cannot record', () => {
  it('answers with the result and approval_store_unavailable, and reports the failure', async () => {
    const real = memoryStores()
    const stores: Stores = {
      ...real,
      approvals: {
        ...real.approvals,
        recordExecution: () =>
          Promise.reject(new StoreError('approval_store_unavailable', 'disk full')),
      },
    }
    const logged: { where?: string }[] = []
    const logger = pino(
      { level: 'error' },
      { write: (line: string) => logged.push(JSON.parse(line)) },
    )
    const w = await startWarden({ stores, logger })
    try {
      const held = await execute(w, 'refund-agent', 'issue_refund', {
        order_id: 'ORD-1006',
        amount: 300,
        reason: 'late',
      })
      const res = await approve(w, held.json().approval_id)
      expect(res.statusCode).toBe(503)
      expect(res.json()).toMatchObject({
        error: { code: 'approval_store_unavailable' },
        result: { amount: 300 },
        approval: { status: 'approved', executed_at: null },
      })
      expect(logged.map((l) => l.where)).toContain('store:approval-execution')
    } finally {
      await w.close()
    }
  })
})

describe('long-polls', () => {
  it('share one bus listener while they wait, and leave none when they end', async () => {
    const w = await startWarden()
    let active = 0
    const subscribe = w.bus.subscribe.bind(w.bus)
    w.bus.subscribe = (listener) => {
      active++
      const stop = subscribe(listener)
      let stopped = false
      return () => {
        if (!stopped) active--
        stopped = true
        stop()
      }
    }
    try {
      const hold = async (amount: number) => {
        const res = await execute(w, 'refund-agent', 'issue_refund', {
          order_id: 'ORD-1006',
          amount,
          reason: 'late',
        })
        expect(res.statusCode).toBe(202)
        return res.json().approval_id as string
      }
      const ids = [await hold(300), await hold(250)]
      const polls = [0, 1, 0, 1, 0].map((i) =>
        w.app.inject({
          url: `/gateway/approvals/${ids[i]}?wait=10`,
          headers: { authorization: `Bearer ${keyOf('refund-agent')}` },
        }),
      )
      await vi.waitFor(() => expect(active).toBe(1))
      for (const id of ids) await approve(w, id, 'deny')
      const answers = await Promise.all(polls)
      expect(answers.map((r) => r.json().approval.status)).toEqual(Array(5).fill('denied'))
      expect(active).toBe(0)
    } finally {
      await w.close()
    }
  })
})
