import { afterEach, describe, expect, it } from 'vitest'
import { openState } from '../src/state/index.js'
import { execute, startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>
const open: Started[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})
/** A gateway whose rate limits run on a clock the test moves on (no sleeps). */
async function gateway(): Promise<Started & { later(ms: number): void }> {
  let now = Date.now()
  const w = await startWarden({ state: await openState({ kind: 'memory', clock: () => now }) })
  open.push(w)
  return Object.assign(w, { later: (ms: number) => void (now += ms) })
}

const refund = (w: Started, order: string, amount: number) =>
  execute(w, 'refund-agent', 'issue_refund', { order_id: order, amount, reason: 'damaged' })

describe('issue 11, finding 2: sequence rules see their whole window', () => {
  it('a flood of throttled calls does not push earlier refunds out of view', async () => {
    const w = await gateway()
    for (const order of ['ORD-1001', 'ORD-1002', 'ORD-1003']) {
      const r = await refund(w, order, 90)
      expect(r.json()).toMatchObject({ decision: 'allow' })
    }
    // 230 calls the per-tool rate limit refuses: they cost the agent nothing.
    let throttled = 0
    for (let i = 0; i < 230; i++) {
      const r = await refund(w, 'ORD-1004', 1)
      if (r.statusCode === 429) throttled++
    }
    expect(throttled).toBeGreaterThan(200)
    // A minute on, the rate limit allows the fourth refund; refund-burst must still see three.
    w.later(61_000)
    const fourth = (await refund(w, 'ORD-1004', 90)).json()
    expect(fourth.decision).toBe('approval_required')
    expect(fourth.checks.find((c: { layer: string }) => c.layer === 'sequence')).toMatchObject({
      outcome: 'hold',
      details: { rule: 'refund-burst', count: 3 },
    })
  })

  it('lookups then an export are still denied after a throttled flood', async () => {
    const w = await gateway()
    for (let i = 1; i <= 5; i++) {
      const r = await execute(w, 'admin-agent', 'lookup_order', { order_id: `ORD-100${i}` })
      expect(r.json()).toMatchObject({ decision: 'allow' })
    }
    for (let i = 0; i < 230; i++)
      await execute(w, 'admin-agent', 'lookup_order', { order_id: 'ORD-1001' })
    w.later(61_000)
    const r = await execute(w, 'admin-agent', 'export_customer_data', {
      segment: 'all',
      destination: 's3://exports/all.csv',
    })
    expect(r.json().decision).toBe('deny')
    expect(r.json().checks.find((c: { layer: string }) => c.layer === 'sequence')).toMatchObject({
      outcome: 'deny',
      code: 'sequence_anomaly',
      details: { rule: 'bulk-lookup-then-export', count: 5 },
    })
  })
})
