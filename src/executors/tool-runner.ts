import { SpanStatusCode, trace } from '@opentelemetry/api'
import { executionEvent } from '../audit/events.js'
import type { Recorder } from '../audit/recorder.js'
import { maskPii, type Masked } from '../detect/pii.js'
import type { AuditEventInput } from '../domain/audit-event.js'
import type { ToolConfig } from '../domain/config.js'
import type { ErrorCode } from '../domain/errors.js'
import type { OutputWarning } from '../domain/outcome.js'
import type { ToolCall } from '../domain/types.js'
import { inspectOutput } from '../pipeline/output.js'
import { snapshotOf, type Runtime } from '../pipeline/runtime.js'
import { ToolFailure, type Executor } from './types.js'

const tracer = trace.getTracer('warden')

/** The part of a call a tool run needs. */
export type RunnableCall = Pick<ToolCall, 'requestId' | 'params' | 'sessionId' | 'agentId'>

/** What one run of a tool did. */
export interface ToolRun {
  outcome: 'ok' | 'error' | 'unknown'
  /** What the agent gets (PII masked by the tool's classification). */
  result: unknown
  /** What the audit keeps (always masked). */
  audited: Masked<unknown>
  /** Set when the tool failed or timed out. */
  failure?: { code: ErrorCode; message: string }
  warning?: OutputWarning
  /** The judge's answer on a grey-zone output (decision 0023), for the audit record. */
  judged?: AuditEventInput['output_judge']
  latencyMs: number
}

/** Runs allowed and approved calls: once, with the output checks, and records what happened. */
export interface ToolRunner {
  /**
   * Run the tool once and inspect its output (under `at`, the runtime the call was decided under;
   * by default the current one). A tool failure is a value, never a throw.
   */
  invoke(tool: ToolConfig, call: RunnableCall, approvalId?: string, at?: Runtime): Promise<ToolRun>
  /** Record a run's outcome after `decision`; throws when the audit log cannot take it. */
  record(run: ToolRun, decision: AuditEventInput, approvalId?: string): Promise<void>
  /**
   * Resolves once no run is between the start of `invoke` and the end of its `record` (true), or
   * when `timeoutMs` passed first (false). Shutdown waits on it, so a tool that ran is recorded.
   */
  settled(timeoutMs: number): Promise<boolean>
}

export interface ToolRunnerDeps {
  runtime: Runtime
  recorder: Recorder
  executors: Record<ToolConfig['executor']['type'], Executor>
  onError?: (err: unknown, where: string) => void
  /** Told about every run: how long the tool itself took and how it ended (metrics). */
  onToolRun?: (tool: string, outcome: ToolRun['outcome'], seconds: number) => void
}

/** A tool runner over the configured executors. */
export function toolRunner(deps: ToolRunnerDeps): ToolRunner {
  // Runs invoked and not yet recorded. INVARIANT: every caller records each run it invoked (the
  // gateway and the approvals service do, whatever the outcome); `settled` is capped regardless.
  let open = 0
  let waiters: (() => void)[] = []
  const close = () => {
    if (--open > 0) return
    for (const w of waiters) w()
    waiters = []
  }
  const invoke = async (
    tool: ToolConfig,
    call: RunnableCall,
    approvalId?: string,
    at: Runtime = snapshotOf(deps.runtime),
  ) => {
    open++
    try {
      return await invokeOnce(tool, call, at, approvalId)
    } catch (err) {
      close()
      throw err
    }
  }
  const invokeOnce = async (
    tool: ToolConfig,
    call: RunnableCall,
    rt: Runtime,
    approvalId?: string,
  ): Promise<ToolRun> => {
    const started = performance.now()
    let outcome: ToolRun['outcome'] = 'ok'
    let raw: unknown
    let failure: ToolRun['failure']
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
      raw = await deps.executors[tool.executor.type].execute(tool, call.params, call.requestId)
    } catch (err) {
      const timeout = err instanceof ToolFailure && err.kind === 'timeout'
      outcome = timeout ? 'unknown' : 'error'
      const message = err instanceof ToolFailure ? err.message : `\`${tool.name}\` failed`
      if (!(err instanceof ToolFailure)) deps.onError?.(err, `executor:${tool.name}`)
      raw = { error: message }
      failure = { code: timeout ? 'upstream_timeout' : 'upstream_error', message }
      span.setStatus({ code: SpanStatusCode.ERROR, message })
    } finally {
      span.setAttribute('warden.outcome', outcome)
      span.end()
    }
    deps.onToolRun?.(tool.name, outcome, (performance.now() - started) / 1000)
    if (outcome !== 'ok') {
      const latencyMs = performance.now() - started
      return { outcome, result: raw, audited: maskPii(raw, '/result'), failure, latencyMs }
    }
    const inspected = await inspectOutput(rt, tool, call, raw, Date.now(), (err) =>
      deps.onError?.(err, 'state:taint'),
    )
    return {
      outcome,
      result: inspected.delivered,
      audited: inspected.audited,
      latencyMs: performance.now() - started,
      ...(inspected.scan && { warning: { code: 'injection_in_output', ...inspected.scan } }),
      ...(inspected.judged && { judged: inspected.judged }),
    }
  }
  return {
    invoke,
    async record(run, decision, approvalId) {
      try {
        const event = executionEvent(decision, run.outcome, run.audited, run.latencyMs, approvalId)
        const scan = run.warning && { score: run.warning.score, categories: run.warning.categories }
        await deps.recorder.record([
          {
            ...event,
            ...(scan && { output_scan: scan }),
            ...(run.judged && { output_judge: run.judged }),
          },
        ])
      } finally {
        close()
      }
    },
    settled(timeoutMs) {
      if (open === 0) return Promise.resolve(true)
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs)
        waiters.push(() => {
          clearTimeout(timer)
          resolve(true)
        })
      })
    },
  }
}
