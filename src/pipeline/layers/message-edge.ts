import type { ToolConfig } from '../../domain/config.js'
import type { ResolveLayer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * The name a message takes in the pipeline, its trace and the agent's history. It contains `:`,
 * which no configured tool name may (`TOOL_NAME`), so it can neither collide with a tool nor be
 * asked for through `POST /gateway/execute`.
 */
export const MESSAGE_TOOL = 'agent:message'

/** A message as the layers after resolution see it: a low-risk, internal call with no executor. */
export const MESSAGE_TOOL_CONFIG: ToolConfig = Object.freeze({
  name: MESSAGE_TOOL,
  description: 'a message to another agent, delivered through the gateway',
  risk: 'low',
  classification: 'internal',
  output_trust: 'trusted',
  executor: { type: 'demo' },
  params: {},
  approval: 'never',
}) as ToolConfig

/**
 * Layer 2 for messages: the allowlist of a message is the configured edges. The sender may
 * message the receiver only along an edge, the receiver may not already be in the delegation
 * chain (no loops), the chain may not grow past `messaging.max_chain`, and the content may not be
 * longer than `messaging.max_message_chars` (checked here, before anything scans it).
 */
export function messageEdge(rt: Runtime): ResolveLayer<'tool_allowlist'> {
  const { edges, max_chain: maxChain, max_message_chars: maxChars } = rt.config.messaging
  const allowed = new Set(edges.map((e) => `${e.from}\n${e.to}`))
  return {
    name: 'tool_allowlist',
    check(ctx) {
      const from = ctx.agent?.id ?? ''
      const to = String(ctx.call.params.to_agent)
      const chain = [...(ctx.chain ?? []), from]
      const refuse = (reason: string) =>
        ({ outcome: 'deny', code: 'message_not_allowed', reason, risk: 40 }) as const
      if (!allowed.has(`${from}\n${to}`)) return refuse(`\`${from}\` may not message \`${to}\``)
      if (chain.includes(to)) return refuse(`\`${to}\` is already in the chain (a loop)`)
      if (chain.length + 1 > maxChain)
        return refuse(
          `the delegation chain would be ${chain.length + 1} agents long; at most ${maxChain}`,
        )
      const content = ctx.call.params.content
      if (typeof content !== 'string' || content.length > maxChars)
        return {
          outcome: 'deny',
          code: 'invalid_request',
          reason: `\`content\` is longer than ${maxChars} characters`,
        }
      ctx.tool = MESSAGE_TOOL_CONFIG
      return { outcome: 'pass', reason: `\`${from}\` may message \`${to}\`` }
    },
  }
}
