import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
} from 'fastify'
import { z } from 'zod'
import { errorBody, statusOf, type ErrorCode } from '../domain/errors.js'
import { catalogCodeOf, replyFrameworkError, replyNotFound } from '../http/errors.js'
import { parseBody } from '../http/schemas.js'
import { timeOrderedId } from '../domain/ids.js'
import { installHostGuard } from '../http/host-guard.js'
import {
  DEFAULT_LIMITS,
  installIpLimits,
  timeoutOptions,
  type ServerLimits,
} from '../http/limits.js'
import { openRunStore, type OpenRunStoreOptions } from '../store/open-run-store.js'
import { GatewayClient } from './gateway-client.js'
import { ollamaProvider } from './providers/ollama.js'
import { offlineProvider } from './providers/offline.js'
import { openAiProvider } from './providers/openai.js'
import { ProviderError, type ModelProvider } from './providers/types.js'
import { AgentError, AgentRuntime } from './runtime.js'

export const PROVIDERS = ['offline', 'openai', 'ollama'] as const
export type ProviderName = (typeof PROVIDERS)[number]

/** Where held runs are kept unless told otherwise (`AGENT_RUNS_PATH`). */
export const DEFAULT_RUNS_PATH = 'data/agent-runs.db'

export interface AgentApiOptions {
  gatewayUrl: string
  logger: FastifyBaseLogger
  /** Keys the agents present to the gateway, by agent id. */
  keys: Readonly<Record<string, string>>
  /** Use `demo-<agent>-key` for agents without a key, when the gateway says it runs the demo. */
  demoKeys?: boolean
  defaultProvider?: ProviderName
  openai?: { apiKey?: string; baseURL?: string; model?: string }
  ollama?: { host?: string; model?: string }
  maxSteps?: number
  /** Origins the agent API is reached at besides localhost (see src/http/host-guard.ts). */
  publicOrigins?: string[]
  /** More host names it may be called by (its listen host, a LAN name); see host-guard.ts. */
  allowedHosts?: (string | undefined)[]
  /** Per-address buckets and timeouts (default: `DEFAULT_LIMITS`, docs/limits.md). */
  limits?: ServerLimits
  /**
   * Where held runs are kept (default: SQLite at `DEFAULT_RUNS_PATH`). Instances over the same
   * store resume each other's runs; the API closes the store when it closes.
   */
  runs?: OpenRunStoreOptions
}

const promptBody = z.strictObject({
  prompt: z.string().min(1).max(8000),
  agent_id: z.string().min(1).max(128),
  provider: z.string().optional(),
  session_id: z.string().min(1).max(128).optional(),
  requested_by: z.string().min(1).max(128).optional(),
})

/**
 * The agent API (port 8005): prompts in, a model's tool calls out through the gateway, every step
 * reported with the gateway's decision. Providers: `offline` (a deterministic planner, default),
 * `openai` (any OpenAI-compatible server), `ollama`.
 */
export async function buildAgentApi(opts: AgentApiOptions): Promise<FastifyInstance> {
  const gateway = new GatewayClient(opts.gatewayUrl)
  const ollamaHost = opts.ollama?.host ?? 'http://127.0.0.1:11434'
  const providers: Record<ProviderName, ModelProvider> = {
    offline: offlineProvider(),
    openai: openAiProvider({
      apiKey: opts.openai?.apiKey,
      ...(opts.openai?.baseURL && { baseURL: opts.openai.baseURL }),
      model: opts.openai?.model ?? 'gpt-4o-mini',
    }),
    ollama: ollamaProvider({ host: ollamaHost, model: opts.ollama?.model ?? 'llama3.1' }),
  }
  // Demo keys are used only against a gateway that itself says it runs the demo configuration.
  let demo: boolean | undefined
  const isDemoGateway = async () => {
    if (!opts.demoKeys) return false
    if (demo === undefined) {
      const h = await gateway.health().catch(() => null)
      if (h) demo = h.body.demo_credentials === true
    }
    return demo === true
  }
  const providerOf = (name: string | undefined): ModelProvider => {
    const chosen = name ?? opts.defaultProvider ?? 'offline'
    if (!(PROVIDERS as readonly string[]).includes(chosen))
      throw new ProviderError(
        chosen,
        'not_configured',
        `unknown provider \`${chosen}\`; use ${PROVIDERS.join(', ')}`,
      )
    return providers[chosen as ProviderName]
  }
  const runs = openRunStore(opts.runs ?? { kind: 'sqlite', sqlitePath: DEFAULT_RUNS_PATH })
  const runtime = new AgentRuntime({
    gateway,
    keyOf: (id) => opts.keys[id] ?? (demo === true ? `demo-${id}-key` : undefined),
    runs,
    providerOf,
    ...(opts.maxSteps && { maxSteps: opts.maxSteps }),
  })

  const limits = opts.limits ?? DEFAULT_LIMITS
  const app = Fastify({
    loggerInstance: opts.logger,
    // Runs log what they do; a line per HTTP request on top is noise.
    logController: new LogController({ disableRequestLogging: true }),
    ...timeoutOptions(limits),
    genReqId: () => timeOrderedId(),
    requestIdHeader: false,
    bodyLimit: 65_536,
    frameworkErrors: replyFrameworkError,
  })
  // Whoever reaches this API drives agents with their keys: no other site's page, no rebound name.
  installIpLimits(app, limits)
  installHostGuard(app, {
    publicOrigins: opts.publicOrigins ?? [],
    allowedHosts: opts.allowedHosts ?? [],
  })
  app.addHook('onClose', () => runs.close())
  app.setErrorHandler(async (err: FastifyError, req, reply) => {
    const code: ErrorCode =
      err instanceof AgentError || err instanceof ProviderError ? err.code : catalogCodeOf(err)
    if (statusOf(code) >= 500) req.log.error({ err }, 'agent request failed')
    const message =
      code === 'internal_error' ? 'internal_error; see the agent API log' : err.message
    return reply.code(statusOf(code)).send(errorBody(code, message, req.id))
  })
  app.setNotFoundHandler(replyNotFound)

  app.post('/agent/prompt', async (req) => {
    const body = parseBody(promptBody, req.body)
    const provider = providerOf(body.provider)
    await isDemoGateway()
    return runtime.run({
      agentId: body.agent_id,
      prompt: body.prompt,
      provider,
      sessionId: body.session_id ?? `agent-${req.id}`,
      ...(body.requested_by && { requestedBy: body.requested_by }),
    })
  })

  app.post<{ Params: { id: string } }>('/agent/runs/:id/resume', async (req) => {
    // A run held on another instance (or before a restart) needs the demo keys settled here too.
    await isDemoGateway()
    return runtime.resume(req.params.id)
  })

  app.get('/agents/available', async () => {
    const demoKeys = await isDemoGateway()
    const agents = await gateway.agents().catch((err: Error) => {
      throw new AgentError('gateway_unavailable', `the gateway did not answer: ${err.message}`)
    })
    const ollamaUp = await fetch(new URL('/api/tags', ollamaHost), {
      signal: AbortSignal.timeout(1500),
    })
      .then((r) => r.ok)
      .catch(() => false)
    return {
      agents: agents.map((a) => ({
        id: a.id,
        role: a.role,
        description: a.description,
        tools: a.tools,
        can_message: a.can_message,
        has_key: a.id in opts.keys || demoKeys,
      })),
      default_provider: opts.defaultProvider ?? 'offline',
      providers: {
        offline: { usable: true },
        openai: opts.openai?.apiKey
          ? { usable: true, base_url: opts.openai.baseURL ?? 'https://api.openai.com/v1' }
          : { usable: false, reason: 'OPENAI_API_KEY is not set' },
        ollama: ollamaUp
          ? { usable: true, host: ollamaHost }
          : { usable: false, reason: `no Ollama answering at ${ollamaHost}` },
      },
    }
  })

  app.get('/health', async (_req, reply) => {
    const h = await gateway.health().catch(() => null)
    const ok = h?.status === 200
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      checks: { gateway: { ok, url: opts.gatewayUrl } },
    })
  })

  return app
}
