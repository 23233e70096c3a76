import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { createClient } from 'redis'

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * A redis-server of the test's own on a free port, with no persistence, so a fault test can stop
 * and start it without touching the shared server at 6379. Fails (never skips) when Debian's
 * `redis-server` is missing.
 */
export interface OwnRedis {
  readonly url: string
  readonly port: number
  /** Kill the server (SIGKILL): every connection drops at once. */
  kill(): Promise<void>
  /** Start it again on the same port (empty: nothing was persisted). */
  start(): Promise<void>
}

export async function ownRedis(): Promise<OwnRedis> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const url = `redis://127.0.0.1:${port}`
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    )
    const spawned = child
    const exited = new Promise<never>((_, reject) => {
      spawned.once('error', reject)
      spawned.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)))
    })
    // Only the wait below cares how it ended; a later kill must not be an unhandled rejection.
    exited.catch(() => {})
    const end = Date.now() + 5000
    for (;;) {
      const client = createClient({ url, socket: { reconnectStrategy: false } })
      client.on('error', () => {})
      try {
        await Promise.race([client.connect(), exited])
        await client.ping()
        await client.quit()
        return
      } catch (err) {
        if (Date.now() > end) throw err
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }
  await start()
  return {
    url,
    port,
    async kill() {
      const c = child
      if (!c || c.exitCode !== null) return
      const gone = new Promise((r) => c.once('exit', r))
      c.kill('SIGKILL')
      await gone
    },
    start,
  }
}
