import { resolved, type Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** Layer 4: per-agent and per-agent+tool limits (GCRA). Refusals carry `Retry-After`. */
export function rateLimit(rt: Runtime): Layer {
  return {
    name: 'rate_limit',
    async check(ctx) {
      const { agent, tool } = resolved(ctx)
      const limits = [{ key: `agent:${agent.id}`, ...agent.rate_limit }]
      const perTool = agent.tool_rate_limits[tool.name]
      if (perTool) limits.push({ key: `agent-tool:${agent.id}:${tool.name}`, ...perTool })
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
