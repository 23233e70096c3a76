import type { AgentConfig } from '../../domain/config.js'
import type { RateLimit } from '../../state/types.js'
import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

type Budget = RateLimit & { seconds: number }

/**
 * Layer 4: per-agent and per-agent+tool limits (GCRA), counted all at once in one round trip.
 * Refusals carry `Retry-After`. A delegated call also spends the budgets of the agents that
 * delegated it, so an agent cannot get past its own limits by asking another agent.
 */
export function rateLimit(rt: Runtime): Layer<'rate_limit'> {
  const budgetsOf = callBudgets(rt)
  return {
    name: 'rate_limit',
    async check(ctx) {
      const limits = budgetsOf(ctx.agent.id, ctx.tool.name, ctx.chain)
      const r = await rt.state.rateLimiter.hit(limits)
      if (r.allowed) return { outcome: 'pass' }
      const l = limits.find((x) => x.key === r.key)
      return {
        outcome: 'deny',
        code: 'rate_limited',
        reason: `rate limit of ${l?.limit} per ${l?.seconds}s exceeded for \`${r.key}\``,
        retryAfterSeconds: Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
        risk: 20,
      }
    },
  }
}

/**
 * The budgets one call spends: its agent's (all tools, and this tool), and those of every agent
 * that delegated it. Restart recovery (`restore.ts`) replays recorded calls through the same list.
 */
export function callBudgets(
  rt: Runtime,
): (agentId: string, tool: string, chain?: readonly string[]) => readonly Budget[] {
  const agents = new Map(rt.config.agents.map((a) => [a.id, a]))
  // An agent's budgets for a tool, worked out once (bounded by the configuration: agents × tools).
  const budgets = new Map<string, readonly Budget[]>()
  const budgetsOf = (a: AgentConfig, tool: string): readonly Budget[] => {
    const key = `${a.id}\0${tool}`
    let list = budgets.get(key)
    if (!list) {
      const perTool = a.tool_rate_limits[tool]
      list = [budget(`agent:${a.id}`, a.rate_limit)]
      if (perTool) list = [...list, budget(`agent-tool:${a.id}:${tool}`, perTool)]
      budgets.set(key, list)
    }
    return list
  }
  return (agentId, tool, chain) => {
    const agent = agents.get(agentId)
    let limits = agent ? budgetsOf(agent, tool) : []
    for (const id of chain ?? []) {
      const delegator = agents.get(id)
      if (delegator) limits = [...limits, ...budgetsOf(delegator, tool)]
    }
    return limits
  }
}

function budget(key: string, l: { limit: number; window_seconds: number }): Budget {
  return { key, limit: l.limit, windowMs: l.window_seconds * 1000, seconds: l.window_seconds }
}
