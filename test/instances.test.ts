import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWarden, type Warden } from '../src/warden.js'
import { DEMO_CONFIG, execute } from './helpers.js'

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
})
