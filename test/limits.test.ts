import { connect } from 'node:net'
import { request } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { pino } from 'pino'
import { loadConfig } from '../src/config/loader.js'
import type { WardenConfig } from '../src/domain/config.js'
import { buildDashboard } from '../src/dashboard/server.js'
import { DEFAULT_LIMITS } from '../src/http/limits.js'
import { APPROVER, DEMO_CONFIG, execute, startWarden } from './helpers.js'

type Server = WardenConfig['server']
type Limits = Server['limits']

const running: { close(): Promise<unknown> }[] = []
afterEach(async () => {
  for (const r of running.splice(0)) await r.close()
})

/** A demo gateway with `server` settings changed; loopback is limited like any address. */
async function gateway(server: Partial<Omit<Server, 'limits'>> & { limits?: Partial<Limits> }) {
  const loaded = loadConfig(DEMO_CONFIG)
  const base = loaded.config.server
  const merged = { ...base, ...server, limits: { ...base.limits, ...server.limits } }
  const w = await startWarden({
    config: { ...loaded, config: { ...loaded.config, server: merged } },
  })
  running.push(w)
  const url = await w.app.listen({ port: 0, host: '127.0.0.1' })
  return { w, url, port: new URL(url).port }
}

/** A raw request (fetch may not set Host): status, headers and body. */
function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const r = request(url, { method, headers }, (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        )
      })
      r.on('error', reject)
      r.end(body)
    },
  )
}

const codeOf = (r: { body: string }) =>
  (JSON.parse(r.body) as { error: { code: string } }).error.code

describe('Host check (DNS rebinding)', () => {
  it('the gateway refuses a Host that does not name it, on every route', async () => {
    const { url, port } = await gateway({ allowed_hosts: ['gateway.internal'] })
    for (const path of ['/health', '/events/recent', '/stats']) {
      const rebound = await get(`${url}${path}`, { host: `evil.example:${port}` })
      expect(rebound.status).toBe(403)
      expect(codeOf(rebound)).toBe('host_not_allowed')
    }
    const post = await get(
      `${url}/gateway/execute`,
      { host: `evil.example:${port}`, 'content-type': 'application/json' },
      'POST',
      JSON.stringify({ agent_id: 'support-agent', tool: 'lookup_order', params: {} }),
    )
    expect(codeOf(post)).toBe('host_not_allowed')
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'gateway.internal:8004'])
      expect((await get(`${url}/health`, { host })).status).toBe(200)
    expect((await get(`${url}/health`, { host: `user@evil.example:${port}` })).status).toBe(403)
  })

  it('the dashboard says host_not_allowed for a rebound name', async () => {
    const { url } = await gateway({})
    const dashboard = await buildDashboard({ gatewayUrl: url, logger: pino({ level: 'silent' }) })
    running.push(dashboard)
    const base = await dashboard.listen({ port: 0, host: '127.0.0.1' })
    const res = await get(`${base}/api/health`, { host: `evil.example:${new URL(base).port}` })
    expect(res.status).toBe(403)
    expect(codeOf(res)).toBe('host_not_allowed')
    expect((await get(`${base}/api/health`)).status).toBe(200)
  })
})

describe('per-address limits before authentication', () => {
  it('an address that floods gets 429 ip_rate_limited with Retry-After; others do not', async () => {
    const { w, url } = await gateway({
      limits: { per_ip: { burst: 5, per_second: 0.01 }, trusted_ips: [] },
    })
    const statuses: number[] = []
    for (let i = 0; i < 6; i++) statuses.push((await get(`${url}/health`)).status)
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429])
    const limited = await get(`${url}/events/recent`)
    expect(limited.status).toBe(429)
    expect(codeOf(limited)).toBe('ip_rate_limited')
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    // Another address has its own bucket.
    const other = await w.app.inject({ url: '/health', remoteAddress: '203.0.113.9' })
    expect(other.statusCode).toBe(200)
  })

  it('failed approver tokens and agent keys are limited per address and audited', async () => {
    const { w, url } = await gateway({
      limits: { auth_failures: { burst: 3, per_second: 0.01 }, trusted_ips: [] },
    })
    const approve = (token: string) =>
      get(
        `${url}/gateway/approve`,
        { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        'POST',
        JSON.stringify({ approval_id: 'apr-nope', decision: 'approve' }),
      )
    expect((await approve('guess-1')).status).toBe(401)
    expect((await approve('guess-2')).status).toBe(401)
    const wrongKey = await get(
      `${url}/gateway/execute`,
      { 'content-type': 'application/json', authorization: 'Bearer guess-3' },
      'POST',
      JSON.stringify({ agent_id: 'support-agent', tool: 'lookup_order', params: {} }),
    )
    expect(wrongKey.status).toBe(401)
    // Out of attempts: even the right token is not looked at until the bucket refills.
    const locked = await approve(APPROVER)
    expect(locked.status).toBe(429)
    expect(codeOf(locked)).toBe('auth_rate_limited')
    expect(Number(locked.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    // A request without a credential still gets through; another address is not affected.
    expect((await get(`${url}/health`)).status).toBe(200)
    const elsewhere = await w.app.inject({
      method: 'POST',
      url: '/gateway/approve',
      remoteAddress: '203.0.113.10',
      headers: { authorization: `Bearer ${APPROVER}` },
      payload: { approval_id: 'apr-nope', decision: 'approve' },
    })
    expect(elsewhere.statusCode).toBe(404)
    // Every failed approver token is in the audit log, with the address it came from.
    const rejected = await w.stores.audit.query({ type: 'request_rejected', limit: 10 })
    const auth = rejected.filter((e) => e.code === 'approver_unauthenticated')
    expect(auth).toHaveLength(2)
    expect(auth[0]!.reason).toMatch(/POST \/gateway\/approve from 127\.0\.0\.1/)
  })

  it('behind a trusted proxy, the client X-Forwarded-For names is limited; elsewhere the header is ignored', async () => {
    const guess = (w: Awaited<ReturnType<typeof gateway>>['w'], from: string, client: string) =>
      w.app.inject({
        method: 'POST',
        url: '/gateway/approve',
        remoteAddress: from,
        headers: { authorization: 'Bearer guess', 'x-forwarded-for': client },
        payload: { approval_id: 'apr-nope', decision: 'approve' },
      })
    const limits = { auth_failures: { burst: 2, per_second: 0.01 }, trusted_ips: [] }
    const behind = await gateway({ trust_proxy: ['10.0.0.2'], limits })
    // Through the proxy (10.0.0.2): each client has its own bucket.
    expect((await guess(behind.w, '10.0.0.2', '203.0.113.5')).statusCode).toBe(401)
    expect((await guess(behind.w, '10.0.0.2', '203.0.113.5')).statusCode).toBe(401)
    expect((await guess(behind.w, '10.0.0.2', '203.0.113.5')).statusCode).toBe(429)
    expect((await guess(behind.w, '10.0.0.2', '203.0.113.6')).statusCode).toBe(401)
    // Straight from another address, the header is not believed: one bucket, whatever it says.
    expect((await guess(behind.w, '198.51.100.1', '192.0.2.1')).statusCode).toBe(401)
    expect((await guess(behind.w, '198.51.100.1', '192.0.2.2')).statusCode).toBe(401)
    expect((await guess(behind.w, '198.51.100.1', '192.0.2.3')).statusCode).toBe(429)
    const rejected = await behind.w.stores.audit.query({ type: 'request_rejected', limit: 10 })
    expect(rejected.some((e) => /from 203\.0\.113\.6$/.test(e.reason))).toBe(true)
    // A header cannot earn the loopback exemption: behind a trusted proxy, a client that names
    // 127.0.0.1 is limited like any other (its connection is not loopback).
    const spoof = await gateway({
      trust_proxy: ['uniquelocal'],
      limits: { auth_failures: { burst: 2, per_second: 0.01 } },
    })
    expect(spoof.w.loaded.config.server.limits.trusted_ips).toContain('127.0.0.1')
    expect((await guess(spoof.w, '172.18.0.7', '127.0.0.1')).statusCode).toBe(401)
    expect((await guess(spoof.w, '172.18.0.7', '127.0.0.1')).statusCode).toBe(401)
    expect((await guess(spoof.w, '172.18.0.7', '127.0.0.1')).statusCode).toBe(429)
    // Without trust_proxy (the default) the header is ignored altogether.
    const direct = await gateway({ limits })
    expect((await guess(direct.w, '10.0.0.2', '203.0.113.5')).statusCode).toBe(401)
    expect((await guess(direct.w, '10.0.0.2', '203.0.113.6')).statusCode).toBe(401)
    expect((await guess(direct.w, '10.0.0.2', '203.0.113.7')).statusCode).toBe(429)
  })

  it('failed approver tokens from a trusted address are audited too', async () => {
    const { w } = await gateway({})
    const res = await w.app.inject({ url: '/audit/export', headers: { authorization: 'Bearer x' } })
    expect(res.statusCode).toBe(401)
    const rejected = await w.stores.audit.query({ type: 'request_rejected', limit: 10 })
    expect(rejected.map((e) => e.code)).toContain('approver_unauthenticated')
  })

  it('POST /detect/injection takes at most 64 KiB and has its own small bucket', async () => {
    const { w } = await gateway({ limits: { detect: { burst: 2, per_second: 0.01 } } })
    const detect = (text: string, remoteAddress = '198.51.100.7') =>
      w.app.inject({
        method: 'POST',
        url: '/detect/injection',
        remoteAddress,
        payload: { text },
      })
    const big = await detect('a'.repeat(70_000), '198.51.100.8')
    expect(big.statusCode).toBe(400)
    expect(big.json().error.code).toBe('payload_too_large')
    expect((await detect('hello')).statusCode).toBe(200)
    expect((await detect('hello')).statusCode).toBe(200)
    const third = await detect('hello')
    expect(third.statusCode).toBe(429)
    expect(third.json().error.code).toBe('ip_rate_limited')
    expect(third.headers['retry-after']).toBeDefined()
  })
})

describe('event stream connection caps', () => {
  const open = (url: string) =>
    new Promise<{ ws: WebSocket; status: 'open' } | { status: number }>((resolve) => {
      const ws = new WebSocket(url)
      ws.on('open', () => resolve({ ws, status: 'open' }))
      ws.on('unexpected-response', (req, res) => {
        res.resume()
        req.destroy()
        resolve({ status: res.statusCode ?? 0 })
      })
      ws.on('error', () => resolve({ status: 0 }))
    })

  /** Close the open ones and wait until they are closed. */
  const closeAll = (got: Awaited<ReturnType<typeof open>>[]) =>
    Promise.all(
      got.map((g) =>
        'ws' in g
          ? new Promise<void>((resolve) => {
              g.ws.on('close', () => resolve())
              g.ws.terminate()
            })
          : undefined,
      ),
    )

  it('caps connections per address, and in total; a closed one frees its place', async () => {
    const { url } = await gateway({
      limits: { trusted_ips: [], websocket: { max_connections: 3, max_per_ip: 2 } },
    })
    const stream = `${url.replace('http', 'ws')}/ws/events`
    const a = await open(stream)
    const b = await open(stream)
    expect([a.status, b.status]).toEqual(['open', 'open'])
    const c = await open(stream)
    expect(c.status).toBe(429)
    await closeAll([a])
    // The place comes back when the server sees the close.
    let again: Awaited<ReturnType<typeof open>> = { status: 0 }
    for (let i = 0; i < 50 && again.status !== 'open'; i++) {
      again = await open(stream)
      if (again.status !== 'open') await new Promise((r) => setTimeout(r, 50))
    }
    expect(again.status).toBe('open')
    await closeAll([b, again])
  })

  it('caps the total even for trusted addresses (the dashboard proxy)', async () => {
    const { url } = await gateway({ limits: { websocket: { max_connections: 2, max_per_ip: 1 } } })
    const stream = `${url.replace('http', 'ws')}/ws/events`
    const got = [await open(stream), await open(stream), await open(stream)]
    expect(got.map((g) => g.status)).toEqual(['open', 'open', 429])
    await closeAll(got)
  })
})

describe('timeouts', () => {
  it('a request whose body never finishes is cut off', async () => {
    const { port } = await gateway({
      limits: { request_timeout_ms: 1000, headers_timeout_ms: 1000 },
    })
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          'POST /gateway/execute HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
            'Content-Length: 1000\r\n\r\n{"agent_id":',
        )
      })
      let text = ''
      socket.on('data', (d) => (text += d))
      socket.on('close', () => resolve(text))
      socket.on('error', () => resolve(text))
    })
    expect(answer).toMatch(/^HTTP\/1\.1 408/)
  })

  it('the servers have request, header and keep-alive timeouts by default', async () => {
    const { w } = await gateway({})
    expect(w.app.server.requestTimeout).toBe(DEFAULT_LIMITS.request_timeout_ms)
    expect(w.app.server.headersTimeout).toBe(DEFAULT_LIMITS.headers_timeout_ms)
    expect(w.app.server.keepAliveTimeout).toBe(DEFAULT_LIMITS.keep_alive_timeout_ms)
  })
})

describe('agent keys still work under the limits', () => {
  it('an agent with its key from a trusted address is not limited', async () => {
    const { w } = await gateway({ limits: { per_ip: { burst: 1, per_second: 0.01 } } })
    for (let i = 0; i < 5; i++) {
      const res = await execute(w, 'support-agent', 'search_knowledge_base', { query: 'x' })
      expect(res.statusCode).toBe(200)
    }
  })
})
