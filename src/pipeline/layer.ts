import type { AgentConfig, ToolConfig } from '../domain/config.js'
import type { LayerName, ToolCall, Verdict } from '../domain/types.js'
import type { SessionSnapshot, TaintEntry } from '../state/types.js'

/** A call being resolved: the identity and allowlist layers find its agent and tool. */
export interface ResolveContext {
  readonly call: ToolCall
  readonly now: number
  /** Sum of the risk signals of the layers that ran so far. */
  risk: number
  /** Set by the identity layer. */
  agent?: AgentConfig
  /** Set by the allowlist layer. */
  tool?: ToolConfig
  /** Set by the identity layer for a delegated call: the delegating agents, oldest first. */
  chain?: readonly string[]
  human?: string
  /** For a delegated call: the delegating agent's session, whose taint the call inherits. */
  delegatorSession?: { agent: string; session: string }
}

/** A call whose agent and tool are known: what resolution hands to the layers after it. */
export interface ResolvedCall extends Readonly<ResolveContext> {
  readonly agent: AgentConfig
  readonly tool: ToolConfig
}

/** What one decision knows once the call is resolved and its state loaded. */
export interface DecisionContext extends ResolvedCall {
  /** Sum of the risk signals of the layers that ran so far. */
  risk: number
  /** The agent's and session's state, loaded once before the layers run. */
  readonly state: SessionSnapshot
  /** Untrusted text of this call the taint layer saw; committed to the session with the decision. */
  readonly newTaint: TaintEntry[]
  /**
   * The agent's previous tool in this session (`^` at the start of one), set by the sequence
   * layer; the runner learns the transition from it when the call is allowed.
   */
  previousTool?: string
  /**
   * Set by the policy layer when a data-flow rule (`effect: release`) lets this call out of the
   * session quarantine; the taint layer then does not apply `injection.after_injected_output`.
   */
  released?: { rule: string; reason: string }
}

/** One stage of the pipeline. Return a verdict; throw only when the layer itself is broken. */
export interface Layer<N extends LayerName = LayerName> {
  readonly name: N
  check(ctx: DecisionContext): Verdict | Promise<Verdict>
}

/** A stage of resolution (identity, allowlist): it may fill in the call's agent and tool. */
export interface ResolveLayer<N extends LayerName = LayerName> {
  readonly name: N
  check(ctx: ResolveContext): Verdict | Promise<Verdict>
}

export const PASS: Verdict = Object.freeze({ outcome: 'pass' })
