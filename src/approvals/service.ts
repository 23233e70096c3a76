import type { AuditEventInput } from '../domain/audit-event.js'
import { NONCE_MARGIN_SECONDS, type ApproverConfig } from '../domain/config.js'
import { maskPii } from '../detect/pii.js'
import type { ErrorCode } from '../domain/errors.js'
import { timeOrderedId } from '../domain/ids.js'
import {
  approvalSettled,
  notRecorded as notRecordedAs,
  refused,
  unavailable,
  type CallOutcome,
  type Failure,
  type Unavailable,
} from '../domain/outcome.js'
import type { Decision, ToolCall } from '../domain/types.js'
import { approvalEvent, argsHash, decisionEvent } from '../audit/events.js'
import type { Recorder } from '../audit/recorder.js'
import type { EventBus } from '../events/bus.js'
import type { ToolRunner } from '../executors/tool-runner.js'
import { principalOf } from '../auth/credentials.js'
import type { Runtime } from '../pipeline/runtime.js'
import { decidedChanges } from '../pipeline/runner.js'
import type { ApprovalRecord, ApprovalStatus, ApprovalStore, NonceStore } from '../store/types.js'
import { sendApprovalRequired } from './notify.js'
import { approverProblem, ttlSeconds } from './rules.js'
import { verifyLink, verifyWebhook, type ReceivedWebhookHeaders } from './signing.js'
import { canTransition } from './state.js'

/**
 * How often a long-poll re-reads the store while it waits. It wakes at once on its approval's
 * events on the bus, but the bus only carries this process's events (until the Redis or
 * PostgreSQL fan-out), so a decision taken on another instance is seen by re-reading.
 */
const RECHECK_MS = 1000

/** What the approvals service works with: small capabilities, not the gateway. */
export interface ApprovalDeps {
  readonly runtime: Runtime
  readonly approvalStore: ApprovalStore
  readonly nonces: NonceStore
  readonly recorder: Recorder
  readonly runner: ToolRunner
  /** Committed events; a long-poll wakes on the ones about its approval. */
  readonly bus: EventBus
  /** Prefix of new approval ids: `apr_`, or `apr_scenario_` in a demo scenario's world. */
  readonly idPrefix?: string
  onError(err: unknown, where: string): void
}

/** An approval as outsiders may see it: parameters masked, context and idempotency key left out. */
export type PublicApproval = Record<string, unknown> & { id: string; status: ApprovalStatus }

/** What deciding or reading an approval came to. */
export type ApprovalOutcome =
  | Failure
  /** Read, or decided without running anything (denied). */
  | { kind: 'decided'; approval: PublicApproval }
  /** Approved and run; `failure` when the tool failed or its outcome could not be recorded. */
  | {
      kind: 'executed'
      approval: PublicApproval
      result: unknown
      requestId: string
      failure?: { code: ErrorCode; message: string }
    }

/**
 * Held calls: creating them (once per call, however often the agent retries), deciding them
 * (who may, exactly once, bound to the exact call), expiring them, and reading them.
 */
export class Approvals {
  constructor(private readonly host: ApprovalDeps) {}

  private get config() {
    return this.host.runtime.config
  }

  /** Hold `call` for a person; a retry of the same call gets the same pending approval back. */
  async hold(call: ToolCall, decision: Decision): Promise<CallOutcome> {
    const store = this.host.approvalStore
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
        return await this.refuse(call, decision, 'too_many_pending_approvals', reason)
      }
    } catch (err) {
      this.host.onError(err, 'store:approval')
      return storeDown(call.requestId)
    }
    if (existing && (existing.tool !== call.tool || existing.args_hash !== hash)) {
      return await this.refuse(
        call,
        decision,
        'idempotency_conflict',
        'the Idempotency-Key was already used for a different call',
      )
    }
    const approval = existing ?? this.newApproval(call, decision, hash)
    try {
      // Write-ahead: the hold is in the log before the approval exists.
      await this.host.recorder.record([decisionEvent(call, decision, call.agentId, approval.id)])
    } catch (err) {
      return this.notRecorded(err, call.requestId)
    }
    if (!existing) {
      try {
        await store.create(approval)
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
      kind: 'held',
      decision,
      approval: { id: approval.id, expiresAt: approval.expires_at, argsHash: approval.args_hash },
      ...(existing && { duplicateOf: existing.request_id }),
    }
  }

  private findRetry(call: ToolCall, hash: string, now: string): Promise<ApprovalRecord | null> {
    if (call.idempotencyKey !== undefined)
      return this.host.approvalStore.findPending(
        call.agentId,
        { idempotencyKey: call.idempotencyKey },
        now,
      )
    if (call.sessionId === undefined) return Promise.resolve(null)
    return this.host.approvalStore.findPending(
      call.agentId,
      { tool: call.tool, argsHash: hash, sessionId: call.sessionId },
      now,
    )
  }

  private newApproval(call: ToolCall, decision: Decision, hash: string): ApprovalRecord {
    const created = new Date(call.receivedAt)
    const ttl = ttlSeconds(this.config, call.tool, decision.risk.level)
    // The person behind the call may not approve it. INVARIANT: the person signed into the
    // delegation chain the call was made under wins; the agent's unsigned `context.requested_by`
    // only names one when nothing signed does (so a receiving agent cannot name someone else and
    // switch the rule off).
    const requestedBy = decision.human ?? call.context.requested_by
    return {
      id: `${this.host.idPrefix ?? 'apr_'}${timeOrderedId()}`,
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
    code: ErrorCode,
    reason: string,
  ): Promise<CallOutcome> {
    const denied: Decision = { ...decision, decision: 'deny', layer: 'approval', code, reason }
    try {
      await this.host.recorder.record([decisionEvent(call, denied, call.agentId)])
    } catch (err) {
      return this.notRecorded(err, call.requestId)
    }
    return { kind: 'denied', decision: denied }
  }

  /** The audit log could not take a record: the store's own code, nothing taken. */
  private notRecorded(err: unknown, requestId: string, message?: string): Unavailable {
    return notRecordedAs(
      err,
      message ?? 'the decision could not be recorded; the call was not executed',
      requestId,
      (e) => this.host.onError(e, 'store'),
    )
  }

  /** Decide a pending approval as the holder of `approverToken`. */
  async resolve(
    approvalId: string,
    approverToken: string | undefined,
    verdict: 'approve' | 'deny',
    comment: string | null,
  ): Promise<ApprovalOutcome> {
    const { agent, approver } = principalOf(this.host.runtime, approverToken)
    if (!approver) {
      if (agent) return refused('approver_not_authorized', 'agent credentials can never approve')
      return refused('approver_unauthenticated', 'missing or unknown approver token')
    }
    return this.decideAs(approver, approvalId, verdict, comment)
  }

  /** Decide through a signed approve/deny link: valid signature, not expired, used once. */
  async decideByLink(approvalId: string, q: Record<string, unknown>): Promise<ApprovalOutcome> {
    const notify = this.config.approvals.notify
    if (!notify) return refused('not_found', 'approval links are not configured')
    const { decision, approver, exp, nonce, sig } = q
    if (
      typeof approver !== 'string' ||
      typeof nonce !== 'string' ||
      typeof sig !== 'string' ||
      typeof exp !== 'string' ||
      (decision !== 'approve' && decision !== 'deny')
    ) {
      return refused('signature_invalid', 'the link is incomplete')
    }
    const fields = { approval: approvalId, decision, approver, exp: Number(exp), nonce } as const
    const verdict = verifyLink(notify.signing_secret, fields, sig, Math.floor(Date.now() / 1000))
    if (verdict !== 'ok')
      return refused(
        verdict === 'expired' ? 'signature_expired' : 'signature_invalid',
        `the link is ${verdict === 'expired' ? 'expired' : 'not valid'}`,
      )
    // The nonce is remembered while the link can verify (until `exp`), plus the margin.
    const until = new Date((fields.exp + NONCE_MARGIN_SECONDS) * 1000).toISOString()
    return this.decideOnce(nonce, until, approver, approvalId, decision, 'via signed link')
  }

  /**
   * Decide through a signed callback (a chat tool's button), per Standard Webhooks: signature
   * over `id.timestamp.body`, fresh, and the `webhook-id` used once.
   */
  async decideByCallback(
    rawBody: string,
    headers: ReceivedWebhookHeaders,
  ): Promise<ApprovalOutcome> {
    const notify = this.config.approvals.notify
    if (!notify) return refused('not_found', 'approval callbacks are not configured')
    const verdict = verifyWebhook(
      notify.signing_secret,
      rawBody,
      headers,
      Math.floor(Date.now() / 1000),
      notify.callback_max_age_seconds,
    )
    const nonce = headers['webhook-id']
    if (verdict !== 'ok' || nonce === undefined)
      return refused(
        verdict === 'expired' ? 'signature_expired' : 'signature_invalid',
        `the callback is ${verdict === 'expired' ? 'too old' : 'not validly signed'}`,
      )
    // Signed is not well formed: `null`, a list or a bare string is refused like a missing field.
    let parsed: unknown
    try {
      parsed = JSON.parse(rawBody)
    } catch {
      parsed = null
    }
    const body: Record<string, unknown> =
      typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
        ? (parsed as Record<string, unknown>)
        : {}
    const { approval_id: id, decision, approver, comment } = body
    if (
      typeof id !== 'string' ||
      typeof approver !== 'string' ||
      (decision !== 'approve' && decision !== 'deny')
    ) {
      return refused('invalid_request', 'a callback needs approval_id, decision and approver')
    }
    // The nonce is remembered while the callback can verify as fresh, plus the margin.
    const sentAt = Number(headers['webhook-timestamp'])
    const until = new Date(
      (sentAt + notify.callback_max_age_seconds + NONCE_MARGIN_SECONDS) * 1000,
    ).toISOString()
    return this.decideOnce(
      nonce,
      until,
      approver,
      id,
      decision,
      typeof comment === 'string' ? comment : 'via signed callback',
    )
  }

  private async decideOnce(
    nonce: string,
    nonceExpiresAt: string,
    approverId: string,
    approvalId: string,
    verdict: 'approve' | 'deny',
    comment: string,
  ): Promise<ApprovalOutcome> {
    const approver = this.config.approvals.approvers.find((a) => a.id === approverId)
    if (!approver) return refused('approver_not_authorized', `unknown approver \`${approverId}\``)
    if (!(await this.host.nonces.use(`${approvalId}:${nonce}`, nonceExpiresAt))) {
      return refused('replayed', 'this link or callback was already used')
    }
    return this.decideAs(approver, approvalId, verdict, comment)
  }

  /** Decide as a known approver: role rules, no self-approval, exactly once. */
  private async decideAs(
    approver: ApproverConfig,
    approvalId: string,
    verdict: 'approve' | 'deny',
    comment: string | null,
  ): Promise<ApprovalOutcome> {
    const approval = await this.host.approvalStore.get(approvalId)
    if (!approval) return refused('approval_not_found', `approval \`${approvalId}\` not found`)
    if (approval.requested_by !== null && approval.requested_by === approver.id) {
      return refused(
        'self_approval_forbidden',
        `\`${approver.id}\` started this agent run and cannot decide its own request`,
      )
    }
    const problem = approverProblem(this.config.approvals.rules, approver, approval)
    if (problem)
      return refused(
        'approver_not_authorized',
        `\`${approver.id}\` may not decide this approval: ${problem}`,
      )
    // INVARIANT: an approval is bound to the policy that held the call; after a policy change the
    // agent must ask again, under the policy now in force.
    if (verdict === 'approve' && approval.policy_version !== this.host.runtime.policyVersion) {
      return refused(
        'approval_mismatch',
        `approval \`${approvalId}\` was held under policy ${approval.policy_version}; the policy is now ${this.host.runtime.policyVersion}`,
      )
    }

    const now = new Date().toISOString()
    if (approval.status === 'pending' && approval.expires_at <= now) {
      await this.expire(approval)
      return refused(
        'approval_expired',
        `approval \`${approvalId}\` expired at ${approval.expires_at}`,
      )
    }
    const to: ApprovalStatus = verdict === 'approve' ? 'approved' : 'denied'
    // INVARIANT: only `pending` moves, and only once: the store's compare-and-set decides races.
    if (
      !canTransition(approval.status, to) ||
      !(await this.host.approvalStore.resolve(approvalId, to, approver.id, comment, now))
    ) {
      const current = await this.host.approvalStore.get(approvalId)
      if (current?.status === 'expired')
        return refused('approval_expired', `approval \`${approvalId}\` expired`)
      return refused(
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
      await this.host.recorder.record([event])
    } catch (err) {
      // A decision the log does not have did not happen: roll the approval back to pending
      // (ROLLBACK in state.ts), so it can be decided again once the store is back.
      await this.host.approvalStore
        .reopen(approvalId, to, approver.id)
        .catch((rollbackErr: unknown) => this.host.onError(rollbackErr, 'store:approval-rollback'))
      return this.notRecorded(
        err,
        approval.request_id,
        'the decision could not be recorded, so it was not taken; the call is still pending',
      )
    }
    if (to === 'denied') return { kind: 'decided', approval: publicApproval(resolved) }
    return this.runApproved(resolved, event)
  }

  private async runApproved(
    approval: ApprovalRecord,
    event: AuditEventInput,
  ): Promise<ApprovalOutcome> {
    // INVARIANT: what runs is exactly what was approved; a stored call that no longer hashes to
    // the approved `args_hash` (or names a tool that is gone) is refused, never executed.
    const tool = this.host.runtime.tools.get(approval.tool)
    if (!tool || argsHash(approval.params) !== approval.args_hash) {
      return refused(
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
    const run = await this.host.runner.invoke(tool, call, approval.id)
    let failure = run.failure
    // INVARIANT: the approval record says the call ran before anything else is attempted, so a
    // later failure can never lead to a second run; and a long-poll woken by the execution
    // event below reads a record that already has the result.
    try {
      await this.host.approvalStore.recordExecution(
        approval.id,
        run.outcome,
        run.result,
        new Date().toISOString(),
      )
    } catch (err) {
      // The call ran (its result is in the reply), but the approval cannot say so: the caller
      // is told, rather than left with an approval that looks approved and never run.
      this.host.onError(err, 'store:approval-execution')
      failure ??= unavailable(
        'approval_store_unavailable',
        'the tool ran but the approval could not record it',
        approval.request_id,
      )
    }
    try {
      await this.host.runner.record(run, event, approval.id)
    } catch (err) {
      this.host.onError(err, 'audit:execution-record')
      failure ??= this.notRecorded(
        err,
        approval.request_id,
        'the tool ran but its outcome could not be recorded',
      )
    }
    // An approved call that ran counts in the agent's history and rule windows like an allowed
    // one, so session rules (counts, sums) see approved refunds too.
    await this.host.runtime.state.sessions
      .commit(
        decidedChanges(this.host.runtime, {
          agent: approval.agent_id,
          tool: approval.tool,
          params: approval.params,
          session: approval.session_id ?? undefined,
          decision: 'allow',
          code: null,
          at: Date.now(),
        }),
      )
      .catch((err: unknown) => this.host.onError(err, 'state:history'))
    const final = (await this.host.approvalStore.get(approval.id)) ?? approval
    return {
      kind: 'executed',
      approval: publicApproval(final),
      result: run.result,
      requestId: approval.request_id,
      ...(failure && { failure: { code: failure.code, message: failure.message } }),
    }
  }

  /** Move a pending approval whose TTL passed to `expired` and record that a timeout denied it. */
  async expire(approval: ApprovalRecord): Promise<boolean> {
    const now = new Date().toISOString()
    if (!(await this.host.approvalStore.resolve(approval.id, 'expired', null, null, now)))
      return false
    await this.host.recorder.record([
      approvalEvent({ ...approval, status: 'expired' }, 'approval_expired', null, null),
    ])
    return true
  }

  /** Expire every pending approval past its TTL; returns how many. */
  async sweepExpired(): Promise<number> {
    let n = 0
    for (const a of await this.host.approvalStore.expiredPending(new Date().toISOString()))
      if (await this.expire(a)) n++
    return n
  }

  /**
   * An approval as the requesting agent or an approver may see it. With `waitMs`, waits until it
   * is settled (decided against, expired, or approved and run), and answers with what it is when
   * the time is up. It re-reads the store when an event about the approval is committed in this
   * process, and every `RECHECK_MS` for decisions taken on other instances.
   */
  async read(
    approvalId: string,
    credential: string | undefined,
    opts: { waitMs?: number; signal?: AbortSignal } = {},
  ): Promise<ApprovalOutcome> {
    const { agent, approver } = principalOf(this.host.runtime, credential)
    // Authenticate before looking anything up, so ids cannot be probed without a credential.
    if (!approver && !agent) return refused('unauthenticated', 'missing or unknown credential')
    const deadline = Date.now() + (opts.waitMs ?? 0)
    const waiter = this.watch(approvalId)
    try {
      for (;;) {
        // Listening before reading: a change between the read and the wait is not missed.
        const changed = waiter.next()
        const approval = await this.host.approvalStore.get(approvalId)
        if (!approval) return refused('approval_not_found', `approval \`${approvalId}\` not found`)
        if (!approver && agent?.id !== approval.agent_id) {
          return refused(
            'approver_not_authorized',
            'only the requesting agent or an approver may read this approval',
          )
        }
        const left = deadline - Date.now()
        if (approvalSettled(approval) || left <= 0 || opts.signal?.aborted)
          return { kind: 'decided', approval: publicApproval(approval) }
        await changed.within(Math.min(left, RECHECK_MS), opts.signal)
      }
    } finally {
      waiter.stop()
    }
  }

  /** Long-polls waiting on each approval; one bus listener serves them all while any wait. */
  private readonly waiters = new Map<string, Set<() => void>>()
  private unsubscribe: (() => void) | null = null

  /** Wakes a reader when an event about `approvalId` is committed in this process. */
  private watch(approvalId: string) {
    let wake: (() => void) | undefined
    const waiter = () => wake?.()
    let set = this.waiters.get(approvalId)
    if (!set) this.waiters.set(approvalId, (set = new Set()))
    set.add(waiter)
    this.unsubscribe ??= this.host.bus.subscribe((e) => {
      if (e.approval_id === undefined) return
      for (const w of this.waiters.get(e.approval_id) ?? []) w()
    })
    const waiters = this.waiters
    const stop = () => {
      set.delete(waiter)
      if (set.size === 0 && waiters.get(approvalId) === set) waiters.delete(approvalId)
      if (waiters.size === 0) {
        this.unsubscribe?.()
        this.unsubscribe = null
      }
    }
    return {
      stop,
      next() {
        const fired = new Promise<void>((resolve) => (wake = resolve))
        return {
          within(ms: number, signal?: AbortSignal) {
            return new Promise<void>((resolve) => {
              const done = () => {
                clearTimeout(timer)
                signal?.removeEventListener('abort', done)
                resolve()
              }
              const timer = setTimeout(done, ms)
              signal?.addEventListener('abort', done, { once: true })
              void fired.then(done)
            })
          },
        }
      },
    }
  }

  async pending(): Promise<Record<string, unknown>[]> {
    const now = new Date().toISOString()
    return (await this.host.approvalStore.list('pending'))
      .filter((a) => a.expires_at > now)
      .map(publicApproval)
  }
}

/** Approval as shown outside: parameters masked, context and idempotency key left out. */
export function publicApproval(a: ApprovalRecord): PublicApproval {
  const { context, idempotency_key: _key, params, ...rest } = a
  return {
    ...rest,
    ...(Array.isArray(context.chain) && { chain: context.chain }),
    params: maskPii(params).value,
    result: a.result === null ? undefined : a.result,
  }
}

function storeDown(requestId: string): Unavailable {
  return unavailable(
    'approval_store_unavailable',
    'the approval store failed; the call was not executed',
    requestId,
  )
}
