import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { AUDIT_CHANNEL, listenForCommits } from '../src/store/postgres-listen.js'
import { tcpProxy, type TcpProxy } from './support/tcp-proxy.js'

const URL = process.env.WARDEN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!()
})

async function notifier(): Promise<() => Promise<void>> {
  const c = new pg.Client({ connectionString: URL })
  await c.connect()
  cleanup.push(() => c.end())
  return async () => {
    await c.query(`SELECT pg_notify('${AUDIT_CHANNEL}', '1')`)
  }
}

describe('PostgreSQL commit notices (LISTEN warden_audit)', () => {
  it('wakes on a notice from another connection, and not for other channels', async () => {
    let wakes = 0
    const stop = await listenForCommits(
      URL,
      () => wakes++,
      () => {},
    )
    cleanup.push(stop)
    // One wake on connect: notices sent while not listening are lost, so it reads once.
    expect(wakes).toBe(1)
    const notify = await notifier()
    await notify()
    await until(() => wakes === 2)
    const other = new pg.Client({ connectionString: URL })
    await other.connect()
    await other.query(`SELECT pg_notify('another_channel', '1')`)
    await other.end()
    await notify()
    await until(() => wakes === 3)
    expect(wakes).toBe(3)
  })

  it('reconnects by itself after the connection is cut, and wakes once reconnected', async () => {
    const proxy: TcpProxy = await tcpProxy({ host: '127.0.0.1', port: 5432 })
    cleanup.push(() => proxy.close())
    const via = URL.replace('127.0.0.1:5432', `127.0.0.1:${proxy.port}`)
    let wakes = 0
    const errors: unknown[] = []
    const stop = await listenForCommits(
      via,
      () => wakes++,
      (e) => errors.push(e),
    )
    cleanup.push(stop)
    expect(wakes).toBe(1)
    proxy.cut()
    await new Promise((r) => setTimeout(r, 300))
    proxy.restore()
    // Reconnected: one catch-up wake, then notices arrive again.
    await until(() => wakes === 2)
    const notify = await notifier()
    await notify()
    await until(() => wakes === 3)
  })
})
