import type { FastifyPluginAsync } from 'fastify'
import type { Runtime } from '../../pipeline/runtime.js'

/** Agent and tool definitions, never secrets; the configuration in force (after any reload). */
export const configRoutes: FastifyPluginAsync<{ runtime: Runtime }> = async (app, { runtime }) => {
  app.get('/config/agents', async () => {
    const { config } = runtime
    return {
      agents: config.agents.map(({ key_sha256: _secret, ...agent }) => ({
        ...agent,
        // Whom the agent may message (delegate to) through POST /gateway/message.
        can_message: config.messaging.edges.filter((e) => e.from === agent.id).map((e) => e.to),
      })),
    }
  })

  app.get('/config/tools', async () => ({
    tools: runtime.config.tools.map((t) => ({ ...t, executor: { type: t.executor.type } })),
  }))
}
