import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createWardenClient,
  isWardenDenied,
  WardenDenied,
  WardenDeniedError,
  WardenToolError,
  type WardenClient,
} from '../clients/typescript/src/index.js'
import { GENERATED_FILE, generateClientTypes } from '../scripts/generate-client.js'
import { approve, keyOf, startWarden } from './helpers.js'
import { approveWhenHeld } from './support/clients.js'

describe('TypeScript client against a real gateway', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let client: WardenClient
  let baseUrl: string
  beforeAll(async () => {
    w = await startWarden()
    baseUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
    client = createWardenClient({
      baseUrl,
      agentId: 'refund-agent',
      agentKey: keyOf('refund-agent'),
    })
  })
  afterAll(() => w.close())

  it('execute: an allowed call is executed, with the tool result', async () => {
    const out = await client.execute(
      'lookup_order',
      { order_id: 'ORD-1001' },
      { sessionId: 'c-allow' },
    )
    expect(out.kind).toBe('executed')
    if (out.kind !== 'executed') return
    expect(out.status).toBe(200)
    expect(out.result).toMatchObject({ order_id: 'ORD-1001', total: 49 })
    expect(out.requestId).toBe(out.body.request_id)
  })

  it('execute: an idempotency key makes a retry replay the first answer (the tool runs once)', async () => {
    const call = () =>
      client.execute(
        'issue_refund',
        { order_id: 'ORD-1008', amount: 5, reason: 'retry test' },
        { sessionId: 'c-idem', idempotencyKey: 'client-test-key-1' },
      )
    const [first, again] = [await call(), await call()]
    expect(first.kind).toBe('executed')
    expect(again.kind === 'executed' && again.requestId).toBe(
      first.kind === 'executed' && first.requestId,
    )
    const order = await client.execute('lookup_order', { order_id: 'ORD-1008' })
    expect(order.kind === 'executed' && order.result).toMatchObject({ refunded: 5 })
  })

  it('execute: a denial carries the code, message and layer', async () => {
    const out = await client.execute(
      'issue_refund',
      { order_id: 'ORD-1003', amount: 900, reason: 'damaged' },
      { sessionId: 'c-deny' },
    )
    expect(out).toMatchObject({ kind: 'denied', status: 403, code: 'guard_denied' })
    if (out.kind === 'denied') expect(out.message).toMatch(/500/)
  })

  it('execute: a malformed call or bad parameters are `invalid` (400), a wrong key `error` (401)', async () => {
    const bad = await client.execute('../issue_refund', { order_id: 'ORD-1001' })
    expect(bad).toMatchObject({ kind: 'invalid', status: 400, code: 'invalid_tool_name' })
    const wrong = await client.execute('issue_refund', {
      order_id: 'ORD-1001',
      amount: 'lots',
      reason: 'damaged',
    })
    expect(wrong).toMatchObject({ kind: 'invalid', status: 400, code: 'param_invalid' })
    const stranger = createWardenClient({ baseUrl, agentId: 'refund-agent', agentKey: 'nope' })
    const out = await stranger.execute('lookup_order', { order_id: 'ORD-1001' })
    expect(out).toMatchObject({ kind: 'error', status: 401, code: 'unauthenticated' })
  })

  it('execute + waitForApproval: held, approved by a person, then the result', async () => {
    const out = await client.execute(
      'issue_refund',
      { order_id: 'ORD-1004', amount: 200, reason: 'damaged' },
      { sessionId: 'c-held' },
    )
    expect(out.kind).toBe('held')
    if (out.kind !== 'held') return
    expect(out.approvalId).toMatch(/\S/)
    const waiting = client.waitForApproval(out.approvalId, { timeoutMs: 20_000 })
    expect((await approve(w, out.approvalId)).statusCode).toBe(200)
    const decided = await waiting
    expect(decided.kind).toBe('executed')
    if (decided.kind === 'executed')
      expect(decided.result).toMatchObject({ order_id: 'ORD-1004', amount: 200 })
  })

  it('waitForApproval: a person denies; a short deadline times out while pending', async () => {
    const held = await client.execute(
      'issue_refund',
      { order_id: 'ORD-1004', amount: 150, reason: 'late' },
      { sessionId: 'c-held-deny' },
    )
    if (held.kind !== 'held') throw new Error(`expected held, got ${held.kind}`)
    const early = await client.waitForApproval(held.approvalId, { timeoutMs: 200 })
    expect(early.kind).toBe('timeout')
    expect((await approve(w, held.approvalId, 'deny')).statusCode).toBe(200)
    const decided = await client.waitForApproval(held.approvalId, { timeoutMs: 5_000 })
    expect(decided).toMatchObject({ kind: 'denied', code: 'approval_denied' })
    if (decided.kind === 'denied') expect(decided.message).toBe('denied by demo-approver')
  })

  it('waitForApproval: another agent may not read the approval', async () => {
    const held = await client.execute(
      'issue_refund',
      { order_id: 'ORD-1002', amount: 120, reason: 'broken' },
      { sessionId: 'c-held-other' },
    )
    if (held.kind !== 'held') throw new Error(`expected held, got ${held.kind}`)
    const other = createWardenClient({
      baseUrl,
      agentId: 'support-agent',
      agentKey: keyOf('support-agent'),
    })
    expect(await other.waitForApproval(held.approvalId, { timeoutMs: 1000 })).toMatchObject({
      kind: 'error',
      status: 403,
      code: 'approver_not_authorized',
    })
  })

  it('waitForApproval: an aborted signal stops the wait', async () => {
    const held = await client.execute(
      'issue_refund',
      { order_id: 'ORD-1002', amount: 110, reason: 'broken' },
      { sessionId: 'c-held-abort' },
    )
    if (held.kind !== 'held') throw new Error(`expected held, got ${held.kind}`)
    const stop = new AbortController()
    const waiting = client.waitForApproval(held.approvalId, { signal: stop.signal })
    setTimeout(() => stop.abort(new Error('user left')), 100)
    await expect(waiting).rejects.toThrow(/user left/)
  })

  it('wrapTool: allowed → result; denied → WardenDenied (or thrown); held → result after approval', async () => {
    async function lookupOrder(_p: { order_id: string }): Promise<{ order_id: string }> {
      throw new Error('never called: Warden runs the tool')
    }
    const lookup = client.wrapTool('lookup_order', lookupOrder)
    const found = await lookup({ order_id: 'ORD-1005' }, { sessionId: 'c-wrap' })
    expect(isWardenDenied(found)).toBe(false)
    expect(found).toMatchObject({ order_id: 'ORD-1005' })

    const refund = client.wrapTool('issue_refund', undefined, { sessionId: 'c-wrap-refund' })
    const denied = await refund({ order_id: 'ORD-1003', amount: 900, reason: 'damaged' })
    expect(denied).toBeInstanceOf(WardenDenied)
    expect(JSON.parse(JSON.stringify(denied))).toMatchObject({ code: 'guard_denied' })

    const strict = client.wrapTool('issue_refund', undefined, { onDenied: 'throw' })
    await expect(
      strict({ order_id: 'ORD-1003', amount: 900, reason: 'damaged' }),
    ).rejects.toBeInstanceOf(WardenDeniedError)

    const held = client.wrapTool('issue_refund', undefined, {
      sessionId: 'c-wrap-held',
      approvalTimeoutMs: 20_000,
    })
    const [approved] = await Promise.all([
      held({ order_id: 'ORD-1007', amount: 300, reason: 'damaged item' }),
      approveWhenHeld(w, 'c-wrap-held'),
    ])
    expect(approved).toMatchObject({ order_id: 'ORD-1007', amount: 300 })
  })

  it('wrapTool: a tool that fails after an approval throws WardenToolError', async () => {
    // A gateway of its own, so no earlier refund counts: ORD-1001 ($49) cannot refund $200, and
    // $200 is held for a person first.
    const g = await startWarden()
    try {
      const own = createWardenClient({
        baseUrl: await g.app.listen({ port: 0, host: '127.0.0.1' }),
        agentId: 'refund-agent',
        agentKey: keyOf('refund-agent'),
      })
      const refund = own.wrapTool('issue_refund', undefined, { sessionId: 'c-wrap-fail' })
      const [out] = await Promise.allSettled([
        refund({ order_id: 'ORD-1001', amount: 200, reason: 'damaged item' }),
        approveWhenHeld(g, 'c-wrap-fail'),
      ])
      expect(out.status).toBe('rejected')
      if (out.status === 'rejected') expect(out.reason).toBeInstanceOf(WardenToolError)
    } finally {
      await g.close()
    }
  })
})

describe("the guide's quickstart (clients/typescript/examples/quickstart.ts)", () => {
  it('runs against a gateway as written: one refund allowed, one denied with its reason', async () => {
    const w = await startWarden()
    try {
      const baseUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
      const script = fileURLToPath(
        new URL('../clients/typescript/examples/quickstart.ts', import.meta.url),
      )
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
        env: { ...process.env, WARDEN_URL: baseUrl },
      })
      expect(stdout).toMatch(/^allowed: \{.*"order_id":"ORD-1005".*"amount":10/m)
      expect(stdout).toMatch(/^denied: guard_denied: .*500/m)
    } finally {
      await w.close()
    }
  })
})

describe('generated client types', () => {
  it('match the OpenAPI document the gateway serves (run `npm run clients:generate`)', async () => {
    const committed = readFileSync(GENERATED_FILE, 'utf8')
    expect(await generateClientTypes()).toBe(committed)
  })
})
