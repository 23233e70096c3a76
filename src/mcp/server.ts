import {
  Server,
  type CallToolResult,
  type ServerContext,
  type Tool,
} from '@modelcontextprotocol/server'
import type { PublicApproval } from '../approvals/service.js'
import type { AgentConfig, ToolConfig } from '../domain/config.js'
import { TOOL_NAME } from '../domain/config.js'
import { timeOrderedId } from '../domain/ids.js'
import type { CallOutcome } from '../domain/outcome.js'
import type { ToolCall } from '../domain/types.js'
import type { Gateway } from '../gateway/service.js'
import { callResult, executedResult, toolError } from './results.js'

/** Who is calling: the agent its bearer key proved, and that key (for the engine's identity layer). */
export interface McpCaller {
  agent: AgentConfig
  credential: string
}

/** Longest a `tools/call` with a `progressToken` waits for a person (also capped by the TTL). */
export const MAX_HOLD_WAIT_MS = 60_000
/** How often a waiting call tells the client it is still waiting. */
const PROGRESS_EVERY_MS = 5_000

/**
 * One MCP server for one request of one agent. Built per request (the SDK's serving entry calls
 * the factory for each), so the tool list is the caller's own and nothing of one agent's
 * request can reach another's.
 *
 * The low-level `Server` rather than `McpServer.registerTool`: `registerTool` validates the
 * arguments itself, and a call it refused would never reach the pipeline, so it would be neither
 * decided by the params layer nor audited. Here every `tools/call` goes to `Gateway.execute`.
 */
export function mcpServer(gateway: Gateway, caller: McpCaller, version: string): Server {
  const server = new Server(
    { name: 'warden', version },
    {
      capabilities: { tools: {} },
      // INVARIANT: the tool list depends on who asks; no client or proxy may reuse it for another.
      cacheHints: { 'tools/list': { ttlMs: 0, cacheScope: 'private' } },
    },
  )
  server.setRequestHandler('tools/list', () => ({ tools: toolsOf(gateway, caller.agent) }))
  server.setRequestHandler('tools/call', (request, ctx) =>
    callTool(gateway, caller, request.params, ctx),
  )
  return server
}

/** The agent's allowlist as MCP tools; a name the configuration does not define is left out. */
export function toolsOf(gateway: Gateway, agent: AgentConfig): Tool[] {
  const tools = gateway.runtime.tools
  return agent.tools.flatMap((name) => {
    const t = tools.get(name)
    return t ? [asMcpTool(t)] : []
  })
}

/**
 * No annotations: the configuration says how risky a tool is, not whether it is read-only or
 * destructive, and the spec's defaults (may write, may be destructive) are the safe reading.
 * Inventing hints from risk would tell clients something nobody configured.
 */
function asMcpTool(t: ToolConfig): Tool {
  return {
    name: t.name,
    description: t.description,
    inputSchema: t.params as Tool['inputSchema'],
  }
}

async function callTool(
  gateway: Gateway,
  caller: McpCaller,
  params: { name: string; arguments?: Record<string, unknown>; _meta?: unknown },
  ctx: ServerContext,
): Promise<CallToolResult> {
  const requestId = timeOrderedId()
  // The same check as the HTTP door: a look-alike or oversized name is refused, never audited raw.
  if (!TOOL_NAME.test(params.name)) {
    const message =
      'the tool name must be 1-64 characters of letters, digits and `_ . - /`, without `..`'
    // Refused before deciding, as the HTTP door does: a rejection record, the name left out.
    await gateway.recordRejection(requestId, 'invalid_tool_name', `MCP tools/call: ${message}`)
    return toolError(requestId, 'refused', 'invalid_tool_name', message)
  }
  const call: ToolCall = {
    requestId,
    agentId: caller.agent.id,
    tool: params.name,
    params: params.arguments ?? {},
    sessionId: ctx.sessionId,
    context: {},
    credential: caller.credential,
    receivedAt: Date.now(),
    door: 'mcp',
  }
  const outcome = await gateway.execute(call)
  const fromUpstream = gateway.runtime.tools.get(params.name)?.executor.type === 'mcp'
  const token = ctx.mcpReq._meta?.progressToken
  if (outcome.kind === 'held' && token !== undefined && outcome.duplicateOf === undefined)
    return waitForDecision(gateway, caller, outcome, { requestId, token, fromUpstream }, ctx)
  return callResult(requestId, outcome, fromUpstream)
}

/**
 * A held call whose client asked for progress: wait for the person's decision (at most
 * `MAX_HOLD_WAIT_MS`, and never past the approval's expiry), telling the client every
 * `PROGRESS_EVERY_MS` that it is still waiting; then answer with what happened. When the time
 * is up, the answer is the same "held" result a client without a progress token gets at once.
 */
async function waitForDecision(
  gateway: Gateway,
  caller: McpCaller,
  held: Extract<CallOutcome, { kind: 'held' }>,
  how: { requestId: string; token: string | number; fromUpstream: boolean },
  ctx: ServerContext,
): Promise<CallToolResult> {
  const { requestId, token, fromUpstream } = how
  const id = held.approval.id
  const until = Math.min(Date.now() + MAX_HOLD_WAIT_MS, Date.parse(held.approval.expiresAt))
  for (let waited = 0; Date.now() < until && !ctx.mcpReq.signal.aborted;) {
    await ctx.mcpReq
      .notify({
        method: 'notifications/progress',
        params: {
          progressToken: token,
          progress: waited,
          message: `held for approval ${id}; waiting for a person`,
        },
      })
      .catch(() => {})
    const waitMs = Math.min(PROGRESS_EVERY_MS, until - Date.now())
    const read = await gateway.approvals.read(id, caller.credential, {
      waitMs,
      signal: ctx.mcpReq.signal,
    })
    if (read.kind !== 'decided') break
    const settled = settledResult(requestId, read.approval, fromUpstream)
    if (settled) return settled
    waited += waitMs
  }
  return callResult(requestId, held, fromUpstream)
}

/** A decided approval as a tool result; null while it is still pending (or approved, not yet run). */
function settledResult(
  requestId: string,
  a: PublicApproval,
  fromUpstream: boolean,
): CallToolResult | null {
  const extra = { approval_id: a.id }
  switch (a.status) {
    case 'denied':
      return toolError(
        requestId,
        'denied',
        'approval_denied',
        `a person denied the held call${typeof a.comment === 'string' && a.comment ? `: ${a.comment}` : ''}`,
        extra,
      )
    case 'expired':
      return toolError(requestId, 'denied', 'approval_expired', 'nobody decided in time', extra)
    case 'approved':
      if (!a.executed_at) return null
      if (a.outcome === 'ok') return executedResult(requestId, a.result, [], fromUpstream)
      return toolError(
        requestId,
        'tool failed',
        a.outcome === 'unknown' ? 'upstream_timeout' : 'upstream_error',
        'approved, but the tool failed',
        extra,
      )
    default:
      return null
  }
}
