import { afterEach, describe, expect, it } from 'vitest'
import { StoreError } from '../../src/store/errors.js'
import type { Stores } from '../../src/store/types.js'
import { BACKENDS } from './backends.js'

const T0 = '2030-01-01T00:00:00.000Z'
const EXPIRES = '2030-01-01T01:00:00.000Z'
const LATER = '2030-01-01T01:00:00.001Z'

describe.each(BACKENDS)('idempotency store contract: %s', (_name, open) => {
  let stores: Stores
  afterEach(() => stores.close())
  const reserve = (agent: string, key: string, fp = 'fp-a', max = 10, now = T0) =>
    stores.idempotency.reserve(agent, key, fp, EXPIRES, max, now)

  it('reserves a key once; a second reservation sees it in progress, then done', async () => {
    stores = await open()
    expect(await reserve('refund-agent', 'k1')).toEqual({ kind: 'reserved' })
    expect(await reserve('refund-agent', 'k1', 'fp-b')).toEqual({
      kind: 'in_progress',
      fingerprint: 'fp-a',
    })
    const response = { kind: 'executed', result: { nested: [1, 'two', null] } }
    await stores.idempotency.complete('refund-agent', 'k1', response)
    expect(await reserve('refund-agent', 'k1')).toEqual({
      kind: 'done',
      fingerprint: 'fp-a',
      response,
    })
  })

  it('scopes keys per agent', async () => {
    stores = await open()
    expect(await reserve('refund-agent', 'k1')).toEqual({ kind: 'reserved' })
    expect(await reserve('support-agent', 'k1')).toEqual({ kind: 'reserved' })
  })

  it('lets exactly one of concurrent reservations of a key win', async () => {
    stores = await open()
    const all = await Promise.all(Array.from({ length: 5 }, () => reserve('refund-agent', 'k1')))
    expect(all.filter((r) => r.kind === 'reserved')).toHaveLength(1)
  })

  it('bounds unexpired keys per agent, and forgets expired ones', async () => {
    stores = await open()
    expect((await reserve('refund-agent', 'k1', 'fp', 2)).kind).toBe('reserved')
    expect((await reserve('refund-agent', 'k2', 'fp', 2)).kind).toBe('reserved')
    expect((await reserve('refund-agent', 'k3', 'fp', 2)).kind).toBe('full')
    expect((await reserve('support-agent', 'k3', 'fp', 2)).kind).toBe('reserved')
    // At the expiry instant the keys are gone.
    expect((await reserve('refund-agent', 'k1', 'fp', 2, EXPIRES)).kind).toBe('reserved')
    expect((await reserve('refund-agent', 'k3', 'fp', 2, LATER)).kind).toBe('reserved')
  })

  it('release frees a key for a fresh reservation', async () => {
    stores = await open()
    await reserve('refund-agent', 'k1')
    await stores.idempotency.release('refund-agent', 'k1')
    expect(await reserve('refund-agent', 'k1', 'fp-b')).toEqual({ kind: 'reserved' })
  })

  it('after close fails with idempotency_store_unavailable', async () => {
    stores = await open()
    await stores.close()
    const err = await reserve('refund-agent', 'k1').catch((e) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('idempotency_store_unavailable')
  })
})
