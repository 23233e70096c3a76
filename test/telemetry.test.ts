import { context, propagation, trace } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execute, startWarden } from './helpers.js'

describe('OpenTelemetry spans and Prometheus metrics', () => {
  const exporter = new InMemorySpanExporter()
  let w: Awaited<ReturnType<typeof startWarden>>
  beforeAll(async () => {
    // As src/telemetry.ts does, with an in-memory exporter instead of OTLP.
    new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register()
    w = await startWarden()
  })
  afterAll(async () => {
    trace.disable()
    context.disable()
    propagation.disable()
    await w.close()
  })

  it('a decided and executed call leaves a warden.execute span with a warden.tool child', async () => {
    exporter.reset()
    const res = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(res.statusCode).toBe(200)
    const spans = exporter.getFinishedSpans()
    const root = spans.find((s) => s.name === 'warden.execute')
    const tool = spans.find((s) => s.name === 'warden.tool')
    expect(root?.attributes).toMatchObject({
      'warden.agent_id': 'support-agent',
      'warden.tool': 'lookup_order',
      'warden.decision': 'allow',
      'warden.risk.level': 'low',
      'warden.outcome': 'executed',
    })
    expect(tool?.attributes).toMatchObject({
      'warden.tool': 'lookup_order',
      'warden.outcome': 'ok',
    })
    expect(tool?.parentSpanContext?.spanId).toBe(root?.spanContext().spanId)
  })

  it('a denied call has no tool span', async () => {
    exporter.reset()
    await execute(w, 'support-agent', 'issue_refund', { order_id: 'ORD-1', amount: 1, reason: 'x' })
    const names = exporter.getFinishedSpans().map((s) => s.name)
    expect(names).toEqual(['warden.execute'])
  })

  it('/metrics has decisions, per-layer latency, tool latency, dependency health and pending approvals', async () => {
    await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1002',
      amount: 300,
      reason: 'late',
    })
    const text = (await w.app.inject({ url: '/metrics' })).body
    expect(text).toMatch(
      /warden_decisions_total\{decision="allow",layer="none",agent="support-agent"\} 1/,
    )
    expect(text).toMatch(/warden_layer_duration_seconds_bucket\{le="[^"]+",layer="identity"\}/)
    expect(text).toMatch(/warden_tool_duration_seconds_count\{tool="lookup_order",outcome="ok"\} 1/)
    expect(text).toMatch(/warden_dependency_up\{dependency="store"\} 1/)
    expect(text).toMatch(/warden_dependency_up\{dependency="state"\} 1/)
    expect(text).toMatch(/warden_approvals_pending 1/)
    expect(text).toMatch(/# HELP warden_degraded_total/)
  })
})
