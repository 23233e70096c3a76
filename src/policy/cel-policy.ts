import { Environment } from '@marcbachmann/cel-js'
import type {
  AgentConfig,
  PolicyRuleConfig,
  Problem,
  ToolConfig,
  WardenConfig,
} from '../domain/config.js'
import { CLASSIFICATIONS } from '../domain/config.js'
import { paramNames } from './param-schemas.js'

/** What a CEL rule sees. Ranks make classification comparisons plain integer comparisons. */
export interface PolicyInput {
  agent: { id: string; role: string; clearance: string; clearance_rank: number }
  tool: { name: string; risk: string; classification: string; classification_rank: number }
  params: Record<string, unknown>
  context: Record<string, unknown>
  /** Sensitive parameter → where its value came from in the session (data-flow rules). */
  provenance: Record<string, ParamOrigin>
}

/** What a data-flow rule sees of one sensitive parameter's origins (`provenance.<param>`). */
export interface ParamOrigin {
  /**
   * Found in the user's input (`context.user_input`) of this session, sent before the session's
   * first injected output (input sent later counts as `untrusted`).
   */
  user: boolean
  /** Found in an untrusted tool's output (or in user input sent after an injected output). */
  untrusted: boolean
  /** Found in the passages of a tool output that scored as a prompt injection. */
  injected: boolean
  /** Found anywhere in a tool output that carried an injection (its injected passages or not). */
  flagged: boolean
  /** Possibly in a text kept only in part (not found in the kept part). */
  maybe: boolean
  /** Found in no session text at all. */
  none: boolean
  /** The texts it was found in (`context.user_input`, `tool:<name>#<request id>`). */
  sources: string[]
}

export type PolicyResult =
  | {
      effect: 'permit'
      rule: string
      reason: string
      /** A `release` rule matched: the call is let out of the session quarantine. */
      released?: { rule: string; reason: string }
    }
  | { effect: 'deny'; rule: string | null; reason: string }

type Compiled = PolicyRuleConfig & { evaluate: (input: PolicyInput) => unknown }

/** A policy compiled once at load; `evaluate` is pure and synchronous. */
export interface CompiledPolicy {
  /** Some rule reads `provenance` (data-flow rules): only then is it worked out before policy. */
  readonly readsProvenance: boolean
  evaluate(
    agent: AgentConfig,
    tool: ToolConfig,
    params: Record<string, unknown>,
    context: Record<string, unknown>,
    provenance?: Record<string, ParamOrigin>,
  ): PolicyResult
}

function celEnvironment(): Environment {
  return (
    new Environment({ unlistedVariablesAreDyn: false, limits: { maxAstNodes: 2000, maxDepth: 64 } })
      // Typed records, so a misspelt field (`agent.rol`) or a type mismatch (`agent.role == 1`)
      // is a load error instead of a rule that silently never matches.
      .registerVariable({
        name: 'agent',
        schema: { id: 'string', role: 'string', clearance: 'string', clearance_rank: 'double' },
      })
      .registerVariable({
        name: 'tool',
        schema: {
          name: 'string',
          risk: 'string',
          classification: 'string',
          classification_rank: 'double',
        },
      })
      .registerVariable('params', 'map')
      .registerVariable('context', 'map')
      .registerVariable('provenance', 'map')
  )
}

const PARAM_REFS = [
  /\bparams\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)/g,
  /\bparams\s*\[\s*["']([^"']+)["']\s*\]/g,
]

/** Load-time validation: every rule type-checks and names only known tools, agents, roles, params. */
export function policyProblems(config: WardenConfig): Problem[] {
  const env = celEnvironment()
  const problems: Problem[] = []
  const tools = new Map(config.tools.map((t) => [t.name, t]))
  const agents = new Set(config.agents.map((a) => a.id))
  const roles = new Set(config.agents.map((a) => a.role))
  config.policy.rules.forEach((rule, i) => {
    const at = (key: string, message: string) =>
      problems.push({ path: ['policy', 'rules', i, key], message })
    rule.tools?.forEach((t) => tools.has(t) || at('tools', `unknown tool \`${t}\``))
    rule.agents?.forEach((a) => agents.has(a) || at('agents', `unknown agent \`${a}\``))
    rule.roles?.forEach((r) => roles.has(r) || at('roles', `no agent has role \`${r}\``))
    const checked = safeCheck(env, rule.when)
    if (!checked.valid) return at('when', `invalid CEL: ${checked.error}`)
    if (checked.type !== 'bool' && checked.type !== 'dyn')
      return at('when', `must be a bool expression, not ${checked.type}`)
    for (const param of referencedParams(rule.when)) {
      if (!rule.tools)
        return at('when', `reads \`params.${param}\` but does not name its \`tools\``)
      for (const t of rule.tools) {
        const tool = tools.get(t)
        if (tool && !paramNames(tool.params).has(param))
          at('when', `tool \`${t}\` has no parameter \`${param}\``)
      }
    }
  })
  return problems
}

function safeCheck(
  env: Environment,
  expr: string,
): { valid: boolean; type?: string; error?: string } {
  try {
    const result = env.check(expr) as {
      valid: boolean
      type?: string
      error?: { message?: string }
    }
    return { valid: result.valid, type: result.type, error: result.error?.message?.split('\n')[0] }
  } catch (err) {
    return { valid: false, error: (err as Error).message.split('\n')[0] }
  }
}

function referencedParams(expr: string): Set<string> {
  const found = new Set<string>()
  for (const re of PARAM_REFS) for (const m of expr.matchAll(re)) if (m[1]) found.add(m[1])
  return found
}

const rank = (c: string) => CLASSIFICATIONS.indexOf(c as (typeof CLASSIFICATIONS)[number])

/** Compile the rules. Call only on a configuration that passed `policyProblems`. */
export function compilePolicy(config: WardenConfig): CompiledPolicy {
  const env = celEnvironment()
  const compiled: Compiled[] = config.policy.rules.map((rule) => ({
    ...rule,
    evaluate: env.parse(rule.when),
  }))
  // INVARIANT: forbids come first, so a forbid is always evaluated before any permit can answer.
  const byTool = new Map<string, Compiled[]>()
  for (const tool of config.tools) {
    const applies = compiled.filter((r) => !r.tools || r.tools.includes(tool.name))
    byTool.set(tool.name, [
      ...applies.filter((r) => r.effect === 'forbid'),
      ...applies.filter((r) => r.effect !== 'forbid'),
    ])
  }
  return {
    readsProvenance: config.policy.rules.some((r) => /\bprovenance\b/.test(r.when)),
    evaluate(agent, tool, params, context, provenance = {}) {
      const input: PolicyInput = {
        agent: {
          id: agent.id,
          role: agent.role,
          clearance: agent.clearance,
          clearance_rank: rank(agent.clearance),
        },
        tool: {
          name: tool.name,
          risk: tool.risk,
          classification: tool.classification,
          classification_rank: rank(tool.classification),
        },
        params,
        context,
        provenance,
      }
      let permit: Compiled | undefined
      let release: Compiled | undefined
      for (const rule of byTool.get(tool.name) ?? []) {
        if (rule.agents && !rule.agents.includes(agent.id)) continue
        if (rule.roles && !rule.roles.includes(agent.role)) continue
        let value: unknown
        try {
          value = rule.evaluate(input)
        } catch (err) {
          // Cedar would skip an erroring rule; skipping a forbid can let a call through, so deny.
          return {
            effect: 'deny',
            rule: rule.id,
            reason: `rule \`${rule.id}\` could not be evaluated: ${firstLine(err)}`,
          }
        }
        if (typeof value !== 'boolean') {
          return {
            effect: 'deny',
            rule: rule.id,
            reason: `rule \`${rule.id}\` did not return a bool`,
          }
        }
        if (value && rule.effect === 'forbid')
          return { effect: 'deny', rule: rule.id, reason: rule.reason }
        if (value && rule.effect === 'release') release ??= rule
        else if (value && !permit) permit = rule
      }
      if (!permit) return { effect: 'deny', rule: null, reason: 'no policy rule permits this call' }
      return {
        effect: 'permit',
        rule: permit.id,
        reason: permit.reason,
        ...(release && { released: { rule: release.id, reason: release.reason } }),
      }
    },
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'error'
}
