/**
 * Why a pinned MCP tool may not be called; absent when it may. `changed`: the upstream offers
 * another definition than the pinned one; `poisoned`: the description reads as a prompt
 * injection; `shadowing`: the description names a tool of another server (or one of Warden's
 * own), the way a malicious server steers how a model uses tools it does not own.
 */
export type PinBlock = 'changed' | 'poisoned' | 'shadowing'

/** Why a tool was blocked at first sight. */
export type FirstSightBlock = Exclude<PinBlock, 'changed'>

/**
 * What an upstream's tool listing changed that must be in the audit log: a tool pinned at first
 * sight (`blocked` when its description blocked it at once: the detector's `score`, or the
 * other tools it `shadows`), or a tool that now offers another definition than the pinned one.
 */
export type PinChange =
  | {
      kind: 'pinned'
      tool: string
      hash: string
      blocked?: FirstSightBlock
      score?: number
      shadows?: string[]
    }
  | { kind: 'changed'; tool: string; pinned: string; current: string }
