import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 9: tools that always need a person, and any call whose risk so far reaches the hold
 * threshold. (Guards and taint may already have asked for a hold; this adds the tool-level rule.)
 */
export function approval(rt: Runtime): Layer<'approval'> {
  const holdAt = rt.config.approval.hold_at_risk
  return {
    name: 'approval',
    check(ctx) {
      const { tool } = ctx
      if (tool.approval === 'always')
        return { outcome: 'hold', reason: `tool \`${tool.name}\` always needs approval` }
      if (ctx.risk >= holdAt)
        return {
          outcome: 'hold',
          reason: `risk ${Math.round(ctx.risk)} reaches the approval threshold ${holdAt}`,
        }
      return { outcome: 'pass' }
    },
  }
}
