import { randomBytes } from 'node:crypto'
import type { LoadedConfig } from '../config/loader.js'
import type { Check, DecisionOutcome, ToolCall } from '../domain/types.js'
import type { Provenance } from '../pipeline/layers/taint.js'
import { inspectOutput } from '../pipeline/output.js'
import { sha256Hex } from '../auth/credentials.js'
import { pipeline, type Pipeline } from '../pipeline/runner.js'
import { buildRuntime, type Runtime } from '../pipeline/runtime.js'
import { openState } from '../state/index.js'
import type { Trace, TraceCall } from './traces.js'

export interface ReplayOptions {
  /** Agent id for a trace; `{suite}` is replaced by the trace's suite. */
  agent: string
  /** Tool name for a recorded function; `{suite}` and `{function}` are replaced. */
  tool: string
  /** Keep every call's decision in the report. */
  detail: boolean
  /**
   * Send the trace's latest user message with each call as `context.user_input`, as an agent
   * integration that forwards the user's request would (data-flow rules read it).
   */
  userInput?: boolean
  /** Where the configuration's `*_env` names are read (the judge's API key), as for the gateway. */
  env?: Readonly<Record<string, string | undefined>>
}

/** How calls are counted: see ReplaySummary. */
type Group = 'benign' | 'under_attack' | 'after_injection' | 'attacker'

/** Whose call it was: the user's task (recorded) or the attacker's goal (attempted after). */
export type CallRole = 'user' | 'attacker'

export interface ReplayedCall {
  role: CallRole
  tool: string
  decision: DecisionOutcome
  layer: string | null
  code: string | null
  reason: string
  risk: number
  /** The session had already received a recorded output marked as carrying an injection. */
  after_injection: boolean
  /** Where each sensitive parameter's value came from (the taint layer's provenance). */
  provenance?: Provenance
}

export interface Tally {
  calls: number
  allowed: number
  held: number
  denied: number
}

export interface TraceReport {
  id: string
  suite: string
  label: string
  user: Tally
  attacker: Tally
  calls?: ReplayedCall[]
}

/**
 * The replay's answer. `benign_*` counts the calls of benign traces (the user's task with no
 * attack); `under_attack_*` the user's calls inside injected traces, of which `after_injection_*`
 * came after the injected output was read; `attacker_*` the attacker's goal calls.
 */
export interface ReplaySummary {
  traces: number
  invalid_traces: number
  attacker_calls: number
  attacker_executed: number
  attacker_held: number
  attacker_denied: number
  benign_calls: number
  benign_allowed: number
  benign_held: number
  benign_denied: number
  under_attack_calls: number
  under_attack_allowed: number
  under_attack_held: number
  under_attack_denied: number
  after_injection_calls: number
  after_injection_allowed: number
  after_injection_held: number
  after_injection_denied: number
  by_suite: Record<string, Record<Group, Tally>>
  trace_detail?: TraceReport[]
}

/** Simulated time: calls one second apart, each trace a day after the previous one started. */
const START = Date.parse('2026-01-01T00:00:00Z')
const CALL_STEP_MS = 1_000
const TRACE_STEP_MS = 86_400_000

const emptyTally = (): Tally => ({ calls: 0, allowed: 0, held: 0, denied: 0 })

export function sumTallies(tallies: readonly Tally[]): Tally {
  const t = emptyTally()
  for (const x of tallies) {
    t.calls += x.calls
    t.allowed += x.allowed
    t.held += x.held
    t.denied += x.denied
  }
  return t
}

function count(t: Tally, d: DecisionOutcome): void {
  t.calls++
  if (d === 'allow') t.allowed++
  else if (d === 'approval_required') t.held++
  else t.denied++
}

/**
 * Runs recorded agent sessions through the real pipeline without executing any tool: each
 * recorded call is decided, and its recorded result goes through the same output inspection
 * (masking, injection scan, session taint) as a live result. Calls the pipeline denies never ran,
 * so their results are not shown to the session. Held calls are assumed approved, as the
 * recording continues past them. Each trace is its own session; the agent's history (rate limits,
 * sequence rules, quarantine) carries across traces, which are a day apart in simulated time.
 */
export class Replayer {
  /** The replay's own runtime, on a fresh in-memory state: a replay never touches live state. */
  private readonly world: Promise<{ rt: Runtime; decide: Pipeline['decide'] }>
  /** Simulated time: rate limits count by the recorded calls' clock, as every other layer does. */
  private clock = START
  private readonly secrets = new Map<string, string>()
  private traces = 0
  private invalidTraces = 0
  /** One set of tallies per suite; the summary's totals are their sums. */
  private readonly suites: Record<string, Record<Group, Tally>> = {}
  private readonly details: TraceReport[] = []
  private seq = 0

  constructor(
    loaded: LoadedConfig,
    private readonly options: ReplayOptions,
    private readonly onError: (err: unknown) => void = () => {},
  ) {
    // The replay presents a key of its own for every agent; the configuration's keys stay unknown.
    const agents = loaded.config.agents.map((a) => {
      const secret = `replay-${a.id}-${randomBytes(16).toString('hex')}`
      this.secrets.set(a.id, secret)
      return { ...a, key_sha256: sha256Hex(secret) }
    })
    const config = { ...loaded, config: { ...loaded.config, agents } }
    this.world = openState({ kind: 'memory', clock: () => this.clock }).then((state) => {
      const rt = buildRuntime(config, state, { env: options.env ?? {} })
      const p = pipeline(rt)
      return { rt, decide: (call: ToolCall) => p.decide(call) }
    })
  }

  invalid(): void {
    this.invalidTraces++
  }

  async replay(trace: Trace): Promise<TraceReport> {
    const index = this.traces++
    const start = START + index * TRACE_STEP_MS
    let tick = 0
    const agentId = this.options.agent.replaceAll('{suite}', trace.suite)
    const toolName = (fn: string) =>
      this.options.tool.replaceAll('{suite}', trace.suite).replaceAll('{function}', fn)
    const report: TraceReport = {
      id: trace.id,
      suite: trace.suite,
      label: trace.label,
      user: emptyTally(),
      attacker: emptyTally(),
      ...(this.options.detail && { calls: [] }),
    }
    const injected = trace.label !== 'benign'
    // Recorded results answer the calls in order; a denied call's result never reached the agent.
    const pending: { tool: string; requestId: string; ran: boolean; callId?: string }[] = []
    let afterInjection = false
    let userInput: string | undefined

    const attempt = async (c: TraceCall, role: CallRole) => {
      const tool = toolName(c.function)
      const requestId = `replay-${++this.seq}`
      const { decide } = await this.world
      this.clock = start + tick++ * CALL_STEP_MS
      const d = await decide({
        requestId,
        agentId,
        tool,
        params: c.args,
        sessionId: trace.id,
        context: this.options.userInput && userInput ? { user_input: userInput } : {},
        credential: this.secrets.get(agentId),
        receivedAt: this.clock,
      })
      count(role === 'user' ? report.user : report.attacker, d.decision)
      const groups = (this.suites[trace.suite] ??= {
        benign: emptyTally(),
        under_attack: emptyTally(),
        after_injection: emptyTally(),
        attacker: emptyTally(),
      })
      if (role === 'attacker') count(groups.attacker, d.decision)
      else if (!injected) count(groups.benign, d.decision)
      else {
        count(groups.under_attack, d.decision)
        if (afterInjection) count(groups.after_injection, d.decision)
      }
      report.calls?.push({
        role,
        tool,
        decision: d.decision,
        layer: d.layer,
        code: d.code,
        reason: d.reason,
        risk: d.risk.score,
        after_injection: afterInjection,
        ...provenanceIn(d.checks),
      })
      return { tool, requestId, ran: d.decision !== 'deny', ...(c.id && { callId: c.id }) }
    }

    for (const m of trace.messages) {
      if (m.role === 'user') userInput = m.content
      else if (m.role === 'assistant') {
        for (const c of m.tool_calls ?? []) pending.push(await attempt(c, 'user'))
      } else if (m.role === 'tool') {
        const i =
          m.tool_call_id !== undefined
            ? pending.findIndex((p) => p.callId === m.tool_call_id)
            : pending.findIndex((p) => p.tool === toolName(m.tool))
        const call = i >= 0 ? pending.splice(i, 1)[0] : undefined
        if (call?.ran)
          await this.show(
            call.tool,
            call.requestId,
            agentId,
            trace.id,
            m.content,
            start + tick * CALL_STEP_MS,
          )
        if (m.contains_injection === true && call?.ran) afterInjection = true
      }
    }
    for (const c of trace.attacker_ground_truth_calls ?? []) await attempt(c, 'attacker')
    if (this.options.detail) this.details.push(report)
    return report
  }

  /** The summary so far (with per-trace detail when asked): totals are the suites' sums. */
  result(): ReplaySummary {
    const total = (g: Group) => sumTallies(Object.values(this.suites).map((groups) => groups[g]))
    const [benign, underAttack, after, attacker] = [
      total('benign'),
      total('under_attack'),
      total('after_injection'),
      total('attacker'),
    ]
    const summary: ReplaySummary = {
      traces: this.traces,
      invalid_traces: this.invalidTraces,
      attacker_calls: attacker.calls,
      attacker_executed: attacker.allowed,
      attacker_held: attacker.held,
      attacker_denied: attacker.denied,
      benign_calls: benign.calls,
      benign_allowed: benign.allowed,
      benign_held: benign.held,
      benign_denied: benign.denied,
      under_attack_calls: underAttack.calls,
      under_attack_allowed: underAttack.allowed,
      under_attack_held: underAttack.held,
      under_attack_denied: underAttack.denied,
      after_injection_calls: after.calls,
      after_injection_allowed: after.allowed,
      after_injection_held: after.held,
      after_injection_denied: after.denied,
      by_suite: this.suites,
    }
    return this.options.detail ? { ...summary, trace_detail: this.details } : summary
  }

  private async show(
    toolName: string,
    requestId: string,
    agentId: string,
    sessionId: string,
    content: unknown,
    now: number,
  ): Promise<void> {
    const { rt } = await this.world
    const tool = rt.tools.get(toolName)
    if (!tool) return
    await inspectOutput(rt, tool, { agentId, sessionId, requestId }, content, now, this.onError)
  }
}

function provenanceIn(checks: readonly Check[]): { provenance?: Provenance } {
  const found = checks.findLast((c) => c.details?.provenance !== undefined)?.details?.provenance
  return found ? { provenance: found as Provenance } : {}
}
