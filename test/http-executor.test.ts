import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execute, startWarden } from './helpers.js'

const EXAMPLE = fileURLToPath(new URL('../config/http-upstream/', import.meta.url))

interface Hit {
  method: string
  url: string
  body: string
  requestId: string | undefined
  authorization: string | undefined
}

/** A real upstream: records every request; some paths misbehave on purpose. */
function upstream(): Promise<{ server: Server; port: number; hits: Hit[] }> {
  const hits: Hit[] = []
  const server = createServer(async (req: IncomingMessage, res) => {
    let body = ''
    for await (const chunk of req) body += chunk
    hits.push({
      method: req.method ?? '',
      url: req.url ?? '',
      body,
      requestId: req.headers['x-request-id'] as string | undefined,
      authorization: req.headers.authorization,
    })
    if (req.url?.startsWith('/orders/ORD-9999/refunds')) return // hang: never answer
    if (req.url?.startsWith('/orders/ORD-7000/refunds')) {
      // Answer the headers, then stall in the middle of the body.
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.write('{"refund_id":')
    }
    if (req.url?.startsWith('/orders/ORD-8000')) {
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify({ blob: 'x'.repeat(5 * 1024 * 1024) }))
    }
    if (req.url?.startsWith('/orders/ORD-5000')) {
      res.writeHead(500, { 'content-type': 'application/json' })
      return res.end('{"error":"boom"}')
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    if (req.url?.startsWith('/orders/')) {
      return res.end(
        JSON.stringify({ order_id: req.url.split('/')[2], customer: { email: 'ada@example.com' } }),
      )
    }
    res.end(JSON.stringify({ ok: true, echo: body ? JSON.parse(body) : null }))
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as AddressInfo).port, hits }),
    ),
  )
}

const KB_SECRET = 'kb-s3cret-token-0123456789'

/**
 * The HTTP example with its upstream on `port`; with `secretHeader`, the knowledge-base tool sends
 * `Authorization` from the environment variable KB_AUTHORIZATION (`headers_env`).
 */
function copyExample(dir: string, port: number, secretHeader: boolean): string {
  for (const f of ['warden.yaml', 'agents.yaml', 'tools.yaml', 'policy.yaml']) {
    let text = readFileSync(join(EXAMPLE, f), 'utf8').replaceAll(
      '127.0.0.1:9100',
      `127.0.0.1:${port}`,
    )
    if (f === 'tools.yaml' && secretHeader)
      text = text.replace(
        "url: 'http://127.0.0.1:" + port + "/kb/search', timeout_ms: 2000 }",
        "url: 'http://127.0.0.1:" +
          port +
          "/kb/search', timeout_ms: 2000, headers_env: { Authorization: KB_AUTHORIZATION } }",
      )
    writeFileSync(join(dir, f), text)
  }
  return join(dir, 'warden.yaml')
}

describe('http executor against a real upstream', () => {
  let up: Awaited<ReturnType<typeof upstream>>
  let w: Awaited<ReturnType<typeof startWarden>>
  let configFile: string
  beforeAll(async () => {
    up = await upstream()
    const dir = mkdtempSync(join(tmpdir(), 'warden-http-'))
    configFile = copyExample(dir, up.port, true)
    w = await startWarden({ config: configFile, env: { KB_AUTHORIZATION: `Bearer ${KB_SECRET}` } })
  })
  afterAll(async () => {
    await w.close()
    up.server.closeAllConnections()
    up.server.close()
  })

  it('GET: fills the path template and masks PII in a confidential result', async () => {
    const res = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(res.statusCode).toBe(200)
    expect(res.json().result).toEqual({
      order_id: 'ORD-1001',
      customer: { email: 'a***@example.com' },
    })
    const hit = up.hits.at(-1)!
    expect(hit).toMatchObject({
      method: 'GET',
      url: '/orders/ORD-1001',
      requestId: res.json().request_id,
    })
  })

  it('a secret header comes from the environment, and is nowhere in the audit or /config/tools', async () => {
    const res = await execute(w, 'support-agent', 'search_knowledge_base', { query: 'refunds' })
    expect(res.statusCode).toBe(200)
    expect(up.hits.at(-1)).toMatchObject({ authorization: `Bearer ${KB_SECRET}` })
    // Tools without one send none.
    await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(up.hits.at(-1)!.authorization).toBeUndefined()
    const tools = (await w.app.inject({ url: '/config/tools' })).body
    expect(tools).toContain('search_knowledge_base')
    expect(tools).not.toContain(KB_SECRET)
    const log = JSON.stringify(await w.stores.audit.query({ limit: 10_000 }))
    expect(log).not.toContain(KB_SECRET)
  })

  it('a secret header whose variable is not set refuses the start, naming tool, header and variable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-http-'))
    await expect(startWarden({ config: copyExample(dir, up.port, true), env: {} })).rejects.toThrow(
      /tool `search_knowledge_base`: executor\.headers_env\.Authorization: environment variable KB_AUTHORIZATION is not set/,
    )
  })

  it('a header may not come from both headers and headers_env, in any case', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-http-'))
    const file = copyExample(dir, up.port, true)
    const tools = join(dir, 'tools.yaml')
    writeFileSync(
      tools,
      readFileSync(tools, 'utf8').replace(
        'headers_env: { Authorization: KB_AUTHORIZATION }',
        "headers: { authorization: 'Bearer fixed' }, headers_env: { Authorization: KB_AUTHORIZATION }",
      ),
    )
    await expect(startWarden({ config: file, env: { KB_AUTHORIZATION: 'x' } })).rejects.toThrow(
      /headers_env: a header in `headers_env` is also in `headers`/,
    )
  })

  it('GET: other parameters go in the query string, URL-encoded', async () => {
    await execute(w, 'support-agent', 'search_knowledge_base', { query: 'reset & password?' })
    expect(up.hits.at(-1)!.url).toBe('/kb/search?query=reset+%26+password%3F')
  })

  it('POST: the remaining parameters are the JSON body', async () => {
    const res = await execute(w, 'support-agent', 'create_support_ticket', {
      customer_id: '12345',
      subject: 'Broken',
    })
    expect(res.statusCode).toBe(200)
    expect(up.hits.at(-1)).toMatchObject({
      method: 'POST',
      url: '/customers/12345/tickets',
      body: '{"subject":"Broken"}',
    })
  })

  it('an upstream error is 502 upstream_error and recorded with outcome error', async () => {
    const res = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-5000' })
    expect(res.statusCode).toBe(502)
    expect(res.json().error.code).toBe('upstream_error')
    const [event] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
    expect(event).toMatchObject({ outcome: 'error', request_id: res.json().request_id })
  })

  it('a hanging upstream is 504 at the deadline, outcome unknown, and is never retried', async () => {
    const before = up.hits.length
    const started = Date.now()
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-9999',
      amount: 20,
      reason: 'damaged',
    })
    expect(res.statusCode).toBe(504)
    expect(res.json().error.code).toBe('upstream_timeout')
    expect(Date.now() - started).toBeGreaterThanOrEqual(450)
    expect(up.hits.length - before).toBe(1)
    const [event] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
    expect(event).toMatchObject({ outcome: 'unknown', request_id: res.json().request_id })
  })

  it('a body that stalls after the headers is a timeout too (outcome unknown)', async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-7000',
      amount: 20,
      reason: 'damaged',
    })
    expect(res.statusCode).toBe(504)
    const [event] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
    expect(event).toMatchObject({ outcome: 'unknown', request_id: res.json().request_id })
  })

  it('an oversized response is refused rather than read into memory', async () => {
    const res = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-8000' })
    expect(res.statusCode).toBe(502)
    expect(res.json().error.message).toContain('more than 4194304 bytes')
  })

  it('a denied call never reaches the upstream', async () => {
    const before = up.hits.length
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1001',
      amount: 900,
      reason: 'damaged',
    })
    expect(res.statusCode).toBe(403)
    expect(up.hits.length).toBe(before)
  })
})
