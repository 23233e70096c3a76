import { afterEach, describe, expect, it } from 'vitest'
import { StoreError } from '../../src/store/errors.js'
import type { Stores } from '../../src/store/types.js'
import { BACKENDS } from './backends.js'

const T0 = '2030-01-01T00:00:00.000Z'
const EXPIRES = '2030-01-01T00:10:00.000Z'
const LATER = '2030-01-01T00:10:00.001Z'

describe.each(BACKENDS)('nonce store contract: %s', (_name, open) => {
  let stores: Stores
  afterEach(() => stores.close())

  it('accepts a nonce once; every later use is a replay', async () => {
    stores = await open()
    expect(await stores.nonces.use('apr-1:n1', EXPIRES, T0)).toBe(true)
    expect(await stores.nonces.use('apr-1:n1', EXPIRES, T0)).toBe(false)
    expect(await stores.nonces.use('apr-1:n2', EXPIRES, T0)).toBe(true)
    expect(await stores.nonces.use('apr-2:n1', EXPIRES, T0)).toBe(true)
  })

  it('lets exactly one of concurrent uses of a nonce win', async () => {
    stores = await open()
    const uses = await Promise.all(
      Array.from({ length: 5 }, () => stores.nonces.use('apr-1:n1', EXPIRES, T0)),
    )
    expect(uses.filter(Boolean)).toHaveLength(1)
  })

  it('remembers a nonce until it expires, then forgets it', async () => {
    stores = await open()
    expect(await stores.nonces.use('apr-1:n1', EXPIRES, T0)).toBe(true)
    // At the expiry instant the nonce is still remembered.
    expect(await stores.nonces.use('apr-1:n1', LATER, EXPIRES)).toBe(false)
    // Past it, it is purged, not kept forever. (The caller's `expiresAt` includes a margin past
    // the last moment the signature can verify: test/notify.test.ts checks replays there.)
    expect(await stores.nonces.use('apr-1:n1', '2030-01-01T00:20:00.000Z', LATER)).toBe(true)
  })

  it('after close fails with approval_store_unavailable', async () => {
    stores = await open()
    await stores.close()
    const err = await stores.nonces.use('apr-1:n1', EXPIRES, T0).catch((e) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('approval_store_unavailable')
  })
})
