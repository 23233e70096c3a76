import { SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import type { AuditEvent, AuditEventInput } from '../domain/audit-event.js'
import type { ToolConfig } from '../domain/config.js'
import { maskPii, type Masked } from '../detect/pii.js'
import { errorBody, statusOf, WardenError, type ErrorCode } from '../domain/errors.js'
import type { Decision, ToolCall } from '../domain/types.js'
import type { EventBus } from '../events/bus.js'
import { ToolFailure, type Executor } from '../executors/types.js'
import type { Pipeline } from '../pipeline/runner.js'
import type { ApprovalStore, AuditLog, NonceStore } from '../store/types.js'
import { Approvals, type ApprovalHost } from '../approvals/service.js'
import type { Reply } from '../http/reply.js'
import { decisionEvent, executionEvent, rejectionEvent } from '../audit/events.js'
import { inspectOutput } from '../pipeline/output.js'

export type { Reply } from '../http/reply.js'

/** OpenTelemetry: a no-op until an SDK is registered (`OTEL_EXPORTER_OTLP_ENDPOINT`, src/telemetry.ts). */
const tracer = trace.getTracer('warden')

export interface GatewayDeps {
  pipeline: Pipeline
  audit: AuditLog
  approvalStore: ApprovalStore
  nonces: NonceStore
  bus: EventBus
  executors: Record<ToolConfig['executor']['type'], Executor>
  onError?: (err: unknown, where: string) => void
  /** Told about every decision (metrics). */
  onDecision?: (decision: Decision, principal: string | null) => void
  /** Told about every tool run: how long the tool itself took and how it ended (metrics). */
  onToolRun?: (tool: string, outcome: 'ok' | 'error' | 'unknown', seconds: number) => void
}

/**
 * The engine behind every door: decide, record durably, then (and only then) execute, mask
 * the result, and publish the events. Held calls go to `approvals`.
 */
export class Gateway implements ApprovalHost {
  readonly approvals: Approvals

  constructor(private readonly deps: GatewayDeps) {
    this.approvals = new Approvals(this)
  }

  get runtime() {
    return this.deps.pipeline.runtime
  }

  get approvalStore(): ApprovalStore {
    return this.deps.approvalStore
  }

  get nonces(): NonceStore {
    return this.deps.nonces
  }

  onError(err: unknown, where: string): void {
    this.deps.onError?.(err, where)
  }

  /** Record events durably and then publish them; throws `audit_unavailable` if the store fails. */
  async record(events: AuditEventInput[]): Promise<AuditEvent[]> {
    const sealed = await this.deps.audit.append(events)
    this.deps.bus.publish(sealed)
    return sealed
  }

  async execute(call: ToolCall): Promise<Reply> {
    return tracer.startActiveSpan('warden.execute', async (span) => {
      span.setAttributes({
        'warden.request_id': call.requestId,
        'warden.agent_id': call.agentId,
        'warden.tool': call.tool,
      })
      try {
        const reply = await this.executeInSpan(call, span)
        span.setAttribute('http.response.status_code', reply.status)
        return reply
      } finally {
        span.end()
      }
    })
  }

  private async executeInSpan(call: ToolCall, span: Span): Promise<Reply> {
    let decision: Decision
    try {
      decision = await this.deps.pipeline.decide(call)
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
      // The pipeline could not finish (its state store failed): nothing runs.
      const code: ErrorCode = err instanceof WardenError ? err.code : 'state_unavailable'
      this.deps.onError?.(err, 'pipeline')
      await this.recordRejection(call.requestId, code, (err as Error).message)
      return {
        status: 503,
        body: errorBody(code, 'the call could not be decided; it was not executed', call.requestId),
      }
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
    const base = {
      request_id: call.requestId,
      risk: decision.risk,
      checks: decision.checks,
      policy_version: decision.policyVersion,
    }

    if (decision.decision === 'approval_required') return this.approvals.hold(call, decision, base)

    const event = decisionEvent(call, decision, principal)
    try {
      await this.record([event])
    } catch (err) {
      return this.unavailable(err, call.requestId)
    }
    if (decision.decision === 'deny') return denyReply(decision, base)

    const tool = this.runtime.tools.get(call.tool)
    if (!tool) throw new Error(`allowed call for unknown tool \`${call.tool}\``)
    const run = await this.run(tool, call, event)
    if (run.failure) return run.failure
    const warnings = run.outputScan
      ? [{ code: 'injection_in_output', ...run.outputScan }]
      : undefined
    return {
      status: 200,
      body: { decision: 'allow', ...base, result: run.result, ...(warnings && { warnings }) },
    }
  }

  /** Execute an allowed or approved call and record its outcome. */
  async run(
    tool: ToolConfig,
    call: Pick<ToolCall, 'requestId' | 'params' | 'sessionId' | 'agentId'>,
    event: AuditEventInput,
    approvalId?: string,
  ) {
    const started = performance.now()
    let outcome: 'ok' | 'error' | 'unknown' = 'ok'
    let result: unknown
    let failure: Reply | undefined
    const span = tracer.startSpan('warden.tool', {
      attributes: {
        'warden.request_id': call.requestId,
        'warden.tool': tool.name,
        'warden.executor': tool.executor.type,
        ...(approvalId && { 'warden.approval_id': approvalId }),
      },
    })
    try {
      // Only the tool call itself is in here: whatever fails after it must not report a tool
      // that ran as failed (the agent would retry, and a retried refund is a second refund).
      result = await this.deps.executors[tool.executor.type].execute(
        tool,
        call.params,
        call.requestId,
      )
    } catch (err) {
      const timeout = err instanceof ToolFailure && err.kind === 'timeout'
      outcome = timeout ? 'unknown' : 'error'
      const code: ErrorCode = timeout ? 'upstream_timeout' : 'upstream_error'
      const message = err instanceof ToolFailure ? err.message : `\`${tool.name}\` failed`
      if (!(err instanceof ToolFailure)) this.deps.onError?.(err, `executor:${tool.name}`)
      result = { error: message }
      failure = {
        status: timeout ? 504 : 502,
        body: { decision: 'allow', ...errorBody(code, message, call.requestId) },
      }
      span.setStatus({ code: SpanStatusCode.ERROR, message })
    } finally {
      span.setAttribute('warden.outcome', outcome)
      span.end()
    }
    this.deps.onToolRun?.(tool.name, outcome, (performance.now() - started) / 1000)
    let outputScan: { score: number; categories: string[] } | undefined
    let audited: Masked<unknown>
    if (outcome === 'ok') {
      const inspected = await inspectOutput(this.runtime, tool, call, result, Date.now(), (err) =>
        this.deps.onError?.(err, 'state:taint'),
      )
      result = inspected.delivered
      audited = inspected.audited
      outputScan = inspected.scan
    } else audited = maskPii(result, '/result')
    try {
      await this.record([
        {
          ...executionEvent(event, outcome, audited, performance.now() - started, approvalId),
          ...(outputScan && { output_scan: outputScan }),
        },
      ])
    } catch (err) {
      // The tool already ran; say so rather than pretend it did not.
      this.deps.onError?.(err, 'audit:execution-record')
      return {
        result,
        outcome,
        failure:
          failure ??
          this.unavailable(
            err,
            call.requestId,
            'the tool ran but its outcome could not be recorded',
          ),
      }
    }
    return { result, outcome, failure, outputScan }
  }

  unavailable(err: unknown, requestId: string, message?: string): Reply {
    const code: ErrorCode = err instanceof WardenError ? err.code : 'audit_unavailable'
    if (!(err instanceof WardenError)) this.deps.onError?.(err, 'store')
    return {
      status: 503,
      body: errorBody(
        code,
        message ?? 'the decision could not be recorded; the call was not executed',
        requestId,
      ),
    }
  }

  /**
   * Record a request refused before the pipeline (bad JSON, oversize, bad shape). Best effort:
   * nothing runs either way, so a store failure is logged and the 4xx still goes out.
   */
  async recordRejection(requestId: string, code: ErrorCode, message: string): Promise<void> {
    try {
      await this.record([rejectionEvent(requestId, code, message, this.runtime.policyVersion)])
    } catch (err) {
      this.deps.onError?.(err, 'audit:rejection')
    }
  }
}

function denyReply(d: Decision, base: Record<string, unknown>): Reply {
  const code = d.code ?? 'policy_denied'
  const reply: Reply = {
    status: statusOf(code),
    body: { decision: 'deny', ...base, layer: d.layer, error: { code, message: d.reason } },
  }
  if (d.retryAfterSeconds !== undefined)
    reply.headers = { 'retry-after': String(d.retryAfterSeconds) }
  return reply
}
