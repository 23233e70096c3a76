import type { AuditCounts } from '../store/types.js'
import type { EventBus } from './bus.js'

type Tally = { allowed: number; denied: number; approval_required: number }
const tally = (): Tally => ({ allowed: 0, denied: 0, approval_required: 0 })
const KEY: Record<string, keyof Tally | undefined> = {
  allow: 'allowed',
  deny: 'denied',
  approval_required: 'approval_required',
}

/** Names that are not in the configuration are counted together, so callers cannot grow the maps. */
export const UNKNOWN = '(unknown)'
const MAX_AGE_MS = 2000

/**
 * `/stats`, from the counters the store keeps beside the audit log (updated in each append's
 * transaction), so every instance that shares the log shows the same figures and reading them
 * costs a few small rows, not a pass over the log. The figures are kept until the next committed
 * event (or at most two seconds), so a dashboard polling an idle gateway hardly costs anything.
 * Memory is bounded: agents and tools are only the configured ones (anything else, such as an
 * unauthenticated caller's claimed id, counts as `(unknown)`), and the store bounds the reasons.
 */
export class Stats {
  private cached: Promise<ReturnType<Totals['snapshot']>> | null = null
  private computedAt = 0

  constructor(
    private readonly log: { counts(): Promise<AuditCounts> },
    bus: EventBus,
    private readonly known: { agents: ReadonlySet<string>; tools: ReadonlySet<string> },
  ) {
    bus.subscribe(() => {
      this.cached = null
    })
  }

  snapshot(): Promise<ReturnType<Totals['snapshot']>> {
    // Events of instances whose bus this one does not hear are picked up within MAX_AGE_MS.
    if (this.cached && Date.now() - this.computedAt > MAX_AGE_MS) this.cached = null
    if (!this.cached) this.computedAt = Date.now()
    const current = (this.cached ??= this.compute())
    // A failed read is not cached: the next request asks the store again.
    current.catch(() => {
      if (this.cached === current) this.cached = null
    })
    return current
  }

  private async compute() {
    const counts = await this.log.counts()
    const totals = new Totals(this.known)
    for (const r of counts.rows)
      totals.add(r.type, r.decision, r.agent_id, r.tool, r.risk_level, r.n)
    for (const r of counts.denyReasons) totals.countReason(r.reason, r.n)
    return totals.snapshot()
  }
}

/** Tallies of one aggregate. */
class Totals {
  private totals = tally()
  private byAgent = new Map<string, Tally>()
  private byTool = new Map<string, Tally>()
  private byRisk = new Map<string, number>()
  private byType = new Map<string, number>()
  private reasons = new Map<string, number>()

  constructor(
    private readonly known: { agents: ReadonlySet<string>; tools: ReadonlySet<string> },
  ) {}

  countReason(reason: string, n: number): void {
    this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + n)
  }

  add(type: string, decision: string, agent: string, tool: string, risk: string, n: number): void {
    this.byType.set(type, (this.byType.get(type) ?? 0) + n)
    const key = KEY[decision]
    if (!key) return // approvals and executions are not decisions
    this.totals[key] += n
    bump(this.byAgent, this.known.agents.has(agent) ? agent : UNKNOWN, key, n)
    bump(this.byTool, this.known.tools.has(tool) ? tool : UNKNOWN, key, n)
    this.byRisk.set(risk, (this.byRisk.get(risk) ?? 0) + n)
  }

  snapshot() {
    const decided = this.totals.allowed + this.totals.denied + this.totals.approval_required
    return {
      total_requests: decided,
      ...this.totals,
      block_rate: decided === 0 ? 0 : Math.round((this.totals.denied / decided) * 10_000) / 10_000,
      by_agent: Object.fromEntries(this.byAgent),
      by_tool: Object.fromEntries(this.byTool),
      by_risk_level: {
        low: 0,
        medium: 0,
        high: 0,
        critical: 0,
        ...Object.fromEntries(this.byRisk),
      },
      by_event_type: Object.fromEntries(this.byType),
      top_block_reasons: [...this.reasons]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([reason, count]) => ({ reason, count })),
    }
  }
}

function bump(map: Map<string, Tally>, key: string, field: keyof Tally, n: number): void {
  const t = map.get(key) ?? tally()
  t[field] += n
  map.set(key, t)
}
