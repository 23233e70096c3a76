import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { loadConfig } from '../src/config/loader.js'
import { configSchema } from '../src/domain/config.js'
import { verifyChain } from '../src/audit/verify.js'
import { APPROVER, DEMO_CONFIG, execute, keyOf, startWarden } from './helpers.js'

type W = Awaited<ReturnType<typeof startWarden>>
let w: W | undefined
afterEach(async () => {
  await w?.close()
  w = undefined
})

/** `n` items of `{}`: ~3 bytes each on the wire, the shape that inflates most when parsed. */
const blob = (n: number) => Array.from({ length: n }, () => ({}))

/** ESC (ANSI sequences) and U+2028, built without a control character in a regex literal. */
const CONTROLS = new RegExp(`[${String.fromCharCode(0x1b)}\u2028]`)

const anonymousCall = (warden: W, agent: string, params: Record<string, unknown>) =>
  execute(warden, agent, 'lookup_order', params, { key: 'wrong-key' })

describe('anonymous calls are audited at a fixed size (finding 1)', () => {
  it('keeps no raw parameters and clips the claimed ids', async () => {
    w = await startWarden()
    const claimed = 'x'.repeat(128)
    const res = await execute(
      w,
      claimed,
      'lookup_order',
      { items: blob(5000), secret: 's3' },
      {
        key: 'wrong-key',
        session_id: 'z'.repeat(128),
      },
    )
    expect(res.statusCode).toBe(401)
    const [stored] = await w.stores.audit.queryStored({ limit: 1 })
    expect(stored!.body.length).toBeLessThan(4096)
    const [e] = await w.stores.audit.query({ limit: 1 })
    expect(e).toMatchObject({ principal: 'anonymous', agent_id: 'x'.repeat(64) })
    expect(e!.session_id).toHaveLength(64)
    expect(e!.params).toMatchObject({ withheld: 'anonymous', kind: 'object', keys: 2 })
    expect(JSON.stringify(e!.params)).not.toContain('s3')
    expect((await verifyChain(w.stores.audit)).ok).toBe(true)
  })
})

describe('read views are bounded (finding 1)', () => {
  it('an oversized event is shown trimmed and marked, never whole', async () => {
    w = await startWarden()
    // An authenticated agent may still store a large call (up to the body limit).
    const big = { order_id: 'ORD-1001', note: 'n'.repeat(200_000) }
    await execute(w, 'support-agent', 'lookup_order', big)
    const res = await w.app.inject({
      url: '/events/recent?limit=10',
      headers: { authorization: `Bearer ${APPROVER}` },
    })
    expect(res.statusCode).toBe(200)
    expect(res.body.length).toBeLessThan(64 * 1024)
    const trimmed = res.json().events.find((e: { truncated?: boolean }) => e.truncated)
    expect(trimmed).toMatchObject({ truncated: true, agent_id: 'support-agent' })
    expect(trimmed.params).toBeUndefined()
    expect(trimmed.bytes).toBeGreaterThan(200_000)
  })

  it('a page stops at its byte budget and gives a cursor that reaches every event', async () => {
    w = await startWarden()
    for (let i = 0; i < 12; i++)
      await execute(w, 'support-agent', 'lookup_order', {
        order_id: 'ORD-1001',
        note: `${i}`.padEnd(15_000, 'n'),
      })
    const seen = new Set<number>()
    let cursor: number | null = null
    let pages = 0
    do {
      const q: string = cursor === null ? '' : `&before_seq=${cursor}`
      const res = await w.app.inject({
        url: `/events/recent?limit=1000${q}`,
        headers: { authorization: `Bearer ${APPROVER}` },
      })
      expect(res.statusCode).toBe(200)
      const body = res.json()
      for (const e of body.events) {
        expect(seen.has(e.seq)).toBe(false)
        seen.add(e.seq)
      }
      cursor = body.next_before_seq
      pages++
    } while (cursor !== null && pages < 50)
    const total = (await w.stores.audit.query({ limit: 10_000 })).length
    expect(seen.size).toBe(total)
  })

  it('the WebSocket catch-up delivers trimmed events', async () => {
    w = await startWarden()
    await execute(w, 'support-agent', 'lookup_order', {
      order_id: 'ORD-1001',
      note: 'n'.repeat(100_000),
    })
    const address = await w.app.listen({ port: 0, host: '127.0.0.1' })
    const ws = new WebSocket(`${address.replace('http', 'ws')}/ws/events?last_seq=0`, {
      headers: { authorization: `Bearer ${APPROVER}` },
    })
    const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once('message', (data: Buffer) => resolve(JSON.parse(data.toString())))
      ws.once('error', reject)
    })
    ws.close()
    expect(first).toMatchObject({ seq: 1, truncated: true })
    expect(first.params).toBeUndefined()
  })
})

describe('pending approvals keep a bounded context (finding 1)', () => {
  it('a call with a context over 64 KiB is refused with context_too_large', async () => {
    w = await startWarden()
    const res = await execute(
      w,
      'support-agent',
      'issue_refund',
      { order_id: 'ORD-1001', amount: 500 },
      { context: { user_input: 'u'.repeat(70 * 1024) } },
    )
    expect(res.statusCode).toBe(400)
    expect(res.json().error.code).toBe('context_too_large')
    expect(await w.stores.approvals.list('pending')).toHaveLength(0)
  })
})

describe('read access (finding 5)', () => {
  it('read views need an approver token by default', async () => {
    const loaded = loadConfig(DEMO_CONFIG)
    const { read_access: _optIn, ...rest } = loaded.config.server
    // The schema's default, as for any configuration that does not opt in to open reads.
    const server = configSchema.shape.server.parse(rest)
    expect(server.read_access).toBe('approver')
    const warden = await startWarden({
      config: { ...loaded, config: { ...loaded.config, server } },
    })
    try {
      for (const url of ['/events/recent', '/events/timeline', '/stats']) {
        const res = await warden.app.inject({ url })
        expect(res.statusCode).toBe(401)
        expect(res.json().error.code).toBe('approver_unauthenticated')
        const agent = await warden.app.inject({
          url,
          headers: { authorization: `Bearer ${keyOf('hacker-bot')}` },
        })
        expect(agent.statusCode).toBe(401)
        const ok = await warden.app.inject({
          url,
          headers: { authorization: `Bearer ${APPROVER}` },
        })
        expect(ok.statusCode).toBe(200)
      }
    } finally {
      await warden.close()
    }
  })

  it('open reads (the demo opt-in) withhold tool results from readers who are not approvers', async () => {
    w = await startWarden()
    const run = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(run.statusCode).toBe(200)
    const open = await w.app.inject({
      url: '/events/recent?type=tool_call_executed',
      headers: { authorization: `Bearer ${keyOf('hacker-bot')}` },
    })
    expect(open.statusCode).toBe(200)
    const [shown] = open.json().events
    expect(shown).toMatchObject({ type: 'tool_call_executed', result_withheld: true })
    expect(shown.result).toBeUndefined()
    const timeline = await w.app.inject({ url: '/events/timeline' })
    expect(timeline.body).not.toContain('"result":')
    const approver = await w.app.inject({
      url: '/events/recent?type=tool_call_executed',
      headers: { authorization: `Bearer ${APPROVER}` },
    })
    expect(approver.json().events[0].result).toBeDefined()
  })
})

describe('exports (finding 6)', () => {
  const exportOf = (warden: W, query: string) =>
    warden.app.inject({
      url: `/audit/export?${query}`,
      headers: { authorization: `Bearer ${APPROVER}` },
    })

  it('filter on the authenticated principal: forged anonymous rows do not appear', async () => {
    w = await startWarden()
    await anonymousCall(w, 'support-agent', { order_id: 'ORD-1001' })
    await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    const res = await exportOf(w, 'agent_id=support-agent')
    const rows = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(rows.length).toBeGreaterThan(0)
    for (const r of rows) expect(r.principal).toBe('support-agent')
  })

  it('CEF names the principal as suser; CSV and CEF escape control characters; the formula guard sees past spaces', async () => {
    w = await startWarden()
    await anonymousCall(w, '\u001b[2J\u2028', { order_id: 'ORD-1001' })
    await anonymousCall(w, '  =HYPERLINK("x")', { order_id: 'ORD-1001' })
    const cef = await exportOf(w, 'format=cef')
    expect(cef.body).toContain('suser=anonymous')
    expect(cef.body).not.toMatch(CONTROLS)
    const csv = await exportOf(w, 'format=csv')
    expect(csv.body).not.toMatch(CONTROLS)
    expect(csv.body).toContain('\\u001b[2J\\u2028')
    expect(csv.body).toContain(`"'  =HYPERLINK(""x"")"`)
    expect(csv.body).not.toMatch(/,"?\s*=/)
  })

  it('returns the newest matches first when truncated, with a cursor for the older ones', async () => {
    w = await startWarden()
    // Fill past the export limit with small anonymous rows, then one real call.
    const inputs = Array.from({ length: 10_050 }, (_, i) => ({
      version: 1 as const,
      id: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
      type: 'tool_call_denied' as const,
      timestamp: new Date().toISOString(),
      request_id: `r${i}`,
      agent_id: 'support-agent',
      principal: 'anonymous',
      tool: 'issue_refund',
      session_id: null,
      decision: 'deny' as const,
      layer: 'auth',
      code: 'agent_unauthenticated',
      reason: 'forged',
      risk: { score: 0, level: 'low' as const },
      policy_version: 'x',
      args_hash: '',
      params: null,
      masked: [],
      checks: [],
    }))
    await w.stores.audit.append(inputs)
    await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    const res = await exportOf(w, '')
    expect(res.headers['x-warden-truncated']).toBe('true')
    const lines = res.body.trim().split('\n')
    expect(lines).toHaveLength(10_000)
    const last = JSON.parse(lines[lines.length - 1]!)
    expect(last.principal).toBe('support-agent')
    const next = Number(res.headers['x-warden-next-before-seq'])
    expect(next).toBe(JSON.parse(lines[0]!).seq)
    const older = await exportOf(w, `before_seq=${next}`)
    expect(older.headers['x-warden-truncated']).toBe('false')
    expect(older.body.trim().split('\n').length).toBe(next - 1)
  })
})
