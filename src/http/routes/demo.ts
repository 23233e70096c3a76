import type { FastifyPluginAsync } from 'fastify'
import { SCENARIOS } from '../../demo/scenarios.js'
import { errorBody } from '../../domain/errors.js'
import type { ToolCall } from '../../domain/types.js'
import type { CallOutcome } from '../../domain/outcome.js'
import { callReply } from '../outcomes.js'

export interface DemoRoutesOptions {
  /** Runs a demo scenario in a world of its own. */
  runScenario: (call: ToolCall) => Promise<CallOutcome>
  /** Browser origins besides the gateway's own that may run scenarios (`server.allowed_origins`). */
  allowedOrigins: readonly string[]
}

/** Scenario runs per client address, and in all, per minute. */
export const SCENARIO_RUNS_PER_CLIENT = 30
export const SCENARIO_RUNS_GLOBAL = 120
const WINDOW_MS = 60_000
/** Client addresses tracked per window; past it new addresses are refused (fail closed). */
const MAX_CLIENTS = 10_000

/**
 * Whether a browser sent this request from another site (a page posting to the demo route).
 * `Sec-Fetch-Site` decides when the browser sent it; otherwise `Origin`, which must be the
 * gateway's own (its `Host`) or an allowed one. Scripts send neither and are not affected.
 */
export function crossSite(
  headers: {
    origin?: string | undefined
    host?: string | undefined
    'sec-fetch-site'?: string | string[] | undefined
  },
  allowed: ReadonlySet<string>,
): boolean {
  const origin = headers.origin
  let o: URL | null = null
  try {
    if (origin !== undefined) o = new URL(origin)
  } catch {
    return true
  }
  // An origin the operator listed may call from another port or host.
  if (o && allowed.has(o.origin)) return false
  const site = headers['sec-fetch-site']
  if (site !== undefined) return site !== 'same-origin' && site !== 'none'
  return o !== null && o.host !== headers.host
}

/** Fixed one-minute windows: per client and in all. */
function scenarioLimiter() {
  let windowStart = 0
  let total = 0
  const perClient = new Map<string, number>()
  return (client: string, now: number): number | null => {
    if (now - windowStart >= WINDOW_MS) {
      windowStart = now
      total = 0
      perClient.clear()
    }
    const mine = perClient.get(client) ?? 0
    const full =
      total >= SCENARIO_RUNS_GLOBAL ||
      mine >= SCENARIO_RUNS_PER_CLIENT ||
      (mine === 0 && perClient.size >= MAX_CLIENTS)
    if (full) return Math.max(1, Math.ceil((windowStart + WINDOW_MS - now) / 1000))
    total++
    perClient.set(client, mine + 1)
    return null
  }
}

const EXPECTED_STATUS: Record<string, number> = { allow: 200, approval_required: 202 }

/** The demo scenarios, run through the real pipeline (registered with the demo configuration). */
export const demoRoutes: FastifyPluginAsync<DemoRoutesOptions> = async (
  app,
  { runScenario, allowedOrigins },
) => {
  const allowed = new Set(allowedOrigins.map((o) => new URL(o).origin))
  const limit = scenarioLimiter()
  app.get('/demo/scenarios', async () => ({ scenarios: SCENARIOS }))

  app.post<{ Params: { id: string } }>('/demo/run-scenario/:id', async (req, reply) => {
    // Unauthenticated by design (the demo page's buttons), so a page on another site must not
    // be able to make a visitor's browser run them (CSRF), and nobody may run them in bulk.
    if (crossSite(req.headers, allowed))
      return reply
        .code(403)
        .send(
          errorBody(
            'origin_not_allowed',
            "demo scenarios run only from the gateway's own pages",
            req.id,
          ),
        )
    const retryAfter = limit(req.ip, Date.now())
    if (retryAfter !== null)
      return reply
        .code(429)
        .header('retry-after', String(retryAfter))
        .send(errorBody('rate_limited', 'too many demo scenario runs; try again shortly', req.id))
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
