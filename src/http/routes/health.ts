import type { FastifyPluginAsync } from 'fastify'
import type { Gateway } from '../../gateway/service.js'
import type { Stores } from '../../store/types.js'
import type { Metrics } from '../metrics.js'

export interface HealthRoutesOptions {
  gateway: Gateway
  stores: Pick<Stores, 'health'>
  metrics: Metrics
}

/** How long a dependency may take to answer a health check before it counts as down. */
const CHECK_TIMEOUT_MS = 1000

type Health = { ok: boolean; detail: string }

/** A dependency's health, or not ok when it throws or does not answer in time (a stall). */
async function bounded(check: () => Promise<Health>): Promise<Health> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<Health>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, detail: `no answer within ${CHECK_TIMEOUT_MS} ms` }),
      CHECK_TIMEOUT_MS,
    )
  })
  try {
    return await Promise.race([
      check().catch((err: unknown) => ({ ok: false, detail: (err as Error).message })),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * `GET /health` (readiness of each dependency, with the policy version), `GET /health/ready` (the
 * same for a load balancer), `GET /health/live` (the process answers) and `GET /metrics`.
 */
export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (
  app,
  { gateway, stores, metrics },
) => {
  const { runtime } = gateway

  // One check at a time, shared by every probe that arrives while it runs: a flood of
  // unauthenticated probes costs one store and one state round trip, not one each.
  let running: Promise<{ ok: boolean; checks: { store: Health; state: Health } }> | undefined
  const checks = () =>
    (running ??= (async () => {
      try {
        const [store, state] = await Promise.all([
          bounded(() => stores.health()),
          bounded(() => runtime.state.health()),
        ])
        return { ok: store.ok && state.ok, checks: { store, state } }
      } finally {
        running = undefined
      }
    })())

  app.get('/health', async (_req, reply) => {
    const { ok, checks: found } = await checks()
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      policy_version: runtime.policyVersion,
      demo_credentials: runtime.config.demo,
      checks: found,
    })
  })

  app.get('/health/ready', async (_req, reply) => {
    const { ok, checks: found } = await checks()
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks: found })
  })

  app.get('/health/live', async () => ({ status: 'alive' }))

  app.get('/metrics', async (_req, reply) => {
    // Gauges that describe the present are read at scrape time.
    const [storeHealth, stateHealth, pending] = await Promise.all([
      bounded(() => stores.health()),
      bounded(() => runtime.state.health()),
      gateway.approvals.pending().catch(() => null),
    ])
    metrics.dependencyUp.set({ dependency: 'store' }, storeHealth.ok ? 1 : 0)
    metrics.dependencyUp.set({ dependency: 'state' }, stateHealth.ok ? 1 : 0)
    if (pending) metrics.approvalsPending.set(pending.length)
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
