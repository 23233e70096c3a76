/**
 * A small round-robin load balancer for running several gateways locally (`npm run cluster`, the
 * scale-out tests and benchmark). It forwards HTTP requests and WebSocket upgrades, and takes an
 * instance out while its `GET /health/ready` fails or it refuses connections, as a production
 * balancer (HAProxy, nginx, a cloud LB) would be configured to. Not a production component.
 */
import { request, createServer, type IncomingMessage, type Server } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'

export interface Backend {
  host: string
  port: number
}

export interface Balancer {
  readonly port: number
  /** Backends currently taken to be ready. */
  ready(): Backend[]
  close(): Promise<void>
}

export async function startBalancer(
  backends: readonly Backend[],
  options: { port?: number; host?: string; checkMs?: number } = {},
): Promise<Balancer> {
  const up = new Set<Backend>(backends)
  let next = 0
  const pick = (): Backend | undefined => {
    const list = backends.filter((b) => up.has(b))
    if (list.length === 0) return undefined
    return list[next++ % list.length]
  }
  const check = (b: Backend) => {
    const req = request(
      { host: b.host, port: b.port, path: '/health/ready', timeout: 1500 },
      (res) => {
        res.resume()
        if (res.statusCode === 200) up.add(b)
        else up.delete(b)
      },
    )
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => up.delete(b))
    req.end()
  }
  const timer = setInterval(() => backends.forEach(check), options.checkMs ?? 500)
  timer.unref()

  const server: Server = createServer((req, res) => {
    const forward = (tries: number) => {
      const b = pick()
      if (!b) {
        res.writeHead(503, { 'content-type': 'application/json' })
        res.end('{"error":{"code":"no_backend","message":"no gateway instance is ready"}}')
        return
      }
      const out = request(
        { host: b.host, port: b.port, method: req.method, path: req.url, headers: req.headers },
        (upstream) => {
          res.writeHead(upstream.statusCode ?? 502, upstream.headers)
          upstream.pipe(res)
        },
      )
      out.on('error', (err: NodeJS.ErrnoException) => {
        up.delete(b)
        // Only a refused connection is retried elsewhere: nothing reached that instance. A call
        // that failed later may have run there, and must not run twice.
        if (!res.headersSent && err.code === 'ECONNREFUSED' && tries > 1) forward(tries - 1)
        else if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'application/json' })
          res.end('{"error":{"code":"bad_gateway","message":"the gateway instance failed"}}')
        } else res.destroy()
      })
      out.end(body)
    }
    const chunks: Buffer[] = []
    let body: Buffer
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      body = Buffer.concat(chunks)
      forward(backends.length)
    })
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const b = pick()
    if (!b) {
      socket.destroy()
      return
    }
    const upstream = connect(b.port, b.host, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`]
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`)
      upstream.write(lines.join('\r\n') + '\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(socket).pipe(upstream)
    })
    upstream.on('error', () => socket.destroy())
    socket.on('error', () => upstream.destroy())
  })
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  )
  return {
    port: (server.address() as AddressInfo).port,
    ready: () => backends.filter((b) => up.has(b)),
    async close() {
      clearInterval(timer)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
