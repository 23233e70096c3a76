import { resolved, type Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** Layer 3: CEL authorization rules; deny wins, no permit means deny, an erroring rule denies. */
export function policy(rt: Runtime): Layer {
  return {
    name: 'policy',
    check(ctx) {
      const { agent, tool } = resolved(ctx)
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
      return { outcome: 'pass', reason: `permitted by \`${result.rule}\`` }
    },
  }
}
