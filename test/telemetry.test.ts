import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { context, propagation, trace } from '@opentelemetry/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTracing } from '../src/telemetry.js'
import { execute, startWarden } from './helpers.js'

/** A span as the OTLP/HTTP JSON encoding carries it, attributes flattened to plain values. */
interface ReceivedSpan {
  name: string
  spanId: string
  parentSpanId?: string
  attributes: Record<string, unknown>
}

/** The spans of one OTLP/HTTP JSON export request (`ExportTraceServiceRequest`). */
function spansOf(body: string): ReceivedSpan[] {
  type Value = Record<string, unknown>
  type Span = ReceivedSpan & { attributes: { key: string; value: Value }[] }
  const request = JSON.parse(body) as {
    resourceSpans: { scopeSpans: { spans: Span[] }[] }[]
  }
  return request.resourceSpans.flatMap((r) =>
    r.scopeSpans.flatMap((s) =>
      s.spans.map((span) => ({
        ...span,
        attributes: Object.fromEntries(
          span.attributes.map((a) => [a.key, Object.values(a.value)[0]]),
        ),
      })),
    ),
  )
}

describe('OpenTelemetry spans and Prometheus metrics', () => {
  /** What the local collector received: one entry per export request. */
  const received: { path: string; contentType: string; body: string }[] = []
  let collector: Server
  let stopTracing: () => Promise<void>
  let w: Awaited<ReturnType<typeof startWarden>>
  beforeAll(async () => {
    collector = createServer(async (req, res) => {
      let body = ''
      for await (const chunk of req) body += chunk
      received.push({ path: req.url!, contentType: String(req.headers['content-type']), body })
      res.setHeader('content-type', 'application/json')
      res.end('{}')
    })
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
    const { port } = collector.address() as AddressInfo
    // What main.ts does when OTEL_EXPORTER_OTLP_ENDPOINT is set (a trailing slash is allowed).
    stopTracing = startTracing(`http://127.0.0.1:${port}/`)
    w = await startWarden()
  })
  afterAll(async () => {
    trace.disable()
    context.disable()
    propagation.disable()
    await w.close()
    await new Promise((r) => collector.close(r))
  })

  it('src/telemetry.ts exports the spans over OTLP/HTTP: warden.execute, and warden.tool under it when a tool ran', async () => {
    const allowed = await execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })
    expect(allowed.statusCode).toBe(200)
    const denied = await execute(w, 'support-agent', 'issue_refund', {
      order_id: 'ORD-1',
      amount: 1,
      reason: 'x',
    })
    expect(denied.statusCode).toBe(403)
    // The shutdown flushes the batch: when it resolves the collector has answered the export.
    await stopTracing()

    expect(received.length).toBeGreaterThan(0)
    for (const r of received) {
      expect(r.path).toBe('/v1/traces')
      expect(r.contentType).toContain('application/json')
    }
    const spans = received.flatMap((r) => spansOf(r.body))
    const rootOf = (requestId: string) =>
      spans.find(
        (s) => s.name === 'warden.execute' && s.attributes['warden.request_id'] === requestId,
      )
    const root = rootOf(allowed.json().request_id)
    expect(root?.attributes).toMatchObject({
      'warden.agent_id': 'support-agent',
      'warden.tool': 'lookup_order',
      'warden.decision': 'allow',
      'warden.risk.level': 'low',
      'warden.outcome': 'executed',
    })
    const tools = spans.filter((s) => s.name === 'warden.tool')
    expect(tools).toHaveLength(1)
    expect(tools[0]!.attributes).toMatchObject({
      'warden.tool': 'lookup_order',
      'warden.outcome': 'ok',
    })
    expect(tools[0]!.parentSpanId).toBe(root!.spanId)

    // The denied call has its own root span and no tool span under it.
    const deniedRoot = rootOf(denied.json().request_id)
    expect(deniedRoot?.attributes).toMatchObject({ 'warden.decision': 'deny' })
    expect(spans.filter((s) => s.parentSpanId === deniedRoot!.spanId)).toEqual([])
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
