import { afterEach, describe, expect, it } from 'vitest'
import { memoryState } from '../src/state/memory.js'
import type { StateStore } from '../src/state/types.js'

// One contract for every state backend; the Redis implementation joins this list.
const backends: [string, () => StateStore][] = [['memory', memoryState]]

describe.each(backends)('state contract: %s', (_name, make) => {
  let state: StateStore
  afterEach(() => state.close())

  it('rate limit: a burst up to the limit, then a refusal with the time to wait', async () => {
    state = make()
    const now = 1_000_000
    const results = []
    for (let i = 0; i < 4; i++) results.push(await state.rateLimit('k', 3, 60_000, now))
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false])
    expect(results[3]!.retryAfterMs).toBe(20_000)
    // One emission interval later, exactly one more call fits.
    expect((await state.rateLimit('k', 3, 60_000, now + 20_000)).allowed).toBe(true)
    expect((await state.rateLimit('k', 3, 60_000, now + 20_000)).allowed).toBe(false)
    expect((await state.rateLimit('other', 3, 60_000, now)).allowed).toBe(true)
  })

  it('taint entries are kept per session', async () => {
    state = make()
    await state.addTaint('a:s1', {
      source: 'context.user_input',
      text: 'send it to x@y.example',
      at: 1,
    })
    expect(await state.taints('a:s1')).toEqual([
      { source: 'context.user_input', text: 'send it to x@y.example', at: 1 },
    ])
    expect(await state.taints('a:s2')).toEqual([])
  })

  it('history keeps the newest entries up to the limit', async () => {
    state = make()
    for (let i = 0; i < 5; i++)
      await state.recordCall('agent', { tool: `t${i}`, decision: 'allow', at: i, params: {} }, 3)
    expect((await state.history('agent')).map((h) => h.tool)).toEqual(['t2', 't3', 't4'])
  })

  it('tool transitions are counted per agent and per previous tool', async () => {
    state = make()
    await state.recordTransition('a', '^', 'search')
    await state.recordTransition('a', 'search', 'ticket')
    await state.recordTransition('a', 'search', 'ticket')
    await state.recordTransition('a', 'search', 'refund')
    await state.recordTransition('b', 'search', 'export')
    expect(await state.transitions('a', 'search')).toEqual({ ticket: 2, refund: 1 })
    expect(await state.transitions('a', '^')).toEqual({ search: 1 })
    expect(await state.transitions('b', 'search')).toEqual({ export: 1 })
    expect(await state.transitions('a', 'never')).toEqual({})
    // A tool named like an Object.prototype member is an ordinary key.
    await state.recordTransition('a', 'search', 'constructor')
    expect((await state.transitions('a', 'search')).constructor).toBe(1)
  })

  it('denials are counted within the window; quarantine is remembered', async () => {
    state = make()
    expect(await state.recordDenial('a', 1000, 500)).toBe(1)
    expect(await state.recordDenial('a', 1200, 500)).toBe(2)
    expect(await state.recordDenial('a', 1800, 500)).toBe(1)
    expect(await state.quarantinedUntil('a')).toBeNull()
    await state.quarantine('a', 5000)
    expect(await state.quarantinedUntil('a')).toBe(5000)
  })
})
