import type { ResolveLayer } from '../layer.js'
import type { Runtime } from '../runtime.js'
import { TOOL_RISK_BASE } from '../risk.js'
import { CLASSIFICATIONS, type Classification } from '../../domain/config.js'
import type { PinBlock } from '../../domain/tool-pins.js'

const CLEARANCE_RANK = Object.fromEntries(CLASSIFICATIONS.map((c, i) => [c, i])) as Record<
  Classification,
  number
>

/** Why a blocked upstream tool is refused, by its pin's block. */
const BLOCKED_WHY: Record<PinBlock, string> = {
  changed: 'definition of {tool} changed since it was pinned',
  poisoned: 'description of {tool} looks like a prompt injection',
  shadowing: 'description of {tool} names tools of another server',
}

/**
 * Layer 2: exact, case-sensitive allowlist. An unknown tool gets the same answer as a forbidden
 * one so the allowlist cannot be used to enumerate tools. An allowed upstream tool whose pinned
 * definition is blocked is denied with its own code.
 */
export function toolAllowlist(rt: Runtime): ResolveLayer<'tool_allowlist'> {
  const allowed = new Map(rt.config.agents.map((a) => [a.id, new Set(a.tools)]))
  const agents = new Map(rt.config.agents.map((a) => [a.id, a]))
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
      // Delegated: every agent of the chain must be allowed the tool and cleared for its data
      // (the intersection of their permissions), so no agent gets another to do what it may not.
      for (const delegatorId of ctx.chain ?? []) {
        const delegator = agents.get(delegatorId)
        const reason = !delegator
          ? `the call was delegated by \`${delegatorId}\`, which is not a configured agent`
          : !delegator.tools.includes(tool.name)
            ? `tool \`${tool.name}\` is not allowed for agent \`${delegatorId}\`, which delegated this call`
            : CLEARANCE_RANK[delegator.clearance] < CLEARANCE_RANK[tool.classification]
              ? `agent \`${delegatorId}\`, which delegated this call, is not cleared for ${tool.classification} data`
              : null
        if (reason) return { outcome: 'deny', code: 'tool_not_allowed', reason, risk: 50 }
      }
      // An upstream tool whose definition changed since it was pinned, or whose description
      // reads as an injection, is refused here until an approver accepts it: the agent (and the
      // model) are told why, and nothing is spent on the later layers.
      const blocked = tool.executor.type === 'mcp' ? rt.definitionBlock?.(tool.name) : undefined
      if (blocked)
        return {
          outcome: 'deny',
          code: 'tool_definition_blocked',
          reason: `the ${BLOCKED_WHY[blocked]}; an approver must accept it`.replaceAll(
            '{tool}',
            `\`${tool.name}\``,
          ),
          risk: 60,
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
