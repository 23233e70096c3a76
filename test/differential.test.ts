import fc from 'fast-check'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWarden, type Warden } from '../src/warden.js'
import { keyOf } from './helpers.js'

/**
 * Differential test: the demo policy's decision for a generated call, as the gateway makes it,
 * against `reference()` below — written from config/demo/*.yaml and the seed (allowlists, CEL
 * rules, schemas, guards, always-approval tools, risk bands), not by calling Warden's policy code.
 *
 * Generation is restricted to the decision-relevant inputs: agent (always with its own key),
 * tool (including unknown and near-miss names) and parameters (amounts around the thresholds,
 * environments and their variants, reasons, ids, segments). The stateful layers are kept out by
 * configuration: rate limits, the pending-approval cap and the quarantine threshold are set out
 * of reach and the sequence rules are removed (a copy of the demo configuration); taint and
 * injection are out because no call carries `context.user_input` and every string comes from a
 * fixed benign vocabulary. Size: WARDEN_DIFF_RUNS calls (CI default 100,000).
 */
const RUNS = Number(process.env.WARDEN_DIFF_RUNS ?? 100_000)
const BATCH = 1_000
const DEMO = fileURLToPath(new URL('../config/demo/', import.meta.url))

type Role = 'support' | 'billing' | 'devops' | 'untrusted'
const RANK = { public: 0, internal: 1, confidential: 2, restricted: 3 } as const
const AGENTS: Record<string, { role: Role; clearance: keyof typeof RANK; tools: string[] }> = {
  'support-agent': {
    role: 'support',
    clearance: 'confidential',
    tools: ['search_knowledge_base', 'create_support_ticket', 'lookup_order'],
  },
  'refund-agent': {
    role: 'billing',
    clearance: 'confidential',
    tools: ['search_knowledge_base', 'lookup_order', 'issue_refund'],
  },
  'admin-agent': {
    role: 'devops',
    clearance: 'restricted',
    tools: ['get_system_health', 'restart_service', 'lookup_order', 'export_customer_data'],
  },
  'hacker-bot': { role: 'untrusted', clearance: 'public', tools: [] },
}
const TOOLS: Record<string, { classification: keyof typeof RANK }> = {
  search_knowledge_base: { classification: 'public' },
  create_support_ticket: { classification: 'internal' },
  lookup_order: { classification: 'confidential' },
  issue_refund: { classification: 'confidential' },
  get_system_health: { classification: 'internal' },
  restart_service: { classification: 'internal' },
  export_customer_data: { classification: 'restricted' },
}

type Params = Record<string, unknown>
type Expected = 'allow' | 'hold' | `deny:${string}`

const str = (v: unknown, min: number, max: number, re?: RegExp) =>
  typeof v === 'string' && [...v].length >= min && [...v].length <= max && (!re || re.test(v))
const only = (p: Params, keys: string[]) => Object.keys(p).every((k) => keys.includes(k))

/** The tool schemas of config/demo/tools.yaml, restated: `true` when the parameters fit. */
function schemaOk(tool: string, p: Params): boolean {
  const ORDER = /^ORD-[0-9]{1,10}$/
  const SERVICE = /^[a-z][a-z0-9-]{1,40}$/
  switch (tool) {
    case 'search_knowledge_base':
      return (
        only(p, ['query', 'limit']) &&
        str(p.query, 1, 500) &&
        (p.limit === undefined ||
          (Number.isInteger(p.limit) && (p.limit as number) >= 1 && (p.limit as number) <= 20))
      )
    case 'create_support_ticket':
      return (
        only(p, ['customer_id', 'subject', 'description', 'priority']) &&
        str(p.customer_id, 0, Infinity, /^(CUST-)?[0-9]{3,10}$/) &&
        str(p.subject, 1, 200)
      )
    case 'lookup_order':
      return only(p, ['order_id']) && str(p.order_id, 0, Infinity, ORDER)
    case 'issue_refund':
      return (
        only(p, ['order_id', 'amount', 'currency', 'reason']) &&
        str(p.order_id, 0, Infinity, ORDER) &&
        typeof p.amount === 'number' &&
        p.amount > 0 &&
        p.amount <= 1_000_000 &&
        (p.currency === undefined || p.currency === 'USD') &&
        str(p.reason, 1, 500)
      )
    case 'get_system_health':
      return (
        only(p, ['service', 'environment']) &&
        (p.service === undefined || str(p.service, 0, Infinity, SERVICE)) &&
        (p.environment === undefined ||
          ['dev', 'staging', 'prod'].includes(p.environment as string))
      )
    case 'restart_service':
      return (
        only(p, ['service', 'environment', 'reason']) &&
        str(p.service, 0, Infinity, SERVICE) &&
        str(p.environment, 0, 32) &&
        (p.reason === undefined || str(p.reason, 0, 500))
      )
    case 'export_customer_data':
      return (
        only(p, ['segment', 'format', 'destination']) &&
        ['all', 'active', 'churned', 'vip'].includes(p.segment as string) &&
        (p.format === undefined || ['csv', 'jsonl'].includes(p.format as string)) &&
        str(p.destination, 3, 200)
      )
    default:
      return false
  }
}

/** What the demo policy says, in pipeline order, with fresh state. */
function reference(agentId: string, tool: string, p: Params): Expected {
  // The request shape: a tool name is a plain identifier (contract), else 400 before any layer.
  if (!/^(?!.*\.\.)[A-Za-z0-9_.\-/]{1,64}$/.test(tool)) return 'deny:invalid_tool_name'
  const agent = AGENTS[agentId]!
  const t = Object.hasOwn(TOOLS, tool) ? TOOLS[tool] : undefined
  if (!t || !agent.tools.includes(tool)) return 'deny:tool_not_allowed'
  // Authorization rules (forbid wins; `permit-allowlisted` permits the rest).
  if (RANK[t.classification] > RANK[agent.clearance]) return 'deny:policy_denied'
  if (agent.role === 'untrusted') return 'deny:policy_denied'
  if (tool === 'issue_refund' && agent.role !== 'billing') return 'deny:policy_denied'
  if (tool === 'issue_refund' && (typeof p.reason !== 'string' || p.reason.length < 3))
    return 'deny:policy_denied' // `size(params.reason) < 3`; a rule that cannot evaluate denies
  if (tool === 'export_customer_data' && agent.role !== 'devops') return 'deny:policy_denied'
  if (!schemaOk(tool, p)) return 'deny:param_invalid'
  // Guards, then tool-level approval; risk (high 45 + guard 20 or 15) stays under the 85 hold.
  let hold = false
  if (tool === 'issue_refund') {
    const amount = p.amount as number
    if (amount > 500) return 'deny:guard_denied'
    if (amount > 100) hold = true
  }
  if (tool === 'restart_service') {
    if (p.environment !== 'dev' && p.environment !== 'staging') return 'deny:guard_denied'
    hold = true
  }
  if (tool === 'export_customer_data') hold = true // `approval: always`
  return hold ? 'hold' : 'allow'
}

const WORDS = ['refund', 'late parcel', 'ok', 'ab', 'damaged item', 'billing', 'x', '']
const params = fc.record(
  {
    order_id: fc.constantFrom('ORD-1', 'ORD-1001', 'ORD-12345678901', 'ord-1', 'ORD-', 42),
    amount: fc.oneof(
      fc.constantFrom(0, -1, 0.01, 100, 100.01, 500, 500.01, 1_000_000, 1_000_001, '50'),
      fc.double({ min: -10, max: 2_000, noNaN: true }),
      fc.integer({ min: 1, max: 700 }),
    ),
    currency: fc.constantFrom('USD', 'EUR'),
    reason: fc.oneof(fc.constantFrom(...WORDS), fc.constant(7)),
    query: fc.constantFrom(...WORDS),
    limit: fc.constantFrom(0, 1, 20, 21, 2.5),
    service: fc.constantFrom('billing', 'api-gateway', 'Billing', 'b', ''),
    environment: fc.constantFrom('dev', 'staging', 'prod', 'PROD', 'production', 'Dev', ' dev', 3),
    segment: fc.constantFrom('all', 'active', 'churned', 'vip', 'everyone'),
    format: fc.constantFrom('csv', 'jsonl', 'xml'),
    destination: fc.constantFrom('s3://backup', 'ab', 'sftp://partner'),
    customer_id: fc.constantFrom('CUST-123', '123'),
    subject: fc.constantFrom('help', ''),
  },
  { requiredKeys: [] },
)
/** Parameters that mostly fit the tool (its own keys only), so deep layers are reached. */
const KEYS: Record<string, string[]> = {
  search_knowledge_base: ['query', 'limit'],
  create_support_ticket: ['customer_id', 'subject'],
  lookup_order: ['order_id'],
  issue_refund: ['order_id', 'amount', 'currency', 'reason'],
  get_system_health: ['service', 'environment'],
  restart_service: ['service', 'environment', 'reason'],
  export_customer_data: ['segment', 'format', 'destination'],
}
const call = fc
  .record({
    agent: fc.constantFrom(...Object.keys(AGENTS)),
    tool: fc.constantFrom(...Object.keys(TOOLS), 'Issue_Refund', 'issue_refund ', 'delete_all'),
    params,
    focused: fc.boolean(),
  })
  .map(({ agent, tool, params: p, focused }) => {
    const keep = KEYS[tool]
    const ps =
      focused && keep
        ? Object.fromEntries(keep.flatMap((k) => (k in p ? [[k, (p as Params)[k]]] : [])))
        : p
    return { agent, tool, params: ps as Params }
  })

/** The gateway's decision, read off the HTTP answer. */
function actual(status: number, body: string): Expected {
  if (status === 200 || status === 502 || status === 504) return 'allow'
  if (status === 202) return 'hold'
  const parsed = JSON.parse(body) as { error?: { code?: string } }
  return `deny:${parsed.error?.code}`
}

describe('differential: the demo policy against a reference written from the configuration', () => {
  let warden: Warden
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-diff-'))
    cpSync(DEMO, dir, { recursive: true })
    const edit = (file: string, f: (s: string) => string) =>
      writeFileSync(join(dir, file), f(readFileSync(join(dir, file), 'utf8')))
    edit('warden.yaml', (s) =>
      s
        .replace('kind: sqlite', 'kind: memory')
        .replace(/max_pending_per_agent: \d+/, 'max_pending_per_agent: 1000000000'),
    )
    edit('agents.yaml', (s) => s.replace(/limit: \d+/g, 'limit: 1000000000'))
    edit('policy.yaml', (s) =>
      s
        .replace(
          /(sequence:\n {2}history_limit: \d+\n {2}rules:)[\s\S]*?(\n {2}quarantine:)/,
          '$1 []$2',
        )
        .replace(/denials: \d+/, 'denials: 1000000000'),
    )
    warden = await createWarden({ config: join(dir, 'warden.yaml'), sweepIntervalMs: 0 })
  })
  afterAll(async () => {
    await warden.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it(`${RUNS} generated calls: 0 disagreements`, async () => {
    const seen = new Map<Expected, number>()
    let done = 0
    while (done < RUNS) {
      const n = Math.min(BATCH, RUNS - done)
      await fc.assert(
        fc.asyncProperty(call, async (c) => {
          const res = await warden.app.inject({
            method: 'POST',
            url: '/gateway/execute',
            headers: {
              authorization: `Bearer ${keyOf(c.agent)}`,
              'content-type': 'application/json',
            },
            payload: { agent_id: c.agent, tool: c.tool, params: c.params },
          })
          const got = actual(res.statusCode, res.body)
          seen.set(got, (seen.get(got) ?? 0) + 1)
          expect(got).toBe(reference(c.agent, c.tool, c.params))
        }),
        { numRuns: n },
      )
      done += n
    }
    expect(done).toBe(RUNS)
    // The generator reaches every kind of decision, not only the cheap refusals.
    for (const d of [
      'allow',
      'hold',
      'deny:tool_not_allowed',
      'deny:policy_denied',
      'deny:param_invalid',
    ]) {
      if (RUNS >= 1_000) expect(seen.get(d as Expected) ?? 0).toBeGreaterThan(0)
    }
  }, 900_000)
})
