import { LAYER_NAMES } from '../domain/types.js'
import type { Runtime } from './runtime.js'
import { approval } from './layers/approval.js'
import { guards } from './layers/guards.js'
import { identity } from './layers/identity.js'
import { injection } from './layers/injection.js'
import { messageEdge } from './layers/message-edge.js'
import { params } from './layers/params.js'
import { policy } from './layers/policy.js'
import { rateLimit } from './layers/rate-limit.js'
import { sequence } from './layers/sequence.js'
import { taint } from './layers/taint.js'
import { toolAllowlist } from './layers/tool-allowlist.js'

/**
 * The seed's ten layers, in order. The order is the design: change it here and only here. The
 * first two resolve the call (who, which tool); the runner loads the call's state once they
 * passed, and the rest decide.
 */
export function layers(rt: Runtime) {
  return {
    resolve: [
      identity(rt), //       who is calling; everything below trusts `ctx.agent`
      toolAllowlist(rt), //  cheapest authorization, and resolves `ctx.tool` for the rest
    ],
    decide: [
      policy(rt), //         attribute rules (CEL) before we spend any rate-limit budget
      rateLimit(rt), //      counts only calls the agent is entitled to make
      params(rt), //         schema before any layer reads parameter values
      injection(rt), //      scans the validated parameters and the untrusted context
      taint(rt), //          provenance of sensitive values; records this call's user input
      guards(rt), //         business thresholds on values known to be well-typed
      approval(rt), //       tool-level and risk-level holds, after all risk signals above
      sequence(rt), //       history rules last: they need the call to be otherwise acceptable
    ],
  } as const
}

/**
 * Agent-to-agent messages run through the same runner, with the layers that mean something for a
 * message; each check (identity and delegation, rate limits, injection, quarantine) exists once.
 */
export function messageLayers(rt: Runtime) {
  return {
    resolve: [
      identity(rt), //       who is sending, and for whom (a presented delegation)
      messageEdge(rt), //    the message's allowlist: a configured edge, no loop, chain length
    ],
    decide: [
      rateLimit(rt), //      messages spend the sender's (and its delegators') budget
      injection(rt), //      the content, as sent (hidden characters included)
      sequence(rt), //       quarantine of the sender or any agent of its chain
    ],
  } as const
}

type Registry = ReturnType<typeof layers>
type Names<T extends readonly { name: string }[]> = { -readonly [K in keyof T]: T[K]['name'] }

/** The layer names in pipeline order, as the registry above builds them. */
export type LayerOrder = Names<[...Registry['resolve'], ...Registry['decide']]>

// INVARIANT (checked by the compiler): the registry builds exactly `LAYER_NAMES`, in its order.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const registryMatchesDomain: Same<LayerOrder, [...typeof LAYER_NAMES]> = true
void registryMatchesDomain
