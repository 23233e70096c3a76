import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SRC = fileURLToPath(new URL('../src', import.meta.url))

/**
 * Folders of `src/`, lowest first. A folder may import its own rank or lower, never higher:
 * doors → engine → capabilities → backends, with `domain/` the leaf. Files directly in `src/`
 * (`main.ts`, `warden.ts`, `telemetry.ts`) are the wiring on top. Adding a folder means giving it
 * a rank here, which is the point: where it sits is a decision.
 */
const RANKS: Record<string, number> = {
  domain: 0, //     vocabulary: calls, verdicts, decisions, errors, events, the config schema
  detect: 1, //     pure detectors: injection, PII, normalization
  policy: 2, //     CEL rules and parameter schemas, compiled once
  config: 3, //     loading and cross-checking configuration files
  auth: 4, //       credentials, principals, delegation tokens: one module for every door
  state: 4, //      capability: rate limits, session state (memory | redis)
  judge: 4, //      capability: a model's second opinion on grey-zone injection scores (openai | ollama)
  store: 4, //      capability: audit log, approvals, nonces (sqlite | memory | postgres)
  demo: 4, //       the seed's mock backend and scenarios
  events: 5, //     fan-out of committed events, stats, the WebSocket stream
  audit: 6, //      audit event builders, the recorder, verification and export
  pipeline: 7, //   the ten layers and output checks
  executors: 8, //  running a tool (demo, http) and recording what it did
  approvals: 9, //  held calls
  replay: 10, //    recorded sessions and scenario files through the pipeline
  messaging: 10, // agent-to-agent messages, through the pipeline's message layers
  gateway: 11, //   the engine: decide, record, run; typed outcomes, no protocol; wires the rest
  http: 12, //      the HTTP door (routes, status codes)
  mcp: 12, //       the MCP door (streamable HTTP at /mcp), registered on the HTTP app
  agents: 13, //    the agent API, a separate app that talks to the gateway over HTTP
  dashboard: 13, // the dashboard server
  cli: 14, //       warden <command>
}
const WIRING = 15

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory()
      ? tsFiles(join(dir, d.name))
      : d.name.endsWith('.ts')
        ? [join(dir, d.name)]
        : [],
  )
}

function folderOf(file: string): string {
  const parts = relative(SRC, file).split(sep)
  return parts.length > 1 ? (parts[0] ?? '') : '(root)'
}

/** Folder → folders it imports (relative imports only; packages are not folders of ours). */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>()
  for (const file of tsFiles(SRC)) {
    const from = folderOf(file)
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const to = folderOf(resolve(dirname(file), m[1] ?? ''))
      if (to === from) continue
      const edges = graph.get(from) ?? new Map<string, string>()
      edges.set(to, relative(SRC, file))
      graph.set(from, edges)
    }
  }
  return graph
}

const rank = (folder: string) => (folder === '(root)' ? WIRING : RANKS[folder])

describe('architecture: folders import downward only', () => {
  const graph = folderGraph()

  it('every folder of src/ has a rank', () => {
    const folders = new Set(tsFiles(SRC).map(folderOf))
    const unranked = [...folders].filter((f) => rank(f) === undefined)
    expect(unranked).toEqual([])
  })

  it('no folder imports a folder ranked above it', () => {
    const upward: string[] = []
    for (const [from, edges] of graph)
      for (const [to, file] of edges)
        if ((rank(to) ?? -1) > (rank(from) ?? -1)) upward.push(`${file} → ${to}/`)
    expect(upward).toEqual([])
  })

  it('the folder graph has no cycles', () => {
    const cycles: string[] = []
    const visit = (node: string, path: string[]) => {
      for (const next of graph.get(node)?.keys() ?? []) {
        const at = path.indexOf(next)
        if (at >= 0) cycles.push([...path.slice(at), next].join(' → '))
        else visit(next, [...path, next])
      }
    }
    for (const start of graph.keys()) visit(start, [start])
    expect([...new Set(cycles)]).toEqual([])
  })
})

const CLIENT = fileURLToPath(new URL('../clients/typescript/src', import.meta.url))
/** The packages the TypeScript client may import: its runtime and the frameworks it wraps. */
const CLIENT_PACKAGES = ['openapi-fetch', 'ai', '@langchain/core', '@openai/agents']

describe('architecture: the TypeScript client stands alone', () => {
  const imports = (file: string) =>
    [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].map(
      (m) => m[1] ?? '',
    )

  it('imports only its own files (the generated types among them) and its packages', () => {
    const outside: string[] = []
    for (const file of tsFiles(CLIENT))
      for (const spec of imports(file)) {
        const ok = spec.startsWith('.')
          ? !relative(CLIENT, resolve(dirname(file), spec)).startsWith('..')
          : CLIENT_PACKAGES.some((p) => spec === p || spec.startsWith(`${p}/`))
        if (!ok) outside.push(`${relative(CLIENT, file)} → ${spec}`)
      }
    expect(outside).toEqual([])
  })

  it('src/ does not import the client', () => {
    const into: string[] = []
    for (const file of tsFiles(SRC))
      for (const spec of imports(file))
        if (spec.startsWith('.') && resolve(dirname(file), spec).startsWith(`${CLIENT}${sep}`))
          into.push(relative(SRC, file))
    expect(into).toEqual([])
  })
})
