import type { AgentConfig, ToolConfig } from '../domain/config.js'
import type { LayerName, ToolCall, Verdict } from '../domain/types.js'

/** What one decision knows so far; earlier layers fill it in for later ones. */
export interface DecisionContext {
  readonly call: ToolCall
  readonly now: number
  /** Set by the identity layer; every later layer may rely on it. */
  agent?: AgentConfig
  /** Set by the allowlist layer; every later layer may rely on it. */
  tool?: ToolConfig
  /** Sum of the risk signals of the layers that ran so far. */
  risk: number
  /**
   * The agent's previous tool in this session (`^` at the start of one), set by the sequence
   * layer; the runner learns the transition from it when the call is allowed.
   */
  previousTool?: string
  /** Set by the identity layer for a delegated call: the delegating agents, oldest first. */
  chain?: readonly string[]
  human?: string
  /** For a delegated call: the delegating agent's session, whose taint the call inherits. */
  delegatorSession?: { agent: string; session: string }
}

/** One stage of the pipeline. Return a verdict; throw only when the layer itself is broken. */
export interface Layer {
  readonly name: LayerName
  check(ctx: DecisionContext): Verdict | Promise<Verdict>
}

/** The agent and tool a layer after the allowlist needs; their absence is a wiring bug. */
export function resolved(ctx: DecisionContext): { agent: AgentConfig; tool: ToolConfig } {
  if (!ctx.agent || !ctx.tool)
    throw new Error('layer ran before identity and allowlist resolved the call')
  return { agent: ctx.agent, tool: ctx.tool }
}

export const PASS: Verdict = Object.freeze({ outcome: 'pass' })
