import type { FastifyPluginAsync } from 'fastify'
import type { Gateway } from '../../gateway/service.js'
import type { Stores } from '../../store/types.js'
import type { Metrics } from '../metrics.js'

export interface HealthRoutesOptions {
  gateway: Gateway
  stores: Pick<Stores, 'health'>
  metrics: Metrics
}

/** `GET /health` (readiness of each dependency) and `GET /metrics` (Prometheus). */
export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (
  app,
  { gateway, stores, metrics },
) => {
  const { runtime } = gateway

  app.get('/health', async (_req, reply) => {
    const [storeHealth, stateHealth] = await Promise.all([stores.health(), runtime.state.health()])
    const ok = storeHealth.ok && stateHealth.ok
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      policy_version: runtime.policyVersion,
      demo_credentials: runtime.config.demo,
      checks: { store: storeHealth, state: stateHealth },
    })
  })

  app.get('/metrics', async (_req, reply) => {
    // Gauges that describe the present are read at scrape time.
    const [storeHealth, stateHealth, pending] = await Promise.all([
      stores.health(),
      runtime.state.health(),
      gateway.approvals.pending().catch(() => null),
    ])
    metrics.dependencyUp.set({ dependency: 'store' }, storeHealth.ok ? 1 : 0)
    metrics.dependencyUp.set({ dependency: 'state' }, stateHealth.ok ? 1 : 0)
    if (pending) metrics.approvalsPending.set(pending.length)
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
