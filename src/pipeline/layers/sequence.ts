import type { SequenceRuleConfig } from '../../config/schema.js'
import type { HistoryEntry } from '../../state/types.js'
import { resolved, type Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 10: declarative rules over the agent's recent calls (e.g. many lookups then an export),
 * and quarantine of an agent after repeated denials. History is per agent, not per session, so
 * a new session id does not wipe it.
 */
export function sequence(rt: Runtime): Layer {
  const rulesByTool = new Map<string, SequenceRuleConfig[]>()
  for (const r of rt.config.sequence.rules)
    rulesByTool.set(r.tool, [...(rulesByTool.get(r.tool) ?? []), r])
  return {
    name: 'sequence',
    async check(ctx) {
      const { agent, tool } = resolved(ctx)
      const until = await rt.state.quarantinedUntil(agent.id)
      if (until !== null && until > ctx.now) {
        const reason = `agent \`${agent.id}\` is quarantined until ${new Date(until).toISOString()} after repeated denials`
        return { outcome: 'deny', code: 'agent_quarantined', reason, risk: 40 }
      }
      const rules = rulesByTool.get(tool.name)
      if (!rules) return { outcome: 'pass' }
      const history = await rt.state.history(agent.id)
      for (const rule of rules) {
        const count = matches(rule, history, ctx.now)
        if (count < rule.after.at_least) continue
        const reason = `${rule.description || rule.id}: ${count} \`${rule.after.tool}\` calls in the last ${rule.after.within_seconds}s`
        const details = { rule: rule.id, count }
        return rule.action === 'deny'
          ? { outcome: 'deny', code: 'sequence_anomaly', reason, risk: 35, details }
          : { outcome: 'hold', reason, risk: 20, details }
      }
      return { outcome: 'pass' }
    },
  }
}

function matches(rule: SequenceRuleConfig, history: readonly HistoryEntry[], now: number): number {
  const since = now - rule.after.within_seconds * 1000
  const hits = history.filter(
    (h) => h.tool === rule.after.tool && h.decision === 'allow' && h.at >= since,
  )
  const param = rule.after.distinct_param
  return param === undefined ? hits.length : new Set(hits.map((h) => h.params[param])).size
}
