import { SdkError, SdkErrorCode, type CallToolResult } from '@modelcontextprotocol/client'
import type { ToolConfig, WardenConfig } from '../domain/config.js'
import type { McpUpstreams } from './mcp-upstreams.js'
import { ToolFailure, type Executor } from './types.js'

/** Longest upstream error text passed on to the agent and the audit. */
const MAX_ERROR_CHARS = 1000

/**
 * Forwards an allowed call to its MCP upstream as `tools/call`, once (no retry: the upstream may
 * have acted). The result's `content` (and `structuredContent`) is the tool result, so the output
 * checks (PII masking, injection scan, taint) see what the upstream said.
 */
export function mcpExecutor(config: WardenConfig, upstreams: McpUpstreams): Executor {
  const timeouts = new Map(config.mcp_upstreams.map((u) => [u.name, u.call_timeout_ms]))
  return {
    async execute(tool, params) {
      const ex = tool.executor
      if (ex.type !== 'mcp') throw new Error(`tool \`${tool.name}\` is not an mcp tool`)
      refuseBlocked(tool, upstreams)
      const client = upstreams.client(ex.upstream)
      if (!client) throw new ToolFailure('error', `upstream ${ex.upstream} unavailable`)
      const timeoutMs = timeouts.get(ex.upstream) ?? 30_000
      let result: CallToolResult
      try {
        result = await client.callTool(
          { name: tool.name.slice(ex.upstream.length + 1), arguments: { ...params } },
          { timeout: timeoutMs, maxTotalTimeout: timeoutMs },
        )
      } catch (err) {
        throw failureOf(tool, err, timeoutMs)
      }
      if (result.isError) throw new ToolFailure('error', `\`${tool.name}\`: ${textOf(result)}`)
      return {
        content: result.content,
        ...(result.structuredContent !== undefined && {
          structuredContent: result.structuredContent,
        }),
      }
    },
  }
}

/** A tool whose definition is not the pinned one, or was never seen, is not forwarded. */
function refuseBlocked(tool: ToolConfig, upstreams: McpUpstreams): void {
  const blocked = upstreams.check(tool.name)
  if (blocked === 'changed')
    throw new ToolFailure('error', 'tool definition changed; an approver must accept it')
  if (blocked === 'poisoned')
    throw new ToolFailure(
      'error',
      'tool description looks like a prompt injection; an approver must accept it',
    )
  if (blocked === 'shadowing')
    throw new ToolFailure(
      'error',
      'tool description names tools of another server; an approver must accept it',
    )
  if (blocked === 'unrecorded')
    throw new ToolFailure(
      'error',
      `\`${tool.name}\`'s definition is not in the audit log yet (the store did not take it); try again`,
    )
  if (blocked === 'unknown' && upstreams.client(executorUpstream(tool)))
    throw new ToolFailure('error', `\`${tool.name}\` is not offered by its upstream`)
}

function executorUpstream(tool: ToolConfig): string {
  return tool.executor.type === 'mcp' ? tool.executor.upstream : ''
}

/**
 * A timeout or a connection lost mid-call leaves the outcome unknown (the upstream may have
 * acted); anything else (a protocol error, an invalid result) is a failure.
 */
function failureOf(tool: ToolConfig, err: unknown, timeoutMs: number): ToolFailure {
  if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout)
    return new ToolFailure('timeout', `\`${tool.name}\` did not answer within ${timeoutMs} ms`)
  if (err instanceof SdkError && err.code === SdkErrorCode.ConnectionClosed)
    return new ToolFailure('timeout', `\`${tool.name}\`: the upstream closed during the call`)
  const message = (err as Error).message.slice(0, MAX_ERROR_CHARS)
  return new ToolFailure('error', `\`${tool.name}\` failed upstream: ${message}`)
}

/** The text blocks of an error result, bounded. */
function textOf(result: CallToolResult): string {
  const text = result.content
    .flatMap((c) => (c.type === 'text' ? [c.text] : []))
    .join('\n')
    .slice(0, MAX_ERROR_CHARS)
  return text || 'the upstream reported an error'
}
