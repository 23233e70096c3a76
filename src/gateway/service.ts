import { SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import type { Approvals } from '../approvals/service.js'
import { decisionEvent, rejectionEvent } from '../audit/events.js'
import type { Recorder } from '../audit/recorder.js'
import { WardenError, type ErrorCode } from '../domain/errors.js'
import { notRecorded, type CallOutcome } from '../domain/outcome.js'
import type { Decision, ToolCall } from '../domain/types.js'
import type { ToolRunner } from '../executors/tool-runner.js'
import type { Pipeline } from '../pipeline/runner.js'

/** OpenTelemetry: a no-op until an SDK is registered (`OTEL_EXPORTER_OTLP_ENDPOINT`, src/telemetry.ts). */
const tracer = trace.getTracer('warden')

export interface GatewayDeps {
  pipeline: Pipeline
  recorder: Recorder
  runner: ToolRunner
  /** Where held calls go. */
  approvals: Approvals
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
        const outcome = await this.executeInSpan(call, span)
        span.setAttribute('warden.outcome', outcome.kind)
        return outcome
      } finally {
        span.end()
      }
    })
  }

  private async executeInSpan(call: ToolCall, span: Span): Promise<CallOutcome> {
    let decision: Decision
    try {
      decision = await this.deps.pipeline.decide(call)
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

    const tool = this.runtime.tools.get(call.tool)
    if (!tool) throw new Error(`allowed call for unknown tool \`${call.tool}\``)
    const run = await this.deps.runner.invoke(tool, call)
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
