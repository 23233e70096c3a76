import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { buildAgentApi } from '../src/agents/server.js'
import { jsonSchemaOf, ROUTE_DOCS } from '../src/http/openapi.js'
import * as s from '../src/http/schemas.js'
import { APPROVER, approve, execute, keyOf, startWarden } from './helpers.js'

type Spec = {
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: { content: { 'application/json': { schema: Record<string, unknown> } } }
        parameters?: {
          name: string
          in: string
          description?: string
          schema: Record<string, unknown>
        }[]
        responses: Record<string, { content?: { 'application/json': { schema: unknown } } }>
      }
    >
  >
}

const openApiPath = (route: string) => {
  const [method = '', path = ''] = route.split(' ')
  return [method.toLowerCase(), path.replace(/:(\w+)/g, '{$1}')] as const
}

describe('the OpenAPI document is generated from the schemas the handlers parse with', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let spec: Spec
  beforeAll(async () => {
    w = await startWarden()
    spec = (await w.app.inject({ url: '/docs/json' })).json() as Spec
  })
  afterAll(() => w.close())

  it('documents the execute body exactly as zod describes it, `delegation` included', () => {
    const body = spec.paths['/gateway/execute']?.post?.requestBody?.content['application/json']
    const { $schema: _dialect, ...expected } = z.toJSONSchema(s.executeBody, { io: 'input' })
    expect(body?.schema).toEqual(expected)
    expect(body?.schema).toMatchObject({
      additionalProperties: false,
      properties: { delegation: { type: 'string' } },
    })
  })

  it('every documented body, query and response is its zod schema as JSON Schema', () => {
    for (const [route, doc] of Object.entries(ROUTE_DOCS)) {
      if (route === 'GET /ws/events') continue // added by hand: @fastify/swagger skips WebSockets
      const [method, path] = openApiPath(route)
      const op = spec.paths[path]?.[method]
      expect(op, route).toBeDefined()
      if (doc.body)
        expect(op?.requestBody?.content['application/json'].schema, route).toEqual(
          jsonSchemaOf(doc.body, 'input'),
        )
      if (doc.query) {
        const props = (jsonSchemaOf(doc.query, 'input') as { properties: object }).properties
        // @fastify/swagger lifts a parameter's description out of its schema.
        const params = (op?.parameters ?? [])
          .filter((p) => p.in === 'query')
          .map((p) => [
            p.name,
            { ...p.schema, ...(p.description && { description: p.description }) },
          ])
        expect(Object.fromEntries(params), route).toEqual(props)
      }
      for (const [status, r] of Object.entries(doc.responses)) {
        if (typeof r === 'string') continue
        expect(op?.responses[status]?.content?.['application/json'].schema, route).toEqual(
          jsonSchemaOf(r[1], 'output'),
        )
      }
    }
  })

  it('the handlers accept what the document allows and refuse what it does not', async () => {
    // `delegation` is documented: the body passes the shape check and reaches the pipeline.
    const delegated = await execute(
      w,
      'refund-agent',
      'lookup_order',
      { order_id: 'ORD-1001' },
      {
        delegation: 'not-a-token',
      },
    )
    expect(delegated.statusCode).not.toBe(400)
    expect(delegated.json().error?.code).not.toBe('invalid_request')
    // A field no documented schema lists is refused, on every route with a closed body.
    const closed = Object.entries(ROUTE_DOCS).filter(
      ([, d]) => d.body && jsonSchemaOf(d.body, 'input').additionalProperties === false,
    )
    expect(closed.map(([route]) => route)).toContain('POST /gateway/execute')
    for (const [route] of closed) {
      const [method, url] = route.split(' ') as ['POST', string]
      const res = await w.app.inject({
        method,
        url,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${APPROVER}` },
        payload: { not_documented: 1 },
      })
      expect(res.statusCode, route).toBe(400)
      expect(res.json().error.code, route).toBe('invalid_request')
    }
  })
})

describe('the real replies match the documented response schemas', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  const get = async (url: string) =>
    (
      await w.app.inject({ url, headers: { authorization: `Bearer ${APPROVER}` } })
    ).json() as unknown

  it('execute: allowed, held, denied, and an error body', async () => {
    const allowed = await execute(w, 'support-agent', 'create_support_ticket', {
      customer_id: '12345',
      subject: 'broken',
      description: 'it broke',
    })
    expect(allowed.statusCode).toBe(200)
    s.executeAllowed.parse(allowed.json())

    const held = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1001',
      amount: 250,
      reason: 'damaged',
    })
    expect(held.statusCode).toBe(202)
    const heldBody = s.executeHeld.parse(held.json())

    const denied = await execute(w, 'support-agent', 'issue_refund', {
      order_id: 'ORD-1001',
      amount: 5,
      reason: 'x',
    })
    expect(denied.statusCode).toBe(403)
    s.executeDenied.parse(denied.json())

    const bad = await execute(w, 'support-agent', 'create_support_ticket', {}, { key: null })
    expect(bad.statusCode).toBe(401)
    s.errorResponse.parse(bad.json())

    // The held call, as listed, read back and decided.
    const pending = s.pendingApprovals.parse(await get('/gateway/pending-approvals'))
    expect(pending.approvals.map((a) => a.id)).toContain(heldBody.approval_id)
    const read = await w.app.inject({
      url: `/gateway/approvals/${heldBody.approval_id}`,
      headers: { authorization: `Bearer ${keyOf('refund-agent')}` },
    })
    expect(s.approvalResponse.parse(read.json()).approval.status).toBe('pending')
    const decided = await approve(w, heldBody.approval_id)
    expect(s.approvalResponse.parse(decided.json()).approval.status).toBe('approved')
  })

  it('stats, recent events, timeline and configuration', async () => {
    await execute(w, 'support-agent', 'search_knowledge_base', { query: 'returns' })
    expect(s.stats.parse(await get('/stats')).total_requests).toBeGreaterThan(0)
    expect(s.recentEvents.parse(await get('/events/recent')).count).toBeGreaterThan(0)
    expect(s.timeline.parse(await get('/events/timeline')).count).toBeGreaterThan(0)
    expect(s.configAgents.parse(await get('/config/agents')).agents.length).toBeGreaterThan(0)
    expect(s.configTools.parse(await get('/config/tools')).tools.length).toBeGreaterThan(0)
  })
})

describe('one Fastify-error mapping for the gateway and the agent API', () => {
  it('malformed bodies get the same catalog code from both apps', async () => {
    const w = await startWarden()
    const agents = await buildAgentApi({
      gatewayUrl: 'http://127.0.0.1:9',
      logger: pino({ level: 'silent' }),
      keys: {},
    })
    try {
      const cases = [
        { payload: '', type: 'application/json', code: 'invalid_json' },
        {
          payload: 'x=1',
          type: 'application/x-www-form-urlencoded',
          code: 'unsupported_media_type',
        },
        { payload: 'x'.repeat(2_000_000), type: 'application/json', code: 'payload_too_large' },
      ]
      for (const c of cases) {
        const send = (app: typeof agents, url: string) =>
          app.inject({
            method: 'POST',
            url,
            headers: { 'content-type': c.type },
            payload: c.payload,
          })
        const [gw, ag] = [
          await send(w.app, '/gateway/execute'),
          await send(agents, '/agent/prompt'),
        ]
        expect([gw.statusCode, gw.json().error.code], c.code).toEqual([400, c.code])
        expect([ag.statusCode, ag.json().error.code], c.code).toEqual([400, c.code])
      }
    } finally {
      await agents.close()
      await w.close()
    }
  })
})
