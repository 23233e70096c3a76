import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** Layer 3: CEL authorization rules; deny wins, no permit means deny, an erroring rule denies. */
export function policy(rt: Runtime): Layer<'policy'> {
  const agents = new Map(rt.config.agents.map((a) => [a.id, a]))
  return {
    name: 'policy',
    check(ctx) {
      const { agent, tool } = ctx
      const result = rt.policy.evaluate(agent, tool, ctx.call.params, ctx.call.context)
      if (result.effect === 'deny') {
        return {
          outcome: 'deny',
          code: 'policy_denied',
          reason: result.reason,
          risk: 30,
          details: { rule: result.rule },
        }
      }
      // A delegated call must be one every agent of the chain could make itself (the allowlist
      // layer already checked their tools and clearance; these are their attribute rules).
      for (const delegatorId of ctx.chain ?? []) {
        const delegator = agents.get(delegatorId)
        if (!delegator) continue // the allowlist layer refused unknown delegators already
        const own = rt.policy.evaluate(delegator, tool, ctx.call.params, ctx.call.context)
        if (own.effect === 'deny')
          return {
            outcome: 'deny',
            code: 'policy_denied',
            reason: `for \`${delegatorId}\`, which delegated this call: ${own.reason}`,
            risk: 30,
            details: { rule: own.rule, delegator: delegatorId },
          }
      }
      return { outcome: 'pass', reason: `permitted by \`${result.rule}\`` }
    },
  }
}
