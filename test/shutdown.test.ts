import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DemoBackend } from '../src/demo/backend.js'
import { openStores } from '../src/store/index.js'
import { createWarden } from '../src/warden.js'
import { DEMO_CONFIG, execute } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'warden-shutdown-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The demo backend with an order lookup that takes a while, and says when it started. */
class SlowLookups extends DemoBackend {
  private began: () => void = () => {}
  readonly started = new Promise<void>((resolve) => (this.began = resolve))
  override lookup_order(params: Parameters<DemoBackend['lookup_order']>[0]) {
    this.began()
    return new Promise((resolve) =>
      setTimeout(() => resolve(super.lookup_order(params)), 300),
    ) as unknown as ReturnType<DemoBackend['lookup_order']>
  }
}

describe('graceful shutdown', () => {
  it('a tool running when the gateway closes has its outcome recorded before the store closes', async () => {
    const sqlitePath = join(dir, 'audit.db')
    const backend = new SlowLookups()
    const w = await createWarden({
      config: DEMO_CONFIG,
      sqlitePath,
      sweepIntervalMs: 0,
      demoBackend: backend,
    })
    const call = execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    await backend.started
    await w.close()
    const reply = await call
    expect(reply.statusCode).toBe(200)
    const stores = await openStores({ kind: 'sqlite', sqlitePath })
    try {
      const [decision] = await stores.audit.query({ type: 'tool_call_allowed', limit: 10 })
      const executed = await stores.audit.query({ type: 'tool_call_executed', limit: 10 })
      expect(executed).toHaveLength(1)
      expect(executed[0]).toMatchObject({ request_id: decision!.request_id, outcome: 'ok' })
    } finally {
      await stores.close()
    }
  })
})
