import type { GuardConfig } from '../../domain/config.js'
import type { Verdict } from '../../domain/types.js'
import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 8: business guards on parameter values. Thresholds compare numbers; allowlists compare
 * exact strings, so `PROD`, ` prod` or `pr\u200bod` are simply not on the list. A guard that
 * cannot evaluate denies.
 */
export function guards(rt: Runtime): Layer<'guards'> {
  const byTool = new Map<string, GuardConfig[]>()
  for (const g of rt.config.guards) byTool.set(g.tool, [...(byTool.get(g.tool) ?? []), g])
  return {
    name: 'guards',
    check(ctx) {
      const { tool } = ctx
      let hold: Verdict | undefined
      for (const guard of byTool.get(tool.name) ?? []) {
        const v = evaluate(guard, ctx.call.params[guard.param])
        if (v.outcome === 'deny') return v
        if (v.outcome === 'hold') hold ??= v
      }
      return hold ?? { outcome: 'pass' }
    },
  }
}

function evaluate(guard: GuardConfig, value: unknown): Verdict {
  const deny = (reason: string): Verdict => ({
    outcome: 'deny',
    code: 'guard_denied',
    reason,
    risk: 30,
    details: { guard: guard.id },
  })
  if (guard.kind === 'amount_threshold') {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      return deny(`guard \`${guard.id}\` could not evaluate: \`${guard.param}\` is not a number`)
    }
    if (value > guard.hold_up_to)
      return deny(`\`${guard.param}\` ${value} is above the limit of ${guard.hold_up_to}`)
    if (value > guard.allow_up_to) {
      return {
        outcome: 'hold',
        reason: `\`${guard.param}\` ${value} is above ${guard.allow_up_to} and needs approval`,
        risk: 20,
        details: { guard: guard.id },
      }
    }
    return { outcome: 'pass' }
  }
  if (value === undefined && guard.optional) return { outcome: 'pass' }
  if (typeof value !== 'string')
    return deny(`guard \`${guard.id}\` could not evaluate: \`${guard.param}\` is not a string`)
  const action = Object.hasOwn(guard.values, value) ? guard.values[value] : undefined
  if (action === undefined) return deny(`\`${guard.param}\` \`${value}\` is not an allowed value`)
  if (action === 'hold') {
    return {
      outcome: 'hold',
      reason: `\`${guard.param}\` \`${value}\` needs approval`,
      risk: 15,
      details: { guard: guard.id },
    }
  }
  return { outcome: 'pass' }
}
