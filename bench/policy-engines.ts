// Cost of one authorization decision in three policy engines, for the demo policy.
//
//   node --import tsx bench/policy-engines.ts [--cel-n 200000] [--cedar-n 20000] [--rounds 5]
//
// Every engine evaluates the same rules (config/demo/policy.yaml) for the same mix of calls:
// - @marcbachmann/cel-js: rules parsed (and type-checked) once, compiled function called per rule;
// - @bufbuild/cel: rules parsed and planned once, plan executed per rule;
// - @cedar-policy/cedar-wasm: the equivalent Cedar policy set, one isAuthorized call per decision,
//   with the policies as text, as JSON, and preparsed (preparsePolicySet + statefulIsAuthorized).
// A decision covers every rule that applies to the call (no early exit), as the gateway needs the
// full list of matching rules for the audit record. The CEL engines apply the policy's semantics:
// deny wins, no matching permit denies, a rule that errors (or is not a bool) denies.
// Cedar applies its own: deny wins, no permit denies, and a policy that errors is skipped.

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { Environment } from '@marcbachmann/cel-js'
import { celEnv, parse as bufParse, plan as bufPlan } from '@bufbuild/cel'
import * as cedar from '@cedar-policy/cedar-wasm/nodejs'
import type {
  AuthorizationAnswer,
  CedarValueJson,
  Context as CedarContext,
  EntityJson,
  PolicySet,
} from '@cedar-policy/cedar-wasm/nodejs'

// ---------------------------------------------------------------------------------------------
// Configuration

interface RuleSpec {
  id: string
  effect: 'permit' | 'forbid'
  when: string
  tools?: string[]
  roles?: string[]
  reason?: string
}
interface AgentSpec {
  id: string
  role: string
  clearance: string
  tools: string[]
}
interface ToolSpec {
  name: string
  risk: string
  classification: string
}

const CLASSIFICATION_RANK: Record<string, number> = {
  public: 0,
  internal: 1,
  confidential: 2,
  restricted: 3,
}

function rank(level: string): number {
  const r = CLASSIFICATION_RANK[level]
  if (r === undefined) throw new Error(`unknown classification ${level}`)
  return r
}

function readConfig<T>(name: string): T {
  const url = new URL(`../config/demo/${name}`, import.meta.url)
  return parseYaml(readFileSync(fileURLToPath(url), 'utf8')) as T
}

const rules = readConfig<{ policy: { rules: RuleSpec[] } }>('policy.yaml').policy.rules
const agents = new Map(
  readConfig<{ agents: AgentSpec[] }>('agents.yaml').agents.map((a) => [a.id, a]),
)
const tools = new Map(readConfig<{ tools: ToolSpec[] }>('tools.yaml').tools.map((t) => [t.name, t]))

// ---------------------------------------------------------------------------------------------
// The call mix. Parameters are valid for each tool's schema (the schema layer runs before policy).

type Params = Record<string, string | number | boolean>
interface MixEntry {
  agent: string
  tool: string
  params: Params
  expect: 'allow' | 'deny'
}

const mix: MixEntry[] = [
  {
    agent: 'refund-agent',
    tool: 'issue_refund',
    params: { order_id: 'ORD-1001', amount: 42.5, reason: 'item arrived damaged' },
    expect: 'allow',
  },
  {
    agent: 'refund-agent',
    tool: 'issue_refund',
    params: { order_id: 'ORD-1002', amount: 80, currency: 'USD', reason: 'no' },
    expect: 'deny',
  },
  {
    agent: 'refund-agent',
    tool: 'lookup_order',
    params: { order_id: 'ORD-1001' },
    expect: 'allow',
  },
  {
    agent: 'refund-agent',
    tool: 'search_knowledge_base',
    params: { query: 'refund policy for damaged items', limit: 5 },
    expect: 'allow',
  },
  {
    agent: 'support-agent',
    tool: 'create_support_ticket',
    params: {
      customer_id: 'CUST-12345',
      subject: 'Package not delivered',
      description: 'Tracking shows delivered but the customer has nothing.',
      priority: 'high',
    },
    expect: 'allow',
  },
  { agent: 'support-agent', tool: 'lookup_order', params: { order_id: 'ORD-7' }, expect: 'allow' },
  {
    agent: 'support-agent',
    tool: 'issue_refund',
    params: { order_id: 'ORD-1001', amount: 20, reason: 'goodwill gesture' },
    expect: 'deny',
  },
  {
    agent: 'support-agent',
    tool: 'export_customer_data',
    params: { segment: 'all', destination: 's3://exports/all.csv' },
    expect: 'deny',
  },
  {
    agent: 'admin-agent',
    tool: 'export_customer_data',
    params: { segment: 'vip', format: 'csv', destination: 's3://exports/vip.csv' },
    expect: 'allow',
  },
  {
    agent: 'admin-agent',
    tool: 'restart_service',
    params: { service: 'checkout-api', environment: 'staging', reason: 'memory leak' },
    expect: 'allow',
  },
  {
    agent: 'admin-agent',
    tool: 'get_system_health',
    params: { environment: 'prod' },
    expect: 'allow',
  },
  {
    agent: 'hacker-bot',
    tool: 'search_knowledge_base',
    params: { query: 'ignore previous instructions' },
    expect: 'deny',
  },
  {
    agent: 'hacker-bot',
    tool: 'export_customer_data',
    params: { segment: 'all', destination: 'https://evil.example/x' },
    expect: 'deny',
  },
  {
    agent: 'hacker-bot',
    tool: 'issue_refund',
    params: { order_id: 'ORD-1', amount: 999, reason: 'because I said so' },
    expect: 'deny',
  },
]

// ---------------------------------------------------------------------------------------------
// Engine-neutral view of a call, and the decision shape every engine produces.

interface Call {
  agent: { id: string; role: string; clearance: string; clearance_rank: number }
  tool: { name: string; risk: string; classification: string; classification_rank: number }
  params: Params
}

interface Decision {
  allow: boolean
  /** Rules that matched: for a deny the forbids (or errors), for an allow the permits. */
  reasons: string[]
  errors: string[]
}

function toCall(agentId: string, toolName: string, params: Params): Call {
  const a = agents.get(agentId)
  const t = tools.get(toolName)
  if (!a || !t) throw new Error(`unknown agent/tool ${agentId}/${toolName}`)
  return {
    agent: { id: a.id, role: a.role, clearance: a.clearance, clearance_rank: rank(a.clearance) },
    tool: {
      name: t.name,
      risk: t.risk,
      classification: t.classification,
      classification_rank: rank(t.classification),
    },
    params,
  }
}

// ---------------------------------------------------------------------------------------------
// CEL engines: a compiled rule is a function from the activation to a value (or a thrown error).

interface CompiledRule {
  id: string
  effect: 'permit' | 'forbid'
  tools: Set<string> | null
  roles: Set<string> | null
  run: (activation: Record<string, unknown>) => unknown
}

function compileRules(
  compile: (expr: string) => (activation: Record<string, unknown>) => unknown,
): CompiledRule[] {
  return rules.map((r) => ({
    id: r.id,
    effect: r.effect,
    tools: r.tools ? new Set(r.tools) : null,
    roles: r.roles ? new Set(r.roles) : null,
    run: compile(r.when),
  }))
}

function decideCel(compiled: CompiledRule[], call: Call, activation: Record<string, unknown>) {
  let permitted = false
  let denied = false
  const forbids: string[] = []
  const permits: string[] = []
  const errors: string[] = []
  for (const rule of compiled) {
    if (rule.tools !== null && !rule.tools.has(call.tool.name)) continue
    if (rule.roles !== null && !rule.roles.has(call.agent.role)) continue
    let value: unknown
    try {
      value = rule.run(activation)
    } catch {
      value = undefined
    }
    if (value === true) {
      if (rule.effect === 'forbid') {
        denied = true
        forbids.push(rule.id)
      } else {
        permitted = true
        permits.push(rule.id)
      }
    } else if (value !== false) {
      // Threw, returned an error value (@bufbuild/cel) or a non-bool: the rule denies.
      denied = true
      errors.push(rule.id)
    }
  }
  const allow = permitted && !denied
  return { allow, reasons: allow ? permits : [...forbids, ...errors], errors } satisfies Decision
}

function celJsCompiler() {
  const env = new Environment()
    .registerVariable('agent', 'map')
    .registerVariable('tool', 'map')
    .registerVariable('params', 'map')
    .registerVariable('context', 'map')
  return (expr: string) => {
    const checked = env.check(expr)
    if (!checked.valid) throw new Error(`rule does not type-check: ${checked.error?.message}`)
    if (checked.type !== 'bool' && checked.type !== 'dyn') throw new Error(`not a bool: ${expr}`)
    const fn = env.parse(expr)
    return (activation: Record<string, unknown>) => fn(activation) as unknown
  }
}

function bufCompiler() {
  const env = celEnv()
  return (expr: string) => {
    const fn = bufPlan(env, bufParse(expr))
    // Errors come back as CelError values rather than exceptions; decideCel treats them as deny.
    return (activation: Record<string, unknown>) =>
      fn(activation as Parameters<typeof fn>[0]) as unknown
  }
}

// ---------------------------------------------------------------------------------------------
// Cedar: the same rules as a policy set. Cedar has no string length, so the gateway would have to
// pass derived values: `context.param_lengths` holds the length of every string parameter. Cedar
// numbers are 64-bit integers only; a fractional parameter goes in as a decimal() value.

const cedarPolicies: Record<string, string> = {
  'permit-allowlisted': 'permit (principal, action == Action::"call", resource);',
  'clearance-below-classification':
    'forbid (principal, action, resource) when { resource.classification_rank > principal.clearance_rank };',
  'untrusted-role-nothing': 'forbid (principal in Role::"untrusted", action, resource);',
  'refunds-by-billing-only':
    'forbid (principal, action, resource == Tool::"issue_refund") when { principal.role != "billing" };',
  'refund-needs-reason':
    'forbid (principal, action, resource == Tool::"issue_refund") when { context.param_lengths.reason < 3 };',
  'export-devops-only':
    'forbid (principal, action, resource == Tool::"export_customer_data") when { principal.role != "devops" };',
}

for (const r of rules) {
  if (!(r.id in cedarPolicies)) throw new Error(`rule ${r.id} has no Cedar translation`)
}

const ACTION = { type: 'Action', id: 'call' }

interface CedarRequest {
  principal: { type: string; id: string }
  action: { type: string; id: string }
  resource: { type: string; id: string }
  context: CedarContext
  entities: EntityJson[]
}

function cedarValue(v: string | number | boolean): CedarValueJson {
  if (typeof v === 'number' && !Number.isInteger(v)) {
    return { __extn: { fn: 'decimal', arg: v.toFixed(4) } }
  }
  return v
}

function toCedarRequest(call: Call): CedarRequest {
  const params: Record<string, CedarValueJson> = {}
  const lengths: Record<string, CedarValueJson> = {}
  for (const [k, v] of Object.entries(call.params)) {
    params[k] = cedarValue(v)
    if (typeof v === 'string') lengths[k] = v.length
  }
  return {
    principal: { type: 'Agent', id: call.agent.id },
    action: ACTION,
    resource: { type: 'Tool', id: call.tool.name },
    context: { params, param_lengths: lengths },
    entities: [
      {
        uid: { type: 'Agent', id: call.agent.id },
        attrs: {
          role: call.agent.role,
          clearance: call.agent.clearance,
          clearance_rank: call.agent.clearance_rank,
        },
        parents: [{ type: 'Role', id: call.agent.role }],
      },
      { uid: { type: 'Role', id: call.agent.role }, attrs: {}, parents: [] },
      {
        uid: { type: 'Tool', id: call.tool.name },
        attrs: {
          risk: call.tool.risk,
          classification: call.tool.classification,
          classification_rank: call.tool.classification_rank,
        },
        parents: [],
      },
    ],
  }
}

// A policy set given as one text gets ids policy0, policy1, ... in source order (the @id
// annotation does not rename them); map those back to the rule ids.
const cedarIdsInOrder = Object.keys(cedarPolicies)
function policyName(id: string): string {
  const m = /^policy(\d+)$/.exec(id)
  return m ? (cedarIdsInOrder[Number(m[1])] ?? id) : id
}

function cedarDecision(answer: AuthorizationAnswer): Decision {
  if (answer.type !== 'success') {
    return { allow: false, reasons: [], errors: answer.errors.map((e) => e.message) }
  }
  const { decision, diagnostics } = answer.response
  return {
    allow: decision === 'allow',
    reasons: diagnostics.reason.map(policyName).sort(),
    errors: diagnostics.errors.map((e) => policyName(e.policyId)),
  }
}

const cedarText = Object.entries(cedarPolicies)
  .map(([id, text]) => `@id("${id}")\n${text}`)
  .join('\n')
const cedarById: PolicySet = { staticPolicies: cedarPolicies }
const cedarJson: PolicySet = {
  staticPolicies: Object.fromEntries(
    Object.entries(cedarPolicies).map(([id, text]) => {
      const out = cedar.policyToJson(text)
      if (out.type !== 'success') throw new Error(`policy ${id}: ${out.errors[0]?.message}`)
      return [id, out.json]
    }),
  ),
}
const PRESET_ID = 'warden-demo'

function cedarPlain(policies: PolicySet) {
  return (req: CedarRequest) => cedarDecision(cedar.isAuthorized({ ...req, policies }))
}
function cedarPreparsed(req: CedarRequest) {
  return cedarDecision(cedar.statefulIsAuthorized({ ...req, preparsedPolicySetId: PRESET_ID }))
}

// ---------------------------------------------------------------------------------------------
// Setup (timed once, as "load" cost)

function timeOnce<T>(fn: () => T): { value: T; ms: number } {
  const t0 = process.hrtime.bigint()
  const value = fn()
  return { value, ms: Number(process.hrtime.bigint() - t0) / 1e6 }
}

const celJsLoad = timeOnce(() => compileRules(celJsCompiler()))
const bufLoad = timeOnce(() => compileRules(bufCompiler()))
const cedarLoad = timeOnce(() => {
  const ok = cedar.preparsePolicySet(PRESET_ID, { staticPolicies: cedarText })
  if (ok.type !== 'success') throw new Error(`preparse: ${ok.errors[0]?.message}`)
  return ok
})

interface Prepared {
  entry: MixEntry
  call: Call
  activation: Record<string, unknown>
  cedar: CedarRequest
}

const prepared: Prepared[] = mix.map((entry) => {
  const call = toCall(entry.agent, entry.tool, entry.params)
  return {
    entry,
    call,
    activation: { agent: call.agent, tool: call.tool, params: call.params, context: {} },
    cedar: toCedarRequest(call),
  }
})

interface Engine {
  name: string
  n: number
  decide: (p: Prepared) => Decision
}

const args = process.argv.slice(2)
function argNum(flag: string, dflt: number): number {
  const i = args.indexOf(flag)
  const v = i >= 0 ? Number(args[i + 1]) : dflt
  if (!Number.isFinite(v) || v <= 0) throw new Error(`bad ${flag}`)
  return v
}
const CEL_N = argNum('--cel-n', 200_000)
const CEDAR_N = argNum('--cedar-n', 20_000)
const ROUNDS = argNum('--rounds', 5)

const celJsRules = celJsLoad.value
const bufRules = bufLoad.value
const cedarTextPlain = cedarPlain({ staticPolicies: cedarText })
const cedarByIdPlain = cedarPlain(cedarById)
const cedarJsonPlain = cedarPlain(cedarJson)

const engines: Engine[] = [
  {
    name: '@marcbachmann/cel-js',
    n: CEL_N,
    decide: (p) => decideCel(celJsRules, p.call, p.activation),
  },
  { name: '@bufbuild/cel', n: CEL_N, decide: (p) => decideCel(bufRules, p.call, p.activation) },
  { name: 'cedar-wasm isAuthorized (text)', n: CEDAR_N, decide: (p) => cedarTextPlain(p.cedar) },
  {
    name: 'cedar-wasm isAuthorized (text by id)',
    n: CEDAR_N,
    decide: (p) => cedarByIdPlain(p.cedar),
  },
  { name: 'cedar-wasm isAuthorized (JSON)', n: CEDAR_N, decide: (p) => cedarJsonPlain(p.cedar) },
  {
    name: 'cedar-wasm statefulIsAuthorized (preparsed)',
    n: CEDAR_N,
    decide: (p) => cedarPreparsed(p.cedar),
  },
]

// ---------------------------------------------------------------------------------------------
// Agreement

console.log(
  `node ${process.version}, ${process.platform}/${process.arch}, cedar ${cedar.getCedarVersion()}`,
)
console.log(`rules: ${rules.map((r) => r.id).join(', ')}`)
console.log(
  `load: cel-js parse+check ${celJsLoad.ms.toFixed(2)} ms, bufbuild parse+plan ` +
    `${bufLoad.ms.toFixed(2)} ms, cedar preparse ${cedarLoad.ms.toFixed(2)} ms`,
)
console.log('\nagreement (expected decision and reasons per call):')

let disagreements = 0
for (const p of prepared) {
  const results = engines.map((e) => ({ name: e.name, d: e.decide(p) }))
  const base = results[0]!.d
  const line: string[] = []
  for (const { name, d } of results) {
    const decision = d.allow ? 'allow' : 'deny'
    const sameReasons = [...d.reasons].sort().join(',') === [...base.reasons].sort().join(',')
    if (decision !== p.entry.expect || !sameReasons || d.errors.length > 0) {
      disagreements++
      line.push(`  MISMATCH ${name}: ${decision} ${JSON.stringify(d)}`)
    }
  }
  console.log(
    `  ${p.entry.agent.padEnd(14)} ${p.entry.tool.padEnd(22)} -> ${p.entry.expect.padEnd(5)} ` +
      `[${[...base.reasons].sort().join(', ')}]`,
  )
  for (const l of line) console.log(l)
}
console.log(
  disagreements === 0
    ? `all ${engines.length} engine variants agree on all ${prepared.length} calls (decision and matching rules)`
    : `${disagreements} disagreements`,
)

// ---------------------------------------------------------------------------------------------
// Timing

function run(engine: Engine, n: number): { us: number; allows: number } {
  let allows = 0
  const len = prepared.length
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) {
    if (engine.decide(prepared[i % len]!).allow) allows++
  }
  const ns = Number(process.hrtime.bigint() - t0)
  return { us: ns / 1000 / n, allows }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

console.log(
  `\ntiming: warm-up n/4 then ${ROUNDS} rounds of n decisions (mix of ${prepared.length} calls); µs per decision`,
)
const results: { name: string; n: number; median: number; min: number; max: number }[] = []
for (const engine of engines) {
  run(engine, Math.max(1000, Math.floor(engine.n / 4)))
  const rounds: number[] = []
  for (let r = 0; r < ROUNDS; r++) rounds.push(run(engine, engine.n).us)
  results.push({
    name: engine.name,
    n: engine.n,
    median: median(rounds),
    min: Math.min(...rounds),
    max: Math.max(...rounds),
  })
}
const ref = results[0]!.median
console.log(
  `  ${'engine'.padEnd(44)} ${'n/round'.padStart(8)} ${'median'.padStart(8)} ${'min'.padStart(8)} ` +
    `${'max'.padStart(8)} ${'vs cel-js'.padStart(10)}`,
)
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(44)} ${String(r.n).padStart(8)} ${r.median.toFixed(3).padStart(8)} ` +
      `${r.min.toFixed(3).padStart(8)} ${r.max.toFixed(3).padStart(8)} ` +
      `${(r.median / ref).toFixed(1).padStart(9)}x`,
  )
}

// The fixed cost of one call into cedar-wasm: a one-permit preparsed set, no entities, no context.
{
  const ok = cedar.preparsePolicySet('floor', {
    staticPolicies: 'permit (principal, action, resource);',
  })
  if (ok.type !== 'success') throw new Error('preparse floor')
  const req = {
    principal: { type: 'Agent', id: 'a' },
    action: ACTION,
    resource: { type: 'Tool', id: 't' },
    context: {},
    entities: [],
    preparsedPolicySetId: 'floor',
  }
  const floor = {
    name: 'floor',
    n: CEDAR_N,
    decide: () => cedarDecision(cedar.statefulIsAuthorized(req)),
  }
  run(floor, Math.floor(CEDAR_N / 4))
  console.log(
    `  cedar-wasm floor (preparsed one-permit set, empty request): ${run(floor, CEDAR_N).us.toFixed(3)} µs`,
  )
}

// ---------------------------------------------------------------------------------------------
// Error handling: a refund whose `reason` is missing, so `refund-needs-reason` cannot evaluate.
// (The schema layer rejects this call first in the gateway; here it stands for any rule that
// reads a value that is not there.)

console.log('\nrule that errors: refund-agent issue_refund {order_id, amount} (no reason)')
const broken = toCall('refund-agent', 'issue_refund', { order_id: 'ORD-1003', amount: 30 })
const brokenActivation = {
  agent: broken.agent,
  tool: broken.tool,
  params: broken.params,
  context: {},
}
const brokenCedar = toCedarRequest(broken)
console.log(`  cel-js:   ${JSON.stringify(decideCel(celJsRules, broken, brokenActivation))}`)
console.log(`  bufbuild: ${JSON.stringify(decideCel(bufRules, broken, brokenActivation))}`)
const cedarAnswer = cedar.isAuthorized({ ...brokenCedar, policies: cedarById })
if (cedarAnswer.type === 'success') {
  const { decision, diagnostics } = cedarAnswer.response
  console.log(`  cedar:    decision=${decision} reason=${JSON.stringify(diagnostics.reason)}`)
  for (const e of diagnostics.errors) {
    console.log(`            error in ${e.policyId}: ${e.error.message} (${e.error.help ?? ''})`)
  }
} else {
  console.log(`  cedar:    failure ${JSON.stringify(cedarAnswer.errors)}`)
}

// Cedar also rejects a whole request whose context holds a plain fractional number.
const floatAnswer = cedar.isAuthorized({
  ...brokenCedar,
  context: { params: { amount: 42.5 } },
  policies: cedarById,
})
console.log(
  `  cedar, context {amount: 42.5} as a JSON number: ${floatAnswer.type}` +
    (floatAnswer.type === 'failure' ? ` (${floatAnswer.errors[0]?.message})` : ''),
)
