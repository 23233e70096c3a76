import { describe, expect, it } from 'vitest'
import { recorder } from '../src/audit/recorder.js'
import type { AuditEvent } from '../src/domain/audit-event.js'
import { followedBus } from '../src/events/follow.js'
import { memoryStores } from '../src/store/memory.js'
import { auditInput } from './contract/backends.js'

/** Wait until `check` holds (the bus reads the log asynchronously). */
async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('followed bus: instances sharing one log see every event once, in seq order', () => {
  it('delivers both instances’ events to both, in order, each once', async () => {
    const stores = memoryStores()
    // Two instances' buses over one shared log; instance B learns of A's events by polling.
    const busA = await followedBus({ log: stores.audit, pollMs: 20, onError: (e) => fail(e) })
    const busB = await followedBus({ log: stores.audit, pollMs: 20, onError: (e) => fail(e) })
    const seen: Record<'a' | 'b', number[]> = { a: [], b: [] }
    busA.subscribe((e) => seen.a.push(e.seq))
    busB.subscribe((e) => seen.b.push(e.seq))
    const recA = recorder(stores.audit, busA)
    const recB = recorder(stores.audit, busB)
    const writes: Promise<AuditEvent[]>[] = []
    for (let i = 0; i < 50; i++) {
      writes.push(recA.record([auditInput()]))
      writes.push(recB.record([auditInput(), auditInput()]))
    }
    await Promise.all(writes)
    const all = Array.from({ length: 150 }, (_, i) => i + 1)
    await until(() => seen.a.length >= 150 && seen.b.length >= 150)
    expect(seen.a).toEqual(all)
    expect(seen.b).toEqual(all)
    await busA.close()
    await busB.close()
    await stores.close()
  })

  it('starts at the head: events committed before it started are not replayed live', async () => {
    const stores = memoryStores()
    await stores.audit.append([auditInput(), auditInput()])
    const bus = await followedBus({ log: stores.audit, pollMs: 10, onError: (e) => fail(e) })
    const seen: number[] = []
    bus.subscribe((e) => seen.push(e.seq))
    await recorder(stores.audit, bus).record([auditInput()])
    await until(() => seen.length >= 1)
    await new Promise((r) => setTimeout(r, 50))
    expect(seen).toEqual([3])
    await bus.close()
    await stores.close()
  })

  it('a notice wakes it at once; a log that fails is retried without losing events', async () => {
    const stores = memoryStores()
    let notify: () => void = () => {}
    let failing = false
    const errors: unknown[] = []
    const log = {
      query: (q: Parameters<typeof stores.audit.query>[0]) =>
        failing ? Promise.reject(new Error('connection lost')) : stores.audit.query(q),
    }
    const bus = await followedBus({
      log,
      // A long poll: only the notice can explain a quick delivery.
      pollMs: 60_000,
      wake: async (onCommit) => {
        notify = onCommit
        return async () => {}
      },
      onError: (e) => errors.push(e),
    })
    const seen: number[] = []
    bus.subscribe((e) => seen.push(e.seq))
    // Another instance appends and notifies.
    await stores.audit.append([auditInput()])
    notify()
    await until(() => seen.length === 1)
    failing = true
    await stores.audit.append([auditInput(), auditInput()])
    notify()
    await until(() => errors.length === 1)
    expect(seen).toEqual([1])
    failing = false
    notify()
    await until(() => seen.length === 3)
    expect(seen).toEqual([1, 2, 3])
    await bus.close()
    await stores.close()
  })
})

function fail(err: unknown): never {
  throw err
}
