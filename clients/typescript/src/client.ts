import createClient from 'openapi-fetch'
import type { paths } from './generated/openapi.js'
import { wrapTool, type WrapOptions } from './wrap.js'

/**
 * A typed client for the Warden gateway (port 8004). Every type here comes from the generated
 * `paths` (src/generated/openapi.ts, from the gateway's own OpenAPI document), so a change to the
 * API that this code does not follow fails its type check.
 */

type Execute = paths['/gateway/execute']['post']
type ExecuteBody = Execute['requestBody']['content']['application/json']
type Json<R> = R extends { content: { 'application/json': infer B } } ? B : never
type ExecuteResponses = Execute['responses']

export type ExecuteAllowedBody = Json<ExecuteResponses[200]>
export type ExecuteHeldBody = Json<ExecuteResponses[202]>
export type ExecuteDeniedBody = Json<ExecuteResponses[403]>
export type ToolFailedBody = Json<ExecuteResponses[502]>
export type ErrorBody = Json<ExecuteResponses[400]>
/** Every error code the gateway can answer with (docs/errors.md). */
export type ErrorCode = ErrorBody['error']['code']
export type Risk = ExecuteAllowedBody['risk']
export type Approval = Json<paths['/gateway/approvals/{id}']['get']['responses'][200]>['approval']
export type ToolInfo = Json<paths['/config/tools']['get']['responses'][200]>['tools'][number]

/** What `execute` can end in, one variant per kind of answer. */
export type ExecuteOutcome =
  /** 200: allowed, and the tool ran. */
  | { kind: 'executed'; status: 200; requestId: string; result: unknown; body: ExecuteAllowedBody }
  /** 202: held for a person; wait with `waitForApproval(approvalId)`. */
  | {
      kind: 'held'
      status: 202
      requestId: string
      approvalId: string
      expiresAt: string
      reason: string
      body: ExecuteHeldBody
    }
  /** 403 (a layer said no) or 429 (rate limited: `retryAfterSeconds`). */
  | {
      kind: 'denied'
      status: number
      requestId: string
      code: ErrorCode
      message: string
      layer: string | null
      retryAfterSeconds?: number
      body: ExecuteDeniedBody
    }
  /** 400: the call is malformed (for a model: fix the parameters and try again). */
  | { kind: 'invalid'; status: number; requestId?: string; code: ErrorCode; message: string }
  /** 502/504: allowed, but the tool failed or did not answer in time (it may have acted). */
  | { kind: 'tool_failed'; status: number; requestId?: string; code: ErrorCode; message: string }
  /** Anything else: 401 wrong key, 409 idempotency, 503 a dependency is down (nothing ran). */
  | { kind: 'error'; status: number; requestId?: string; code: ErrorCode; message: string }

/** What `waitForApproval` can end in. */
export type ApprovalOutcome =
  /** Approved and run: the tool's result. */
  | { kind: 'executed'; approval: Approval; result: unknown }
  /** Approved, but the tool failed (or its outcome is unknown). */
  | { kind: 'tool_failed'; approval: Approval; code: ErrorCode; message: string }
  /** A person denied it (`approval_denied`) or it expired undecided (`approval_expired`). */
  | {
      kind: 'denied'
      approval: Approval
      code: 'approval_denied' | 'approval_expired'
      message: string
    }
  /** No decision before `timeoutMs`: the approval is still pending. */
  | { kind: 'timeout'; approval: Approval }
  /** The gateway refused to show it (401, 403, 404) or is unavailable. */
  | { kind: 'error'; status: number; code: ErrorCode; message: string }

export interface ExecuteOptions {
  sessionId?: string
  /** Untrusted text the call came from, e.g. `{ user_input }`: the injection layers read it. */
  context?: Record<string, unknown>
  /** A delegation token from `POST /gateway/message`. */
  delegation?: string
  /** Sent as `Idempotency-Key`: a retry with the same key never runs the tool twice. */
  idempotencyKey?: string
  signal?: AbortSignal
}

export interface WaitOptions {
  /** Give up (outcome `timeout`) after this long; default 5 minutes. */
  timeoutMs?: number
  signal?: AbortSignal
}

export interface WardenClientOptions {
  /** The gateway, e.g. `http://localhost:8004`. */
  baseUrl: string
  /** The id the agent key belongs to (`agents.yaml`). */
  agentId: string
  agentKey: string
  /** A fetch to use instead of the global one. */
  fetch?: typeof globalThis.fetch
}

/** The gateway answered something that is not its API (no JSON, or a status it never uses). */
export class WardenClientError extends Error {
  override name = 'WardenClientError'
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
  }
}

/** How long one long-poll asks the gateway to hold (it allows up to 60 s). */
const POLL_SECONDS = 25

export type WardenClient = ReturnType<typeof createWardenClient>

export function createWardenClient(options: WardenClientOptions) {
  const api = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    headers: { authorization: `Bearer ${options.agentKey}` },
    ...(options.fetch && { fetch: options.fetch }),
  })

  async function execute(
    tool: string,
    params: Record<string, unknown> = {},
    opts: ExecuteOptions = {},
  ): Promise<ExecuteOutcome> {
    const body: ExecuteBody = {
      agent_id: options.agentId,
      tool,
      params,
      ...(opts.sessionId !== undefined && { session_id: opts.sessionId }),
      ...(opts.context !== undefined && { context: opts.context }),
      ...(opts.delegation !== undefined && { delegation: opts.delegation }),
    }
    const { data, error, response } = await api.POST('/gateway/execute', {
      body,
      params: {
        header:
          opts.idempotencyKey === undefined
            ? undefined
            : { 'idempotency-key': opts.idempotencyKey },
      },
      ...(opts.signal && { signal: opts.signal }),
    })
    const status = response.status
    if (data && status === 200 && data.decision === 'allow') {
      const ok = data as ExecuteAllowedBody
      return { kind: 'executed', status, requestId: ok.request_id, result: ok.result, body: ok }
    }
    if (data && status === 202 && data.decision === 'approval_required') {
      const held = data as ExecuteHeldBody
      return {
        kind: 'held',
        status,
        requestId: held.request_id,
        approvalId: held.approval_id,
        expiresAt: held.expires_at,
        reason: held.reason,
        body: held,
      }
    }
    if (!isErrorBody(error)) {
      throw new WardenClientError(`the gateway answered ${status} without an error body`, status)
    }
    const code = error.error.code
    const message = error.error.message
    const requestId = error.request_id
    if ((status === 403 || status === 429) && 'decision' in error && error.decision === 'deny') {
      const denied = error as ExecuteDeniedBody
      const retryAfter = Number(response.headers.get('retry-after'))
      return {
        kind: 'denied',
        status,
        requestId: denied.request_id,
        code,
        message,
        layer: denied.layer,
        ...(Number.isFinite(retryAfter) && retryAfter > 0 && { retryAfterSeconds: retryAfter }),
        body: denied,
      }
    }
    const kind =
      status === 400 ? 'invalid' : status === 502 || status === 504 ? 'tool_failed' : 'error'
    return { kind, status, code, message, ...(requestId !== undefined && { requestId }) }
  }

  /** One read of an approval; `waitSeconds` long-polls while it is unsettled. */
  async function getApproval(approvalId: string, waitSeconds = 0, signal?: AbortSignal) {
    const { data, error, response } = await api.GET('/gateway/approvals/{id}', {
      params: {
        path: { id: approvalId },
        query: waitSeconds > 0 ? { wait: waitSeconds.toFixed(3) } : undefined,
      },
      ...(signal && { signal }),
    })
    if (data) return { approval: data.approval }
    if (isErrorBody(error)) {
      return {
        error: { kind: 'error', status: response.status, ...error.error } as const,
      }
    }
    throw new WardenClientError(`the gateway answered ${response.status} without a body`)
  }

  /**
   * Wait until a held call is decided (and, when approved, run): long-polls
   * `GET /gateway/approvals/{id}`, which the requesting agent may read.
   */
  async function waitForApproval(
    approvalId: string,
    opts: WaitOptions = {},
  ): Promise<ApprovalOutcome> {
    const deadline = Date.now() + (opts.timeoutMs ?? 300_000)
    for (;;) {
      opts.signal?.throwIfAborted()
      const left = deadline - Date.now()
      const read = await getApproval(
        approvalId,
        Math.max(0, Math.min(POLL_SECONDS, left / 1000)),
        opts.signal,
      )
      if (read.error) return read.error
      const approval = read.approval
      const settled = settledOutcome(approval)
      if (settled) return settled
      if (Date.now() >= deadline) return { kind: 'timeout', approval }
    }
  }

  /** The tools the gateway knows (description and JSON Schema of the parameters). */
  async function tools(): Promise<ToolInfo[]> {
    const { data, response } = await api.GET('/config/tools')
    if (!data) throw new WardenClientError(`GET /config/tools answered ${response.status}`)
    return data.tools
  }

  const client = { agentId: options.agentId, execute, waitForApproval, getApproval, tools, api }
  return {
    ...client,
    /** `wrapTool(name, fn?, options?)`: see wrap.ts; every call of the result goes through Warden. */
    wrapTool: <P extends Record<string, unknown>, R = unknown>(
      name: string,
      fn?: (params: P) => R | Promise<R>,
      wrapOptions?: WrapOptions,
    ) => wrapTool(client, name, fn, wrapOptions),
  }
}

function isErrorBody(x: unknown): x is ErrorBody & { decision?: string } {
  if (typeof x !== 'object' || x === null || !('error' in x)) return false
  const e = (x as { error: unknown }).error
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { message?: unknown }).message === 'string'
  )
}

/** The outcome of a settled approval, or undefined while it is pending or still running. */
function settledOutcome(approval: Approval): ApprovalOutcome | undefined {
  switch (approval.status) {
    case 'pending':
      return undefined
    case 'denied':
      return {
        kind: 'denied',
        approval,
        code: 'approval_denied',
        message: `denied by ${approval.decided_by ?? 'an approver'}${approval.comment ? `: ${approval.comment}` : ''}`,
      }
    case 'expired':
      return {
        kind: 'denied',
        approval,
        code: 'approval_expired',
        message: 'nobody decided before the approval expired',
      }
    case 'approved':
      if (!approval.executed_at) return undefined
      if (approval.outcome === 'ok') return { kind: 'executed', approval, result: approval.result }
      return {
        kind: 'tool_failed',
        approval,
        code: 'upstream_error',
        message:
          approval.outcome === 'unknown'
            ? 'approved, but whether the tool acted is unknown (it did not answer in time)'
            : 'approved, but the tool failed',
      }
  }
}
