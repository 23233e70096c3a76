import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { DemoBackend } from '../src/demo/backend.js'
import { SCENARIOS } from '../src/demo/scenarios.js'
import { openState } from '../src/state/index.js'
import type { SessionChanges, StateBackend } from '../src/state/types.js'
import { loadConfig } from '../src/config/loader.js'
import { APPROVER, DEMO_CONFIG, execute, keyOf, startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>

describe('POST /gateway/execute (contract)', () => {
  let w: Started
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  it('200 allow: runs the tool and returns result, risk and every layer', async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1001',
      amount: 25,
      reason: 'damaged item',
    })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({
      decision: 'allow',
      result: { order_id: 'ORD-1001', amount: 25, remaining_balance: 24 },
    })
    expect(body.request_id).toMatch(/^[0-9a-f-]{36}$/)
    // issue_refund is a `high` tool (base 45) and no layer adds to it: 45 is in the medium band.
    expect(body.risk).toEqual({ score: 45, level: 'medium' })
    expect(body.checks.map((c: { layer: string }) => c.layer)).toEqual([
      'identity',
      'tool_allowlist',
      'policy',
      'rate_limit',
      'params',
      'injection',
      'taint',
      'guards',
      'approval',
      'sequence',
    ])
    // The refund changed real state: the order's balance is lower on the next lookup.
    const order = await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(order.json().result.balance).toBe(24)
  })

  it('masks customer PII in results of confidential tools', async () => {
    const res = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1002' })
    const customer = res.json().result.customer
    expect(customer.email).toBe('g***@example.com')
    expect(customer.card).toBe('[card ****0004]')
    expect(JSON.stringify(res.json())).not.toContain('grace@example.com')
    // The audit record says what was masked (masking happens once, before both uses).
    const [executed] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
    expect(executed!.masked).toEqual(
      expect.arrayContaining(['/result/customer/email', '/result/customer/card']),
    )
  })

  it('masks by classification as configured; the audit still masks every kind', async () => {
    const loaded = loadConfig(DEMO_CONFIG)
    const pii = {
      mask_in_results: { ...loaded.config.pii.mask_in_results, confidential: ['card' as const] },
    }
    const w2 = await startWarden({ config: { ...loaded, config: { ...loaded.config, pii } } })
    try {
      const res = await execute(w2, 'support-agent', 'lookup_order', { order_id: 'ORD-1002' })
      const customer = res.json().result.customer
      expect(customer.email).toBe('grace@example.com')
      expect(customer.card).toBe('[card ****0004]')
      const [executed] = await w2.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
      expect(JSON.stringify(executed!.result)).not.toContain('grace@example.com')
      expect(executed!.masked).toEqual(expect.arrayContaining(['/result/customer/email']))
    } finally {
      await w2.close()
    }
  })

  it('403 deny: layer, error code and message, risk, checks up to the denying layer', async () => {
    const res = await execute(w, 'support-agent', 'issue_refund', {
      order_id: 'ORD-1001',
      amount: 25,
      reason: 'asked',
    })
    expect(res.statusCode).toBe(403)
    const body = res.json()
    expect(body).toMatchObject({
      decision: 'deny',
      layer: 'tool_allowlist',
      error: { code: 'tool_not_allowed' },
    })
    expect(body.error.message).toBe('tool `issue_refund` is not allowed for agent `support-agent`')
    expect(body.checks.at(-1)).toMatchObject({ layer: 'tool_allowlist', outcome: 'deny' })
  })

  it('401 for a key that belongs to another agent', async () => {
    const res = await execute(
      w,
      'admin-agent',
      'get_system_health',
      {},
      { key: keyOf('support-agent') },
    )
    expect(res.statusCode).toBe(401)
    expect(res.json().error.code).toBe('unauthenticated')
  })

  it('429 with Retry-After once the per-tool limit is used', async () => {
    const statuses: number[] = []
    let last
    for (let i = 0; i < 6; i++) {
      last = await execute(w, 'admin-agent', 'restart_service', {
        service: 'search',
        environment: 'staging',
      })
      statuses.push(last.statusCode)
    }
    expect(statuses).toEqual([202, 202, 202, 202, 202, 429])
    expect(last!.json().error.code).toBe('rate_limited')
    expect(Number(last!.headers['retry-after'])).toBeGreaterThanOrEqual(1)
  })
})

describe('approvals', () => {
  let w: Started
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  const hold = async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1006',
      amount: 300,
      reason: 'late delivery',
    })
    expect(res.statusCode).toBe(202)
    return res.json() as {
      approval_id: string
      expires_at: string
      decision: string
      args_hash: string
    }
  }
  const approve = (id: string, token: string, decision: 'approve' | 'deny' = 'approve') =>
    w.app.inject({
      method: 'POST',
      url: '/gateway/approve',
      headers: { authorization: `Bearer ${token}` },
      payload: { approval_id: id, decision, comment: 'checked' },
    })
  const balance = async () =>
    (await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-1006' })).json().result
      .balance as number

  it('202 carries approval id, expiry and args hash; the call waits in the queue', async () => {
    const held = await hold()
    expect(held.decision).toBe('approval_required')
    expect(Date.parse(held.expires_at)).toBeGreaterThan(Date.now())
    expect(held.args_hash).toMatch(/^[0-9a-f]{64}$/)
    const pending = (await w.app.inject({ url: '/gateway/pending-approvals' })).json()
    expect(pending.approvals.map((a: { id: string }) => a.id)).toContain(held.approval_id)
  })

  it('the demo approver executes the held call exactly once', async () => {
    const before = await balance()
    const held = await hold()
    const first = await approve(held.approval_id, APPROVER)
    expect(first.statusCode).toBe(200)
    expect(first.json()).toMatchObject({
      approval: { status: 'approved', decided_by: 'demo-approver', outcome: 'ok' },
      result: { amount: 300 },
    })
    const again = await approve(held.approval_id, APPROVER)
    expect(again.statusCode).toBe(409)
    expect(again.json().error.code).toBe('approval_already_decided')
    expect(await balance()).toBe(before - 300)
  })

  it('concurrent approvals of one id: one wins, the tool runs once', async () => {
    const before = await balance()
    const held = await hold()
    const results = await Promise.all(
      Array.from({ length: 20 }, () => approve(held.approval_id, APPROVER)),
    )
    expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1)
    expect(results.filter((r) => r.statusCode === 409)).toHaveLength(19)
    expect(await balance()).toBe(before - 300)
  })

  it('agent credentials can never approve', async () => {
    const held = await hold()
    const res = await approve(held.approval_id, keyOf('refund-agent'))
    expect(res.statusCode).toBe(403)
    expect(res.json().error.code).toBe('approver_not_authorized')
    expect((await approve(held.approval_id, 'nobody')).statusCode).toBe(401)
  })

  it('a denied approval never runs, and the agent can read the outcome', async () => {
    const before = await balance()
    const held = await hold()
    expect((await approve(held.approval_id, APPROVER, 'deny')).json().approval.status).toBe(
      'denied',
    )
    const read = await w.app.inject({
      url: `/gateway/approvals/${held.approval_id}`,
      headers: { authorization: `Bearer ${keyOf('refund-agent')}` },
    })
    expect(read.json().approval).toMatchObject({
      status: 'denied',
      decided_by: 'demo-approver',
      comment: 'checked',
    })
    expect(await balance()).toBe(before)
    const stranger = await w.app.inject({
      url: `/gateway/approvals/${held.approval_id}`,
      headers: { authorization: `Bearer ${keyOf('support-agent')}` },
    })
    expect(stranger.statusCode).toBe(403)
  })

  it('?wait long-polls until a person decides', async () => {
    const held = await hold()
    const poll = w.app.inject({
      url: `/gateway/approvals/${held.approval_id}?wait=10`,
      headers: { authorization: `Bearer ${keyOf('refund-agent')}` },
    })
    setTimeout(() => void approve(held.approval_id, APPROVER), 300)
    const res = await poll
    expect(res.json().approval).toMatchObject({
      status: 'approved',
      outcome: 'ok',
      result: { amount: 300 },
    })
  })

  it('the sweeper expires past-TTL approvals and records an approval_expired event', async () => {
    const held = await hold()
    const a = (await w.stores.approvals.get(held.approval_id))!
    const past = new Date(Date.now() - 1000).toISOString()
    await w.stores.approvals.create({ ...a, id: `${a.id}-old`, expires_at: past })
    expect(await w.gateway.approvals.sweepExpired()).toBeGreaterThanOrEqual(1)
    expect((await w.stores.approvals.get(`${a.id}-old`))!.status).toBe('expired')
    const events = (await w.app.inject({ url: '/events/recent?type=approval_expired' })).json()
      .events
    expect(events[0]).toMatchObject({
      type: 'approval_expired',
      approval_id: `${a.id}-old`,
      reason: expect.stringContaining('not by a person'),
    })
  })
})

describe('read endpoints', () => {
  let w: Started
  beforeAll(async () => {
    w = await startWarden()
    await execute(
      w,
      'support-agent',
      'create_support_ticket',
      { customer_id: '12345', subject: 'Hello' },
      { session_id: 'sess-a' },
    )
    await execute(
      w,
      'support-agent',
      'issue_refund',
      { order_id: 'ORD-1001', amount: 5, reason: 'asked' },
      { session_id: 'sess-a' },
    )
    await execute(
      w,
      'hacker-bot',
      'export_customer_data',
      { segment: 'all', destination: 'x@y.example' },
      { session_id: 'sess-b' },
    )
  })
  afterAll(() => w.close())

  it('GET /stats counts decisions, block rate and reasons', async () => {
    const s = (await w.app.inject({ url: '/stats' })).json()
    expect(s).toMatchObject({
      total_requests: 3,
      allowed: 1,
      denied: 2,
      approval_required: 0,
      block_rate: 0.6667,
    })
    expect(s.by_agent['support-agent']).toEqual({ allowed: 1, denied: 1, approval_required: 0 })
    expect(s.top_block_reasons[0].count).toBe(1)
  })

  it('GET /events/recent: newest first with the contract fields', async () => {
    const { events } = (await w.app.inject({ url: '/events/recent?limit=10' })).json()
    expect(events[0]).toMatchObject({
      type: 'tool_call_denied',
      agent_id: 'hacker-bot',
      tool: 'export_customer_data',
      decision: 'deny',
    })
    for (const e of events)
      for (const f of [
        'id',
        'type',
        'timestamp',
        'agent_id',
        'tool',
        'decision',
        'risk',
        'reason',
        'request_id',
      ])
        expect(e).toHaveProperty(f)
    expect(events.map((e: { type: string }) => e.type)).toContain('tool_call_executed')
  })

  it('GET /events/timeline groups per agent and session in time order', async () => {
    const t = (await w.app.inject({ url: '/events/timeline' })).json()
    const a = t.sessions.find((s: { session_id: string }) => s.session_id === 'sess-a')
    expect(a.events.map((e: { type: string }) => e.type)).toEqual([
      'tool_call_allowed',
      'tool_call_executed',
      'tool_call_denied',
    ])
    expect(t.agents.map((g: { agent_id: string }) => g.agent_id).sort()).toEqual([
      'hacker-bot',
      'support-agent',
    ])
  })

  it('GET /config/agents and /config/tools never show secrets', async () => {
    const agents = (await w.app.inject({ url: '/config/agents' })).json().agents
    expect(agents.map((a: { id: string }) => a.id)).toEqual([
      'support-agent',
      'refund-agent',
      'admin-agent',
      'hacker-bot',
    ])
    expect(JSON.stringify(agents)).not.toMatch(/key_sha256|[0-9a-f]{64}/)
    const tools = (await w.app.inject({ url: '/config/tools' })).json().tools
    // The seed's seven and the demo MCP upstream's two.
    expect(tools.map((t: { name: string }) => t.name)).toEqual(
      expect.arrayContaining(['issue_refund', 'everything.echo', 'everything.get-sum']),
    )
    expect(tools).toHaveLength(9)
  })

  it('GET /health reports each dependency; /metrics is Prometheus text', async () => {
    const h = (await w.app.inject({ url: '/health' })).json()
    expect(h).toMatchObject({
      status: 'ok',
      demo_credentials: true,
      checks: { store: { ok: true } },
    })
    const m = await w.app.inject({ url: '/metrics' })
    expect(m.body).toMatch(
      /warden_decisions_total\{decision="deny",layer="tool_allowlist",agent="support-agent"\} 1/,
    )
  })
})

describe('demo scenarios', () => {
  let w: Started
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  it('lists the eight scenarios', async () => {
    const ids = (await w.app.inject({ url: '/demo/scenarios' }))
      .json()
      .scenarios.map((s: { id: string }) => s.id)
    expect(ids).toEqual([
      'support_normal',
      'refund_small',
      'refund_large',
      'admin_restart_dev',
      'support_refund_attempt',
      'admin_restart_prod',
      'hacker_bot',
      'prompt_injection',
    ])
  })

  it.each(SCENARIOS.map((s) => [s.id, s.expected, s.expected_layer] as const))(
    '%s gives %s through the real pipeline',
    async (id, expected, layer) => {
      const res = (await w.app.inject({ method: 'POST', url: `/demo/run-scenario/${id}` })).json()
      expect(res).toMatchObject({ scenario: id, expected, decision: expected, passed: true })
      if (expected !== 'allow') expect(res.response.layer).toBe(layer)
    },
  )

  it('an unknown scenario is 404', async () => {
    expect(
      (await w.app.inject({ method: 'POST', url: '/demo/run-scenario/nope' })).json().error.code,
    ).toBe('not_found')
  })
})

describe('WS /ws/events', () => {
  let w: Started
  let url: string
  beforeAll(async () => {
    w = await startWarden()
    const address = await w.app.listen({ port: 0, host: '127.0.0.1' })
    url = address.replace('http', 'ws') + '/ws/events'
  })
  afterAll(() => w.close())

  const collect = (ws: WebSocket, n: number) =>
    new Promise<{ seq: number; type: string }[]>((resolve, reject) => {
      const got: { seq: number; type: string }[] = []
      ws.on('message', (data) => {
        got.push(JSON.parse(String(data)))
        if (got.length === n) resolve(got)
      })
      ws.on('error', reject)
    })

  it('streams events live as they are committed, and replays what a client missed', async () => {
    const live = new WebSocket(url)
    await new Promise((r) => live.on('open', r))
    const received = collect(live, 2)
    await execute(w, 'support-agent', 'search_knowledge_base', { query: 'refund policy' })
    const events = await received
    expect(events.map((e) => e.type)).toEqual(['tool_call_allowed', 'tool_call_executed'])
    live.close()

    // A client that saw up to the first event reconnects and gets the rest, in order.
    const firstSeq = events[0]!.seq
    await execute(w, 'hacker-bot', 'search_knowledge_base', { query: 'x' })
    const again = new WebSocket(`${url}?last_seq=${firstSeq}`)
    const replay = await collect(again, 2)
    expect(replay.map((e) => e.seq)).toEqual([firstSeq + 1, firstSeq + 2])
    expect(replay[1]!.type).toBe('tool_call_denied')
    again.close()
  })
})

describe('taint from untrusted tool output', () => {
  let w: Started
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  it('a value that came back from an untrusted tool is held when it reaches a sensitive parameter', async () => {
    const search = await execute(
      w,
      'refund-agent',
      'search_knowledge_base',
      { query: 'refund policy' },
      { session_id: 's-kb' },
    )
    expect(JSON.stringify(search.json().result)).toContain('within 30 days')
    // The knowledge base (user-contributed, untrusted) said "30"; the agent now refunds 30.
    const refund = await execute(
      w,
      'refund-agent',
      'issue_refund',
      { order_id: 'ORD-1002', amount: 30, reason: 'policy says so' },
      { session_id: 's-kb' },
    )
    expect(refund.statusCode).toBe(202)
    expect(refund.json()).toMatchObject({ layer: 'taint' })
    expect(refund.json().reason).toContain('tool:search_knowledge_base#')
    // The same refund in a clean session is an ordinary small refund.
    const clean = await execute(
      w,
      'refund-agent',
      'issue_refund',
      { order_id: 'ORD-1002', amount: 30, reason: 'policy says so' },
      { session_id: 's-clean' },
    )
    expect(clean.statusCode).toBe(200)
  })
})

describe('state store failures', () => {
  /** The real memory state whose commits of one kind fail: a call's, or a tool output's taint. */
  async function failing(what: 'call' | 'output taint'): Promise<StateBackend> {
    const state = await openState()
    const fails = (c: SessionChanges) => (what === 'call' ? c.history : !c.history && c.taint)
    const commit = (c: SessionChanges) =>
      fails(c) ? Promise.reject(new Error(`${what} commits are down`)) : state.sessions.commit(c)
    return { ...state, sessions: { load: (s) => state.sessions.load(s), commit } }
  }

  it('history that cannot be recorded fails closed: 503 state_unavailable, the tool does not run', async () => {
    const backend = new DemoBackend()
    const w = await startWarden({ state: await failing('call'), demoBackend: backend })
    try {
      const res = await execute(w, 'refund-agent', 'issue_refund', {
        order_id: 'ORD-1001',
        amount: 10,
        reason: 'damaged',
      })
      expect(res.statusCode).toBe(503)
      expect(res.json().error.code).toBe('state_unavailable')
      expect(backend.lookup_order({ order_id: 'ORD-1001' }).balance).toBe(49)
      const [event] = await w.stores.audit.query({ type: 'request_rejected', limit: 1 })
      expect(event).toMatchObject({ code: 'state_unavailable', request_id: res.json().request_id })
    } finally {
      await w.close()
    }
  })

  it('a tool that ran is reported as ran even when its output cannot be kept as taint', async () => {
    const w = await startWarden({ state: await failing('output taint') })
    try {
      const res = await execute(
        w,
        'support-agent',
        'search_knowledge_base',
        { query: 'shipping' },
        { session_id: 's1' },
      )
      expect(res.statusCode).toBe(200)
      const [event] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
      expect(event!.outcome).toBe('ok')
    } finally {
      await w.close()
    }
  })
})

describe('review fixes', () => {
  let w: Started
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  it('demo scenarios run in their own world: repeated runs pass and never touch the real agents', async () => {
    for (let i = 0; i < 12; i++) {
      expect(
        (
          await w.app.inject({ method: 'POST', url: '/demo/run-scenario/support_refund_attempt' })
        ).json().passed,
      ).toBe(true)
    }
    for (let i = 0; i < 5; i++) {
      expect(
        (await w.app.inject({ method: 'POST', url: '/demo/run-scenario/refund_small' })).json(),
      ).toMatchObject({ passed: true, status: 200 })
    }
    // Twelve denials would have quarantined the real support-agent; it is untouched.
    expect(
      (await execute(w, 'support-agent', 'search_knowledge_base', { query: 'shipping' }))
        .statusCode,
    ).toBe(200)
    // The demo runs are still audited and streamed like any other call.
    expect((await w.app.inject({ url: '/stats' })).json().denied).toBeGreaterThanOrEqual(12)
  })

  it('an approval whose stored call was altered is refused, not executed', async () => {
    const held = (
      await execute(w, 'refund-agent', 'issue_refund', {
        order_id: 'ORD-12345',
        amount: 200,
        reason: 'late',
      })
    ).json()
    const db = new Database(w.dbPath)
    db.prepare(
      `UPDATE approvals SET record = json_set(record, '$.params.amount', 500) WHERE id = ?`,
    ).run(held.approval_id)
    db.close()
    const res = await w.app.inject({
      method: 'POST',
      url: '/gateway/approve',
      headers: { authorization: `Bearer ${APPROVER}` },
      payload: { approval_id: held.approval_id, decision: 'approve' },
    })
    expect(res.statusCode).toBe(403)
    expect(res.json().error.code).toBe('approval_mismatch')
    expect(
      (await execute(w, 'refund-agent', 'lookup_order', { order_id: 'ORD-12345' })).json().result
        .balance,
    ).toBe(640)
  })

  it('approval ids cannot be probed without a credential', async () => {
    expect((await w.app.inject({ url: '/gateway/approvals/apr_nope' })).json().error.code).toBe(
      'unauthenticated',
    )
  })

  it('a repeated query parameter is a 400, not a 500', async () => {
    const res = await w.app.inject({ url: '/events/recent?agent_id=a&agent_id=b' })
    expect(res.statusCode).toBe(400)
    expect(res.json().error.code).toBe('invalid_request')
  })
})

describe('bounded under abuse', () => {
  it('/stats does not grow with callers’ made-up agent and tool names', async () => {
    const w = await startWarden()
    try {
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          execute(w, `agent-${i}`, `tool_${i}`, {}, { key: 'nope' }),
        ),
      )
      const s = (await w.app.inject({ url: '/stats' })).json()
      expect(Object.keys(s.by_agent)).toEqual(['(unknown)'])
      expect(Object.keys(s.by_tool)).toEqual(['(unknown)'])
      expect(s.by_agent['(unknown)'].denied).toBe(100)
    } finally {
      await w.close()
    }
  })

  it('a reconnecting WebSocket client gets a long backlog in full and in order', async () => {
    const w = await startWarden()
    try {
      const url =
        (await w.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws') +
        '/ws/events?last_seq=0'
      // 1,200 events: more than two catch-up pages.
      for (let i = 0; i < 12; i++) {
        await Promise.all(
          Array.from({ length: 100 }, () =>
            execute(w, 'hacker-bot', 'search_knowledge_base', { query: 'x' }),
          ),
        )
      }
      const ws = new WebSocket(url)
      const seqs: number[] = []
      await new Promise<void>((resolve, reject) => {
        ws.on('message', (data) => {
          seqs.push(JSON.parse(String(data)).seq)
          if (seqs.length === 1200) resolve()
        })
        ws.on('error', reject)
      })
      ws.close()
      expect(seqs).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1))
    } finally {
      await w.close()
    }
  })
})

describe('store outages on read paths', () => {
  it('a failing approvals table answers 503 approval_store_unavailable, not 500', async () => {
    const w = await startWarden()
    try {
      const db = new Database(w.dbPath)
      db.exec('DROP TABLE approvals')
      db.close()
      const res = await w.app.inject({
        method: 'POST',
        url: '/gateway/approve',
        headers: { authorization: `Bearer ${APPROVER}` },
        payload: { approval_id: 'apr_x', decision: 'approve' },
      })
      expect(res.statusCode).toBe(503)
      expect(res.json().error.code).toBe('approval_store_unavailable')
      expect((await w.app.inject({ url: '/health' })).statusCode).toBe(200)
    } finally {
      await w.close()
    }
  })
})

describe('injections in untrusted tool output', () => {
  it('are flagged on the reply and in the audit, and poison the session for risky calls', async () => {
    const w = await startWarden()
    try {
      const search = await execute(
        w,
        'refund-agent',
        'search_knowledge_base',
        { query: 'community tip' },
        { session_id: 'poisoned' },
      )
      expect(search.statusCode).toBe(200)
      expect(search.json().warnings).toEqual([
        expect.objectContaining({
          code: 'injection_in_output',
          categories: expect.arrayContaining(['instruction_override']),
        }),
      ])
      const [executed] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 1 })
      expect(executed!.output_scan!.score).toBeGreaterThanOrEqual(0.5)
      // A small refund would normally run; in this session it waits for a person.
      const refund = await execute(
        w,
        'refund-agent',
        'issue_refund',
        { order_id: 'ORD-1002', amount: 20, reason: 'damaged' },
        { session_id: 'poisoned' },
      )
      expect(refund.statusCode).toBe(202)
      expect(refund.json()).toMatchObject({
        layer: 'taint',
        reason: expect.stringContaining('received a prompt injection'),
      })
      // Low-risk calls go on; other sessions are unaffected.
      expect(
        (
          await execute(
            w,
            'refund-agent',
            'lookup_order',
            { order_id: 'ORD-1002' },
            { session_id: 'poisoned' },
          )
        ).statusCode,
      ).toBe(200)
      expect(
        (
          await execute(
            w,
            'refund-agent',
            'issue_refund',
            { order_id: 'ORD-1002', amount: 20, reason: 'damaged' },
            { session_id: 'clean' },
          )
        ).statusCode,
      ).toBe(200)
    } finally {
      await w.close()
    }
  })
})
