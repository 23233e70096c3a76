import type { ToolConfig } from '../domain/config.js'

/** Runs an allowed call against the real tool. Throws `ToolFailure` for tool-side failures. */
export interface Executor {
  execute(
    tool: ToolConfig,
    params: Readonly<Record<string, unknown>>,
    requestId: string,
  ): Promise<unknown>
}

/** A tool-side failure: `error` (the tool refused or failed) or `timeout` (outcome unknown). */
export class ToolFailure extends Error {
  constructor(
    readonly kind: 'error' | 'timeout',
    message: string,
  ) {
    super(message)
    this.name = 'ToolFailure'
  }
}
