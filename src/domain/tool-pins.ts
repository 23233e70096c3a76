/** Why a pinned MCP tool may not be called; absent when it may. */
export type PinBlock = 'changed' | 'poisoned'

/**
 * What an upstream's tool listing changed that must be in the audit log: a tool pinned at first
 * sight (`score` when its description looked like an injection and blocked it at once), or a
 * tool that now offers another definition than the pinned one.
 */
export type PinChange =
  | { kind: 'pinned'; tool: string; hash: string; score?: number }
  | { kind: 'changed'; tool: string; pinned: string; current: string }
