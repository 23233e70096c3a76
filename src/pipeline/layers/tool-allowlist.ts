import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'
import { TOOL_RISK_BASE } from '../risk.js'

/**
 * Layer 2: exact, case-sensitive allowlist. An unknown tool gets the same answer as a forbidden
 * one so the allowlist cannot be used to enumerate tools.
 */
export function toolAllowlist(rt: Runtime): Layer {
  const allowed = new Map(rt.config.agents.map((a) => [a.id, new Set(a.tools)]))
  return {
    name: 'tool_allowlist',
    check(ctx) {
      const agentId = ctx.agent?.id ?? ''
      const tool = rt.tools.get(ctx.call.tool)
      if (!tool || !allowed.get(agentId)?.has(tool.name)) {
        return {
          outcome: 'deny',
          code: 'tool_not_allowed',
          reason: `tool \`${ctx.call.tool}\` is not allowed for agent \`${agentId}\``,
          risk: 40,
        }
      }
      ctx.tool = tool
      return {
        outcome: 'pass',
        reason: `\`${tool.name}\` is on the allowlist`,
        risk: TOOL_RISK_BASE[tool.risk],
      }
    },
  }
}
