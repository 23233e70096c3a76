import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { loadConfig } from '../src/config/loader.js'
import { buildDashboard } from '../src/dashboard/server.js'
import { createWarden } from '../src/warden.js'
import { APPROVER, DEMO_CONFIG, execute, keyOf, startWarden } from './helpers.js'

/** Open a WebSocket and report whether the server accepted it (and the first frame, if any). */
function connect(url: string, headers: Record<string, string> = {}): Promise<'open' | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers })
    ws.on('open', () => {
      ws.close()
      resolve('open')
    })
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.on('error', () => resolve(0))
  })
}

describe('approver-only audit routes', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  beforeAll(async () => {
    w = await startWarden()
    await execute(w, 'support-agent', 'create_support_ticket', {
      customer_id: 'CUST-001',
      subject: 'a',
    })
    await execute(w, 'support-agent', 'issue_refund', { order_id: 'ORD-1', amount: 5, reason: 'x' })
    await execute(w, 'hacker-bot', 'lookup_order', { order_id: 'ORD-1' })
  })
  afterAll(() => w.close())
  const get = (url: string, token?: string) =>
    w.app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} })

  it('refuse callers without an approver token, agent keys included', async () => {
    for (const url of ['/audit/export', '/audit/verify', '/auth/whoami']) {
      expect((await get(url)).json().error.code).toBe('approver_unauthenticated')
      const agent = await get(url, keyOf('support-agent'))
      expect(agent.statusCode).toBe(401)
    }
    expect((await get('/auth/whoami', APPROVER)).json()).toEqual({
      approver: {
        id: 'demo-approver',
        name: 'Demo Approver',
        roles: ['security-lead', 'billing-lead'],
      },
    })
  })

  it('verify walks the chain', async () => {
    const r = (await get('/audit/verify', APPROVER)).json()
    expect(r).toMatchObject({ ok: true })
    expect(r.checked).toBeGreaterThanOrEqual(4)
  })

  it('export gives the filtered set as JSONL (exact stored text), CSV or CEF', async () => {
    const jsonl = await get('/audit/export?format=jsonl&decision=deny', APPROVER)
    expect(jsonl.headers['content-type']).toMatch(/application\/x-ndjson/)
    const lines = jsonl.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(lines.length).toBe(Number(jsonl.headers['x-warden-count']))
    expect(lines.length).toBe(2)
    expect(lines.every((e) => e.decision === 'deny' && /^[0-9a-f]{64}$/.test(e.hash))).toBe(true)
    expect(lines[0].seq).toBeLessThan(lines[1].seq)

    const csv = await get(
      '/audit/export?format=csv&agent_id=support-agent&tool=issue_refund',
      APPROVER,
    )
    const rows = csv.body.trim().split('\n')
    expect(rows[0]).toMatch(/^seq,id,timestamp,type/)
    expect(rows.length).toBe(2)

    const cef = await get('/audit/export?format=cef&decision=deny', APPROVER)
    const first = cef.body.split('\n')[0]!
    expect(first).toMatch(
      /^CEF:0\|Warden\|Warden\|1\|tool_call_denied\|tool_call_denied: issue_refund\|5\|/,
    )
    expect(first).toMatch(/ suser=support-agent /)
    expect(first).toMatch(/ act=deny /)
    // `=` inside a value is escaped so SIEM parsers do not split on it.
    expect(first).not.toMatch(/reason=[^ ]*[^\\]=/)
  })

  it('rejects an unknown format and repeated filters', async () => {
    expect((await get('/audit/export?format=xml', APPROVER)).statusCode).toBe(400)
    expect((await get('/audit/export?tool=a&tool=b', APPROVER)).statusCode).toBe(400)
  })
})

describe('replay a recorded session under the current policy', () => {
  it('shows which decisions a changed configuration would change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-replay-session-'))
    const sqlitePath = join(dir, 'audit.db')
    try {
      const first = await createWarden({ config: DEMO_CONFIG, sqlitePath, sweepIntervalMs: 0 })
      const refund = (amount: number) =>
        execute(
          first,
          'refund-agent',
          'issue_refund',
          { order_id: 'ORD-1001', amount, reason: 'damaged' },
          { session_id: 's-1' },
        )
      expect((await refund(25)).json().decision).toBe('allow')
      expect((await refund(40)).json().decision).toBe('allow')
      await first.close()

      // The same audit log, read by a gateway whose policy now holds refunds above $30.
      const loaded = loadConfig(DEMO_CONFIG)
      const guards = loaded.config.guards.map((g) =>
        g.kind === 'amount_threshold' ? { ...g, allow_up_to: 30 } : g,
      )
      const second = await createWarden({
        config: { ...loaded, config: { ...loaded.config, guards }, policyVersion: 'stricter' },
        sqlitePath,
        sweepIntervalMs: 0,
      })
      try {
        const r = await second.app.inject({
          url: '/audit/sessions/s-1/replay',
          headers: { authorization: `Bearer ${APPROVER}` },
        })
        expect(r.statusCode).toBe(200)
        expect(r.json()).toMatchObject({
          session_id: 's-1',
          policy_version: 'stricter',
          calls: [
            { tool: 'issue_refund', original: 'allow', now: 'allow', changed: false },
            {
              tool: 'issue_refund',
              original: 'allow',
              now: 'approval_required',
              layer: 'guards',
              changed: true,
            },
          ],
        })
        const agent = await second.app.inject({
          url: '/audit/sessions/s-1/replay',
          headers: { authorization: `Bearer ${keyOf('refund-agent')}` },
        })
        expect(agent.statusCode).toBe(401)
      } finally {
        await second.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('origins', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let gatewayUrl: string
  let dashboard: Awaited<ReturnType<typeof buildDashboard>>
  let base: string
  beforeAll(async () => {
    const loaded = loadConfig(DEMO_CONFIG)
    const server = { ...loaded.config.server, allowed_origins: ['http://dashboard.example'] }
    w = await startWarden({ config: { ...loaded, config: { ...loaded.config, server } } })
    gatewayUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
    dashboard = await buildDashboard({ gatewayUrl, logger: pino({ level: 'silent' }) })
    base = await dashboard.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => {
    await dashboard.close()
    await w.close()
  })

  it('the gateway stream refuses browser pages from other origins', async () => {
    const ws = `${gatewayUrl.replace('http', 'ws')}/ws/events`
    expect(await connect(ws)).toBe('open')
    expect(await connect(ws, { origin: 'http://dashboard.example' })).toBe('open')
    expect(await connect(ws, { origin: 'http://evil.example' })).toBe(403)
  })

  it('the dashboard serves the app and proxies the API and the stream from its own origin only', async () => {
    expect((await fetch(`${base}/enterprise_dashboard.html`)).status).toBe(200)
    expect(await (await fetch(`${base}/`)).text()).toMatch(/<div id="app">/)
    expect(await (await fetch(`${base}/api/health`)).json()).toMatchObject({ status: 'ok' })
    const ws = `${base.replace('http', 'ws')}/api/ws/events`
    expect(await connect(ws, { origin: base })).toBe('open')
    expect(await connect(ws, { origin: 'http://evil.example' })).not.toBe('open')
    const approve = (origin?: string) =>
      fetch(`${base}/api/gateway/approve`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${APPROVER}`,
          ...(origin && { origin }),
        },
        body: JSON.stringify({ approval_id: 'nope', decision: 'approve' }),
      })
    const foreign = await approve('http://evil.example')
    expect(foreign.status).toBe(403)
    // DNS rebinding: a page at evil.example whose name now points here sends Host evil.example.
    const port = new URL(base).port
    const rebound = await connect(ws, {
      origin: `http://evil.example:${port}`,
      host: `evil.example:${port}`,
    })
    expect(rebound).not.toBe('open')
    const reboundRead = await new Promise<number>((resolve) => {
      const r = request(
        `${base}/api/events/recent`,
        { headers: { host: `evil.example:${port}` } },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      r.end()
    })
    expect(reboundRead).toBe(403)
    expect(await foreign.json()).toMatchObject({ error: { code: 'origin_not_allowed' } })
    // Same origin (or a script without one) reaches the gateway, which answers for itself.
    expect((await approve(base)).status).toBe(404)
    expect((await approve()).status).toBe(404)
  })

  it('refuses to start without a built app', async () => {
    await expect(
      buildDashboard({ gatewayUrl, logger: pino({ level: 'silent' }), distDir: '/nonexistent' }),
    ).rejects.toThrow(/not built/)
  })
})

describe('server.read_access: approver', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let gatewayUrl: string
  beforeAll(async () => {
    const loaded = loadConfig(DEMO_CONFIG)
    const server = { ...loaded.config.server, read_access: 'approver' as const }
    w = await startWarden({ config: { ...loaded, config: { ...loaded.config, server } } })
    gatewayUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(() => w.close())

  it('decisions, statistics and pending approvals need an approver token; agent keys do not do', async () => {
    for (const url of [
      '/events/recent',
      '/events/timeline',
      '/stats',
      '/gateway/pending-approvals',
    ]) {
      expect((await w.app.inject({ url })).statusCode).toBe(401)
      const agent = await w.app.inject({
        url,
        headers: { authorization: `Bearer ${keyOf('support-agent')}` },
      })
      expect(agent.statusCode).toBe(401)
      const approver = await w.app.inject({ url, headers: { authorization: `Bearer ${APPROVER}` } })
      expect(approver.statusCode).toBe(200)
    }
    // Configuration and health stay readable (the agent API needs the tool list).
    expect((await w.app.inject({ url: '/config/tools' })).statusCode).toBe(200)
  })

  it('the event stream takes the token as a header or as a subprotocol (what browsers can send)', async () => {
    const ws = `${gatewayUrl.replace('http', 'ws')}/ws/events`
    expect(await connect(ws)).toBe(401)
    expect(await connect(ws, { authorization: `Bearer ${APPROVER}` })).toBe('open')
    const viaProtocol = await new Promise<string | number>((resolve) => {
      const socket = new WebSocket(ws, [`warden.token.${APPROVER}`])
      socket.on('open', () => {
        resolve(socket.protocol)
        socket.close()
      })
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    })
    expect(viaProtocol).toBe(`warden.token.${APPROVER}`)
    const wrong = await new Promise<string | number>((resolve) => {
      const socket = new WebSocket(ws, ['warden.token.demo-support-agent-key'])
      socket.on('open', () => resolve('open'))
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    })
    expect(wrong).toBe(401)
  })
})
