import { createHash } from 'node:crypto'
import type { SequenceRuleConfig, WardenConfig } from '../../domain/config.js'
import { THROTTLING_CODES } from '../../domain/errors.js'
import type { Verdict } from '../../domain/types.js'
import type {
  HistoryEntry,
  KeptWindowEntry,
  RuleWindow,
  SessionChanges,
} from '../../state/types.js'
import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

type AnomalyConfig = WardenConfig['anomaly']

/** What the agent's rule window of one watched tool keeps. */
interface WindowPlan {
  /** The longest window of the rules that read it. */
  keepMs: number
  /** The parameters those rules compare, count or sum. */
  params: readonly string[]
}

interface WindowPlans {
  /** Watched tool → what its window keeps. */
  byTool: ReadonlyMap<string, WindowPlan>
  /** Tool called → the windows its rules read. */
  readBy: ReadonlyMap<string, readonly string[]>
  max: number
}

const plansByConfig = new WeakMap<WardenConfig['sequence'], WindowPlans>()

/**
 * The rule windows a configuration needs. Each rule reads the windows of the tools it watches
 * (`after.tool`, `requires.tool`, `follows.tools`); a window is kept per agent and watched tool for
 * the longest of those rules' time spans, holding only the calls rules count.
 */
export function windowPlans(seq: WardenConfig['sequence']): WindowPlans {
  let plans = plansByConfig.get(seq)
  if (plans) return plans
  const byTool = new Map<string, { keepMs: number; params: Set<string> }>()
  const readBy = new Map<string, string[]>()
  const watch = (rule: SequenceRuleConfig, tool: string, seconds: number, params: string[]) => {
    const plan = byTool.get(tool) ?? { keepMs: 0, params: new Set<string>() }
    plan.keepMs = Math.max(plan.keepMs, seconds * 1000)
    for (const p of params) plan.params.add(p)
    byTool.set(tool, plan)
    const read = readBy.get(rule.tool) ?? []
    if (!read.includes(tool)) read.push(tool)
    readBy.set(rule.tool, read)
  }
  for (const r of seq.rules) {
    if (r.after) {
      const { tool, within_seconds, distinct_param, sum_param } = r.after
      watch(
        r,
        tool,
        within_seconds,
        [distinct_param, sum_param].filter((p) => p !== undefined),
      )
    }
    if (r.requires) watch(r, r.requires.tool, r.requires.within_seconds, [r.requires.same_param])
    if (r.follows) for (const t of r.follows.tools) watch(r, t, r.follows.within_seconds, [])
  }
  plans = {
    byTool: new Map([...byTool].map(([t, p]) => [t, { keepMs: p.keepMs, params: [...p.params] }])),
    readBy,
    max: seq.window_limit,
  }
  plansByConfig.set(seq, plans)
  return plans
}

/** Strings longer than this are kept as their SHA-256 (equality is all rules need of them). */
const MAX_KEPT_STRING = 128

/**
 * The window entry a counted call (allowed, or approved and run) adds, if a rule watches its tool.
 */
export function windowChange(
  seq: WardenConfig['sequence'],
  tool: string,
  params: Readonly<Record<string, unknown>>,
  at: number,
): SessionChanges['window'] {
  const plans = windowPlans(seq)
  const plan = plans.byTool.get(tool)
  if (!plan) return undefined
  const kept: Record<string, string | number | boolean> = {}
  for (const p of plan.params) {
    const v = keptForm(params[p])
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') kept[p] = v
  }
  return { key: tool, entry: { at, params: kept }, keepMs: plan.keepMs, max: plans.max }
}

/**
 * Layer 10: declarative rules over the agent's recent calls (e.g. many lookups then an export),
 * quarantine of an agent after repeated denials, and (when enabled) the learned model of the
 * agent's tool transitions. History is per agent, not per session, so a new session id does not
 * wipe it.
 */
export function sequence(rt: Runtime): Layer<'sequence'> {
  const rulesByTool = new Map<string, SequenceRuleConfig[]>()
  for (const r of rt.config.sequence.rules)
    rulesByTool.set(r.tool, [...(rulesByTool.get(r.tool) ?? []), r])
  const anomaly = rt.config.anomaly
  return {
    name: 'sequence',
    check(ctx) {
      const { agent, tool } = ctx
      // The snapshot names only quarantines still running at the call's time.
      const quarantined = ctx.state.quarantinedUntil
      const until = quarantined.get(agent.id)
      if (until !== undefined) {
        const reason = `agent \`${agent.id}\` is quarantined until ${new Date(until).toISOString()} after repeated denials`
        return { outcome: 'deny', code: 'agent_quarantined', reason, risk: 40 }
      }
      // A delegated call stops when any agent of the chain is quarantined.
      for (const delegatorId of ctx.chain ?? []) {
        const delegatorUntil = quarantined.get(delegatorId)
        if (delegatorUntil !== undefined)
          return {
            outcome: 'deny',
            code: 'agent_quarantined',
            reason: `agent \`${delegatorId}\`, which delegated this call, is quarantined until ${new Date(delegatorUntil).toISOString()}`,
            risk: 40,
          }
      }
      const { history } = ctx.state
      const record = agentRecord(history, rt.config.risk.history_window)
      for (const rule of rulesByTool.get(tool.name) ?? []) {
        const hit = triggered(rule, ctx.state.windows, ctx.call.params, ctx.now)
        if (!hit) continue
        const reason = `${rule.description || rule.id}: ${hit.text}`
        const details = { rule: rule.id, ...hit.figures }
        return rule.action === 'deny'
          ? { outcome: 'deny', code: 'sequence_anomaly', reason, risk: 35 + record.risk, details }
          : { outcome: 'hold', reason, risk: 20 + record.risk, details }
      }
      if (!anomaly.enabled)
        return record.risk > 0
          ? { outcome: 'pass', risk: record.risk, details: { agent_record: record } }
          : { outcome: 'pass' }
      ctx.previousTool = previousTool(history, ctx.call.sessionId)
      const row = ctx.state.transitions.get(ctx.previousTool) ?? {}
      const v = judgeTransition(anomaly, ctx.previousTool, tool.name, row, agent.tools.length)
      if (record.risk === 0) return v
      return {
        ...v,
        risk: (v.risk ?? 0) + record.risk,
        details: { ...v.details, agent_record: record },
      }
    },
  }
}

/**
 * The agent's recent record: of its last `window` calls, how many were denied (rate limits and
 * quarantine aside) or held. Each denial counts 1 and each hold ½; risk is 20 × that share (an agent whose recent calls were all
 * refused adds 20).
 */
export function agentRecord(
  history: readonly HistoryEntry[],
  window: number,
): { calls: number; denied: number; held: number; risk: number } {
  const recent = history.slice(-window)
  let denied = 0
  let held = 0
  for (const h of recent) {
    // Throttling (rate limits, quarantine) is not misconduct: it does not count against the agent.
    if (h.decision === 'deny' && !(h.code && THROTTLING_CODES.has(h.code))) denied++
    else if (h.decision === 'approval_required') held++
  }
  const risk = recent.length === 0 ? 0 : Math.round((20 * (denied + held / 2)) / window)
  return { calls: recent.length, denied, held, risk }
}

/** The start of a session, as the `from` side of its first transition. */
export const SESSION_START = '^'

/** The agent's last tool in this session (history is newest last), or the session start. */
function previousTool(history: readonly HistoryEntry[], session: string | undefined): string {
  if (session === undefined) return SESSION_START
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i]
    if (h?.session === session) return h.tool
  }
  return SESSION_START
}

/**
 * The learned model's view of `from → to`: P = (count + α) / (total + α·K) over the agent's K
 * tools. Silent until `min_observations` transitions out of `from` were seen; then the surprise
 * (−log2 P, in bits) adds risk (3 per bit, at most 30), and P below `hold_below` holds the call.
 */
export function judgeTransition(
  cfg: AnomalyConfig,
  from: string,
  to: string,
  row: Readonly<Record<string, number>>,
  toolCount: number,
): Verdict {
  let total = 0
  for (const n of Object.values(row)) total += n
  if (total < cfg.min_observations) return { outcome: 'pass' }
  const seen = row[to] ?? 0
  const p = (seen + cfg.smoothing) / (total + cfg.smoothing * Math.max(1, toolCount))
  const bits = -Math.log2(p)
  const risk = Math.min(30, Math.round(bits * 3))
  const details = { from, to, seen, total, probability: Math.round(p * 10_000) / 10_000 }
  if (p >= cfg.hold_below) return { outcome: 'pass', risk, details }
  const after = from === SESSION_START ? 'as the first call of a session' : `after \`${from}\``
  return {
    outcome: 'hold',
    reason: `unusual for this agent: \`${to}\` ${after} (${seen} of ${total} times before)`,
    risk,
    details,
  }
}

/** Whether a rule fires for this call, and what it saw. */
function triggered(
  rule: SequenceRuleConfig,
  windows: ReadonlyMap<string, RuleWindow>,
  params: Readonly<Record<string, unknown>>,
  now: number,
): { text: string; figures: Record<string, number> } | null {
  const { after, requires, follows } = rule
  const span = (after ?? requires ?? follows)!.within_seconds
  const since = now - span * 1000
  const watched = follows?.tools ?? [(after ?? requires)!.tool]
  // INVARIANT: fail closed. A window that dropped entries inside this rule's span (its cap was
  // reached) cannot show the rule everything, so the rule fires.
  for (const t of watched) {
    const dropped = windows.get(t)?.droppedUntil
    if (dropped !== undefined && dropped >= since)
      return {
        text: `more \`${t}\` calls in the last ${span}s than Warden keeps for this rule`,
        figures: {},
      }
  }
  const countedSince = (tool: string): readonly KeptWindowEntry[] =>
    (windows.get(tool)?.entries ?? []).filter((e) => e.at >= since)
  if (follows) {
    // Every watched call in the span, oldest first, matching the chain's steps in order.
    const calls = [...new Set(follows.tools)]
      .flatMap((t) => countedSince(t).map((e) => ({ tool: t, at: e.at, seq: e.seq })))
      .sort((x, y) => x.at - y.at || x.seq - y.seq)
    let step = 0
    let first = 0
    for (const h of calls) {
      if (h.tool !== follows.tools[step]) continue
      if (step === 0) first = h.at
      if (++step === follows.tools.length) break
    }
    if (step < follows.tools.length) return null
    return {
      text: `follows ${follows.tools.map((t) => `\`${t}\``).join(' → ')} within ${follows.within_seconds}s`,
      figures: { since_ms: now - first },
    }
  }
  if (requires) {
    const value = keptForm(params[requires.same_param])
    const seen = countedSince(requires.tool).some((h) => h.params[requires.same_param] === value)
    if (seen) return null
    return {
      text: `no \`${requires.tool}\` with this \`${requires.same_param}\` in the last ${requires.within_seconds}s`,
      figures: {},
    }
  }
  if (!after) return null
  const hits = countedSince(after.tool)
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

/** A parameter value as a window keeps it (long strings as their hash). */
function keptForm(v: unknown): unknown {
  return typeof v === 'string' && v.length > MAX_KEPT_STRING
    ? `sha256:${createHash('sha256').update(v).digest('hex')}`
    : v
}
