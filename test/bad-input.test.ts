/**
 * Bad input and authorization bypass attempts against POST /gateway/execute (threat matrix
 * rows B1–B14 and A1–A12). Everything goes through the real Fastify app with `inject()`: the
 * strict JSON parser, the body schema, the ten pipeline layers, the audit store and the demo
 * backend. No mocks.
 *
 * Oracles besides status + `error.code`:
 * - every 4xx body has `error.code` and `error.message`, is JSON, and leaks no stack trace;
 * - no `tool_call_executed` (or allow) event exists for a rejected request;
 * - refunds that were refused did not change the order balance (checked with `lookup_order`);
 * - restarts that were refused did not bump the restart counter (checked with `get_system_health`);
 * - `Object.prototype` is unchanged after `__proto__` / `constructor` payloads (O4).
 */
import { Readable } from 'node:stream'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig, type LoadedConfig } from '../src/config/loader.js'
import { DEMO_CONFIG, execute, keyOf, startWarden } from './helpers.js'

type Warden = Awaited<ReturnType<typeof startWarden>>

interface WireEvent {
  type: string
  request_id: string
  agent_id: string | null
  principal?: string
  decision: string
  code?: string | null
  tool?: string | null
  params?: Record<string, unknown> | null
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown }
  request_id?: string
  decision?: string
  layer?: string | null
  [key: string]: unknown
}

const MiB = 1024 * 1024
const PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype).sort()
const JSON_CT = { 'content-type': 'application/json' }

function headersFor(agent = 'refund-agent'): Record<string, string> {
  return { ...JSON_CT, authorization: `Bearer ${keyOf(agent)}` }
}

/** POST a raw body (string or bytes) to /gateway/execute, exactly as given. */
function postRaw(
  w: Warden,
  payload: string | Buffer | Readable,
  headers: Record<string, string> = headersFor(),
) {
  return w.app.inject({ method: 'POST', url: '/gateway/execute', headers, payload })
}

/** A well-formed execute body with `params` spliced in as raw JSON text. */
function bodyWithParams(paramsJson: string, tool = 'issue_refund', agent = 'refund-agent'): string {
  return `{"agent_id":${JSON.stringify(agent)},"tool":${JSON.stringify(tool)},"params":${paramsJson}}`
}

/** Status, code, message and no leaked internals; returns the parsed body. */
function expectError(res: LightMyRequestResponse, status: number, code: string): ErrorBody {
  const body = res.json<ErrorBody>()
  expect({ status: res.statusCode, code: body.error?.code }).toEqual({ status, code })
  expect(res.headers['content-type']).toMatch(/^application\/json/)
  expect(typeof body.error?.message).toBe('string')
  expect(String(body.error?.message).length).toBeGreaterThan(0)
  expect(res.payload).not.toMatch(/"stack"|\n\s+at |node_modules|\/work\/|\.ts:\d+/)
  return body
}

async function recentEvents(w: Warden): Promise<WireEvent[]> {
  const res = await w.app.inject({ method: 'GET', url: '/events/recent?limit=1000' })
  expect(res.statusCode).toBe(200)
  return res.json<{ events: WireEvent[] }>().events
}

async function eventsFor(w: Warden, requestId: string | undefined): Promise<WireEvent[]> {
  expect(typeof requestId).toBe('string')
  return (await recentEvents(w)).filter((e) => e.request_id === requestId)
}

/** The request produced no execution and no allow decision. */
async function expectNotExecuted(w: Warden, body: ErrorBody): Promise<WireEvent[]> {
  const events = await eventsFor(w, body.request_id)
  expect(events.filter((e) => e.type === 'tool_call_executed' || e.decision === 'allow')).toEqual(
    [],
  )
  return events
}

async function balanceOf(w: Warden, orderId: string): Promise<number> {
  const res = await execute(w, 'refund-agent', 'lookup_order', { order_id: orderId })
  expect(res.statusCode).toBe(200)
  return res.json<{ result: { balance: number } }>().result.balance
}

async function restartsIn(w: Warden, environment: string, service: string): Promise<number> {
  const res = await execute(w, 'admin-agent', 'get_system_health', { environment, service })
  expect(res.statusCode).toBe(200)
  const services = res.json<{ result: { services: { restarts: number }[] } }>().result.services
  expect(services).toHaveLength(1)
  return services[0]!.restarts
}

function expectPrototypeClean(): void {
  expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
  expect(({} as Record<string, unknown>).approved).toBeUndefined()
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTO_NAMES)
}

const REFUND = { order_id: 'ORD-1003', amount: 25, reason: 'damaged' } // ORD-1003 balance: 899

afterAll(() => expectPrototypeClean())

// ---------------------------------------------------------------------------------------------
// B1–B14: malformed bodies, rejected by the parser or the body schema before any policy runs.
// These never reach the pipeline, so one warden serves the whole block.
// ---------------------------------------------------------------------------------------------
describe('bad input rejected before the pipeline (B1–B14)', () => {
  let w: Warden
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(async () => {
    // Nothing in this block may have executed a refund.
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
    const executed = (await recentEvents(w)).filter((e) => e.type === 'tool_call_executed')
    expect(executed.filter((e) => e.tool !== 'lookup_order')).toEqual([])
    await w.close()
  })

  it('B1 truncated JSON → 400 invalid_json', async () => {
    const res = await postRaw(
      w,
      '{"agent_id":"refund-agent","tool":"issue_refund","params":{"amount":',
    )
    await expectNotExecuted(w, expectError(res, 400, 'invalid_json'))
  })

  it('B1 other malformed JSON → 400 invalid_json (trailing comma, single quotes, garbage, empty)', async () => {
    const bodies = [
      bodyWithParams('{"order_id":"ORD-1003","amount":25,"reason":"damaged",}'),
      "{'agent_id':'refund-agent'}",
      `${bodyWithParams(JSON.stringify(REFUND))} trailing`,
      '',
      '   ',
    ]
    for (const payload of bodies) expectError(await postRaw(w, payload), 400, 'invalid_json')
  })

  it('B2 duplicate top-level key → 400 duplicate_key (never last-wins)', async () => {
    const payload = `{"agent_id":"refund-agent","tool":"lookup_order","tool":"issue_refund","params":${JSON.stringify(REFUND)}}`
    await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'duplicate_key'))
    const agents = `{"agent_id":"refund-agent","agent_id":"admin-agent","tool":"issue_refund","params":${JSON.stringify(REFUND)}}`
    expectError(await postRaw(w, agents), 400, 'duplicate_key')
  })

  it('B3 duplicate nested key → 400 duplicate_key', async () => {
    const payload = bodyWithParams(
      '{"order_id":"ORD-1003","amount":10,"amount":100000,"reason":"damaged"}',
    )
    await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'duplicate_key'))
    // Same key spelled with an escape is still the same key.
    const escaped = bodyWithParams(
      '{"order_id":"ORD-1003","amount":10,"\\u0061mount":800,"reason":"x"}',
    )
    expectError(await postRaw(w, escaped), 400, 'duplicate_key')
    // Deeper, and inside an array element.
    const deep = bodyWithParams('{"x":[{"a":1,"b":{"c":1,"c":2}}]}')
    expectError(await postRaw(w, deep), 400, 'duplicate_key')
  })

  it('B3 the same key in sibling objects is not a duplicate', async () => {
    const payload = bodyWithParams('{"x":{"a":1},"y":{"a":1}}', 'lookup_order')
    expectError(await postRaw(w, payload), 400, 'param_invalid') // parsed; unknown params
  })

  it('B4 __proto__ key → 400 forbidden_key; Object.prototype untouched', async () => {
    const bodies = [
      bodyWithParams(
        '{"__proto__":{"isAdmin":true,"approved":true},"order_id":"ORD-1003","amount":5,"reason":"damaged"}',
      ),
      `{"__proto__":{"isAdmin":true},"agent_id":"refund-agent","tool":"issue_refund","params":${JSON.stringify(REFUND)}}`,
      bodyWithParams('{"x":[{"__proto__":{"isAdmin":true}}]}'),
      // Escaped spellings decode to the same key.
      bodyWithParams('{"\\u005f\\u005fproto\\u005f\\u005f":{"isAdmin":true}}'),
      bodyWithParams('{"__pro\\u0074o__":{"approved":true}}'),
    ]
    for (const payload of bodies) {
      await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'forbidden_key'))
      expectPrototypeClean()
    }
  })

  it('B5 constructor / prototype keys → 400 forbidden_key; Object.prototype untouched', async () => {
    const bodies = [
      bodyWithParams('{"constructor":{"prototype":{"approved":true,"isAdmin":true}}}'),
      '{"args":{"constructor":{"prototype":{"approved":true}}}}',
      bodyWithParams('{"prototype":{"isAdmin":true}}'),
      bodyWithParams('{"order_id":"ORD-1003","nested":{"constructor":1}}'),
    ]
    for (const payload of bodies) {
      expectError(await postRaw(w, payload), 400, 'forbidden_key')
      expectPrototypeClean()
    }
  })

  it('B6 body over 1 MiB → 400 payload_too_large (1 MiB + 1 byte and 10 MiB)', async () => {
    const base = bodyWithParams(JSON.stringify({ ...REFUND, reason: '' }))
    for (const size of [MiB + 1, 10 * MiB]) {
      const payload = base.replace('"reason":""', `"reason":"${'a'.repeat(size - base.length)}"`)
      expect(Buffer.byteLength(payload)).toBe(size)
      await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'payload_too_large'))
    }
  })

  it('B6 a body of exactly 1 MiB is accepted (the limit is inclusive)', async () => {
    const base = bodyWithParams('{"order_id":"ORD-1001"}', 'lookup_order')
    const payload = base + ' '.repeat(MiB - base.length)
    expect(Buffer.byteLength(payload)).toBe(MiB)
    const res = await postRaw(w, payload)
    expect(res.statusCode).toBe(200)
  })

  it('B6 chunked 10 MiB body without Content-Length → 400 payload_too_large', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    const stream = Readable.from(
      (function* () {
        yield Buffer.from('{"agent_id":"refund-agent","tool":"issue_refund","params":{"reason":"')
        for (let i = 0; i < 160; i++) yield chunk
        yield Buffer.from('"}}')
      })(),
    )
    const res = await postRaw(w, stream, { ...headersFor(), 'transfer-encoding': 'chunked' })
    await expectNotExecuted(w, expectError(res, 400, 'payload_too_large'))
  })

  it('B7 100,000-deep arrays inside params → 400 max_depth; the app keeps answering', async () => {
    const n = 100_000
    const payload = bodyWithParams(`{"x":${'['.repeat(n)}${']'.repeat(n)}}`)
    await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'max_depth'))
    const ok = await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(ok.statusCode).toBe(200)
  })

  it('B7 100,000-deep objects, and unclosed nesting → 400 max_depth', async () => {
    const n = 100_000
    const objects = bodyWithParams(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`)
    expectError(await postRaw(w, objects), 400, 'max_depth')
    const unclosed = bodyWithParams(`{"x":${'['.repeat(n)}`)
    expectError(await postRaw(w, unclosed), 400, 'max_depth')
    const ok = await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(ok.statusCode).toBe(200)
  })

  it('B7 depth boundary: 32 levels parse, 33 are rejected', async () => {
    // body (1) + params (2) + 30 arrays = 32
    const at = bodyWithParams(`{"x":${'['.repeat(30)}${']'.repeat(30)}}`, 'lookup_order')
    expectError(await postRaw(w, at), 400, 'param_invalid')
    const over = bodyWithParams(`{"x":${'['.repeat(31)}${']'.repeat(31)}}`, 'lookup_order')
    expectError(await postRaw(w, over), 400, 'max_depth')
  })

  it('B8 item boundary: 10,000 members parse, 10,001 → 400 max_items', async () => {
    const arr = (n: number) => `[${Array.from({ length: n }, () => '0').join(',')}]`
    const obj = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',')}}`
    const lookup = (params: string) => postRaw(w, bodyWithParams(params, 'lookup_order'))
    expectError(await lookup(`{"x":${arr(10_000)}}`), 400, 'param_invalid')
    expectError(await lookup(`{"x":${arr(10_001)}}`), 400, 'max_items')
    expectError(await lookup(obj(10_000)), 400, 'param_invalid')
    expectError(await lookup(obj(10_001)), 400, 'max_items')
  })

  it('B8 with the demo 1 MiB limit, 200,000 keys and 1,000,000 ints are refused as too large', async () => {
    const keys = `{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":0`).join(',')}}`
    expectError(await postRaw(w, bodyWithParams(keys)), 400, 'payload_too_large')
    const ints = `{"x":[${Array.from({ length: 1_000_000 }, (_, i) => i % 10).join(',')}]}`
    expectError(await postRaw(w, bodyWithParams(ints)), 400, 'payload_too_large')
  })

  it('B9 lone surrogate "\\ud800" (value, key, tool name) → 400 invalid_encoding', async () => {
    const bodies = [
      bodyWithParams('{"order_id":"ORD-1003","amount":5,"reason":"dam\\ud800aged"}'),
      bodyWithParams('{"\\udc00":1}'),
      '{"agent_id":"refund-agent","tool":"issue_refund\\ud800","params":{}}',
      '{"agent_id":"refund-agent\\udfff","tool":"lookup_order","params":{"order_id":"ORD-1001"}}',
    ]
    for (const payload of bodies) {
      await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'invalid_encoding'))
    }
  })

  it('B9 invalid UTF-8 bytes → 400 invalid_encoding', async () => {
    const wrap = (bytes: number[]) =>
      Buffer.concat([
        Buffer.from(
          '{"agent_id":"refund-agent","tool":"issue_refund","params":{"order_id":"ORD-1003","amount":5,"reason":"x',
        ),
        Buffer.from(bytes),
        Buffer.from('"}}'),
      ])
    // 0xC3 0x28: bad continuation; 0xC0 0xAF: overlong "/"; 0xED 0xA0 0x80: UTF-8-encoded surrogate;
    // 0xFF: never valid.
    for (const bytes of [[0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff]]) {
      await expectNotExecuted(
        w,
        expectError(await postRaw(w, wrap(bytes)), 400, 'invalid_encoding'),
      )
    }
  })

  it('B9 NUL in the tool name → 400 invalid_tool_name', async () => {
    const payload = `{"agent_id":"refund-agent","tool":"issue_refund\\u0000","params":${JSON.stringify(REFUND)}}`
    await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'invalid_tool_name'))
  })

  it('B10 NaN / Infinity literals → 400 invalid_json', async () => {
    for (const lit of ['NaN', 'Infinity', '-Infinity']) {
      const payload = bodyWithParams(`{"order_id":"ORD-1003","amount":${lit},"reason":"damaged"}`)
      expectError(await postRaw(w, payload), 400, 'invalid_json')
    }
  })

  it('B13 malformed tool names → 400 invalid_tool_name', async () => {
    const names = [
      'refund payment',
      'issue_refund\n',
      'a'.repeat(65),
      '../admin',
      '',
      'admin/../issue_refund',
      'issue_refund;',
      'issue_refund\t',
    ]
    for (const tool of names) {
      const res = await execute(w, 'refund-agent', tool, REFUND)
      await expectNotExecuted(w, expectError(res, 400, 'invalid_tool_name'))
    }
    // 64 characters is still a valid name (then simply not on the allowlist).
    expectError(await execute(w, 'refund-agent', 'a'.repeat(64), {}), 403, 'tool_not_allowed')
  })

  it('B14 text/plain, form, missing content type → 400 unsupported_media_type', async () => {
    const payload = JSON.stringify({
      agent_id: 'refund-agent',
      tool: 'issue_refund',
      params: REFUND,
    })
    const auth = { authorization: `Bearer ${keyOf('refund-agent')}` }
    for (const ct of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      'text/json',
    ]) {
      const res = await postRaw(w, payload, { ...auth, 'content-type': ct })
      await expectNotExecuted(w, expectError(res, 400, 'unsupported_media_type'))
    }
    const missing = await postRaw(w, payload, auth)
    await expectNotExecuted(w, expectError(missing, 400, 'unsupported_media_type'))
  })

  it('B14 application/json with parameters is still JSON', async () => {
    const payload = bodyWithParams('{"order_id":"ORD-1001"}', 'lookup_order')
    const res = await postRaw(w, payload, {
      ...headersFor(),
      'content-type': 'application/json; charset=utf-8',
    })
    expect(res.statusCode).toBe(200)
  })

  it('unknown top-level field → 400 invalid_request', async () => {
    for (const extra of ['"approved":true', '"principal":"admin-agent"', '"args":{}']) {
      const payload = `{"agent_id":"refund-agent","tool":"issue_refund","params":${JSON.stringify(REFUND)},${extra}}`
      await expectNotExecuted(w, expectError(await postRaw(w, payload), 400, 'invalid_request'))
    }
  })

  it('wrong body shapes → 400 invalid_request', async () => {
    const bodies = [
      'null',
      '[]',
      '"issue_refund"',
      '42',
      '{}',
      '{"agent_id":"refund-agent","params":{}}',
      '{"agent_id":7,"tool":"lookup_order","params":{}}',
      '{"agent_id":"refund-agent","tool":7,"params":{}}',
      '{"agent_id":"refund-agent","tool":"lookup_order","params":"ORD-1001"}',
      '{"agent_id":"refund-agent","tool":"lookup_order","params":["ORD-1001"]}',
      '{"agent_id":"refund-agent","tool":"lookup_order","params":null}',
    ]
    for (const payload of bodies) expectError(await postRaw(w, payload), 400, 'invalid_request')
  })
})

// ---------------------------------------------------------------------------------------------
// B8 at the real sizes: raise the body limit so the structural limit, not the size, decides.
// ---------------------------------------------------------------------------------------------
describe('B8 item limits behind a larger body limit', () => {
  let w: Warden
  beforeAll(async () => {
    const demo = loadConfig(DEMO_CONFIG)
    const config: LoadedConfig = {
      ...demo,
      config: { ...demo.config, server: { ...demo.config.server, body_limit_bytes: 32 * MiB } },
    }
    w = await startWarden({ config })
  })
  afterAll(async () => {
    await w.close()
  })

  // How fast the scan refuses these bodies is measured in bench/parse-limits.ts; here, what it
  // does: it stops at the limit, before anything after it in the body is read or parsed. Each
  // body ends with a repeated key and is then cut short, which would be `duplicate_key` or
  // `invalid_json` had the scan (or `JSON.parse`) reached it.
  const TAIL = ',"amount":1,"amount":2'

  it('an object with 200,000 keys → 400 max_items at the limit, the rest unread', async () => {
    const keys = `{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":0`).join(',')}${TAIL}`
    const payload = bodyWithParams(keys).slice(0, -1)
    expect(Buffer.byteLength(payload)).toBeGreaterThan(MiB)
    const body = expectError(await postRaw(w, payload), 400, 'max_items')
    expect(body.error?.message).toBe('an object or array has more than 10000 members')
    await expectNotExecuted(w, body)
  })

  it('an array of 1,000,000 ints → 400 max_items at the limit, the rest unread', async () => {
    const ints = `{"x":[${Array.from({ length: 1_000_000 }, (_, i) => i % 10).join(',')}]${TAIL}}`
    const body = expectError(await postRaw(w, bodyWithParams(ints).slice(0, -1)), 400, 'max_items')
    expect(body.error?.message).toBe('an object or array has more than 10000 members')
    await expectNotExecuted(w, body)
  })
})

// ---------------------------------------------------------------------------------------------
// Cases that reach the pipeline. A fresh warden per test: the per-tool rate limits (issue_refund
// 10/min, restart_service 5/min) and quarantine (10 denials/min) would otherwise leak between
// tests.
// ---------------------------------------------------------------------------------------------
describe('through the pipeline (B10, A1–A12)', () => {
  let w: Warden
  beforeEach(async () => {
    w = await startWarden()
  })
  afterEach(async () => {
    await w.close()
  })

  it.each([
    ['1e309 (overflows to Infinity)', '1e309'],
    ['-1e309', '-1e309'],
    ['9007199254740993 (2^53 + 1)', '9007199254740993'],
    ['"500" (string)', '"500"'],
    ['-0', '-0'],
    ['0', '0'],
    ['1e-400 (underflows to 0)', '1e-400'],
    ['true', 'true'],
    ['null', 'null'],
    ['[500]', '[500]'],
    ['{"value":500}', '{"value":500}'],
  ])('B10 amount %s → 400 param_invalid, balance unchanged', async (_name, amount) => {
    const payload = bodyWithParams(`{"order_id":"ORD-1003","amount":${amount},"reason":"damaged"}`)
    const body = expectError(await postRaw(w, payload), 400, 'param_invalid')
    expect(body.decision).toBe('deny')
    expect(body.layer).toBe('params')
    await expectNotExecuted(w, body)
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A1 missing bearer key → 401 unauthenticated; audit principal is anonymous', async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', REFUND, { key: null })
    const body = expectError(res, 401, 'unauthenticated')
    const events = await expectNotExecuted(w, body)
    expect(events.map((e) => [e.type, e.principal])).toEqual([['tool_call_denied', 'anonymous']])
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A1 wrong, malformed or non-agent credentials → 401 unauthenticated', async () => {
    const payload = JSON.stringify({
      agent_id: 'refund-agent',
      tool: 'issue_refund',
      params: REFUND,
    })
    const authorizations = [
      'Bearer not-a-key',
      `Bearer ${keyOf('refund-agent').toUpperCase()}`,
      `Bearer ${keyOf('refund-agent')}x`,
      `Basic ${Buffer.from(`refund-agent:${keyOf('refund-agent')}`).toString('base64')}`,
      `${keyOf('refund-agent')}`,
      'Bearer demo-approver-token',
      'Bearer ',
    ]
    for (const authorization of authorizations) {
      const res = await postRaw(w, payload, { ...JSON_CT, authorization })
      const events = await expectNotExecuted(w, expectError(res, 401, 'unauthenticated'))
      expect(events.map((e) => e.principal)).toEqual(['anonymous'])
    }
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A1 a valid key for another agent → 401 unauthenticated', async () => {
    // refund-agent's key while claiming to be support-agent, and the other way round.
    const res = await execute(
      w,
      'support-agent',
      'lookup_order',
      { order_id: 'ORD-1001' },
      { key: keyOf('refund-agent') },
    )
    const events = await expectNotExecuted(w, expectError(res, 401, 'unauthenticated'))
    expect(events.map((e) => e.principal)).toEqual(['anonymous'])
    const res2 = await execute(
      w,
      'admin-agent',
      'restart_service',
      { service: 'api', environment: 'dev' },
      { key: keyOf('refund-agent') },
    )
    expectError(res2, 401, 'unauthenticated')
    const res3 = await execute(w, 'refund-agent', 'issue_refund', REFUND, {
      key: keyOf('hacker-bot'),
    })
    expectError(res3, 401, 'unauthenticated')
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A3 case variants of an allowed tool → 403 tool_not_allowed (exact match)', async () => {
    for (const tool of [
      'Issue_Refund',
      'ISSUE_REFUND',
      'issue_Refund',
      'issue-refund',
      'issue_refund.',
    ]) {
      const res = await execute(w, 'refund-agent', tool, REFUND)
      const body = expectError(res, 403, 'tool_not_allowed')
      expect(body.layer).toBe('tool_allowlist')
      await expectNotExecuted(w, body)
    }
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A4 invisible, fullwidth and padded look-alikes → 400 invalid_tool_name (never normalised)', async () => {
    const names = [
      'issue_refund\u200b',
      '\u200bissue_refund',
      'issue\u00adrefund',
      '\uff49\uff53\uff53\uff55\uff45_refund', // ｉｓｓｕｅ_refund
      'issue_r\u0435fund', // Cyrillic е
      ' issue_refund',
      'issue_refund ',
      'issue_refund\u202e',
      'issue_refund\udb40\udc41', // Unicode tag character
    ]
    for (const tool of names) {
      const res = await execute(w, 'refund-agent', tool, REFUND)
      await expectNotExecuted(w, expectError(res, 400, 'invalid_tool_name'))
    }
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A8 an extra parameter (approved: true) → 400 param_invalid', async () => {
    for (const extra of [
      { approved: true },
      { role: 'admin' },
      { currency: 'USD', skip_guards: true },
    ]) {
      const res = await execute(w, 'refund-agent', 'issue_refund', {
        ...REFUND,
        amount: 600,
        ...extra,
      })
      const body = expectError(res, 400, 'param_invalid')
      expect(body.layer).toBe('params')
      await expectNotExecuted(w, body)
    }
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A9 an unknown tool and a forbidden tool get the same 403 answer', async () => {
    const unknown = await execute(w, 'support-agent', 'debug_exec', { cmd: 'id' })
    const forbidden = await execute(w, 'support-agent', 'issue_refund', REFUND)
    const a = expectError(unknown, 403, 'tool_not_allowed')
    const b = expectError(forbidden, 403, 'tool_not_allowed')
    const pattern = /^tool `[^`]+` is not allowed for agent `support-agent`$/
    expect(a.error?.message).toMatch(pattern)
    expect(b.error?.message).toMatch(pattern)
    // Same shape: identical once the tool name, request id and timings are taken out.
    const normalise = (body: ErrorBody, tool: string) =>
      JSON.parse(
        JSON.stringify(body)
          .replaceAll(tool, '<tool>')
          .replace(/"request_id":"[^"]+"/g, '"request_id":"<id>"')
          .replace(/"duration_us":\d+/g, '"duration_us":0'),
      ) as unknown
    expect(normalise(a, 'debug_exec')).toEqual(normalise(b, 'issue_refund'))
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort())
    await expectNotExecuted(w, a)
    await expectNotExecuted(w, b)
    // An agent with an empty allowlist sees the same for a real and an invented tool.
    const c = expectError(
      await execute(w, 'hacker-bot', 'export_customer_data', {}),
      403,
      'tool_not_allowed',
    )
    const d = expectError(
      await execute(w, 'hacker-bot', 'no_such_tool', {}),
      403,
      'tool_not_allowed',
    )
    expect(normalise(c, 'export_customer_data')).toEqual(normalise(d, 'no_such_tool'))
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it('A10 agent_id / on_behalf_of inside params → 400; identity comes from the key', async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      ...REFUND,
      agent_id: 'admin-agent',
      on_behalf_of: 'cfo',
    })
    const body = expectError(res, 400, 'param_invalid')
    const events = await expectNotExecuted(w, body)
    expect(events).toHaveLength(1)
    // The identity is the key's; the claimed values are kept in the audit record as evidence.
    expect(events[0]).toMatchObject({
      agent_id: 'refund-agent',
      principal: 'refund-agent',
      code: 'param_invalid',
      params: { agent_id: 'admin-agent', on_behalf_of: 'cfo' },
    })
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })

  it.each([
    ['prod', 'prod'],
    ['PROD', 'PROD'],
    ['" prod"', ' prod'],
    ['"prod "', 'prod '],
    ['production', 'production'],
    ['prd', 'prd'],
    ['pr\\u043ed (Cyrillic o)', 'pr\u043ed'],
    ['pr\\u200bod (zero-width space)', 'pr\u200bod'],
    ['Dev', 'Dev'],
    ['empty string', ''],
  ])(
    'A11 restart_service environment %s → 403 guard_denied, nothing restarted',
    async (_n, environment) => {
      const res = await execute(w, 'admin-agent', 'restart_service', {
        service: 'api',
        environment,
      })
      const body = expectError(res, 403, 'guard_denied')
      expect(body.layer).toBe('guards')
      await expectNotExecuted(w, body)
      for (const env of ['dev', 'staging', 'prod']) expect(await restartsIn(w, env, 'api')).toBe(0)
    },
  )

  it('A11 non-string or oversized environment → 400 param_invalid', async () => {
    const values: unknown[] = [['staging', 'prod'], { name: 'prod' }, 1, null, 'p'.repeat(33)]
    for (const environment of values) {
      const res = await execute(w, 'admin-agent', 'restart_service', {
        service: 'api',
        environment,
      })
      await expectNotExecuted(w, expectError(res, 400, 'param_invalid'))
    }
    expect(await restartsIn(w, 'prod', 'api')).toBe(0)
  })

  it('A11 control: dev and staging are held for approval, not executed', async () => {
    for (const environment of ['dev', 'staging']) {
      const res = await execute(w, 'admin-agent', 'restart_service', {
        service: 'api',
        environment,
      })
      expect(res.statusCode).toBe(202)
      const body = res.json<{ decision: string; approval_id: string }>()
      expect(body.decision).toBe('approval_required')
      expect(body.approval_id).toMatch(/^apr_/)
      expect(await restartsIn(w, environment, 'api')).toBe(0)
    }
  })

  it('A12 refund of 100 → 200 allow; the balance drops by 100', async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', { ...REFUND, amount: 100 })
    expect(res.statusCode).toBe(200)
    expect(res.json<{ decision: string }>().decision).toBe('allow')
    expect(await balanceOf(w, 'ORD-1003')).toBe(799)
  })

  it.each([100.01, 500])(
    'A12 refund of %s → 202 approval_required, not executed',
    async (amount) => {
      const res = await execute(w, 'refund-agent', 'issue_refund', { ...REFUND, amount })
      expect(res.statusCode).toBe(202)
      const body = res.json<{
        decision: string
        approval_id: string
        expires_at: string
        args_hash: string
        request_id: string
      }>()
      expect(body.decision).toBe('approval_required')
      expect(body.approval_id).toMatch(/^apr_/)
      expect(typeof body.expires_at).toBe('string')
      expect(typeof body.args_hash).toBe('string')
      await expectNotExecuted(w, body)
      expect(await balanceOf(w, 'ORD-1003')).toBe(899)
    },
  )

  it.each([500.01, 501, 899, 1_000_000])(
    'A12 refund of %s → 403 guard_denied, not executed',
    async (amount) => {
      const res = await execute(w, 'refund-agent', 'issue_refund', { ...REFUND, amount })
      const body = expectError(res, 403, 'guard_denied')
      expect(body.layer).toBe('guards')
      await expectNotExecuted(w, body)
      expect(await balanceOf(w, 'ORD-1003')).toBe(899)
    },
  )

  it.each([
    ['-100', { amount: -100 }],
    ['-0.01', { amount: -0.01 }],
    ['0', { amount: 0 }],
    ['over the schema maximum', { amount: 1_000_001 }],
    ['currency JPY', { amount: 100, currency: 'JPY' }],
  ])('A12 refund %s → 400 param_invalid', async (_n, change) => {
    const res = await execute(w, 'refund-agent', 'issue_refund', { ...REFUND, ...change })
    await expectNotExecuted(w, expectError(res, 400, 'param_invalid'))
    expect(await balanceOf(w, 'ORD-1003')).toBe(899)
  })
})
