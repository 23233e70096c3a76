import { timeOrderedId } from '../domain/ids.js'
import type { AuditEvent, AuditEventInput } from '../audit/event.js'
import type { ToolConfig } from '../config/schema.js'
import { maskPii } from '../detect/pii.js'
import { errorBody, statusOf, WardenError, type ErrorCode } from '../domain/errors.js'
import type { Decision, ToolCall } from '../domain/types.js'
import type { EventBus } from '../events/bus.js'
import { ToolFailure, type Executor } from '../executors/types.js'
import { sha256Hex } from '../pipeline/layers/identity.js'
import { taintForm, taintSession } from '../pipeline/layers/taint.js'
import type { Pipeline } from '../pipeline/runner.js'
import type { ApprovalRecord, Store } from '../store/types.js'
import {
  approvalEvent,
  argsHash,
  decisionEvent,
  executionEvent,
  rejectionEvent,
} from './audit-events.js'

/** What an HTTP (or other) door sends back. */
export interface Reply {
  status: number
  body: Record<string, unknown>
  headers?: Record<string, string>
}

export interface GatewayDeps {
  pipeline: Pipeline
  store: Store
  bus: EventBus
  executors: Record<ToolConfig['executor']['type'], Executor>
  onError?: (err: unknown, where: string) => void
  /** Told about every decision (metrics). */
  onDecision?: (decision: Decision, principal: string | null) => void
}

const MASKED_CLASSES = new Set(['confidential', 'restricted'])

/**
 * The engine behind every door: decide, record durably, then (and only then) execute, mask
 * the result, and publish the events. Also resolves approvals.
 */
export class Gateway {
  constructor(private readonly deps: GatewayDeps) {}

  get runtime() {
    return this.deps.pipeline.runtime
  }

  /** Record events durably and then publish them; throws `audit_unavailable` if the store fails. */
  private async record(events: AuditEventInput[]): Promise<AuditEvent[]> {
    const sealed = await this.deps.store.append(events)
    this.deps.bus.publish(sealed)
    return sealed
  }

  async execute(call: ToolCall): Promise<Reply> {
    let decision: Decision
    try {
      decision = await this.deps.pipeline.decide(call)
    } catch (err) {
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
    const base = {
      request_id: call.requestId,
      risk: decision.risk,
      checks: decision.checks,
      policy_version: decision.policyVersion,
    }

    if (decision.decision === 'approval_required') return this.hold(call, decision, base)

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
    return { status: 200, body: { decision: 'allow', ...base, result: run.result } }
  }

  private async hold(
    call: ToolCall,
    decision: Decision,
    base: Record<string, unknown>,
  ): Promise<Reply> {
    const now = new Date(call.receivedAt)
    const approval: ApprovalRecord = {
      id: `apr_${timeOrderedId()}`,
      status: 'pending',
      request_id: call.requestId,
      agent_id: call.agentId,
      tool: call.tool,
      session_id: call.sessionId ?? null,
      params: { ...call.params },
      context: { ...call.context },
      args_hash: argsHash(call.params),
      policy_version: decision.policyVersion,
      reason: decision.reason,
      layer: decision.layer,
      risk: decision.risk,
      created_at: now.toISOString(),
      expires_at: new Date(
        now.getTime() + this.runtime.config.approvals.ttl_seconds * 1000,
      ).toISOString(),
      decided_by: null,
      decided_at: null,
      comment: null,
      executed_at: null,
      outcome: null,
      result: null,
    }
    try {
      // Write-ahead: the hold is in the log before the approval exists.
      await this.record([decisionEvent(call, decision, call.agentId, approval.id)])
    } catch (err) {
      return this.unavailable(err, call.requestId)
    }
    try {
      await this.deps.store.createApproval(approval)
    } catch (err) {
      this.deps.onError?.(err, 'store:approval')
      return {
        status: 503,
        body: errorBody(
          'approval_store_unavailable',
          'the approval could not be stored; the call was not executed',
          call.requestId,
        ),
      }
    }
    return {
      status: 202,
      body: {
        decision: 'approval_required',
        ...base,
        approval_id: approval.id,
        expires_at: approval.expires_at,
        args_hash: approval.args_hash,
        layer: decision.layer,
        reason: decision.reason,
      },
    }
  }

  /** Execute an allowed or approved call and record its outcome. */
  private async run(
    tool: ToolConfig,
    call: Pick<ToolCall, 'requestId' | 'params' | 'sessionId' | 'agentId'>,
    event: AuditEventInput,
    approvalId?: string,
  ) {
    const started = performance.now()
    let outcome: 'ok' | 'error' | 'unknown' = 'ok'
    let result: unknown
    let failure: Reply | undefined
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
    }
    if (outcome === 'ok') {
      if (MASKED_CLASSES.has(tool.classification)) result = maskPii(result).value
      if (tool.output_trust === 'untrusted' && call.sessionId !== undefined) {
        await this.rememberUntrusted(
          call.agentId,
          call.sessionId,
          tool.name,
          call.requestId,
          result,
        ).catch((err: unknown) =>
          // The session loses this output's taint; logged and counted rather than hidden.
          this.deps.onError?.(err, 'state:taint'),
        )
      }
    }
    try {
      await this.record([
        executionEvent(event, outcome, result, performance.now() - started, approvalId),
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
    return { result, outcome, failure }
  }

  private async rememberUntrusted(
    agentId: string,
    sessionId: string,
    tool: string,
    requestId: string,
    result: unknown,
  ) {
    const text = JSON.stringify(result) ?? ''
    await this.runtime.state.addTaint(taintSession(agentId, sessionId), {
      source: `tool:${tool}#${requestId}`,
      text: taintForm(text),
      at: Date.now(),
    })
  }

  private unavailable(err: unknown, requestId: string, message?: string): Reply {
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

  /** Decide a pending approval as `approverToken`. */
  async resolve(
    approvalId: string,
    approverToken: string | undefined,
    verdict: 'approve' | 'deny',
    comment: string | null,
  ): Promise<Reply> {
    const rt = this.runtime
    const hash = approverToken ? sha256Hex(approverToken) : ''
    const approver = rt.approversByTokenHash.get(hash)
    if (!approver) {
      if (rt.agentsByKeyHash.has(hash))
        return fail('approver_not_authorized', 'agent credentials can never approve')
      return fail('approver_unauthenticated', 'missing or unknown approver token')
    }
    const approval = await this.deps.store.getApproval(approvalId)
    if (!approval) return fail('approval_not_found', `approval \`${approvalId}\` not found`)
    const now = new Date().toISOString()
    if (approval.status === 'pending' && approval.expires_at <= now) {
      await this.expire(approval)
      return fail(
        'approval_expired',
        `approval \`${approvalId}\` expired at ${approval.expires_at}`,
      )
    }
    const to = verdict === 'approve' ? 'approved' : 'denied'
    if (!(await this.deps.store.resolveApproval(approvalId, to, approver.id, comment, now))) {
      const current = await this.deps.store.getApproval(approvalId)
      if (current?.status === 'expired')
        return fail('approval_expired', `approval \`${approvalId}\` expired`)
      return fail(
        'approval_already_decided',
        `approval \`${approvalId}\` is already ${current?.status ?? 'resolved'}`,
      )
    }
    const resolved = {
      ...approval,
      status: to,
      decided_by: approver.id,
      decided_at: now,
      comment,
    } as ApprovalRecord
    const event = approvalEvent(
      resolved,
      to === 'approved' ? 'approval_granted' : 'approval_denied',
      approver.id,
      comment,
    )
    try {
      await this.record([event])
    } catch (err) {
      return this.unavailable(
        err,
        approval.request_id,
        'the approval could not be recorded; the call was not executed',
      )
    }
    if (to === 'denied') return { status: 200, body: { approval: publicApproval(resolved) } }

    // INVARIANT: what runs is exactly what was approved; a stored call that no longer hashes to
    // the approved `args_hash` (or names a tool that is gone) is refused, never executed.
    const tool = rt.tools.get(approval.tool)
    if (!tool || argsHash(approval.params) !== approval.args_hash) {
      return fail(
        'approval_mismatch',
        `approval \`${approvalId}\` no longer matches the call it was granted for`,
      )
    }
    const call = {
      requestId: approval.request_id,
      params: approval.params,
      sessionId: approval.session_id ?? undefined,
      agentId: approval.agent_id,
    }
    const run = await this.run(tool, call, event, approval.id)
    await this.deps.store
      .recordExecution(approval.id, run.outcome, run.result, new Date().toISOString())
      // The tool ran and the audit log has its outcome; only the approval record lags behind.
      .catch((err: unknown) => this.deps.onError?.(err, 'store:approval-execution'))
    const final = (await this.deps.store.getApproval(approval.id)) ?? resolved
    return {
      status: run.failure?.status ?? 200,
      body: {
        approval: publicApproval(final),
        result: run.result,
        ...(run.failure && run.failure.body),
      },
    }
  }

  /** Move a pending approval whose TTL passed to `expired` and record that a timeout denied it. */
  async expire(approval: ApprovalRecord): Promise<boolean> {
    const now = new Date().toISOString()
    if (!(await this.deps.store.resolveApproval(approval.id, 'expired', null, null, now)))
      return false
    await this.record([
      approvalEvent({ ...approval, status: 'expired' }, 'approval_expired', null, null),
    ])
    return true
  }

  /** Expire every pending approval past its TTL; returns how many. */
  async sweepExpired(): Promise<number> {
    let n = 0
    for (const a of await this.deps.store.expiredPending(new Date().toISOString()))
      if (await this.expire(a)) n++
    return n
  }

  /** An approval as the requesting agent or an approver may see it. */
  async readApproval(approvalId: string, credential: string | undefined): Promise<Reply> {
    const rt = this.runtime
    const hash = credential ? sha256Hex(credential) : ''
    const isApprover = rt.approversByTokenHash.has(hash)
    const agent = rt.agentsByKeyHash.get(hash)
    // Authenticate before looking anything up, so ids cannot be probed without a credential.
    if (!isApprover && !agent) return fail('unauthenticated', 'missing or unknown credential')
    const approval = await this.deps.store.getApproval(approvalId)
    if (!approval) return fail('approval_not_found', `approval \`${approvalId}\` not found`)
    if (!isApprover && agent?.id !== approval.agent_id) {
      return fail(
        'approver_not_authorized',
        'only the requesting agent or an approver may read this approval',
      )
    }
    return { status: 200, body: { approval: publicApproval(approval) } }
  }

  async pendingApprovals(): Promise<Record<string, unknown>[]> {
    const now = new Date().toISOString()
    return (await this.deps.store.listApprovals('pending'))
      .filter((a) => a.expires_at > now)
      .map(publicApproval)
  }
}

/** Approval as shown outside: parameters masked, context left out. */
export function publicApproval(a: ApprovalRecord): Record<string, unknown> {
  const { context: _context, params, ...rest } = a
  return {
    ...rest,
    params: maskPii(params).value,
    result: a.result === null ? undefined : a.result,
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

function fail(code: ErrorCode, message: string): Reply {
  return { status: statusOf(code), body: errorBody(code, message) }
}
