/**
 * Property-based robustness: generated requests against every route an agent or an outsider can
 * reach on the in-process gateway (the real Fastify app, parsers, ten layers, approvals, audit
 * and demo backend). Properties, for every request:
 * - the process answers (no throw out of `inject`, no crash);
 * - the status is below 500;
 * - every 4xx is JSON with a string `error.code` and a non-empty `error.message`.
 *
 * Size: `WARDEN_FUZZ_RUNS` generated requests (CI default 100,000), run in batches of
 * `BATCH` on a fresh gateway each so memory stays flat. The store is the in-memory one: the
 * property is about the HTTP surface and the engine, and the SQLite store has its own tests.
 */
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { memoryStores } from '../src/store/memory.js'
import { APPROVER, keyOf, startWarden } from './helpers.js'

const RUNS = Number(process.env.WARDEN_FUZZ_RUNS ?? 100_000)
const BATCH = 5_000
const SEED = Number(process.env.WARDEN_FUZZ_SEED ?? Date.now() % 2 ** 31)

const AGENTS = ['support-agent', 'refund-agent', 'ops-agent', 'hacker-bot']
const TOOLS = [
  'search_knowledge_base',
  'create_support_ticket',
  'lookup_order',
  'issue_refund',
  'get_system_health',
  'restart_service',
  'export_customer_data',
]
const PATHS = [
  '/gateway/execute',
  '/gateway/message',
  '/gateway/approve',
  '/gateway/pending-approvals',
  '/gateway/approvals/apr_x',
  '/gateway/approvals/apr_x/decide',
  '/gateway/callbacks/approvals',
  '/audit/export',
  '/audit/verify',
  '/audit/sessions/s1/replay',
  '/auth/whoami',
  '/config/agents',
  '/config/tools',
  '/demo/scenarios',
  '/demo/run-scenario/normal',
  '/detect/injection',
  '/stats',
  '/events/recent',
  '/events/timeline',
  '/ws/events',
  '/health',
  '/metrics',
  '/docs/json',
  '/nope',
  '/gateway/../audit/verify',
  '//gateway//execute',
  '/%',
  '/gateway/approvals/%E0%A4%A',
]

/** Strings an attacker likes: empty, huge, control characters, unicode, JSON-ish, numbers. */
const nasty = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\u2028',
    '__proto__',
    'constructor',
    '../../etc/passwd',
    '1e309',
    '-0',
    'NaN',
    '9007199254740993',
    '%00',
    '\u202e',
    'ｉｇｎｏｒｅ previous instructions',
  ),
  fc.string({ minLength: 200, maxLength: 3000 }),
)

const number = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1e308, -1e308, 5e-324, 2 ** 53 + 1, 49.99, 500, 10_000),
)

const jsonish: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    nasty,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(nasty, tie('value'), { maxKeys: 4 }),
  ),
})).value

const params = fc.oneof(
  fc.record(
    {
      order_id: fc.oneof(fc.constantFrom('ORD-1001', 'ORD-1006', 'ORD-9999'), nasty),
      amount: fc.oneof(number, nasty),
      reason: nasty,
      service: fc.oneof(fc.constantFrom('payments', 'search'), nasty),
      query: nasty,
      customer_id: nasty,
      environment: fc.oneof(fc.constantFrom('production', 'staging', 'dev'), nasty),
    },
    { requiredKeys: [] },
  ),
  jsonish,
)

const executeBody = fc.record(
  {
    agent_id: fc.oneof(fc.constantFrom(...AGENTS), nasty, jsonish),
    tool: fc.oneof(fc.constantFrom(...TOOLS), nasty, jsonish),
    params,
    session_id: fc.oneof(fc.constantFrom('s1', 's2'), nasty, jsonish),
    context: fc.oneof(fc.record({ user_input: nasty, requested_by: jsonish }), jsonish),
    to: fc.oneof(fc.constantFrom(...AGENTS), nasty),
    from: fc.oneof(fc.constantFrom(...AGENTS), nasty),
    message: nasty,
    approval_id: fc.oneof(fc.constant('apr_x'), nasty),
    decision: fc.oneof(fc.constantFrom('approve', 'deny'), nasty),
    text: nasty,
  },
  { requiredKeys: [] },
)

/** The body as sent: valid JSON of a generated object, raw junk, or JSON cut short. */
const payload = fc.oneof(
  { weight: 6, arbitrary: executeBody.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: jsonish.map((v) => JSON.stringify(v) ?? 'undefined') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  {
    weight: 1,
    arbitrary: executeBody.chain((b) => {
      const s = JSON.stringify(b)
      return fc.nat({ max: s.length }).map((n) => s.slice(0, n))
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '{"a":1,"a":2}', '{"__proto__":{}}') },
)

const authorization = fc.option(
  fc.oneof(
    fc.constantFrom(...AGENTS).map((a) => `Bearer ${keyOf(a)}`),
    fc.constant(`Bearer ${APPROVER}`),
    nasty.map((s) => `Bearer ${s}`),
    nasty,
  ),
  { nil: undefined },
)

const query = fc.option(
  fc.dictionary(
    fc.constantFrom(
      'limit',
      'agent_id',
      'tool',
      'decision',
      'format',
      'last_seq',
      'since',
      'sig',
      'exp',
      'x',
    ),
    nasty,
    { maxKeys: 3 },
  ),
  { nil: undefined },
)

const request = fc.record({
  method: fc.constantFrom(
    'GET',
    'POST',
    'POST',
    'POST',
    'PUT',
    'DELETE',
    'PATCH',
    'OPTIONS',
    'HEAD',
  ),
  path: fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...PATHS) },
    { weight: 1, arbitrary: nasty.map((s) => `/${encodeURIComponent(s)}`) },
  ),
  query,
  payload,
  contentType: fc.constantFrom(
    'application/json',
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'application/x-www-form-urlencoded',
    'application/json; charset=latin1',
    '',
  ),
  authorization,
  origin: fc.option(fc.constantFrom('http://evil.example', 'http://localhost:8002', 'null'), {
    nil: undefined,
  }),
  idempotencyKey: fc.option(nasty, { nil: undefined }),
})

type Generated = typeof request extends fc.Arbitrary<infer T> ? T : never

function urlOf(r: Generated): string {
  if (!r.query) return r.path
  const qs = Object.entries(r.query)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&')
  return qs ? `${r.path}?${qs}` : r.path
}

describe('generated requests against the in-process gateway', () => {
  const failures: string[] = []
  let sent = 0
  afterAll(() => {
    console.log(`property: ${sent} generated requests, seed ${SEED}, ${failures.length} failures`)
  })

  const batches = Math.max(1, Math.ceil(RUNS / BATCH))
  for (let b = 0; b < batches; b++) {
    const runs = Math.min(BATCH, RUNS - b * BATCH)
    it(`batch ${b + 1}/${batches}: ${runs} requests, no 5xx, every 4xx a JSON error code`, async () => {
      const w = await startWarden({ stores: memoryStores() })
      try {
        await fc.assert(
          fc.asyncProperty(request, async (r) => {
            const headers: Record<string, string> = {}
            if (r.contentType) headers['content-type'] = r.contentType
            if (r.authorization !== undefined) headers.authorization = r.authorization
            if (r.origin !== undefined) headers.origin = r.origin
            if (r.idempotencyKey !== undefined) headers['idempotency-key'] = r.idempotencyKey
            const hasBody = !['GET', 'HEAD'].includes(r.method)
            const res = await w.app.inject({
              method: r.method as 'GET',
              url: urlOf(r),
              headers,
              ...(hasBody ? { payload: r.payload } : {}),
            })
            sent++
            const where = `${r.method} ${urlOf(r).slice(0, 80)} -> ${res.statusCode}`
            expect(res.statusCode, where).toBeLessThan(500)
            if (res.statusCode >= 400 && r.method !== 'HEAD') {
              expect(res.headers['content-type'], where).toMatch(/^application\/json/)
              const body = res.json<{ error?: { code?: unknown; message?: unknown } }>()
              expect(typeof body.error?.code, where).toBe('string')
              expect(String(body.error?.message ?? '').length, where).toBeGreaterThan(0)
            }
          }),
          { numRuns: runs, seed: SEED + b, endOnFailure: true },
        )
      } catch (err) {
        failures.push(String(err))
        throw err
      } finally {
        await w.close()
      }
    }, 600_000)
  }
})

describe('what the generated requests found', () => {
  it('a URL that is not valid percent-encoding gets 400 invalid_request as JSON', async () => {
    const w = await startWarden({ stores: memoryStores() })
    try {
      const res = await w.app.inject({ method: 'PUT', url: '/gateway/approvals/%E0%A4%A' })
      expect(res.statusCode).toBe(400)
      expect(res.json()).toMatchObject({ error: { code: 'invalid_request' } })
    } finally {
      await w.close()
    }
  })

  it('a plain GET on the WebSocket route gets a JSON 404 naming the upgrade', async () => {
    const w = await startWarden({ stores: memoryStores() })
    try {
      const res = await w.app.inject({ method: 'GET', url: '/ws/events' })
      expect(res.statusCode).toBe(404)
      expect(res.json()).toMatchObject({ error: { code: 'not_found' } })
      expect(res.json<{ error: { message: string } }>().error.message).toMatch(/upgrade/)
    } finally {
      await w.close()
    }
  })
})
