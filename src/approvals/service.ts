import type { AuditEvent, AuditEventInput } from '../domain/audit-event.js'
import type { ApproverConfig, ToolConfig } from '../domain/config.js'
import { maskPii } from '../detect/pii.js'
import { errorBody, statusOf, type ErrorCode } from '../domain/errors.js'
import { timeOrderedId } from '../domain/ids.js'
import type { Decision, ToolCall } from '../domain/types.js'
import { approvalEvent, argsHash, decisionEvent } from '../audit/events.js'
import type { Reply } from '../http/reply.js'
import { principalOf } from '../auth/credentials.js'
import type { Runtime } from '../pipeline/runtime.js'
import { scalarParams } from '../pipeline/runner.js'
import type { ApprovalRecord, ApprovalStatus, Store } from '../store/types.js'
import { sendApprovalRequired } from './notify.js'
import { approverProblem, ttlSeconds } from './rules.js'
import { verifyBody, verifyLink } from './signing.js'
import { canTransition } from './state.js'

/** What the approvals service needs from the gateway that owns it. */
export interface ApprovalHost {
  readonly runtime: Runtime
  readonly store: Store
  /** Append durably, then publish; throws `audit_unavailable`. */
  record(events: AuditEventInput[]): Promise<AuditEvent[]>
  /** Run a call once and record its outcome. */
  run(
    tool: ToolConfig,
    call: Pick<ToolCall, 'requestId' | 'params' | 'sessionId' | 'agentId'>,
    event: AuditEventInput,
    approvalId: string,
  ): Promise<{ result: unknown; outcome: 'ok' | 'error' | 'unknown'; failure?: Reply }>
  unavailable(err: unknown, requestId: string, message?: string): Reply
  onError(err: unknown, where: string): void
}

/**
 * Held calls: creating them (once per call, however often the agent retries), deciding them
 * (who may, exactly once, bound to the exact call), expiring them, and reading them.
 */
export class Approvals {
  constructor(private readonly host: ApprovalHost) {}

  private get config() {
    return this.host.runtime.config
  }

  /** Hold `call` for a person; a retry of the same call gets the same pending approval back. */
  async hold(call: ToolCall, decision: Decision, base: Record<string, unknown>): Promise<Reply> {
    const { store } = this.host
    const now = new Date(call.receivedAt).toISOString()
    const hash = argsHash(call.params)
    let existing: ApprovalRecord | null
    try {
      existing = await this.findRetry(call, hash, now)
      if (
        !existing &&
        (await store.countPending(call.agentId, now)) >= this.config.approvals.max_pending_per_agent
      ) {
        const reason = `agent \`${call.agentId}\` already has ${this.config.approvals.max_pending_per_agent} calls waiting for approval`
        return await this.refuse(call, decision, base, 'too_many_pending_approvals', reason)
      }
    } catch (err) {
      this.host.onError(err, 'store:approval')
      return storeDown(call.requestId)
    }
    if (existing && (existing.tool !== call.tool || existing.args_hash !== hash)) {
      return await this.refuse(
        call,
        decision,
        base,
        'idempotency_conflict',
        'the Idempotency-Key was already used for a different call',
      )
    }
    const approval = existing ?? this.newApproval(call, decision, hash)
    try {
      // Write-ahead: the hold is in the log before the approval exists.
      await this.host.record([decisionEvent(call, decision, call.agentId, approval.id)])
    } catch (err) {
      return this.host.unavailable(err, call.requestId)
    }
    if (!existing) {
      try {
        await store.createApproval(approval)
      } catch (err) {
        this.host.onError(err, 'store:approval')
        return storeDown(call.requestId)
      }
      const notify = this.config.approvals.notify
      if (notify)
        sendApprovalRequired(
          notify,
          this.config,
          approval,
          publicApproval(approval),
          (err, where) => this.host.onError(err, where),
        )
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
        ...(existing && { duplicate_of: existing.request_id }),
      },
    }
  }

  private findRetry(call: ToolCall, hash: string, now: string): Promise<ApprovalRecord | null> {
    if (call.idempotencyKey !== undefined)
      return this.host.store.findPending(call.agentId, { idempotencyKey: call.idempotencyKey }, now)
    if (call.sessionId === undefined) return Promise.resolve(null)
    return this.host.store.findPending(
      call.agentId,
      { tool: call.tool, argsHash: hash, sessionId: call.sessionId },
      now,
    )
  }

  private newApproval(call: ToolCall, decision: Decision, hash: string): ApprovalRecord {
    const created = new Date(call.receivedAt)
    const ttl = ttlSeconds(this.config, call.tool, decision.risk.level)
    // The person behind the call may not approve it: named by the caller, or signed into the
    // delegation chain the call was made under.
    const requestedBy = call.context.requested_by ?? decision.human
    return {
      id: `apr_${timeOrderedId()}`,
      status: 'pending',
      request_id: call.requestId,
      agent_id: call.agentId,
      tool: call.tool,
      session_id: call.sessionId ?? null,
      params: { ...call.params },
      context: {
        ...call.context,
        // Kept with the held call so the approver, and the audit of its resolution, see the chain.
        ...(decision.chain && { chain: [...decision.chain, call.agentId] }),
        ...(decision.human && { human: decision.human }),
      },
      args_hash: hash,
      policy_version: decision.policyVersion,
      idempotency_key: call.idempotencyKey ?? null,
      requested_by: typeof requestedBy === 'string' ? requestedBy : null,
      reason: decision.reason,
      layer: decision.layer,
      risk: decision.risk,
      created_at: created.toISOString(),
      expires_at: new Date(created.getTime() + ttl * 1000).toISOString(),
      decided_by: null,
      decided_at: null,
      comment: null,
      executed_at: null,
      outcome: null,
      result: null,
    }
  }

  /** A hold that cannot be taken (flooding, a reused key) is a recorded deny. */
  private async refuse(
    call: ToolCall,
    decision: Decision,
    base: Record<string, unknown>,
    code: ErrorCode,
    reason: string,
  ): Promise<Reply> {
    const denied: Decision = { ...decision, decision: 'deny', layer: 'approval', code, reason }
    try {
      await this.host.record([decisionEvent(call, denied, call.agentId)])
    } catch (err) {
      return this.host.unavailable(err, call.requestId)
    }
    return {
      status: statusOf(code),
      body: { decision: 'deny', ...base, layer: 'approval', error: { code, message: reason } },
    }
  }

  /** Decide a pending approval as the holder of `approverToken`. */
  async resolve(
    approvalId: string,
    approverToken: string | undefined,
    verdict: 'approve' | 'deny',
    comment: string | null,
  ): Promise<Reply> {
    const { agent, approver } = principalOf(this.host.runtime, approverToken)
    if (!approver) {
      if (agent) return fail('approver_not_authorized', 'agent credentials can never approve')
      return fail('approver_unauthenticated', 'missing or unknown approver token')
    }
    return this.decideAs(approver, approvalId, verdict, comment)
  }

  /** Decide through a signed approve/deny link: valid signature, not expired, used once. */
  async decideByLink(approvalId: string, q: Record<string, unknown>): Promise<Reply> {
    const notify = this.config.approvals.notify
    if (!notify) return fail('not_found', 'approval links are not configured')
    const { decision, approver, exp, nonce, sig } = q
    if (
      typeof approver !== 'string' ||
      typeof nonce !== 'string' ||
      typeof sig !== 'string' ||
      typeof exp !== 'string' ||
      (decision !== 'approve' && decision !== 'deny')
    ) {
      return fail('signature_invalid', 'the link is incomplete')
    }
    const fields = { approval: approvalId, decision, approver, exp: Number(exp), nonce } as const
    const verdict = verifyLink(notify.signing_secret, fields, sig, Math.floor(Date.now() / 1000))
    if (verdict !== 'ok')
      return fail(
        verdict === 'expired' ? 'signature_expired' : 'signature_invalid',
        `the link is ${verdict === 'expired' ? 'expired' : 'not valid'}`,
      )
    return this.decideOnce(nonce, approver, approvalId, decision, 'via signed link')
  }

  /** Decide through a signed callback (a chat tool's button): signature over `timestamp.body`, fresh, used once. */
  async decideByCallback(
    rawBody: string,
    timestamp: string | undefined,
    signature: string | undefined,
  ): Promise<Reply> {
    const notify = this.config.approvals.notify
    if (!notify) return fail('not_found', 'approval callbacks are not configured')
    const verdict = verifyBody(
      notify.signing_secret,
      rawBody,
      timestamp,
      signature,
      Math.floor(Date.now() / 1000),
      notify.callback_max_age_seconds,
    )
    if (verdict !== 'ok')
      return fail(
        verdict === 'expired' ? 'signature_expired' : 'signature_invalid',
        `the callback is ${verdict === 'expired' ? 'too old' : 'not validly signed'}`,
      )
    const body = JSON.parse(rawBody) as Record<string, unknown>
    const { approval_id: id, decision, approver, nonce, comment } = body
    if (
      typeof id !== 'string' ||
      typeof approver !== 'string' ||
      typeof nonce !== 'string' ||
      (decision !== 'approve' && decision !== 'deny')
    ) {
      return fail('invalid_request', 'a callback needs approval_id, decision, approver and nonce')
    }
    return this.decideOnce(
      nonce,
      approver,
      id,
      decision,
      typeof comment === 'string' ? comment : 'via signed callback',
    )
  }

  private async decideOnce(
    nonce: string,
    approverId: string,
    approvalId: string,
    verdict: 'approve' | 'deny',
    comment: string,
  ): Promise<Reply> {
    const approver = this.config.approvals.approvers.find((a) => a.id === approverId)
    if (!approver) return fail('approver_not_authorized', `unknown approver \`${approverId}\``)
    if (!(await this.host.store.useNonce(`${approvalId}:${nonce}`, new Date().toISOString()))) {
      return fail('replayed', 'this link or callback was already used')
    }
    return this.decideAs(approver, approvalId, verdict, comment)
  }

  /** Decide as a known approver: role rules, no self-approval, exactly once. */
  private async decideAs(
    approver: ApproverConfig,
    approvalId: string,
    verdict: 'approve' | 'deny',
    comment: string | null,
  ): Promise<Reply> {
    const approval = await this.host.store.getApproval(approvalId)
    if (!approval) return fail('approval_not_found', `approval \`${approvalId}\` not found`)
    if (approval.requested_by !== null && approval.requested_by === approver.id) {
      return fail(
        'self_approval_forbidden',
        `\`${approver.id}\` started this agent run and cannot decide its own request`,
      )
    }
    const problem = approverProblem(this.config.approvals.rules, approver, approval)
    if (problem)
      return fail(
        'approver_not_authorized',
        `\`${approver.id}\` may not decide this approval: ${problem}`,
      )
    // INVARIANT: an approval is bound to the policy that held the call; after a policy change the
    // agent must ask again, under the policy now in force.
    if (verdict === 'approve' && approval.policy_version !== this.host.runtime.policyVersion) {
      return fail(
        'approval_mismatch',
        `approval \`${approvalId}\` was held under policy ${approval.policy_version}; the policy is now ${this.host.runtime.policyVersion}`,
      )
    }

    const now = new Date().toISOString()
    if (approval.status === 'pending' && approval.expires_at <= now) {
      await this.expire(approval)
      return fail(
        'approval_expired',
        `approval \`${approvalId}\` expired at ${approval.expires_at}`,
      )
    }
    const to: ApprovalStatus = verdict === 'approve' ? 'approved' : 'denied'
    // INVARIANT: only `pending` moves, and only once: the store's compare-and-set decides races.
    if (
      !canTransition(approval.status, to) ||
      !(await this.host.store.resolveApproval(approvalId, to, approver.id, comment, now))
    ) {
      const current = await this.host.store.getApproval(approvalId)
      if (current?.status === 'expired')
        return fail('approval_expired', `approval \`${approvalId}\` expired`)
      return fail(
        'approval_already_decided',
        `approval \`${approvalId}\` is already ${current?.status ?? 'resolved'}`,
      )
    }
    const resolved: ApprovalRecord = {
      ...approval,
      status: to,
      decided_by: approver.id,
      decided_at: now,
      comment,
    }
    const event = approvalEvent(
      resolved,
      to === 'approved' ? 'approval_granted' : 'approval_denied',
      approver.id,
      comment,
    )
    try {
      await this.host.record([event])
    } catch (err) {
      // A decision the log does not have did not happen: roll the approval back to pending
      // (ROLLBACK in state.ts), so it can be decided again once the store is back.
      await this.host.store
        .reopenApproval(approvalId, to, approver.id)
        .catch((rollbackErr: unknown) => this.host.onError(rollbackErr, 'store:approval-rollback'))
      return this.host.unavailable(
        err,
        approval.request_id,
        'the decision could not be recorded, so it was not taken; the call is still pending',
      )
    }
    if (to === 'denied') return { status: 200, body: { approval: publicApproval(resolved) } }
    return this.runApproved(resolved, event)
  }

  private async runApproved(approval: ApprovalRecord, event: AuditEventInput): Promise<Reply> {
    // INVARIANT: what runs is exactly what was approved; a stored call that no longer hashes to
    // the approved `args_hash` (or names a tool that is gone) is refused, never executed.
    const tool = this.host.runtime.tools.get(approval.tool)
    if (!tool || argsHash(approval.params) !== approval.args_hash) {
      return fail(
        'approval_mismatch',
        `approval \`${approval.id}\` no longer matches the call it was granted for`,
      )
    }
    const call = {
      requestId: approval.request_id,
      params: approval.params,
      sessionId: approval.session_id ?? undefined,
      agentId: approval.agent_id,
    }
    const run = await this.host.run(tool, call, event, approval.id)
    // An approved call that ran counts in the agent's history like an allowed one, so session
    // rules (counts, sums) see approved refunds too.
    await this.host.runtime.state.sessions
      .commit({
        agent: approval.agent_id,
        history: {
          entry: {
            tool: approval.tool,
            decision: 'allow',
            at: Date.now(),
            params: scalarParams(approval.params),
            ...(approval.session_id !== null && { session: approval.session_id }),
          },
          limit: this.config.sequence.history_limit,
        },
      })
      .catch((err: unknown) => this.host.onError(err, 'state:history'))
    await this.host.store
      .recordExecution(approval.id, run.outcome, run.result, new Date().toISOString())
      // The tool ran and the audit log has its outcome; only the approval record lags behind.
      .catch((err: unknown) => this.host.onError(err, 'store:approval-execution'))
    const final = (await this.host.store.getApproval(approval.id)) ?? approval
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
    if (!(await this.host.store.resolveApproval(approval.id, 'expired', null, null, now)))
      return false
    await this.host.record([
      approvalEvent({ ...approval, status: 'expired' }, 'approval_expired', null, null),
    ])
    return true
  }

  /** Expire every pending approval past its TTL; returns how many. */
  async sweepExpired(): Promise<number> {
    let n = 0
    for (const a of await this.host.store.expiredPending(new Date().toISOString()))
      if (await this.expire(a)) n++
    return n
  }

  /** An approval as the requesting agent or an approver may see it. */
  async read(approvalId: string, credential: string | undefined): Promise<Reply> {
    const { agent, approver } = principalOf(this.host.runtime, credential)
    // Authenticate before looking anything up, so ids cannot be probed without a credential.
    if (!approver && !agent) return fail('unauthenticated', 'missing or unknown credential')
    const approval = await this.host.store.getApproval(approvalId)
    if (!approval) return fail('approval_not_found', `approval \`${approvalId}\` not found`)
    if (!approver && agent?.id !== approval.agent_id) {
      return fail(
        'approver_not_authorized',
        'only the requesting agent or an approver may read this approval',
      )
    }
    return { status: 200, body: { approval: publicApproval(approval) } }
  }

  async pending(): Promise<Record<string, unknown>[]> {
    const now = new Date().toISOString()
    return (await this.host.store.listApprovals('pending'))
      .filter((a) => a.expires_at > now)
      .map(publicApproval)
  }
}

/** Approval as shown outside: parameters masked, context and idempotency key left out. */
export function publicApproval(a: ApprovalRecord): Record<string, unknown> {
  const { context, idempotency_key: _key, params, ...rest } = a
  return {
    ...rest,
    ...(Array.isArray(context.chain) && { chain: context.chain }),
    params: maskPii(params).value,
    result: a.result === null ? undefined : a.result,
  }
}

function fail(code: ErrorCode, message: string): Reply {
  return { status: statusOf(code), body: errorBody(code, message) }
}

function storeDown(requestId: string): Reply {
  return {
    status: 503,
    body: errorBody(
      'approval_store_unavailable',
      'the approval store failed; the call was not executed',
      requestId,
    ),
  }
}
