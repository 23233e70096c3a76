import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'

/**
 * OpenTelemetry traces: the gateway creates `warden.execute` and `warden.tool` spans through the
 * OpenTelemetry API, which does nothing until a provider is registered. This registers one that
 * exports over OTLP/HTTP to `endpoint` (e.g. http://collector:4318); main.ts calls it only when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set. Returns a shutdown that flushes what is buffered.
 */
export function startTracing(endpoint: string): () => Promise<void> {
  const exporter = new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` })
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] })
  provider.register()
  return () => provider.shutdown()
}
