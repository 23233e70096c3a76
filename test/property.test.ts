import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ERROR_CATALOG } from '../src/domain/errors.js'
import { APPROVER, DEMO_AGENT_IDS, DEMO_TOOL_NAMES, keyOf, startWarden } from './helpers.js'

/**
 * Property: whatever an agent or an outsider sends to any route of the gateway — random or
 * malformed bodies, headers, methods, URLs, huge numbers, duplicate keys, unicode — the app
 * answers, never with a 5xx, and every 4xx carries a catalog error code in the documented JSON
 * shape. Size: WARDEN_FUZZ_RUNS generated requests (CI default 100,000), run in batches of 1,000
 * against one in-process gateway on a temporary SQLite file so memory stays flat.
 */
const RUNS = Number(process.env.WARDEN_FUZZ_RUNS ?? 100_000)
const BATCH = 1_000

const AGENTS = [...DEMO_AGENT_IDS, 'nobody', '']
const TOOLS = [...DEMO_TOOL_NAMES, 'Issue_Refund', 'issue_refund ', 'rm -rf', '__proto__']
const PATHS = [
  '/gateway/execute',
  '/gateway/message',
  '/gateway/approve',
  '/gateway/pending-approvals',
  '/gateway/approvals/',
  '/gateway/callbacks/approvals',
  '/detect/injection',
  '/events/recent',
  '/events/timeline',
  '/ws/events',
  '/stats',
  '/auth/whoami',
  '/audit/export',
  '/audit/verify',
  '/audit/sessions/',
  '/config/agents',
  '/config/tools',
  '/demo/scenarios',
  '/demo/run-scenario/',
  '/health',
  '/metrics',
  '/docs',
  '/docs/json',
  '/',
  '/nope',
]
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'] as const

const weird = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('%', '%zz', '%00', '%E0%A4%A', '..%2f..', '\u2028', '\ud800', '?a=1&a=2', '#x'),
)
const number = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 1e-320),
)
const json: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    number,
    weird,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor')),
      tie('value'),
      {
        maxKeys: 4,
      },
    ),
  ),
})).value

/** A plausible tool call, then bent: wrong types, extra keys, huge numbers, unicode. */
const callBody = fc.record(
  {
    agent_id: fc.oneof(fc.constantFrom(...AGENTS), weird, number),
    tool: fc.oneof(fc.constantFrom(...TOOLS), weird),
    params: fc.oneof(
      fc.record(
        {
          order_id: fc.oneof(fc.constantFrom('ORD-1', 'ORD-99'), weird),
          amount: number,
          reason: weird,
          query: weird,
          environment: fc.constantFrom('dev', 'staging', 'prod', 'PROD', ' dev'),
          service: fc.constantFrom('billing', 'Billing', ''),
          segment: fc.constantFrom('all', 'vip', 'x'),
          destination: weird,
        },
        { requiredKeys: [] },
      ),
      json,
    ),
    session_id: weird,
    context: fc.oneof(json, fc.record({ user_input: weird, requested_by: json })),
    approval_id: weird,
    decision: fc.constantFrom('approve', 'deny', 'maybe', ''),
    to: fc.constantFrom(...AGENTS),
    text: weird,
    delegation: weird,
  },
  { requiredKeys: [] },
)

/** The body as bytes: valid JSON, JSON with a duplicated key, truncated JSON, or noise. */
const body = fc.oneof(
  callBody.map((b) => JSON.stringify(b)),
  json.map((v) => JSON.stringify(v) ?? 'null'),
  callBody.map((b) => JSON.stringify(b).replace(/^\{/, '{"tool":"lookup_order",')),
  callBody.map((b) => JSON.stringify(b).slice(0, -3)),
  fc.string({ unit: 'binary' }),
  fc.constant(''),
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
)

const header = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(...AGENTS).map((a) => `Bearer ${keyOf(a)}`),
  fc.constant(`Bearer ${APPROVER}`),
  fc.string({ unit: 'grapheme-ascii' }).map((s) => `Bearer ${s}`),
  fc.string({ unit: 'grapheme-ascii' }),
)

const request = fc.record({
  method: fc.constantFrom(...METHODS),
  path: fc.constantFrom(...PATHS),
  suffix: fc.oneof(
    fc.constant(''),
    weird.map((s) => encodeURIComponent(s.toWellFormed())),
    weird,
  ),
  query: fc.oneof(
    fc.constant(''),
    fc.constantFrom(
      '?limit=-1',
      '?limit=1e308',
      '?limit=abc',
      '?last_seq=99999999999999999999',
      '?agent_id=x&agent_id=y',
      '?format=cef',
      '?format=csv',
      '?since=notadate',
      '?type=tool_call_executed',
    ),
    weird.map((s) => `?${s}`),
  ),
  contentType: fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'text/plain',
    'multipart/form-data',
    undefined,
  ),
  authorization: header,
  origin: fc.constantFrom(undefined, 'http://evil.example', 'http://localhost:3000', 'null'),
  host: fc.constantFrom(undefined, 'localhost', 'evil.example', '127.0.0.1:8080'),
  upgrade: fc.boolean(),
  idempotencyKey: fc.option(weird, { nil: undefined }),
  body,
})

type Warden = Awaited<ReturnType<typeof startWarden>>

describe('property: no generated request makes the gateway fail', () => {
  let warden: Warden
  beforeAll(async () => {
    warden = await startWarden()
  })
  afterAll(() => warden.close())

  it(`${RUNS} generated requests: 0 crashes, 0 5xx, every 4xx a catalog code in JSON`, async () => {
    const statuses = new Map<number, number>()
    let done = 0
    while (done < RUNS) {
      const n = Math.min(BATCH, RUNS - done)
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const headers: Record<string, string> = {}
          if (r.contentType) headers['content-type'] = r.contentType
          if (r.authorization !== undefined) headers.authorization = r.authorization
          if (r.origin) headers.origin = r.origin
          if (r.host) headers.host = r.host
          if (r.idempotencyKey !== undefined)
            headers['idempotency-key'] = r.idempotencyKey.replace(/[^\x20-\x7e]/g, '')
          if (r.upgrade) {
            headers.connection = 'Upgrade'
            headers.upgrade = 'websocket'
          }
          const withBody = r.method !== 'GET' && r.method !== 'HEAD'
          const res = await warden.app.inject({
            method: r.method,
            // `app.inject` (light-my-request) cannot build a URL with a raw backslash (`/\` reads as
            // a scheme-relative URL on its side), so it goes percent-encoded.
            url: (r.path + r.suffix + r.query).replaceAll('\\', '%5C'),
            headers,
            ...(withBody ? { payload: r.body } : {}),
          })
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
          if (res.statusCode >= 500) {
            throw new Error(`${res.statusCode} for ${r.method} ${r.path + r.suffix}: ${res.body}`)
          }
          if (res.statusCode >= 400 && r.method !== 'HEAD') {
            const parsed = JSON.parse(res.body) as { error?: { code?: string; message?: string } }
            expect(Object.keys(ERROR_CATALOG)).toContain(parsed.error?.code)
            expect(typeof parsed.error?.message).toBe('string')
          }
        }),
        { numRuns: n },
      )
      done += n
    }
    expect(done).toBe(RUNS)
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true)
  }, 900_000)
})
