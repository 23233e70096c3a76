import type { ErrorCode, ExecuteOptions, WardenClient } from './client.js'

/**
 * Why Warden did not run a call, as a value a framework hands back to the model: a layer denied
 * it, the parameters were refused, a person denied it, or nobody decided in time. Its JSON form
 * (what frameworks serialize into the tool message) says so in words the model can act on.
 */
export class WardenDenied {
  readonly warden = 'denied' as const
  constructor(
    readonly tool: string,
    /** A code from docs/errors.md, or `approval_timeout` (nobody decided within the deadline). */
    readonly code: ErrorCode | 'approval_timeout',
    readonly reason: string,
    readonly extra: { requestId?: string; approvalId?: string; layer?: string | null } = {},
  ) {}

  toJSON() {
    return {
      error: `Warden did not run \`${this.tool}\``,
      code: this.code,
      reason: this.reason,
      ...(this.extra.approvalId && { approval_id: this.extra.approvalId }),
    }
  }

  toString() {
    return JSON.stringify(this.toJSON())
  }
}

export function isWardenDenied(x: unknown): x is WardenDenied {
  return x instanceof WardenDenied
}

/** The tool ran (Warden allowed it) but failed, or the gateway could not decide: thrown. */
export class WardenToolError extends Error {
  override name = 'WardenToolError'
  constructor(
    readonly tool: string,
    readonly code: ErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(`${tool}: ${code}: ${message}`)
  }
}

export interface WrapOptions extends Omit<ExecuteOptions, 'signal'> {
  /** How long to wait for a person when the call is held (default 5 minutes). */
  approvalTimeoutMs?: number
  /** `return` (default): a denial is returned as a `WardenDenied`; `throw`: it is thrown. */
  onDenied?: 'return' | 'throw'
  /** Called when the call is held, before waiting (e.g. to tell the user). */
  onHeld?: (held: { approvalId: string; reason: string; expiresAt: string }) => void
}

/** Per call: the session and context of this call, and a signal to stop waiting. */
export type CallOptions = Pick<ExecuteOptions, 'sessionId' | 'context' | 'signal'>

export class WardenDeniedError extends Error {
  override name = 'WardenDeniedError'
  constructor(readonly denied: WardenDenied) {
    super(`${denied.code}: ${denied.reason}`)
  }
}

/**
 * Run one call through Warden, the way a wrapped tool does: the executed result; a
 * `WardenDenied` for a denial, refused parameters, a person's "no", an expiry or no decision in
 * time (thrown as `WardenDeniedError` with `onDenied: 'throw'`); a held call is waited for.
 * A tool failure or a gateway that cannot decide throws `WardenToolError`.
 */
export async function callThroughWarden(
  client: Pick<WardenClient, 'execute' | 'waitForApproval'>,
  tool: string,
  params: Record<string, unknown>,
  opts: WrapOptions & CallOptions = {},
): Promise<unknown> {
  const deny = (d: WardenDenied) => {
    if (opts.onDenied === 'throw') throw new WardenDeniedError(d)
    return d
  }
  const { approvalTimeoutMs, onDenied: _o, onHeld, signal, ...exec } = opts
  const out = await client.execute(tool, params, { ...exec, ...(signal && { signal }) })
  switch (out.kind) {
    case 'executed':
      return out.result
    case 'denied':
      return deny(
        new WardenDenied(tool, out.code, out.message, {
          requestId: out.requestId,
          layer: out.layer,
        }),
      )
    case 'invalid':
      return deny(new WardenDenied(tool, out.code, out.message, { requestId: out.requestId }))
    case 'tool_failed':
    case 'error':
      throw new WardenToolError(tool, out.code, out.message, out.status)
    case 'held': {
      onHeld?.({ approvalId: out.approvalId, reason: out.reason, expiresAt: out.expiresAt })
      const decided = await client.waitForApproval(out.approvalId, {
        ...(approvalTimeoutMs !== undefined && { timeoutMs: approvalTimeoutMs }),
        ...(signal && { signal }),
      })
      const ids = { requestId: out.requestId, approvalId: out.approvalId }
      switch (decided.kind) {
        case 'executed':
          return decided.result
        case 'denied':
          return deny(new WardenDenied(tool, decided.code, decided.message, ids))
        case 'timeout':
          return deny(
            new WardenDenied(
              tool,
              'approval_timeout',
              `held for a person (${out.reason}); no decision yet, approval ${out.approvalId} is still pending`,
              ids,
            ),
          )
        case 'tool_failed':
          throw new WardenToolError(tool, decided.code, decided.message)
        case 'error':
          throw new WardenToolError(tool, decided.code, decided.message, decided.status)
      }
      throw new Error('unexpected approval outcome')
    }
  }
}

/**
 * Wrap a tool so every call goes through Warden: `const refund = wrapTool(client,
 * 'issue_refund', issueRefund)`. Warden decides and then runs the tool with the executor its
 * `tools.yaml` names (there is no "decide only" mode), so `fn` is never called: it gives the
 * wrapper its parameter and result types, so the wrapper drops in where `fn` was used. Results:
 * see `callThroughWarden`.
 */
export function wrapTool<P extends Record<string, unknown>, R = unknown>(
  client: Pick<WardenClient, 'execute' | 'waitForApproval'>,
  name: string,
  _fn?: (params: P) => R | Promise<R>,
  options: WrapOptions = {},
): (params: P, call?: CallOptions) => Promise<Awaited<R> | WardenDenied> {
  // The result is what the gateway's executor returned: typed as `fn`'s, not checked.
  return async (params, call = {}) =>
    (await callThroughWarden(client, name, params, { ...options, ...call })) as never
}

/** What a framework hands the model for a call's value: a denial as its plain JSON form. */
export function forModel(value: unknown): unknown {
  return value instanceof WardenDenied ? value.toJSON() : value
}

/** A Warden tool name as a model function name (`a-zA-Z0-9_-`, as the OpenAI API requires). */
export function modelToolName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_-]/g, '_')
}

/** A tool as the wrappers declare it to a model: what `GET /config/tools` says about it. */
export interface ToolSpec {
  name: string
  description: string
  /** The JSON Schema of the parameters. */
  params: Record<string, unknown>
}

/** The named tools' specs from the gateway, in the order given; an unknown name throws. */
export async function specsOf(
  client: { tools: () => Promise<ToolSpec[]> },
  names: readonly string[],
): Promise<ToolSpec[]> {
  const all = new Map((await client.tools()).map((t) => [t.name, t]))
  return names.map((n) => {
    const spec = all.get(n)
    if (!spec) throw new Error(`the gateway has no tool \`${n}\``)
    return spec
  })
}
