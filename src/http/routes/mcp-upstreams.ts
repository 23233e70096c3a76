import type { FastifyPluginAsync } from 'fastify'
import { WardenError } from '../../domain/errors.js'
import type { Pin } from '../../executors/mcp-pins.js'
import type { UpstreamStatus } from '../../executors/mcp-upstreams.js'
import type { Runtime } from '../../pipeline/runtime.js'
import { requireApprover } from '../guards.js'
import { mcpAcceptBody, parseBody } from '../schemas.js'

/** What people see of the MCP upstreams, and the one thing they do: accept a changed tool. */
export interface UpstreamAdmin {
  view(): { upstreams: UpstreamStatus[]; pins: Pin[]; unlisted: string[] }
  /**
   * Accept `definition` (the SHA-256 the approver saw as `current`) as the tool's pin, recorded
   * first; `unknown` for a tool no upstream offers, `changed` when the upstream now offers another.
   */
  accept(tool: string, definition: string, approver: string): Promise<Pin | 'unknown' | 'changed'>
}

export interface McpUpstreamRoutesOptions {
  runtime: Runtime
  admin: UpstreamAdmin
}

/**
 * `GET /mcp/upstreams` (status, pinned tool definitions, blocked ones, unlisted tools) and
 * `POST /mcp/upstreams/accept` (an approver accepts a changed or suspect tool definition). Both
 * need an approver token: the pins are the rug-pull defence, and their state is not public.
 */
export const mcpUpstreamRoutes: FastifyPluginAsync<McpUpstreamRoutesOptions> = async (
  app,
  { runtime, admin },
) => {
  app.get('/mcp/upstreams', async (req) => {
    requireApprover(runtime, req.headers.authorization)
    return admin.view()
  })

  app.post('/mcp/upstreams/accept', async (req) => {
    const approver = requireApprover(runtime, req.headers.authorization)
    const { tool, definition } = parseBody(mcpAcceptBody, req.body)
    const pin = await admin.accept(tool, definition, approver.id)
    if (pin === 'unknown')
      throw new WardenError('not_found', `no MCP upstream offers a tool \`${tool}\``)
    if (pin === 'changed')
      throw new WardenError(
        'definition_changed',
        `\`${tool}\` changed again since it was shown; look at it again before accepting`,
      )
    return { accepted: true, pin }
  })
}
