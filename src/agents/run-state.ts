import type { RunLease } from '../store/run-store.js'
import type { AgentInfo } from './gateway-client.js'
import type { ChatMessage, ModelProvider, ToolCallRequest, ToolSpec } from './providers/types.js'
import type { RunInput, Step } from './runtime.js'

/** A run in progress, as the runtime drives it. */
export interface RunState {
  input: RunInput
  agent: AgentInfo
  key: string
  tools: ToolSpec[]
  messages: ChatMessage[]
  steps: Step[]
  /** Calls of the current model turn not yet sent to the gateway. */
  queue: ToolCallRequest[]
  /** The held call the run waits on; `nested` when it is a delegated agent's run that is held. */
  held?: { call: ToolCallRequest; approvalId: string; nested?: string }
  turns: number
  depth: number
  /** Set while a resumed run is driven: the store's lease on it (never stored). */
  lease?: RunLease
  /**
   * Set while a nested run is driven: renews the leases of the runs it is nested in, so their
   * driver keeps them for as long as this run works (never stored).
   */
  outer?: () => Promise<void>
}

/**
 * A held run as stored: JSON only. The provider is kept by name and the agent's key not at all
 * (it is looked up again by agent id on resume). The delegation token is kept: it only narrows
 * what the agent's own key may do, is useless without that key, and expires on its own;
 * dropping it would let a resumed delegated run act with the agent's full permissions.
 */
export interface SavedRunState {
  version: 1
  input: Omit<RunInput, 'provider'> & { provider: ModelProvider['name'] }
  agent: AgentInfo
  tools: ToolSpec[]
  messages: ChatMessage[]
  steps: Step[]
  queue: ToolCallRequest[]
  held?: RunState['held']
  turns: number
  depth: number
}

export function toSaved(state: RunState): SavedRunState {
  const { provider, ...input } = state.input
  return {
    version: 1,
    input: { ...input, provider: provider.name },
    agent: state.agent,
    tools: state.tools,
    messages: state.messages,
    steps: state.steps,
    queue: state.queue,
    ...(state.held && { held: state.held }),
    turns: state.turns,
    depth: state.depth,
  }
}

/** What a stored run needs from this instance to be driven again. */
export interface Revival {
  provider: ModelProvider
  key: string
}

/** The stored run back in runtime form; null when it is not a format this version reads. */
export function fromSaved(saved: unknown, revival: (s: SavedRunState) => Revival): RunState | null {
  const s = saved as Partial<SavedRunState> | null
  if (s?.version !== 1 || !s.input || !s.agent) return null
  const { provider, key } = revival(s as SavedRunState)
  const { held, version: _version, ...rest } = s as SavedRunState
  return {
    ...rest,
    input: { ...rest.input, provider },
    key,
    ...(held && { held }),
  }
}
