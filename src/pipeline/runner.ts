import type { Check, Decision, LayerName, ToolCall, Verdict } from '../domain/types.js'
import { THROTTLING_CODES, WardenError, type ErrorCode } from '../domain/errors.js'
import { layers as defaultLayers } from './index.js'
import type { DecisionContext, Layer } from './layer.js'
import { riskOf } from './risk.js'
import type { Runtime } from './runtime.js'

/** Runs the layers for each call and keeps the per-agent history the sequence layer reads. */
export interface Pipeline {
  readonly runtime: Runtime
  decide(call: ToolCall): Promise<Decision>
}

export interface PipelineOptions {
  layers?: Layer[]
  /** Told about every layer that threw (the call was denied); used for logs and metrics. */
  onLayerError?: (layer: LayerName, err: unknown) => void
}

const VERDICTS = new Set<unknown>(['pass', 'hold', 'deny'])

/** Build the pipeline for a runtime. */
export function pipeline(rt: Runtime, options: PipelineOptions = {}): Pipeline {
  const list = options.layers ?? defaultLayers(rt)
  return {
    runtime: rt,
    async decide(call) {
      const ctx: DecisionContext = { call, now: call.receivedAt, risk: 0 }
      const checks: Check[] = []
      let denied: { layer: LayerName; verdict: Extract<Verdict, { outcome: 'deny' }> } | undefined
      let held: { layer: LayerName; reason: string } | undefined
      for (const layer of list) {
        const started = performance.now()
        const verdict = await runLayer(layer, ctx, options.onLayerError)
        ctx.risk += verdict.risk ?? 0
        checks.push(toCheck(layer.name, verdict, performance.now() - started))
        if (verdict.outcome === 'deny') {
          denied = { layer: layer.name, verdict }
          break
        }
        if (verdict.outcome === 'hold') held ??= { layer: layer.name, reason: verdict.reason }
      }
      const risk = riskOf(ctx.risk)
      // The configured action of the final risk level: it can only make a decision stricter.
      if (!denied) {
        const action = rt.config.risk.actions[risk.level]
        const reason = `risk ${risk.score} is ${risk.level}, which is configured to ${action}`
        if (action === 'deny') {
          denied = {
            layer: 'approval',
            verdict: { outcome: 'deny', code: 'risk_too_high', reason: `${reason}: refused` },
          }
          escalate(checks, { outcome: 'deny', reason, code: 'risk_too_high' })
        } else if (action === 'hold' && !held) {
          held = { layer: 'approval', reason }
          escalate(checks, { outcome: 'hold', reason })
        }
      }
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
      if (ctx.chain) decision.chain = [...ctx.chain]
      if (ctx.human) decision.human = ctx.human
      try {
        await remember(rt, ctx, decision)
      } catch (err) {
        // Without the history the next sequence and quarantine checks would be blind: fail closed.
        throw new WardenError(
          'state_unavailable',
          `the agent history could not be recorded: ${(err as Error).message}`,
        )
      }
      return decision
    },
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

async function runLayer(
  layer: Layer,
  ctx: DecisionContext,
  onError: PipelineOptions['onLayerError'],
): Promise<Verdict> {
  try {
    const result = layer.check(ctx)
    // Most layers are synchronous; skip the extra microtask when there is nothing to wait for.
    const verdict = result instanceof Promise ? await result : result
    if (!VERDICTS.has(verdict?.outcome))
      throw new Error(`layer returned an unknown verdict \`${String(verdict?.outcome)}\``)
    return verdict
  } catch (err) {
    onError?.(layer.name, err)
    // INVARIANT: a broken layer never lets a call through.
    return {
      outcome: 'deny',
      code: 'layer_failed',
      reason: `layer \`${layer.name}\` failed; the call is denied`,
    }
  }
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

/** Keep the agent's history and denial count for the sequence layer. */
async function remember(rt: Runtime, ctx: DecisionContext, decision: Decision): Promise<void> {
  const { agent, call } = ctx
  if (!agent) return
  const params = scalarParams(call.params)
  await rt.state.recordCall(
    agent.id,
    {
      tool: call.tool,
      decision: decision.decision,
      at: ctx.now,
      params,
      ...(call.sessionId !== undefined && { session: call.sessionId }),
      ...(decision.code && { code: decision.code }),
    },
    rt.config.sequence.history_limit,
  )
  // The anomaly model learns only from what was allowed outright: holds and denials are not normal.
  // Only configured tools on both ends, so the table stays within agents × tools².
  const from = ctx.previousTool
  if (decision.decision === 'allow' && from !== undefined && (from === '^' || rt.tools.has(from)))
    await rt.state.recordTransition(agent.id, from, call.tool)
  const quarantine = rt.config.sequence.quarantine
  if (
    decision.decision !== 'deny' ||
    !quarantine ||
    (decision.code && THROTTLING_CODES.has(decision.code))
  )
    return
  const count = await rt.state.recordDenial(agent.id, ctx.now, quarantine.within_seconds * 1000)
  if (count >= quarantine.denials)
    await rt.state.quarantine(agent.id, ctx.now + quarantine.duration_seconds * 1000)
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
