import { afterEach, describe, expect, it } from 'vitest'
import { StoreError } from '../../src/store/errors.js'
import type { Stores } from '../../src/store/types.js'
import { approvalRecord, BACKENDS } from './backends.js'

const BEFORE = '2030-01-01T00:05:00.000Z'
const EXPIRES = '2030-01-01T00:15:00.000Z'
const AFTER = '2030-01-01T00:20:00.000Z'

describe.each(BACKENDS)('approval store contract: %s', (_name, open) => {
  let stores: Stores
  afterEach(() => stores.close())

  it('gives back what was created, as a copy; unknown ids are null', async () => {
    stores = await open()
    const record = approvalRecord({ idempotency_key: 'k1', context: { nested: { a: [1, 2] } } })
    await stores.approvals.create(record)
    const got = await stores.approvals.get(record.id)
    expect(got).toEqual(record)
    got!.status = 'approved'
    expect((await stores.approvals.get(record.id))!.status).toBe('pending')
    expect(await stores.approvals.get('apr-none')).toBeNull()
  })

  it('refuses a second approval with the same id', async () => {
    stores = await open()
    const record = approvalRecord()
    await stores.approvals.create(record)
    const err = await stores.approvals.create({ ...record, tool: 'other' }).catch((e) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('approval_store_unavailable')
    expect((await stores.approvals.get(record.id))!.tool).toBe('issue_refund')
  })

  it('lists by status, soonest to expire first', async () => {
    stores = await open()
    const late = approvalRecord({ expires_at: '2030-01-01T00:30:00.000Z' })
    const soon = approvalRecord({ expires_at: '2030-01-01T00:10:00.000Z' })
    const done = approvalRecord({ status: 'denied', expires_at: '2030-01-01T00:20:00.000Z' })
    for (const r of [late, soon, done]) await stores.approvals.create(r)
    expect((await stores.approvals.list()).map((r) => r.id)).toEqual([soon.id, done.id, late.id])
    expect((await stores.approvals.list('pending')).map((r) => r.id)).toEqual([soon.id, late.id])
    expect((await stores.approvals.list('denied')).map((r) => r.id)).toEqual([done.id])
    expect(await stores.approvals.list('approved')).toEqual([])
  })

  it('counts and finds only unexpired pending approvals of the agent', async () => {
    stores = await open()
    const keyed = approvalRecord({ idempotency_key: 'k1' })
    const inSession = approvalRecord({ session_id: 's2', args_hash: 'c'.repeat(64) })
    const other = approvalRecord({ agent_id: 'support-agent', idempotency_key: 'k2' })
    const decided = approvalRecord({ idempotency_key: 'k3' })
    for (const r of [keyed, inSession, other, decided]) await stores.approvals.create(r)
    await stores.approvals.resolve(decided.id, 'denied', 'bob', null, BEFORE)

    expect(await stores.approvals.countPending('refund-agent', BEFORE)).toBe(2)
    expect(await stores.approvals.countPending('support-agent', BEFORE)).toBe(1)
    expect(await stores.approvals.countPending('refund-agent', EXPIRES)).toBe(0)

    const find = (
      agent: string,
      match: Parameters<Stores['approvals']['findPending']>[1],
      now = BEFORE,
    ) => stores.approvals.findPending(agent, match, now).then((r) => r?.id ?? null)
    expect(await find('refund-agent', { idempotencyKey: 'k1' })).toBe(keyed.id)
    expect(await find('refund-agent', { idempotencyKey: 'k2' })).toBeNull()
    expect(await find('support-agent', { idempotencyKey: 'k2' })).toBe(other.id)
    expect(await find('refund-agent', { idempotencyKey: 'k3' })).toBeNull()
    expect(await find('refund-agent', { idempotencyKey: 'k1' }, EXPIRES)).toBeNull()
    const call = { tool: 'issue_refund', argsHash: 'c'.repeat(64), sessionId: 's2' }
    expect(await find('refund-agent', call)).toBe(inSession.id)
    expect(await find('refund-agent', { ...call, sessionId: 's1' })).toBeNull()
    expect(await find('refund-agent', { ...call, tool: 'lookup_order' })).toBeNull()
    expect(await find('refund-agent', { ...call, argsHash: 'b'.repeat(64), sessionId: 's1' })).toBe(
      keyed.id,
    )
  })

  it('resolves from pending once, recording who, when and why', async () => {
    stores = await open()
    const record = approvalRecord()
    await stores.approvals.create(record)
    expect(await stores.approvals.resolve(record.id, 'approved', 'bob', 'ok', BEFORE)).toBe(true)
    expect(await stores.approvals.get(record.id)).toEqual({
      ...record,
      status: 'approved',
      decided_by: 'bob',
      decided_at: BEFORE,
      comment: 'ok',
    })
    expect(await stores.approvals.resolve(record.id, 'denied', 'eve', null, BEFORE)).toBe(false)
    expect(await stores.approvals.resolve('apr-none', 'denied', 'eve', null, BEFORE)).toBe(false)
    expect((await stores.approvals.get(record.id))!.decided_by).toBe('bob')
  })

  it('lets exactly one of many concurrent resolves win', async () => {
    stores = await open()
    const record = approvalRecord()
    await stores.approvals.create(record)
    const deciders = ['a', 'b', 'c', 'd', 'e', 'f']
    const wins = await Promise.all(
      deciders.map((who, i) =>
        stores.approvals.resolve(record.id, i % 2 ? 'denied' : 'approved', who, null, BEFORE),
      ),
    )
    expect(wins.filter(Boolean)).toHaveLength(1)
    const winner = deciders[wins.indexOf(true)]!
    const final = (await stores.approvals.get(record.id))!
    expect(final.decided_by).toBe(winner)
    expect(final.status).toBe(deciders.indexOf(winner) % 2 ? 'denied' : 'approved')
  })

  it('decides expiry by `now`: no decision once expired, no expiry before', async () => {
    stores = await open()
    const record = approvalRecord({ expires_at: EXPIRES })
    await stores.approvals.create(record)
    expect(await stores.approvals.resolve(record.id, 'approved', 'bob', null, EXPIRES)).toBe(false)
    expect(await stores.approvals.resolve(record.id, 'expired', null, null, BEFORE)).toBe(false)
    expect((await stores.approvals.get(record.id))!.status).toBe('pending')
    expect(await stores.approvals.resolve(record.id, 'expired', null, null, EXPIRES)).toBe(true)
    expect((await stores.approvals.get(record.id))!.status).toBe('expired')
  })

  it('lists pending approvals whose TTL has passed', async () => {
    stores = await open()
    const early = approvalRecord({ expires_at: '2030-01-01T00:01:00.000Z' })
    const onTime = approvalRecord({ expires_at: BEFORE })
    const later = approvalRecord({ expires_at: AFTER })
    const decided = approvalRecord({ expires_at: '2030-01-01T00:00:30.000Z' })
    for (const r of [later, onTime, early, decided]) await stores.approvals.create(r)
    await stores.approvals.resolve(decided.id, 'denied', 'bob', null, '2030-01-01T00:00:10.000Z')
    const expired = await stores.approvals.expiredPending(BEFORE)
    expect(expired.map((r) => r.id).sort()).toEqual([early.id, onTime.id].sort())
    expect(await stores.approvals.expiredPending('2029-12-31T00:00:00.000Z')).toEqual([])
  })

  it('reopens a decision only for the same decider and only before anything ran', async () => {
    stores = await open()
    const record = approvalRecord()
    await stores.approvals.create(record)
    await stores.approvals.resolve(record.id, 'approved', 'bob', 'ok', BEFORE)
    expect(await stores.approvals.reopen(record.id, 'approved', 'eve')).toBe(false)
    expect(await stores.approvals.reopen(record.id, 'denied', 'bob')).toBe(false)
    expect(await stores.approvals.reopen(record.id, 'approved', 'bob')).toBe(true)
    expect(await stores.approvals.get(record.id)).toEqual(record)
    // Pending again, so it can be decided again.
    expect(await stores.approvals.resolve(record.id, 'approved', 'eve', null, BEFORE)).toBe(true)
    expect(await stores.approvals.recordExecution(record.id, 'ok', { id: 'r1' }, BEFORE)).toBe(true)
    expect(await stores.approvals.reopen(record.id, 'approved', 'eve')).toBe(false)
    expect((await stores.approvals.get(record.id))!.status).toBe('approved')
  })

  it('records the execution of an approved call exactly once', async () => {
    stores = await open()
    const approved = approvalRecord()
    const denied = approvalRecord()
    for (const r of [approved, denied]) await stores.approvals.create(r)
    expect(await stores.approvals.recordExecution(approved.id, 'ok', 'early', BEFORE)).toBe(false)
    await stores.approvals.resolve(approved.id, 'approved', 'bob', null, BEFORE)
    await stores.approvals.resolve(denied.id, 'denied', 'bob', null, BEFORE)
    const runs = await Promise.all([
      stores.approvals.recordExecution(approved.id, 'ok', { refund: 'R-1', n: [1] }, AFTER),
      stores.approvals.recordExecution(approved.id, 'error', 'second', AFTER),
    ])
    expect(runs).toEqual([true, false])
    expect(await stores.approvals.get(approved.id)).toMatchObject({
      executed_at: AFTER,
      outcome: 'ok',
      result: { refund: 'R-1', n: [1] },
    })
    expect(await stores.approvals.recordExecution(denied.id, 'ok', null, AFTER)).toBe(false)
    expect((await stores.approvals.get(denied.id))!.executed_at).toBeNull()
  })

  it('after close fails every call with approval_store_unavailable', async () => {
    stores = await open()
    const record = approvalRecord()
    await stores.approvals.create(record)
    await stores.close()
    const failures = [
      stores.approvals.create(approvalRecord()),
      stores.approvals.get(record.id),
      stores.approvals.list(),
      stores.approvals.countPending('refund-agent', BEFORE),
      stores.approvals.findPending('refund-agent', { idempotencyKey: 'k' }, BEFORE),
      stores.approvals.resolve(record.id, 'approved', 'bob', null, BEFORE),
      stores.approvals.reopen(record.id, 'approved', 'bob'),
      stores.approvals.recordExecution(record.id, 'ok', null, BEFORE),
      stores.approvals.expiredPending(AFTER),
    ]
    for (const result of await Promise.allSettled(failures)) {
      expect(result.status).toBe('rejected')
      const err = (result as PromiseRejectedResult).reason
      expect(err).toBeInstanceOf(StoreError)
      expect(err.code).toBe('approval_store_unavailable')
    }
  })
})
