import type { AuditEvent } from '../domain/audit-event.js'
import type { Check } from '../domain/types.js'
import type { SessionChanges } from '../state/types.js'
import type { ApprovalStore, AuditLog } from '../store/types.js'
import { MESSAGE_TOOL } from './layers/message-edge.js'
import { callBudgets } from './layers/rate-limit.js'
import { windowPlans } from './layers/sequence.js'
import { decidedChanges } from './runner.js'
import type { Runtime } from './runtime.js'

/**
 * Restart recovery for a state backend that starts empty (memory). The audit log is the durable
 * record of every decision, so the security state the layers keep is rebuilt from its recent
 * events, in sequence order, through the same state operations the live calls used: rate-limit
 * budgets, agent history, rule windows, denials and quarantine, and poisoned or untrusted-output
 * sessions. A restart therefore neither refills an agent's budget nor forgets a refund count or
 * a quarantine. What is not restored, and why, is in docs/state.md.
 */
export interface RestoreOptions {
  /** The start-up time (epoch ms): events older than the longest span any state covers are skipped. */
  now: number
  /**
   * Sets the clock the rate limiter reads while recorded hits are replayed (`undefined`: the real
   * clock again). Only the memory backend is restored, and it takes its clock at open.
   */
  setClock(at: number | undefined): void
  // INVARIANT: while the clock is set, the limiter counts every hit (memory `replaying`).
  /** Events read per page (default 2,000). */
  pageSize?: number
}

export interface RestoreReport {
  /** Events read from the log (inside the span). */
  events: number
  /** Recorded decisions and approved executions applied to the state. */
  applied: number
  /** Rate-limit hits replayed. */
  hits: number
  /** The oldest time restored (ISO). */
  since: string
}

/** Timestamps of consecutive events may be out of order by this much (receive time vs append). */
const CLOCK_SLACK_MS = 60_000

/** How far back the state the pipeline keeps reaches, by the configuration. */
export function restoreSpanMs(rt: Runtime): number {
  const c = rt.config
  let span = c.sessions.idle_ttl_seconds * 1000
  for (const plan of windowPlans(c.sequence).byTool.values()) span = Math.max(span, plan.keepMs)
  if (c.sequence.quarantine) {
    const q = c.sequence.quarantine
    span = Math.max(span, (q.within_seconds + q.duration_seconds) * 1000)
  }
  for (const a of c.agents) {
    span = Math.max(span, a.rate_limit.window_seconds * 1000)
    for (const l of Object.values(a.tool_rate_limits))
      span = Math.max(span, l.window_seconds * 1000)
  }
  return span
}

/** Rebuild the runtime's (empty) state from the audit log's events within `restoreSpanMs`. */
export async function restoreState(
  rt: Runtime,
  audit: AuditLog,
  approvals: Pick<ApprovalStore, 'get'>,
  options: RestoreOptions,
): Promise<RestoreReport> {
  const pageSize = options.pageSize ?? 2000
  const since = options.now - restoreSpanMs(rt)
  const from = new Date(since).toISOString()
  const budgets = callBudgets(rt)
  const report: RestoreReport = { events: 0, applied: 0, hits: 0, since: from }
  const startAfter = await firstSeqBefore(audit, since - CLOCK_SLACK_MS, pageSize)
  try {
    for (let after = startAfter; ;) {
      const page = await audit.query({ after_seq: after, from, order: 'asc', limit: pageSize })
      for (const e of page) {
        report.events++
        const step = await stepOf(rt, e, approvals)
        if (!step) continue
        report.applied++
        if (step.spent) {
          const limits = budgets(step.changes.agent, step.tool, step.delegators)
          if (limits.length > 0) {
            options.setClock(step.at)
            // The limiter counts a replayed hit whatever it would answer now (`replaying`): the
            // call did spend it, even if its recorded time is a little before the live hit's.
            await rt.state.rateLimiter.hit(limits)
            report.hits++
          }
        }
        await rt.state.sessions.commit(step.changes)
      }
      if (page.length < pageSize) break
      after = page[page.length - 1]!.seq
    }
  } finally {
    options.setClock(undefined)
  }
  return report
}

/**
 * The `seq` after which every event at or after `time` lies: walked back from the newest, a page
 * at a time, until a whole page is older (timestamps follow `seq` up to `CLOCK_SLACK_MS`).
 */
async function firstSeqBefore(audit: AuditLog, time: number, pageSize: number): Promise<number> {
  const iso = new Date(time).toISOString()
  let before: number | undefined
  for (;;) {
    const page = await audit.query({
      order: 'desc',
      limit: pageSize,
      ...(before !== undefined && { before_seq: before }),
    })
    if (page.length === 0) return 0
    if (page.every((e) => e.timestamp < iso)) return page[0]!.seq
    before = page[page.length - 1]!.seq
    if (page.length < pageSize) return 0
  }
}

/** What one recorded event did to the state, as the live path committed it. */
interface Step {
  changes: SessionChanges
  at: number
  /** The call passed the rate-limit layer: it spent its budgets. */
  spent: boolean
  tool: string
  delegators: readonly string[]
}

async function stepOf(
  rt: Runtime,
  e: AuditEvent,
  approvals: Pick<ApprovalStore, 'get'>,
): Promise<Step | undefined> {
  // Demo scenarios run in a world of their own; anonymous calls never reached any state.
  if (e.scenario || e.principal === 'anonymous') return undefined
  const at = Date.parse(e.timestamp)
  if (!Number.isFinite(at)) return undefined
  if (e.type === 'tool_call_executed') return executedStep(rt, e, at, approvals)
  const message = e.type === 'agent_message_sent' || e.type === 'agent_message_denied'
  const decision = pipelineDecision(e)
  if (decision !== 'allow' && decision !== 'deny' && decision !== 'approval_required')
    return undefined
  // The runner commits only for a call whose identity passed (its agent was resolved).
  if (!passed(e.checks, 'identity')) return undefined
  const tool = message ? MESSAGE_TOOL : e.tool
  const params = isRecord(e.params) ? e.params : {}
  // A hold refused after the commit keeps no code in history, as the runner committed it.
  const changes = decidedChanges(rt, {
    agent: e.agent_id,
    tool,
    params,
    session: e.session_id ?? undefined,
    decision,
    code: decision === 'deny' ? e.code : null,
    at,
  })
  // The recorded chain ends with the caller (and, for a message, the receiver).
  const delegators = (e.chain ?? []).slice(0, message ? -2 : -1)
  return { changes, at, spent: passed(e.checks, 'rate_limit'), tool, delegators }
}

/**
 * An executed call: an approved one counts in history and rule windows when it ran (as the
 * approvals service commits it); an untrusted tool's output leaves session taint, restored as a
 * mark with its text gone (the log keeps it masked and cut), so parameter taint fails closed for
 * the rest of the session and an output that carried an injection keeps the session poisoned.
 */
async function executedStep(
  rt: Runtime,
  e: AuditEvent,
  at: number,
  approvals: Pick<ApprovalStore, 'get'>,
): Promise<Step | undefined> {
  const session = e.session_id ?? undefined
  // An approved call counts as an allowed one when it ran, with the approval's parameters.
  const changes: SessionChanges =
    e.approval_id === undefined
      ? { agent: e.agent_id }
      : decidedChanges(rt, {
          agent: e.agent_id,
          tool: e.tool,
          params: (await approvals.get(e.approval_id))?.params ?? {},
          session,
          decision: 'allow',
          code: null,
          at,
        })
  const tool = rt.tools.get(e.tool)
  if (session !== undefined && tool?.output_trust === 'untrusted' && e.outcome === 'ok') {
    const limits = rt.config.sessions
    changes.taint = {
      session,
      entries: [
        {
          source: `tool:${e.tool}#${e.request_id}`,
          text: '',
          at,
          truncated: true,
          ...(e.output_scan && { injected: true }),
        },
      ],
      maxChars: limits.max_session_chars,
      idleMs: limits.idle_ttl_seconds * 1000,
    }
  }
  if (!changes.history && !changes.taint) return undefined
  return { changes, at, spent: false, tool: e.tool, delegators: [] }
}

/**
 * What the pipeline decided (and committed) for a recorded decision: a delivered message was an
 * allow; a denial that no layer's check denied was a hold refused after the commit (a message
 * cannot wait; the approvals service refuses a hold past the pending cap or with a reused key),
 * and the runner committed it as a hold, with no denial counted.
 */
function pipelineDecision(e: AuditEvent): string {
  if (e.decision === 'delivered') return 'allow'
  if (e.decision === 'deny' && !e.checks.some((c) => c.outcome === 'deny'))
    return 'approval_required'
  return e.decision
}

function passed(checks: readonly Check[] | undefined, layer: Check['layer']): boolean {
  return checks?.some((c) => c.layer === layer && c.outcome === 'pass') ?? false
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
