import type { FastifyPluginAsync } from 'fastify'
import { SCENARIOS } from '../../demo/scenarios.js'
import { errorBody } from '../../domain/errors.js'
import type { ToolCall } from '../../domain/types.js'
import type { CallOutcome } from '../../domain/outcome.js'
import { callReply } from '../outcomes.js'

export interface DemoRoutesOptions {
  /** Runs a demo scenario in a world of its own. */
  runScenario: (call: ToolCall) => Promise<CallOutcome>
}

const EXPECTED_STATUS: Record<string, number> = { allow: 200, approval_required: 202 }

/** The demo scenarios, run through the real pipeline (registered with the demo configuration). */
export const demoRoutes: FastifyPluginAsync<DemoRoutesOptions> = async (app, { runScenario }) => {
  app.get('/demo/scenarios', async () => ({ scenarios: SCENARIOS }))

  app.post<{ Params: { id: string } }>('/demo/run-scenario/:id', async (req, reply) => {
    const scenario = SCENARIOS.find((s) => s.id === req.params.id)
    if (!scenario)
      return reply
        .code(404)
        .send(errorBody('not_found', `no scenario \`${req.params.id}\``, req.id))
    const outcome = await runScenario({
      requestId: req.id,
      agentId: scenario.call.agent_id,
      tool: scenario.call.tool,
      params: scenario.call.params,
      sessionId: `demo-${req.id}`,
      context: scenario.call.context ?? {},
      credential: `demo-${scenario.call.agent_id}-key`,
      receivedAt: Date.now(),
    })
    const result = callReply(outcome)
    const decision = (result.body.decision as string | undefined) ?? 'error'
    const statusOk =
      decision === 'deny'
        ? result.status >= 400 && result.status < 500
        : result.status === EXPECTED_STATUS[decision]
    return {
      scenario: scenario.id,
      expected: scenario.expected,
      decision,
      passed: decision === scenario.expected && statusOk,
      status: result.status,
      response: result.body,
    }
  })
}
