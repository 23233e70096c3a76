import type { DecisionContext, Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'
import { policyOrigins, provenanceOf, sessionSources } from './taint.js'

/** Layer 3: CEL authorization rules; deny wins, no permit means deny, an erroring rule denies. */
export function policy(rt: Runtime): Layer<'policy'> {
  const agents = new Map(rt.config.agents.map((a) => [a.id, a]))
  const minLength = rt.config.taint.min_match_length
  const maxChars = rt.config.sessions.max_entry_chars
  // Data-flow rules read where each sensitive value came from: the taint layer's matching, over
  // the same session texts, worked out here only when some rule reads it.
  const provenanceFor = (ctx: DecisionContext) =>
    rt.policy.readsProvenance
      ? provenanceOf(ctx.tool, ctx.call.params, sessionSources(ctx, maxChars).sources, minLength)
      : undefined
  return {
    name: 'policy',
    check(ctx) {
      const { agent, tool } = ctx
      const provenance = provenanceFor(ctx)
      const origins = provenance && policyOrigins(provenance)
      // A denial says where the values came from (the taint layer, which records it otherwise,
      // does not run after a denial).
      const seen = provenance && { provenance }
      const result = rt.policy.evaluate(agent, tool, ctx.call.params, ctx.call.context, origins)
      if (result.effect === 'deny') {
        return {
          outcome: 'deny',
          code: 'policy_denied',
          reason: result.reason,
          risk: 30,
          details: { rule: result.rule, ...seen },
        }
      }
      // A delegated call must be one every agent of the chain could make itself (the allowlist
      // layer already checked their tools and clearance; these are their attribute rules).
      for (const delegatorId of ctx.chain ?? []) {
        const delegator = agents.get(delegatorId)
        if (!delegator) continue // the allowlist layer refused unknown delegators already
        const own = rt.policy.evaluate(delegator, tool, ctx.call.params, ctx.call.context, origins)
        if (own.effect === 'deny')
          return {
            outcome: 'deny',
            code: 'policy_denied',
            reason: `for \`${delegatorId}\`, which delegated this call: ${own.reason}`,
            risk: 30,
            details: { rule: own.rule, delegator: delegatorId, ...seen },
          }
      }
      if (result.released) ctx.released = result.released
      return {
        outcome: 'pass',
        reason: `permitted by \`${result.rule}\``,
        ...(result.released && { details: { released_by: result.released.rule } }),
      }
    },
  }
}
