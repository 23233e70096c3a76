import { resolved, type Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 4: per-agent and per-agent+tool limits (GCRA). Refusals carry `Retry-After`. A delegated
 * call also spends the budgets of the agents that delegated it, so an agent cannot get past its
 * own limits by asking another agent.
 */
export function rateLimit(rt: Runtime): Layer {
  const agents = new Map(rt.config.agents.map((a) => [a.id, a]))
  return {
    name: 'rate_limit',
    async check(ctx) {
      const { agent, tool } = resolved(ctx)
      const limits: { key: string; limit: number; window_seconds: number }[] = []
      for (const a of [agent, ...(ctx.chain ?? []).flatMap((id) => agents.get(id) ?? [])]) {
        limits.push({ key: `agent:${a.id}`, ...a.rate_limit })
        const perTool = a.tool_rate_limits[tool.name]
        if (perTool) limits.push({ key: `agent-tool:${a.id}:${tool.name}`, ...perTool })
      }
      for (const l of limits) {
        const r = await rt.state.rateLimit(l.key, l.limit, l.window_seconds * 1000, ctx.now)
        if (!r.allowed) {
          return {
            outcome: 'deny',
            code: 'rate_limited',
            reason: `rate limit of ${l.limit} per ${l.window_seconds}s exceeded for \`${l.key}\``,
            retryAfterSeconds: Math.max(1, Math.ceil(r.retryAfterMs / 1000)),
            risk: 20,
          }
        }
      }
      return { outcome: 'pass' }
    },
  }
}
