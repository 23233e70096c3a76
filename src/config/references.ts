import type { Problem, WardenConfig } from '../domain/config.js'
import { policyProblems } from '../policy/cel-policy.js'
import { schemaProblems, paramNames } from '../policy/param-schemas.js'

/** Cross-checks the schema cannot express: names that must exist, ids that must be unique. */
export function checkReferences(config: WardenConfig): Problem[] {
  const problems: Problem[] = []
  const tools = new Map(config.tools.map((t) => [t.name, t]))
  unique(
    config.agents.map((a) => a.id),
    ['agents'],
    'agent id',
    problems,
  )
  unique(
    config.tools.map((t) => t.name),
    ['tools'],
    'tool name',
    problems,
  )
  lookAlikes(
    config.tools.map((t) => t.name),
    problems,
  )
  unique(
    config.policy.rules.map((r) => r.id),
    ['policy', 'rules'],
    'rule id',
    problems,
  )
  // A shared hash would let one principal authenticate as another, or an agent key approve.
  unique(
    [
      ...config.agents.map((a) => a.key_sha256),
      ...config.approvals.approvers.map((a) => a.token_sha256),
    ],
    ['agents'],
    'credential hash (agent keys and approver tokens must all differ)',
    problems,
  )
  unique(
    config.approvals.approvers.map((a) => a.id),
    ['approvals', 'approvers'],
    'approver id',
    problems,
  )

  config.tools.forEach((tool, i) => {
    for (const message of schemaProblems(tool.params))
      problems.push({ path: ['tools', i, 'params'], message })
    const names = paramNames(tool.params)
    tool.taint?.params.forEach((p, j) => {
      if (!names.has(p))
        problems.push({
          path: ['tools', i, 'taint', 'params', j],
          message: `unknown parameter \`${p}\``,
        })
    })
  })
  config.agents.forEach((agent, i) => {
    agent.tools.forEach((t, j) => {
      if (!tools.has(t))
        problems.push({ path: ['agents', i, 'tools', j], message: `unknown tool \`${t}\`` })
    })
    for (const t of Object.keys(agent.tool_rate_limits)) {
      if (!agent.tools.includes(t)) {
        problems.push({
          path: ['agents', i, 'tool_rate_limits', t],
          message: `tool \`${t}\` is not in the agent's tools`,
        })
      }
    }
  })
  config.guards.forEach((guard, i) => {
    const tool = tools.get(guard.tool)
    if (!tool)
      problems.push({ path: ['guards', i, 'tool'], message: `unknown tool \`${guard.tool}\`` })
    else if (!paramNames(tool.params).has(guard.param)) {
      problems.push({
        path: ['guards', i, 'param'],
        message: `tool \`${guard.tool}\` has no parameter \`${guard.param}\``,
      })
    }
    if (guard.kind === 'amount_threshold' && guard.hold_up_to < guard.allow_up_to) {
      problems.push({ path: ['guards', i, 'hold_up_to'], message: 'must be at least allow_up_to' })
    }
  })
  config.sequence.rules.forEach((rule, i) => {
    const at = (path: PropertyKey[], message: string) =>
      problems.push({ path: ['sequence', 'rules', i, ...path], message })
    const param = (toolName: string, name: string | undefined, path: PropertyKey[]) => {
      const tool = tools.get(toolName)
      if (tool && name !== undefined && !paramNames(tool.params).has(name))
        at(path, `tool \`${toolName}\` has no parameter \`${name}\``)
    }
    if (!tools.has(rule.tool)) at(['tool'], `unknown tool \`${rule.tool}\``)
    const other = rule.after?.tool ?? rule.requires?.tool
    const key = rule.after ? 'after' : 'requires'
    if (other !== undefined && !tools.has(other)) at([key, 'tool'], `unknown tool \`${other}\``)
    if (rule.after) {
      param(rule.after.tool, rule.after.sum_param, ['after', 'sum_param'])
      param(rule.after.tool, rule.after.distinct_param, ['after', 'distinct_param'])
    }
    rule.follows?.tools.forEach(
      (t, j) => tools.has(t) || at(['follows', 'tools', j], `unknown tool \`${t}\``),
    )
    if (rule.requires) {
      param(rule.requires.tool, rule.requires.same_param, ['requires', 'same_param'])
      param(rule.tool, rule.requires.same_param, ['requires', 'same_param'])
    }
  })
  const agentIds = new Set(config.agents.map((a) => a.id))
  config.messaging.edges.forEach((edge, i) => {
    for (const end of ['from', 'to'] as const)
      if (!agentIds.has(edge[end]))
        problems.push({
          path: ['messaging', 'edges', i, end],
          message: `unknown agent \`${edge[end]}\``,
        })
  })
  // A random per-process key would make gateway instances refuse each other's tokens; the demo
  // derives a public one from its version instead (src/auth/delegation.ts).
  if (config.messaging.edges.length > 0 && !config.demo && !config.messaging.signing_secret)
    problems.push({
      path: ['messaging', 'signing_secret'],
      message:
        'required when `messaging.edges` is set outside the demo: every gateway instance must sign delegation tokens with the same key',
    })
  const roles = new Set(config.approvals.approvers.flatMap((a) => a.roles))
  config.approvals.rules.forEach((rule, i) => {
    const at = (key: string, message: string) =>
      problems.push({ path: ['approvals', 'rules', i, key], message })
    rule.tools?.forEach((t) => tools.has(t) || at('tools', `unknown tool \`${t}\``))
    if (!rule.roles.some((r) => roles.has(r)))
      at('roles', 'no approver has any of these roles: calls it matches could never be approved')
    const above = rule.param_above
    if (above && !rule.tools) at('param_above', 'a rule on a parameter must name its `tools`')
    for (const t of above ? (rule.tools ?? []) : []) {
      const tool = tools.get(t)
      if (tool && !paramNames(tool.params).has(above!.param))
        at('param_above', `tool \`${t}\` has no parameter \`${above!.param}\``)
    }
  })
  const approverIds = new Set(config.approvals.approvers.map((a) => a.id))
  config.approvals.notify?.webhooks.forEach((hook, i) => {
    if (!approverIds.has(hook.approver)) {
      problems.push({
        path: ['approvals', 'notify', 'webhooks', i, 'approver'],
        message: `unknown approver \`${hook.approver}\``,
      })
    }
  })
  for (const t of Object.keys(config.approvals.ttl_by_tool)) {
    if (!tools.has(t))
      problems.push({ path: ['approvals', 'ttl_by_tool', t], message: `unknown tool \`${t}\`` })
  }
  mcpProblems(config, problems)
  problems.push(...policyProblems(config))
  return problems
}

/** An `mcp` tool names a configured upstream and carries its namespace: `<upstream>.<tool>`. */
function mcpProblems(config: WardenConfig, problems: Problem[]): void {
  unique(
    config.mcp_upstreams.map((u) => u.name),
    ['mcp_upstreams'],
    'upstream name',
    problems,
  )
  const upstreams = new Set(config.mcp_upstreams.map((u) => u.name))
  config.tools.forEach((tool, i) => {
    if (tool.executor.type !== 'mcp') return
    const { upstream } = tool.executor
    if (!upstreams.has(upstream))
      problems.push({
        path: ['tools', i, 'executor', 'upstream'],
        message: `unknown MCP upstream \`${upstream}\``,
      })
    // The namespace is what keeps two upstreams' `search` apart, and what the agent sees.
    else if (!tool.name.startsWith(`${upstream}.`) || tool.name.length === upstream.length + 1)
      problems.push({
        path: ['tools', i, 'name'],
        message: `an MCP tool's name is \`${upstream}.<the upstream's tool name>\``,
      })
  })
}

function unique(values: string[], path: PropertyKey[], what: string, problems: Problem[]): void {
  const seen = new Set<string>()
  values.forEach((v, i) => {
    if (seen.has(v)) problems.push({ path: [...path, i], message: `duplicate ${what} \`${v}\`` })
    seen.add(v)
  })
}

/**
 * A tool name reduced to how it reads: lower case, and the ASCII confusables of Unicode TR39
 * (`0`/`o`, `1`/`l`/`i`/`|`, `rn`/`m`, `vv`/`w`, `cl`/`d`) folded together. Two names with one
 * skeleton are look-alikes an approver or a model can mistake for each other.
 */
function toolNameSkeleton(name: string): string {
  return name
    .toLowerCase()
    .replace(/0/g, 'o')
    .replace(/[1i|]/g, 'l')
    .replace(/rn/g, 'm')
    .replace(/vv/g, 'w')
    .replace(/cl/g, 'd')
}

// INVARIANT: no two configured tools share a skeleton, so a look-alike (`lssue_refund`,
// `Issue_Refund`, `lookup_0rder`) can never be registered next to the real tool.
function lookAlikes(names: string[], problems: Problem[]): void {
  const seen = new Map<string, string>()
  names.forEach((name, i) => {
    const skeleton = toolNameSkeleton(name)
    const other = seen.get(skeleton)
    if (other !== undefined && other !== name)
      problems.push({
        path: ['tools', i, 'name'],
        message: `tool name \`${name}\` looks like \`${other}\``,
      })
    if (other === undefined) seen.set(skeleton, name)
  })
}
