import type { Check, Decision, LayerName, ToolCall, Verdict } from '../domain/types.js'
import { THROTTLING_CODES, WardenError, type ErrorCode } from '../domain/errors.js'
import type { SessionChanges, SessionScope, SessionSnapshot } from '../state/types.js'
import { layers, messageLayers } from './index.js'
import { windowChange, windowPlans } from './layers/sequence.js'
import type { DecisionContext, ResolveContext, ResolvedCall } from './layer.js'
import { riskOf } from './risk.js'
import { snapshotOf, type Runtime } from './runtime.js'

/** Runs the layers for each call, with the call's state read once before and written once after. */
export interface Pipeline {
  /** The runtime (a `LiveRuntime` when the configuration can be reloaded). */
  readonly runtime: Runtime
  /**
   * Decide a tool call under `at` (by default the runtime current when the call starts: a
   * reload meanwhile does not change the version a started decision is made under).
   */
  decide(call: ToolCall, at?: Runtime): Promise<Decision>
  /**
   * Decide an agent-to-agent message (`call.tool` is `MESSAGE_TOOL`, `params` holds `to_agent`
   * and `content`) with the message layers; state is loaded and committed as for a tool call.
   */
  decideMessage(call: ToolCall, at?: Runtime): Promise<Decision>
}

export interface PipelineOptions {
  /** Told about every layer that threw (the call was denied); used for logs and metrics. */
  onLayerError?: (layer: LayerName, err: unknown) => void
}

const VERDICTS = new Set<unknown>(['pass', 'hold', 'deny'])

type Deny = Extract<Verdict, { outcome: 'deny' }>
/** Any layer of either phase, as the runner drives it. */
type Stage<C> = { readonly name: LayerName; check(ctx: C): Verdict | Promise<Verdict> }

/** The per-layer trace of one decision, and what it came to so far. */
interface Trace {
  readonly checks: Check[]
  denied?: { layer: LayerName; verdict: Deny }
  held?: { layer: LayerName; reason: string }
}

/** Build the pipeline for a runtime. */
export function pipeline(live: Runtime, options: PipelineOptions = {}): Pipeline {
  const run = <C extends { risk: number }>(list: readonly Stage<C>[], ctx: C, trace: Trace) =>
    runPhase(list, ctx, trace, options.onLayerError)
  const decideWith = async (rt: Runtime, registry: Registry, call: ToolCall): Promise<Decision> => {
    const trace: Trace = { checks: [] }
    // 1. Resolve: who is calling, and which tool. A call that fails here reads no state.
    const found = resolveContext(call)
    await run(registry.resolve, found, trace)
    const resolved = trace.denied ? undefined : resolvedCall(found)
    let ctx: DecisionContext | undefined
    if (resolved) {
      // 2. Load state: everything the layers below read, in one round trip.
      const state = await rt.state.sessions.load(scopeOf(rt, resolved)).catch(stateFailed('read'))
      ctx = decisionContext(resolved, state)
      // 3. The layers, in order (the rate-limit layer spends its budgets in one round trip).
      await run(registry.decide, ctx, trace)
    }
    // 4. Risk action: the final level's configured action can only make a decision stricter.
    const risk = riskOf(ctx?.risk ?? found.risk)
    if (!trace.denied) applyRiskAction(rt, risk, trace)
    const decision = toDecision(rt, found, risk, trace)
    // 5. Commit: history, taint, the learned transition and a counted denial in one round trip.
    const changes = found.agent && changesOf(rt, found.agent.id, found, ctx, decision)
    if (changes) await rt.state.sessions.commit(changes).catch(stateFailed('recorded'))
    return decision
  }
  // The layers are built once per runtime version, each over one immutable runtime: a layer never
  // reads a newer version than the one its call started under.
  const built = new WeakMap<Runtime, { tools: Registry; messages: Registry }>()
  const registriesOf = (rt: Runtime) => {
    let found = built.get(rt)
    if (!found) {
      found = { tools: layers(rt), messages: messageLayers(rt) }
      built.set(rt, found)
    }
    return found
  }
  registriesOf(snapshotOf(live))
  return {
    runtime: live,
    decide: (call, at = snapshotOf(live)) => decideWith(at, registriesOf(at).tools, call),
    decideMessage: (call, at = snapshotOf(live)) => decideWith(at, registriesOf(at).messages, call),
  }
}

/** The two phases' layers of one kind of call. */
interface Registry {
  resolve: readonly Stage<ResolveContext>[]
  decide: readonly Stage<DecisionContext>[]
}

// Contexts are built with every field present, so that each has one shape for all calls and
// the layers' property reads stay fast (monomorphic).
function resolveContext(call: ToolCall): ResolveContext {
  return {
    call,
    now: call.receivedAt,
    risk: 0,
    agent: undefined,
    tool: undefined,
    chain: undefined,
    human: undefined,
    delegatorSession: undefined,
  }
}

/** The call, once identity and the allowlist passed; their absence is a wiring bug. */
function resolvedCall(found: ResolveContext): ResolvedCall {
  const { agent, tool } = found
  if (!agent || !tool) throw new Error('resolution passed without an agent and a tool')
  return {
    call: found.call,
    now: found.now,
    risk: found.risk,
    agent,
    tool,
    chain: found.chain,
    human: found.human,
    delegatorSession: found.delegatorSession,
  }
}

function decisionContext(c: ResolvedCall, state: SessionSnapshot): DecisionContext {
  return {
    call: c.call,
    now: c.now,
    risk: c.risk,
    agent: c.agent,
    tool: c.tool,
    chain: c.chain,
    human: c.human,
    delegatorSession: c.delegatorSession,
    state,
    newTaint: [],
    previousTool: undefined,
  }
}

function scopeOf(rt: Runtime, c: ResolvedCall): SessionScope {
  const windows = windowPlans(rt.config.sequence).readBy.get(c.tool.name)
  return {
    agent: c.agent.id,
    now: c.now,
    session: c.call.sessionId,
    chain: c.chain,
    delegatorSession: c.delegatorSession,
    ...(windows && { windows }),
  }
}

/**
 * Run one phase's layers in order into the trace: stop at the first deny, keep the first hold.
 */
async function runPhase<C extends { risk: number }>(
  list: readonly Stage<C>[],
  ctx: C,
  trace: Trace,
  onError: PipelineOptions['onLayerError'],
): Promise<void> {
  for (const layer of list) {
    const started = performance.now()
    const pending = runLayer(layer, ctx, onError)
    // Most layers are synchronous; only the others cost a microtask.
    const verdict = pending instanceof Promise ? await pending : pending
    ctx.risk += verdict.risk ?? 0
    trace.checks.push(toCheck(layer.name, verdict, performance.now() - started))
    if (verdict.outcome === 'deny') {
      trace.denied = { layer: layer.name, verdict }
      return
    }
    if (verdict.outcome === 'hold') trace.held ??= { layer: layer.name, reason: verdict.reason }
  }
}

/** One layer's verdict; a layer that throws, rejects or answers nonsense denies the call. */
function runLayer<C>(
  layer: Stage<C>,
  ctx: C,
  onError: PipelineOptions['onLayerError'],
): Verdict | Promise<Verdict> {
  try {
    const result = layer.check(ctx)
    if (!(result instanceof Promise)) return checked(result)
    return result.then(checked).catch((err: unknown) => failed(layer.name, err, onError))
  } catch (err) {
    return failed(layer.name, err, onError)
  }
}

function checked(verdict: Verdict): Verdict {
  if (!VERDICTS.has(verdict?.outcome))
    throw new Error(`layer returned an unknown verdict \`${String(verdict?.outcome)}\``)
  return verdict
}

function failed(name: LayerName, err: unknown, onError: PipelineOptions['onLayerError']): Verdict {
  onError?.(name, err)
  // INVARIANT: a broken layer never lets a call through.
  return {
    outcome: 'deny',
    code: 'layer_failed',
    reason: `layer \`${name}\` failed; the call is denied`,
  }
}

/** The configured action of the final risk level, recorded on the approval layer's line. */
function applyRiskAction(rt: Runtime, risk: ReturnType<typeof riskOf>, trace: Trace): void {
  const action = rt.config.risk.actions[risk.level]
  const reason = `risk ${risk.score} is ${risk.level}, which is configured to ${action}`
  if (action === 'deny') {
    const code = 'risk_too_high'
    trace.denied = {
      layer: 'approval',
      verdict: { outcome: 'deny', code, reason: `${reason}: refused` },
    }
    escalate(trace.checks, { outcome: 'deny', reason, code })
  } else if (action === 'hold' && !trace.held) {
    trace.held = { layer: 'approval', reason }
    escalate(trace.checks, { outcome: 'hold', reason })
  }
}

/** Record a risk-level action on the approval layer's line of the trace, which owns risk holds. */
function escalate(
  checks: Check[],
  change: { outcome: 'hold' | 'deny'; reason: string; code?: ErrorCode },
): void {
  const check = checks.find((c) => c.layer === 'approval')
  if (!check) return
  check.outcome = change.outcome
  check.reason = change.reason
  if (change.code) check.code = change.code
}

function toDecision(
  rt: Runtime,
  found: ResolveContext,
  risk: Decision['risk'],
  { checks, denied, held }: Trace,
): Decision {
  const { call } = found
  const decision: Decision = denied
    ? {
        requestId: call.requestId,
        decision: 'deny',
        layer: denied.layer,
        code: denied.verdict.code,
        reason: denied.verdict.reason,
        risk,
        checks,
        policyVersion: rt.policyVersion,
        ...(denied.verdict.retryAfterSeconds !== undefined && {
          retryAfterSeconds: denied.verdict.retryAfterSeconds,
        }),
      }
    : {
        requestId: call.requestId,
        decision: held ? 'approval_required' : 'allow',
        layer: held?.layer ?? null,
        code: null,
        reason: held?.reason ?? 'all layers passed',
        risk,
        checks,
        policyVersion: rt.policyVersion,
      }
  if (found.chain) decision.chain = [...found.chain]
  if (found.human) decision.human = found.human
  return decision
}

function toCheck(layer: LayerName, v: Verdict, ms: number): Check {
  const check: Check = {
    layer,
    outcome: v.outcome,
    reason: v.reason ?? 'ok',
    duration_us: Math.round(ms * 1000),
  }
  if (v.outcome === 'deny') check.code = v.code
  if (v.risk) check.risk = v.risk
  if (v.details) check.details = v.details
  return check
}

/**
 * What the call changes for its agent: the history entry (sequence rules, the agent's record),
 * this call's user input as session taint, the transition when the call was allowed (the anomaly
 * model), and a denial counted towards quarantine (throttling denials do not count).
 */
function changesOf(
  rt: Runtime,
  agent: string,
  found: ResolveContext,
  ctx: DecisionContext | undefined,
  decision: Decision,
): SessionChanges {
  const { call, now } = found
  const changes = decidedChanges(rt, {
    agent,
    tool: call.tool,
    params: call.params,
    session: call.sessionId,
    decision: decision.decision,
    code: decision.code,
    at: now,
  })
  if (ctx && ctx.newTaint.length > 0 && call.sessionId !== undefined)
    changes.taint = {
      session: call.sessionId,
      entries: ctx.newTaint,
      maxChars: rt.config.sessions.max_session_chars,
      idleMs: rt.config.sessions.idle_ttl_seconds * 1000,
    }
  // The anomaly model learns only from what was allowed outright: holds and denials are not normal.
  // Only configured tools on both ends, so the table stays within agents × tools².
  const from = ctx?.previousTool
  if (decision.decision === 'allow' && from !== undefined && (from === '^' || rt.tools.has(from)))
    changes.transition = { from, to: call.tool }
  return changes
}

/** A decided call (or an approved call that ran, as an `allow`), as the state keeps it. */
export interface DecidedCall {
  agent: string
  tool: string
  params: Readonly<Record<string, unknown>>
  session: string | undefined
  decision: Decision['decision']
  code: string | null
  at: number
}

/**
 * What a decided call changes for its agent, whoever commits it (the runner, the approvals service
 * when an approved call runs, restart recovery replaying the log): the history entry, the rule
 * window when it was allowed, and a denial counted towards quarantine. Throttling denials cost the
 * agent nothing and are not kept: a flood of them must not push real calls out of its history.
 */
export function decidedChanges(rt: Runtime, c: DecidedCall): SessionChanges {
  const changes: SessionChanges = { agent: c.agent }
  const throttled = c.decision === 'deny' && THROTTLING_CODES.has(c.code ?? '')
  if (!throttled)
    changes.history = {
      entry: {
        tool: c.tool,
        decision: c.decision,
        at: c.at,
        params: scalarParams(c.params),
        ...(c.session !== undefined && { session: c.session }),
        ...(c.code && { code: c.code }),
      },
      limit: rt.config.sequence.history_limit,
    }
  // Sequence rules count what was allowed (approved calls are added when they run).
  if (c.decision === 'allow') {
    const window = windowChange(rt.config.sequence, c.tool, c.params, c.at)
    if (window) changes.window = window
  }
  const quarantine = rt.config.sequence.quarantine
  if (c.decision === 'deny' && quarantine && !throttled)
    changes.denial = {
      at: c.at,
      windowMs: quarantine.within_seconds * 1000,
      threshold: quarantine.denials,
      quarantineUntil: c.at + quarantine.duration_seconds * 1000,
    }
  return changes
}

/**
 * A failed state read or write: without it the layers, or the next call's sequence and quarantine
 * checks, would be blind.
 */
function stateFailed(what: 'read' | 'recorded'): (err: unknown) => never {
  return (err) => {
    // INVARIANT: fail closed; the call is not decided, so it does not run.
    throw new WardenError(
      'state_unavailable',
      `the agent's state could not be ${what}: ${(err as Error).message}`,
    )
  }
}

/** The scalar parameters a history entry keeps (what sequence rules compare and sum). */
export function scalarParams(
  params: Readonly<Record<string, unknown>>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {}
  for (const [k, v] of Object.entries(params)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v
  }
  return out
}
