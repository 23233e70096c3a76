import { sha256Hex } from '../../auth/credentials.js'
import type { Verdict } from '../../domain/types.js'
import type { ResolveContext, ResolveLayer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 1: the bearer key names the agent; the claimed `agent_id` must be that agent. Keys are
 * high-entropy random strings, so a plain SHA-256 lookup is safe (no password stretching needed).
 */
export function identity(rt: Runtime): ResolveLayer<'identity'> {
  return {
    name: 'identity',
    check(ctx) {
      const { credential, agentId } = ctx.call
      const agent = credential ? rt.agentsByKeyHash.get(sha256Hex(credential)) : undefined
      if (!agent) {
        const reason = credential ? 'unknown credential' : 'missing bearer credential'
        return { outcome: 'deny', code: 'unauthenticated', reason, risk: 40 }
      }
      if (agent.id !== agentId) {
        // Impersonation attempt: the key is valid but for someone else.
        return {
          outcome: 'deny',
          code: 'unauthenticated',
          reason: `credential does not belong to agent \`${agentId}\``,
          risk: 60,
        }
      }
      ctx.agent = agent
      if (ctx.call.delegation === undefined)
        return { outcome: 'pass', reason: `authenticated as \`${agent.id}\`` }
      // Only a delegated call waits (on the token check); the common path stays synchronous.
      return delegated(rt, ctx, agent.id, ctx.call.delegation)
    },
  }
}

/** A delegated call: the token must be the gateway's, unexpired, and addressed to this agent. */
async function delegated(
  rt: Runtime,
  ctx: ResolveContext,
  agentId: string,
  token: string,
): Promise<Verdict> {
  const checked = await rt.delegation.verify(token, agentId, ctx.now)
  if (!checked.ok || checked.delegation.to !== agentId) {
    const reason = checked.ok
      ? `the delegation is addressed to \`${checked.delegation.to}\`, not \`${agentId}\``
      : checked.why
    return { outcome: 'deny', code: 'unauthenticated', reason, risk: 60 }
  }
  const bound = checked.delegation.session
  if (rt.config.messaging.bind_session && ctx.call.sessionId !== bound) {
    return {
      outcome: 'deny',
      code: 'delegation_session_mismatch',
      reason: `the delegation is bound to session ${bound === undefined ? '(none)' : `\`${bound}\``}; the call must be made in it`,
      risk: 60,
    }
  }
  ctx.chain = checked.delegation.chain
  if (checked.delegation.human) ctx.human = checked.delegation.human
  const sender = ctx.chain[ctx.chain.length - 1]
  if (checked.delegation.session && sender)
    ctx.delegatorSession = { agent: sender, session: checked.delegation.session }
  return {
    outcome: 'pass',
    reason: `authenticated as \`${agentId}\`, acting for ${ctx.chain.map((c) => `\`${c}\``).join(' → ')}`,
    details: { chain: [...ctx.chain, agentId] },
  }
}
