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
        const hit = triggered(rule, history, ctx.call.params, ctx.now)
        if (!hit) continue
        const reason = `${rule.description || rule.id}: ${hit.text}`
        const details = { rule: rule.id, ...hit.figures }
        return rule.action === 'deny'
          ? { outcome: 'deny', code: 'sequence_anomaly', reason, risk: 35, details }
          : { outcome: 'hold', reason, risk: 20, details }
      }
      return { outcome: 'pass' }
    },
  }
}

/** Whether a rule fires for this call, and what it saw. */
function triggered(
  rule: SequenceRuleConfig,
  history: readonly HistoryEntry[],
  params: Readonly<Record<string, unknown>>,
  now: number,
): { text: string; figures: Record<string, number> } | null {
  const allowedSince = (tool: string, seconds: number) =>
    history.filter((h) => h.tool === tool && h.decision === 'allow' && h.at >= now - seconds * 1000)
  const { after, requires } = rule
  if (requires) {
    const value = params[requires.same_param]
    const seen = allowedSince(requires.tool, requires.within_seconds).some(
      (h) => h.params[requires.same_param] === value,
    )
    if (seen) return null
    return {
      text: `no \`${requires.tool}\` with this \`${requires.same_param}\` in the last ${requires.within_seconds}s`,
      figures: {},
    }
  }
  if (!after) return null
  const hits = allowedSince(after.tool, after.within_seconds)
  if (after.at_least !== undefined) {
    const p = after.distinct_param
    const count = p === undefined ? hits.length : new Set(hits.map((h) => h.params[p])).size
    if (count >= after.at_least)
      return {
        text: `${count} \`${after.tool}\` calls in the last ${after.within_seconds}s`,
        figures: { count },
      }
  }
  if (after.sum_param !== undefined && after.sum_over !== undefined) {
    const p = after.sum_param
    const current = rule.tool === after.tool && typeof params[p] === 'number' ? params[p] : 0
    const total = hits.reduce(
      (sum, h) => sum + (typeof h.params[p] === 'number' ? h.params[p] : 0),
      current,
    )
    if (total > after.sum_over) {
      return {
        text: `\`${p}\` totals ${total} in the last ${after.within_seconds}s, over ${after.sum_over}`,
        figures: { total },
      }
    }
  }
  return null
}
