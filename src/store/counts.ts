import type { AuditCounts } from './types.js'

/**
 * The `/stats` counters every backend keeps beside its audit log, updated in the same
 * transaction as the append so they never disagree with it, and read instead of aggregating the
 * log. Both tables are bounded, since callers choose what goes into them (an unauthenticated
 * caller's claimed agent and tool names, reasons that quote its values): past the caps, new
 * names are counted together. A backend implements them as two small tables (or maps) it upserts
 * while appending: SQLite in its writer thread, PostgreSQL with `INSERT … ON CONFLICT`.
 */

/** Distinct (type, decision, agent, tool, risk level) groups kept with their own names. */
export const MAX_GROUPS = 10_000
/** Agent and tool names of groups past `MAX_GROUPS` (what `/stats` shows for unknown names). */
export const OTHER_NAMES = '(unknown)'
/** Distinct deny reasons kept with their own text; later new reasons count as `OTHER_REASONS`. */
export const MAX_DENY_REASONS = 1000
export const OTHER_REASONS = '(other reasons)'
/** How many deny reasons `counts()` reports, most frequent first. */
export const TOP_REASONS = 10

export type CountGroup = AuditCounts['rows'][number]

/** What one event adds to the counters. */
export interface Counted {
  type: string
  decision: string
  agent_id: string
  tool: string
  risk_level: string
  reason: string
}

/** One append's events summed by group and by deny reason, so each is upserted once. */
export function batchCounts(events: Iterable<Counted>): {
  groups: CountGroup[]
  reasons: Map<string, number>
} {
  const groups = new Map<string, CountGroup>()
  const reasons = new Map<string, number>()
  for (const e of events) {
    const key = groupKey(e)
    const group = groups.get(key)
    if (group) group.n++
    else
      groups.set(key, {
        type: e.type,
        decision: e.decision,
        agent_id: e.agent_id,
        tool: e.tool,
        risk_level: e.risk_level,
        n: 1,
      })
    if (e.decision === 'deny') reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1)
  }
  return { groups: [...groups.values()], reasons }
}

export function groupKey(g: Omit<Counted, 'reason'>): string {
  return JSON.stringify([g.type, g.decision, g.agent_id, g.tool, g.risk_level])
}

/** The group a new group is counted in once `MAX_GROUPS` are kept. */
export function lumped(g: CountGroup): CountGroup {
  return { ...g, agent_id: OTHER_NAMES, tool: OTHER_NAMES }
}

/** The most frequent reasons, ties by text, as both backends report them. */
export function topReasons(reasons: Iterable<[string, number]>): AuditCounts['denyReasons'] {
  return [...reasons]
    .map(([reason, n]) => ({ reason, n }))
    .sort((a, b) => b.n - a.n || (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0))
    .slice(0, TOP_REASONS)
}
