import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy between Warden and a server (PostgreSQL, Redis) that a fault test controls:
 * `cut()` drops every connection and refuses new ones, `stall()` keeps connections open but
 * passes no bytes either way (a hung server or a black-holed network), `restore()` forwards again.
 */
export interface TcpProxy {
  readonly port: number
  cut(): void
  stall(): void
  restore(): void
  close(): Promise<void>
}

type Mode = 'forward' | 'cut' | 'stall'

export async function tcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: Mode = 'forward'
  const pairs = new Set<[Socket, Socket]>()
  const server: Server = createServer((client) => {
    if (mode === 'cut') {
      client.destroy()
      return
    }
    const upstream = connect(target.port, target.host)
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.on('data', (chunk) => {
      if (mode === 'forward') upstream.write(chunk)
    })
    upstream.on('data', (chunk) => {
      if (mode === 'forward') client.write(chunk)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const dropAll = () => {
    for (const [a, b] of pairs) {
      a.destroy()
      b.destroy()
    }
    pairs.clear()
  }
  return {
    port,
    cut() {
      mode = 'cut'
      dropAll()
    },
    // Bytes sent while stalled are dropped, as a black hole would: the connections are useless
    // afterwards, and clients must notice by their timeouts and reconnect.
    stall() {
      mode = 'stall'
    },
    restore() {
      if (mode === 'stall') dropAll()
      mode = 'forward'
    },
    async close() {
      mode = 'cut'
      dropAll()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
