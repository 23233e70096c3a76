import { afterEach, describe, expect, it } from 'vitest'
import { SCENARIO_RUNS_PER_CLIENT } from '../src/http/routes/demo.js'
import { approve, startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>

/** ISSUE #11, finding 3: demo scenario runs reached the real approval queue, quota and backend. */
describe('demo scenarios are isolated and not cross-site', () => {
  let w: Started
  afterEach(() => w.close())

  const run = (id: string, headers: Record<string, string> = {}) =>
    w.app.inject({ method: 'POST', url: `/demo/run-scenario/${id}`, headers })

  it('a held scenario never reaches the real queue, quota or backend, and is audited as a scenario', async () => {
    w = await startWarden()
    const res = await run('refund_large')
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({ scenario: 'refund_large', decision: 'approval_required' })
    const id = body.response.approval_id as string
    expect(id.startsWith('apr_scenario_')).toBe(true)
    // Not in the real queue, not counted against refund-agent, and cannot be approved.
    expect(await w.stores.approvals.list('pending')).toEqual([])
    expect(await w.stores.approvals.countPending('refund-agent', new Date().toISOString())).toBe(0)
    const approved = await approve(w, id)
    expect(approved.statusCode).toBe(404)
    expect(approved.json().error.code).toBe('approval_not_found')
    // The audit says who did it: the scenario principal, not the real agent.
    const events = await w.stores.audit.query({ agent_id: 'refund-agent' })
    expect(events.length).toBeGreaterThan(0)
    for (const e of events) expect(e).toMatchObject({ principal: 'demo-scenario', scenario: true })
  })

  it.each([
    [{ 'sec-fetch-site': 'cross-site' }],
    [{ 'sec-fetch-site': 'same-site' }],
    [{ origin: 'https://evil.example' }],
    [{ origin: 'null' }],
  ])('refuses a cross-site request (%o) with 403 origin_not_allowed', async (headers) => {
    w = await startWarden()
    const res = await run('refund_small', headers)
    expect(res.statusCode).toBe(403)
    expect(res.json().error.code).toBe('origin_not_allowed')
  })

  it('accepts the gateway’s own pages and scripts', async () => {
    w = await startWarden()
    expect((await run('refund_small', { 'sec-fetch-site': 'same-origin' })).statusCode).toBe(200)
    expect((await run('refund_small')).statusCode).toBe(200)
  })

  it('rate-limits scenario runs per client', async () => {
    w = await startWarden()
    for (let i = 0; i < SCENARIO_RUNS_PER_CLIENT; i++)
      expect((await run('hacker_bot')).statusCode).toBe(200)
    const over = await run('hacker_bot')
    expect(over.statusCode).toBe(429)
    expect(over.json().error.code).toBe('rate_limited')
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0)
  })
})
