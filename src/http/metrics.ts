import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Check, Decision } from '../domain/types.js'

/** Prometheus metrics for one gateway instance (its own registry, so tests stay isolated). */
export class Metrics {
  readonly registry = new Registry()
  private decisions = new Counter({
    name: 'warden_decisions_total',
    help: 'Decisions by outcome, deciding layer and agent',
    labelNames: ['decision', 'layer', 'agent'],
    registers: [this.registry],
  })
  private layerSeconds = new Histogram({
    name: 'warden_layer_duration_seconds',
    help: 'Time spent in each pipeline layer',
    labelNames: ['layer'],
    buckets: [0.000_005, 0.000_02, 0.000_1, 0.000_5, 0.002, 0.01, 0.05],
    registers: [this.registry],
  })
  readonly layerFailures = new Counter({
    name: 'warden_layer_failures_total',
    help: 'Layers that threw (each failure denied its call)',
    labelNames: ['layer'],
    registers: [this.registry],
  })
  readonly storeFailures = new Counter({
    name: 'warden_store_failures_total',
    help: 'Audit or approval store operations that failed (the call got 503)',
    registers: [this.registry],
  })
  readonly unavailable = new Counter({
    name: 'warden_unavailable_total',
    help: 'Requests answered 503 because a dependency failed, by error code (state_unavailable, audit_unavailable, ...): nothing was decided or run',
    labelNames: ['code'],
    registers: [this.registry],
  })
  readonly degraded = new Counter({
    name: 'warden_degraded_total',
    help: 'Work that failed without failing the call it belonged to (e.g. a session losing the taint of one output); each is also logged',
    labelNames: ['where'],
    registers: [this.registry],
  })
  readonly dependencyUp = new Gauge({
    name: 'warden_dependency_up',
    help: 'Whether a dependency answered its health check at the last scrape (1) or not (0)',
    labelNames: ['dependency'],
    registers: [this.registry],
  })
  readonly toolSeconds = new Histogram({
    name: 'warden_tool_duration_seconds',
    help: 'Time the tool itself took, by tool and outcome',
    labelNames: ['tool', 'outcome'],
    buckets: [0.001, 0.005, 0.025, 0.1, 0.5, 2, 10],
    registers: [this.registry],
  })
  readonly configReloads = new Counter({
    name: 'warden_config_reloads_total',
    help: 'Configuration reloads (SIGHUP, POST /admin/reload) by result: ok, or the error code that refused it',
    labelNames: ['result'],
    registers: [this.registry],
  })
  readonly approvalsPending = new Gauge({
    name: 'warden_approvals_pending',
    help: 'Approvals waiting for a person',
    registers: [this.registry],
  })

  /** Count a decision; `agent` is the authenticated agent id (bounded by the configuration) or null. */
  observe(d: Decision, agent: string | null): void {
    this.decisions.inc({
      decision: d.decision,
      layer: d.layer ?? 'none',
      agent: agent ?? 'anonymous',
    })
    for (const c of d.checks as Check[])
      this.layerSeconds.observe({ layer: c.layer }, c.duration_us / 1e6)
  }
}
