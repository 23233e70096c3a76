import { SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import type { Approvals } from '../approvals/service.js'
import { decisionEvent, rejectionEvent } from '../audit/events.js'
import type { Recorder } from '../audit/recorder.js'
import { principalOf } from '../auth/credentials.js'
import { canonicalHash } from '../domain/canonical.js'
import { THROTTLING_CODES, WardenError, type ErrorCode } from '../domain/errors.js'
import { notRecorded, refused, unavailable, type CallOutcome } from '../domain/outcome.js'
import type { Decision, ToolCall } from '../domain/types.js'
import type { ToolRunner } from '../executors/tool-runner.js'
import type { Pipeline } from '../pipeline/runner.js'
import { snapshotOf, type Runtime } from '../pipeline/runtime.js'
import type { IdempotencyStore } from '../store/types.js'

/** OpenTelemetry: a no-op until an SDK is registered (`OTEL_EXPORTER_OTLP_ENDPOINT`, src/telemetry.ts). */
const tracer = trace.getTracer('warden')

export interface GatewayDeps {
  pipeline: Pipeline
  recorder: Recorder
  runner: ToolRunner
  /** Where held calls go. */
  approvals: Approvals
  /** `Idempotency-Key`s: reserved before deciding, answered from here on a retry. */
  idempotency: IdempotencyStore
  onError?: (err: unknown, where: string) => void
  /** Told about every decision (metrics). */
  onDecision?: (decision: Decision, principal: string | null) => void
}

/**
 * The engine behind every door: decide, record durably, then (and only then) execute, and say
 * what happened as a typed outcome. Held calls go to `approvals`.
 */
export class Gateway {
  constructor(private readonly deps: GatewayDeps) {}

  get runtime() {
    return this.deps.pipeline.runtime
  }

  get approvals(): Approvals {
    return this.deps.approvals
  }

  async execute(call: ToolCall): Promise<CallOutcome> {
    return tracer.startActiveSpan('warden.execute', async (span) => {
      span.setAttributes({
        'warden.request_id': call.requestId,
        'warden.agent_id': call.agentId,
        'warden.tool': call.tool,
      })
      try {
        const outcome = await this.executeOnce(call, span)
        span.setAttribute('warden.outcome', outcome.kind)
        return outcome
      } finally {
        span.end()
      }
    })
  }

  /**
   * INVARIANT: a call with an `Idempotency-Key` is decided and run at most once per agent and
   * key. The key is reserved before the pipeline runs; a retry gets the first answer (whatever
   * it was: allow, deny, hold), a different call under the key a conflict, a retry while the
   * first is still running `idempotency_in_progress`. Only a call whose credential is the
   * agent's own takes a key, so nobody can take (or read) another agent's keys.
   */
  private async executeOnce(call: ToolCall, span: Span): Promise<CallOutcome> {
    // INVARIANT: one runtime version from here to the end of the call (decision, tool, output
    // checks), however many reloads happen meanwhile; the decision names that version.
    const rt = snapshotOf(this.runtime)
    const key = call.idempotencyKey
    if (key === undefined || principalOf(rt, call.credential).agent?.id !== call.agentId)
      return this.executeInSpan(call, span, { ran: false }, rt)
    const { ttl_seconds, max_keys_per_agent } = rt.config.idempotency
    const store = this.deps.idempotency
    const fingerprint = canonicalHash({ tool: call.tool, params: call.params })
    const now = new Date(call.receivedAt)
    let found
    try {
      found = await store.reserve(
        call.agentId,
        key,
        fingerprint,
        new Date(now.getTime() + ttl_seconds * 1000).toISOString(),
        max_keys_per_agent,
        now.toISOString(),
      )
    } catch (err) {
      this.deps.onError?.(err, 'store:idempotency')
      return this.refuseKey(
        call,
        'idempotency_store_unavailable',
        'the idempotency store failed; the call was not decided or executed',
      )
    }
    if (found.kind === 'full')
      return this.refuseKey(
        call,
        'too_many_idempotency_keys',
        `agent \`${call.agentId}\` holds ${max_keys_per_agent} unexpired Idempotency-Keys`,
      )
    if (found.kind !== 'reserved' && found.fingerprint !== fingerprint)
      return this.refuseKey(
        call,
        'idempotency_conflict',
        'the Idempotency-Key was already used for a different call',
      )
    if (found.kind === 'in_progress')
      return this.refuseKey(
        call,
        'idempotency_in_progress',
        'the first request with this Idempotency-Key has not finished; retry later',
      )
    if (found.kind === 'done') {
      const first = found.response as CallOutcome
      // A replayed hold names the request that took it, as a retry matched by session does.
      if (first.kind === 'held')
        return { ...first, duplicateOf: first.decision.requestId, replayed: true }
      return { ...first, replayed: true }
    }

    const progress = { ran: false }
    let outcome: CallOutcome
    try {
      outcome = await this.executeInSpan(call, span, progress, rt)
    } catch (err) {
      // Whatever happened, a retry must not run the call a second time if it may have run.
      if (!progress.ran) await store.release(call.agentId, key).catch(() => {})
      throw err
    }
    // Nothing a retry could repeat (an outage before anything ran, a "not now" throttle): the key
    // is given back so the retry is decided afresh. Everything else is kept and replayed.
    const retryable =
      (outcome.kind === 'unavailable' && !progress.ran) ||
      (outcome.kind === 'denied' && THROTTLING_CODES.has(outcome.decision.code ?? ''))
    try {
      if (retryable) await store.release(call.agentId, key)
      else await store.complete(call.agentId, key, outcome)
    } catch (err) {
      // The key stays reserved until it expires: retries get `idempotency_in_progress`, never a
      // second run.
      this.deps.onError?.(err, 'store:idempotency')
    }
    return outcome
  }

  /** A call refused over its key: recorded (best effort, nothing runs either way), not decided. */
  private async refuseKey(call: ToolCall, code: ErrorCode, message: string): Promise<CallOutcome> {
    await this.recordRejection(call.requestId, code, message)
    return code === 'idempotency_store_unavailable'
      ? unavailable(code, message, call.requestId)
      : { ...refused(code, message, call.requestId), kind: 'refused' }
  }

  private async executeInSpan(
    call: ToolCall,
    span: Span,
    progress: { ran: boolean },
    rt: Runtime,
  ): Promise<CallOutcome> {
    let decision: Decision
    try {
      decision = await this.deps.pipeline.decide(call, rt)
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
      // The pipeline could not finish (its state store failed): nothing runs.
      const code: ErrorCode = err instanceof WardenError ? err.code : 'state_unavailable'
      this.deps.onError?.(err, 'pipeline')
      await this.recordRejection(call.requestId, code, (err as Error).message)
      const message = 'the call could not be decided; it was not executed'
      return { kind: 'unavailable', code, message, requestId: call.requestId }
    }
    const principal = decision.checks[0]?.outcome === 'pass' ? call.agentId : null
    this.deps.onDecision?.(decision, principal)
    span.setAttributes({
      'warden.decision': decision.decision,
      'warden.layer': decision.layer ?? 'none',
      'warden.risk.score': decision.risk.score,
      'warden.risk.level': decision.risk.level,
      'warden.policy_version': decision.policyVersion,
    })

    if (decision.decision === 'approval_required') return this.deps.approvals.hold(call, decision)

    const event = decisionEvent(call, decision, principal)
    try {
      await this.deps.recorder.record([event])
    } catch (err) {
      return this.notRecorded(err, call.requestId, decision)
    }
    if (decision.decision === 'deny') return { kind: 'denied', decision }

    const tool = rt.tools.get(call.tool)
    if (!tool) throw new Error(`allowed call for unknown tool \`${call.tool}\``)
    progress.ran = true
    const run = await this.deps.runner.invoke(tool, call, undefined, rt)
    try {
      await this.deps.runner.record(run, event)
    } catch (err) {
      // The tool already ran; say so rather than pretend it did not.
      this.deps.onError?.(err, 'audit:execution-record')
      if (!run.failure) {
        const message = 'the tool ran but its outcome could not be recorded'
        return this.notRecorded(err, call.requestId, decision, message)
      }
    }
    if (run.failure) return { kind: 'tool_failed', decision, ...run.failure }
    return {
      kind: 'executed',
      decision,
      result: run.result,
      ...(run.warning && { warnings: [run.warning] }),
    }
  }

  /** The audit log could not take a record: 503-class, with the store's own code. */
  private notRecorded(
    err: unknown,
    requestId: string,
    decision: Decision,
    message = 'the decision could not be recorded; the call was not executed',
  ): CallOutcome {
    const failure = notRecorded(err, message, requestId, (e) => this.deps.onError?.(e, 'store'))
    return { ...failure, decision }
  }

  /**
   * Record a request refused before the pipeline (bad JSON, oversize, bad shape). Best effort:
   * nothing runs either way, so a store failure is logged and the refusal still goes out.
   */
  async recordRejection(requestId: string, code: ErrorCode, message: string): Promise<void> {
    try {
      await this.deps.recorder.record([
        rejectionEvent(requestId, code, message, this.runtime.policyVersion),
      ])
    } catch (err) {
      this.deps.onError?.(err, 'audit:rejection')
    }
  }
}
