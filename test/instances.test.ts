import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWarden, type Warden } from '../src/warden.js'
import { approve, DEMO_CONFIG, execute, keyOf } from './helpers.js'

/**
 * Nothing a gateway shows may live only in its own process: a second instance over the same
 * store must show the same figures. (Both share one SQLite file here, written by one of them;
 * the PostgreSQL and Redis backends make the same true for instances on several hosts.)
 */
describe('two gateway instances over one store', () => {
  let dir: string
  let a: Warden
  let b: Warden

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-instances-'))
    const sqlitePath = join(dir, 'audit.db')
    a = await createWarden({ config: DEMO_CONFIG, sqlitePath, sweepIntervalMs: 0 })
    b = await createWarden({ config: DEMO_CONFIG, sqlitePath, sweepIntervalMs: 0 })
  })
  afterAll(async () => {
    await a.close()
    await b.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('/stats on one instance counts decisions taken on the other after it started', async () => {
    // Instance B is up (it started before any decision); then A decides.
    expect(
      (await execute(a, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })).statusCode,
    ).toBe(200)
    expect(
      (await execute(a, 'hacker-bot', 'lookup_order', { order_id: 'ORD-1001' })).statusCode,
    ).toBe(403)
    // B has heard no event of A's; it reads the figures from the shared store.
    const stats = (await b.app.inject({ url: '/stats' })).json()
    expect(stats).toMatchObject({ total_requests: 2, allowed: 1, denied: 1 })
    expect(stats.by_agent['support-agent']).toMatchObject({ allowed: 1 })
  })

  it('a long-poll on one instance answers when the other decides', async () => {
    const held = await execute(a, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1006',
      amount: 300,
      reason: 'late delivery',
    })
    expect(held.statusCode).toBe(202)
    const id = held.json().approval_id as string
    // B's bus never hears A's events: B must see the decision in the shared store.
    const poll = b.app.inject({
      url: `/gateway/approvals/${id}?wait=10`,
      headers: { authorization: `Bearer ${keyOf('refund-agent')}` },
    })
    expect((await approve(a, id)).statusCode).toBe(200)
    let timer: NodeJS.Timeout | undefined
    const waitedOut = new Promise<'waited out'>((resolve) => {
      timer = setTimeout(() => resolve('waited out'), 9000)
    })
    const answer = await Promise.race([poll, waitedOut])
    clearTimeout(timer)
    expect(answer).not.toBe('waited out')
    const approval = (answer as Awaited<typeof poll>).json().approval
    expect(approval.status).toBe('approved')
    expect(approval.executed_at).toEqual(expect.any(String))
  }, 15_000)
})
