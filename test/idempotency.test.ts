import { afterEach, describe, expect, it, vi } from 'vitest'
import { loadConfig } from '../src/config/loader.js'
import { DemoBackend } from '../src/demo/backend.js'
import { StoreError } from '../src/store/errors.js'
import { memoryStores } from '../src/store/memory.js'
import { DEMO_CONFIG, approve, keyOf, startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>

/** ISSUE #11, finding 4: the same Idempotency-Key must never execute twice. */
describe('Idempotency-Key on every decision', () => {
  let w: Started
  let backend: DemoBackend
  afterEach(() => w.close())

  const start = async (opts: Parameters<typeof startWarden>[0] = {}) => {
    backend = new DemoBackend()
    w = await startWarden({ demoBackend: backend, ...opts })
    return vi.spyOn(backend, 'issue_refund')
  }
  const refund = (
    amount: number,
    key: string | undefined,
    extra: { context?: Record<string, unknown>; agent?: string } = {},
  ) =>
    w.app.inject({
      method: 'POST',
      url: '/gateway/execute',
      headers: {
        authorization: `Bearer ${keyOf(extra.agent ?? 'refund-agent')}`,
        'content-type': 'application/json',
        ...(key !== undefined && { 'idempotency-key': key }),
      },
      payload: {
        agent_id: 'refund-agent',
        tool: 'issue_refund',
        params: { order_id: 'ORD-1006', amount, reason: 'damaged item' },
        session_id: 's-idem',
        ...(extra.context && { context: extra.context }),
      },
    })

  it('an allowed refund retried with the same key runs once and replays the first answer', async () => {
    const runs = await start()
    const first = await refund(25, 'pay-1')
    const again = await refund(25, 'pay-1')
    expect(first.statusCode).toBe(200)
    expect(again.statusCode).toBe(200)
    expect(again.headers['idempotent-replayed']).toBe('true')
    expect(first.headers['idempotent-replayed']).toBeUndefined()
    expect(again.json()).toEqual(first.json())
    expect(runs).toHaveBeenCalledTimes(1)
    // Without a key the same call is a new call.
    expect((await refund(25, undefined)).statusCode).toBe(200)
    expect(runs).toHaveBeenCalledTimes(2)
  })

  it('a held call retried (with or without user_input) gets the same hold; approving runs it once', async () => {
    const runs = await start()
    const context = { user_input: 'please refund order ORD-1006, amount 250' }
    const first = await refund(250, 'hold-1', { context })
    expect(first.statusCode).toBe(202)
    const bare = await refund(250, 'hold-1')
    const withInput = await refund(250, 'hold-1', { context })
    for (const retry of [bare, withInput]) {
      expect(retry.statusCode).toBe(202)
      expect(retry.headers['idempotent-replayed']).toBe('true')
      expect(retry.json().approval_id).toBe(first.json().approval_id)
    }
    expect(runs).not.toHaveBeenCalled()
    expect((await approve(w, first.json().approval_id)).statusCode).toBe(200)
    expect(runs).toHaveBeenCalledTimes(1)
    const late = await refund(250, 'hold-1')
    expect(late.json().approval_id).toBe(first.json().approval_id)
    expect(runs).toHaveBeenCalledTimes(1)
  })

  it('the same key for a different call is 409 idempotency_conflict and runs nothing', async () => {
    const runs = await start()
    await refund(25, 'pay-2')
    const other = await refund(30, 'pay-2')
    expect(other.statusCode).toBe(409)
    expect(other.json().error.code).toBe('idempotency_conflict')
    expect(runs).toHaveBeenCalledTimes(1)
  })

  it('a retry while the first is still running is 409 idempotency_in_progress', async () => {
    const runs = await start()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const original = (p: Parameters<DemoBackend['issue_refund']>[0]) =>
      DemoBackend.prototype.issue_refund.call(backend, p)
    // Hold the first call inside the tool until the retry has been answered (the demo executor
    // awaits what the backend returns).
    runs.mockImplementationOnce((async (p: Parameters<typeof original>[0]) => {
      await gate
      return original(p)
    }) as unknown as typeof original)
    const first = refund(25, 'pay-3')
    for (let i = 0; i < 1000 && runs.mock.calls.length === 0; i++)
      await new Promise((r) => setImmediate(r))
    const retry = await refund(25, 'pay-3')
    release()
    expect((await first).statusCode).toBe(200)
    expect(retry.statusCode).toBe(409)
    expect(retry.json().error.code).toBe('idempotency_in_progress')
    expect(runs).toHaveBeenCalledTimes(1)
  })

  it('keys are per agent: another credential cannot take or read them', async () => {
    const runs = await start()
    const forged = await refund(25, 'pay-4', { agent: 'support-agent' })
    expect(forged.statusCode).toBe(401)
    const real = await refund(25, 'pay-4')
    expect(real.statusCode).toBe(200)
    expect(real.headers['idempotent-replayed']).toBeUndefined()
    expect(runs).toHaveBeenCalledTimes(1)
  })

  it('a failing idempotency store is 503 idempotency_store_unavailable and nothing runs', async () => {
    const stores = memoryStores()
    const runs = await start({
      stores: {
        ...stores,
        idempotency: {
          ...stores.idempotency,
          reserve: () => Promise.reject(new StoreError('idempotency_store_unavailable', 'down')),
        },
      },
    })
    const res = await refund(25, 'pay-5')
    expect(res.statusCode).toBe(503)
    expect(res.json().error.code).toBe('idempotency_store_unavailable')
    expect(runs).not.toHaveBeenCalled()
  })

  it('an agent holding max_keys_per_agent keys gets 429 too_many_idempotency_keys', async () => {
    const loaded = loadConfig(DEMO_CONFIG)
    const config = {
      ...loaded,
      config: { ...loaded.config, idempotency: { ttl_seconds: 3600, max_keys_per_agent: 2 } },
    }
    const runs = await start({ config })
    expect((await refund(20, 'k-1')).statusCode).toBe(200)
    expect((await refund(21, 'k-2')).statusCode).toBe(200)
    const third = await refund(22, 'k-3')
    expect(third.statusCode).toBe(429)
    expect(third.json().error.code).toBe('too_many_idempotency_keys')
    // Known keys still replay.
    expect((await refund(20, 'k-1')).headers['idempotent-replayed']).toBe('true')
    expect(runs).toHaveBeenCalledTimes(2)
  })
})
