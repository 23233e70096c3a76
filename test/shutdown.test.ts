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

describe('graceful shutdown with a long wait open', () => {
  it('a held call’s long-poll does not keep the gateway from closing', async () => {
    const sqlitePath = join(dir, 'audit-wait.db')
    const w = await createWarden({ config: DEMO_CONFIG, sqlitePath, sweepIntervalMs: 0 })
    await w.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = w.app.server.address() as { port: number }
    const held = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1003',
      amount: 200,
      reason: 'damaged',
    })
    expect(held.statusCode).toBe(202)
    // The agent waits up to 60 s for a person; the gateway is stopped meanwhile.
    const waiting = fetch(
      `http://127.0.0.1:${port}/gateway/approvals/${held.json().approval_id}?wait=60`,
      { headers: { authorization: 'Bearer demo-refund-agent-key' } },
    ).catch((err: unknown) => err)
    await new Promise((r) => setTimeout(r, 200))
    const started = Date.now()
    await w.close()
    expect(Date.now() - started).toBeLessThan(15_000)
    await waiting
  }, 30_000)
})
