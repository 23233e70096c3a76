import { afterEach, describe, expect, it } from 'vitest'
import { openState } from '../src/state/index.js'
import type { StateBackend } from '../src/state/types.js'
import { startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>
const open: Started[] = []
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close()
})

describe('health, readiness and liveness', () => {
  it('ready and live when every dependency answers', async () => {
    const w = await startWarden()
    open.push(w)
    const ready = await w.app.inject({ url: '/health/ready' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toMatchObject({
      status: 'ready',
      checks: { store: { ok: true }, state: { ok: true } },
    })
    expect((await w.app.inject({ url: '/health/live' })).json()).toEqual({ status: 'alive' })
  })

  it('a stalled dependency makes the instance not ready within a second; it stays alive', async () => {
    const memory = await openState({ kind: 'memory' })
    // A state backend whose health check never answers, as a stalled server's would not.
    const stalled: StateBackend = { ...memory, health: () => new Promise(() => {}) }
    const w = await startWarden({ state: stalled })
    open.push(w)
    const started = Date.now()
    const [ready, health] = await Promise.all([
      w.app.inject({ url: '/health/ready' }),
      w.app.inject({ url: '/health' }),
    ])
    expect(Date.now() - started).toBeLessThan(3000)
    expect(ready.statusCode).toBe(503)
    expect(ready.json()).toMatchObject({
      status: 'unavailable',
      checks: { store: { ok: true }, state: { ok: false, detail: 'no answer within 1000 ms' } },
    })
    expect(health.statusCode).toBe(503)
    expect((await w.app.inject({ url: '/health/live' })).statusCode).toBe(200)
  })

  it('a dependency whose check throws is reported down with its message', async () => {
    const memory = await openState({ kind: 'memory' })
    const broken: StateBackend = {
      ...memory,
      health: () => Promise.reject(new Error('connection refused')),
    }
    const w = await startWarden({ state: broken })
    open.push(w)
    const ready = await w.app.inject({ url: '/health/ready' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json().checks.state).toEqual({ ok: false, detail: 'connection refused' })
  })

  it('probes that arrive together share one check of each dependency', async () => {
    const memory = await openState({ kind: 'memory' })
    let checked = 0
    const slow: StateBackend = {
      ...memory,
      health: async () => {
        checked++
        await new Promise((r) => setTimeout(r, 100))
        return { ok: true, detail: 'memory' }
      },
    }
    const w = await startWarden({ state: slow })
    open.push(w)
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        w.app.inject({ url: i % 2 === 0 ? '/health/ready' : '/health' }),
      ),
    )
    expect(replies.every((r) => r.statusCode === 200)).toBe(true)
    expect(checked).toBe(1)
  })
})
