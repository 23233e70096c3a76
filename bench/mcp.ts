// `tools/call` of server-everything's `echo` tool, straight to the server and through Warden's MCP
// front door, measured in the same run (issue 13: Warden should add at most 1 ms at p50).
//
//   npm run bench:mcp
//   npm run bench:mcp -- --duration 8 --warmup 2 --concurrency 1,10
//   (or BENCH_DURATION, BENCH_WARMUP, BENCH_CONCURRENCY; BENCH_OUTPUT_TRUST=trusted configures
//    the tool's output as trusted, so Warden does not scan it for injection)
//
// Three processes: this one (the MCP clients and the clock), server-everything over streamable
// HTTP on a free port (`dist/index.js streamableHttp`), and Warden (this file with `--serve`,
// `createWarden` on a temp config with that server as an `http` upstream, a fresh SQLite file,
// its app listening on a free port).
//
// - direct: v1 SDK `Client` + `StreamableHTTPClientTransport` on server-everything's `/mcp`,
//           calling `echo`. server-everything is stateful: `initialize` opens a session
//           (`Mcp-Session-Id`, its own SDK server and transport), every call reuses it.
// - warden: the same client on Warden's `/mcp` with the agent's bearer key, calling
//           `everything.echo`. The front door is stateless: no session id, and the SDK builds a
//           fresh MCP server for every POST. Each call then runs the ten layers, commits the
//           decision event, forwards the call over Warden's one upstream session to
//           server-everything, commits the execution event, and replies.
// - rest:   the same call as `POST /gateway/execute` (fetch, keep-alive) on the same Warden:
//           everything but the MCP front door, to split its cost from the rest.
//
// C client loops (one client, one connection pool, each) call back to back; only calls that
// start after the warm-up and end before the deadline are timed. Afterwards: every call came
// back `Echo: <its own message>`, and Warden's audit log (reopened after Warden closed) holds one
// `tool_call_allowed` and one `tool_call_executed` per call and its hash chain verifies.
// Exit code 0 when every correctness check passed (the 1 ms target missed does not fail the run).

import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { verifyChain } from '../src/audit/verify.js'
import { sqliteStores } from '../src/store/sqlite.js'
import { createWarden } from '../src/warden.js'

const SELF = fileURLToPath(import.meta.url)
const EVERYTHING = fileURLToPath(
  new URL('../node_modules/@modelcontextprotocol/server-everything/dist/index.js', import.meta.url),
)
const AGENT_KEY = 'demo-support-agent-key'
/** sha256 of AGENT_KEY. */
const AGENT_KEY_SHA256 = '8240852ef9f9784a977bc68474412720807b768f5b3d281c49015808e224796b'
const TARGET_ADDED_P50_MS = 1

// ---------------------------------------------------------------------------------------------
// Warden (child process)

type ToChild = { type: 'stop' }
type FromChild = { type: 'ready'; port: number } | { type: 'stopped' }

async function serveWarden(config: string, sqlitePath: string): Promise<void> {
  const send = (m: FromChild) => process.send?.(m)
  const warden = await createWarden({ config, sqlitePath, sweepIntervalMs: 0 })
  const state = warden.mcp.status()[0]?.state
  if (state !== 'connected') throw new Error(`upstream everything: ${state ?? 'missing'}`)
  const address = await warden.app.listen({ port: 0, host: '127.0.0.1' })
  process.on('message', (msg: ToChild) => {
    if (msg.type === 'stop') {
      warden.close().then(
        () => {
          send({ type: 'stopped' })
          process.disconnect()
        },
        (err: unknown) => {
          console.error(err)
          process.exit(1)
        },
      )
    }
  })
  send({ type: 'ready', port: Number(new URL(address).port) })
}

function writeConfig(dir: string, everythingPort: number): string {
  const file = join(dir, 'warden.yaml')
  const config = {
    version: 'bench-mcp',
    server: { host: '127.0.0.1', port: 0 },
    store: { kind: 'sqlite', sqlite_path: join(dir, 'unused.db') },
    mcp_upstreams: [
      {
        name: 'everything',
        http: { url: `http://127.0.0.1:${everythingPort}/mcp` },
        call_timeout_ms: 10_000,
        unlisted_tools: 'deny',
      },
    ],
    agents: [
      {
        id: 'support-agent',
        role: 'support',
        clearance: 'confidential',
        key_sha256: AGENT_KEY_SHA256,
        tools: ['everything.echo'],
        rate_limit: { limit: 10_000_000, window_seconds: 60 },
      },
    ],
    tools: [
      {
        name: 'everything.echo',
        description: 'Echoes back the input string',
        risk: 'low',
        classification: 'internal',
        output_trust: process.env.BENCH_OUTPUT_TRUST ?? 'untrusted',
        executor: { type: 'mcp', upstream: 'everything' },
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['message'],
          properties: { message: { type: 'string', minLength: 1, maxLength: 500 } },
        },
        approval: 'never',
      },
    ],
    policy: {
      rules: [{ id: 'permit-allowlisted', effect: 'permit', when: 'true', reason: 'allowlisted' }],
    },
  }
  writeFileSync(file, JSON.stringify(config, null, 2))
  return file
}

// ---------------------------------------------------------------------------------------------
// Driver

interface Settings {
  duration: number
  warmup: number
  concurrency: number[]
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
    },
    strict: true,
  })
  const env = process.env
  const num = (v: string | undefined, e: string | undefined, d: number, name: string) => {
    const n = Number(v ?? e ?? d)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`)
    return n
  }
  const conc = (values.concurrency ?? env.BENCH_CONCURRENCY ?? '1,10')
    .split(',')
    .map((s) => Number(s.trim()))
  if (conc.some((c) => !Number.isInteger(c) || c < 1))
    throw new Error('--concurrency: positive integers, comma-separated')
  return {
    duration: num(values.duration, env.BENCH_DURATION, 8, 'duration'),
    warmup: num(values.warmup, env.BENCH_WARMUP, 2, 'warmup'),
    concurrency: conc,
  }
}

const live = new Set<ChildProcess>()

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

async function startEverything(): Promise<{ proc: ChildProcess; port: number }> {
  const port = await freePort()
  const proc = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(proc)
  proc.on('exit', () => live.delete(proc))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server-everything did not start')), 15_000)
    const onData = (chunk: Buffer) => {
      if (chunk.toString().includes('listening')) {
        clearTimeout(timer)
        resolve()
      }
    }
    // It logs a line per request: keep reading (and dropping) so its pipe never fills.
    proc.stderr!.on('data', onData)
    proc.stdout!.on('data', onData)
    proc.once('exit', (code) => reject(new Error(`server-everything exited (${code})`)))
  })
  return { proc, port }
}

async function startWarden(
  config: string,
  sqlitePath: string,
): Promise<{ proc: ChildProcess; port: number }> {
  const proc = fork(SELF, ['--serve', config, sqlitePath], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  live.add(proc)
  proc.on('exit', () => live.delete(proc))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('Warden did not start')), 30_000)
    proc.on('message', (m: FromChild) => {
      if (m.type === 'ready') {
        clearTimeout(timer)
        resolve(m.port)
      }
    })
    proc.once('exit', (code) => reject(new Error(`Warden exited (${code})`)))
  })
  return { proc, port }
}

/**
 * `warden.close()`, or SIGKILL after 15 s (seen once after a full run: close() never returned).
 * Every event was committed (WAL, synchronous=FULL) before its reply, so the audit check holds
 * either way. Answers whether the close was clean.
 */
async function stopWarden(proc: ChildProcess): Promise<boolean> {
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  proc.send({ type: 'stop' } satisfies ToChild)
  let timer: NodeJS.Timeout | undefined
  const clean = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 15_000))),
  ])
  clearTimeout(timer)
  if (!clean) {
    proc.kill('SIGKILL')
    await exited
  }
  return clean
}

interface Side {
  name: 'direct' | 'warden' | 'rest'
  url: URL
  tool: string
  headers: Record<string, string>
}

interface RunResult {
  side: Side['name']
  c: number
  /** Calls timed (started after the warm-up, ended before the deadline). */
  timed: number
  /** Every call made, warm-up and tail included. */
  calls: number
  bad: number
  errors: number
  firstProblem?: string
  rps: number
  p50: number
  p99: number
  /** Warden's own timing of the upstream call (execution events' `latency_ms`), p50. */
  hop?: number
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

type Content = { content?: { text?: string }[] }
const textOf = (r: Content | undefined) => (r?.content ?? []).map((c) => c.text ?? '').join('\n')
/**
 * The echoed text. server-everything answers `content: [{ text: 'Echo: …' }]`; Warden's front door
 * answers the upstream's whole result as `structuredContent` (and as JSON in a text block).
 */
const echoed = (side: Side['name'], r: unknown) =>
  side === 'direct'
    ? textOf(r as Content)
    : side === 'warden'
      ? textOf((r as { structuredContent?: Content }).structuredContent)
      : textOf((r as { result?: Content }).result)

/** What `callTool` does, for the `rest` side: `POST /gateway/execute` with fetch (keep-alive). */
function restClient(side: Side): Pick<Client, 'callTool' | 'close'> {
  const url = new URL('/gateway/execute', side.url)
  return {
    async callTool(p: { name: string; arguments?: Record<string, unknown> }) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...side.headers, 'content-type': 'application/json' },
        body: JSON.stringify({
          agent_id: 'support-agent',
          tool: p.name,
          params: p.arguments,
          session_id: 'bench',
        }),
      })
      if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`)
      return (await res.json()) as Awaited<ReturnType<Client['callTool']>>
    },
    async close() {},
  }
}

async function connect(side: Side): Promise<Pick<Client, 'callTool' | 'close'>> {
  if (side.name === 'rest') return restClient(side)
  const client = new Client({ name: 'warden-bench', version: '1' })
  await client.connect(
    new StreamableHTTPClientTransport(side.url, { requestInit: { headers: side.headers } }),
  )
  return client
}

async function run(side: Side, c: number, s: Settings): Promise<RunResult> {
  const clients = await Promise.all(Array.from({ length: c }, () => connect(side)))
  const t0 = performance.now()
  const from = t0 + s.warmup * 1000
  const to = from + s.duration * 1000
  const latencies: number[] = []
  let calls = 0
  let bad = 0
  let errors = 0
  let firstProblem: string | undefined
  await Promise.all(
    clients.map(async (client, loop) => {
      for (let i = 0; performance.now() < to; i++) {
        const message = `bench ${side.name} c${c} loop ${loop} call ${i}`
        const start = performance.now()
        calls++
        try {
          const r = await client.callTool({ name: side.tool, arguments: { message } })
          const end = performance.now()
          const text = echoed(side.name, r)
          if (text !== `Echo: ${message}` || (r as { isError?: boolean }).isError) {
            bad++
            firstProblem ??= `${side.name}: ${JSON.stringify(r).slice(0, 300)}`
          } else if (start >= from && end <= to) latencies.push(end - start)
        } catch (err) {
          errors++
          firstProblem ??= `${side.name}: ${String(err)}`
        }
      }
    }),
  )
  await Promise.all(clients.map((cl) => cl.close()))
  const sorted = Float64Array.from(latencies).sort()
  return {
    side: side.name,
    c,
    timed: latencies.length,
    calls,
    bad,
    errors,
    ...(firstProblem && { firstProblem }),
    rps: latencies.length / s.duration,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  }
}

async function main(): Promise<number> {
  const s = settings()
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-mcp-'))
  try {
    console.log(
      `MCP bench: ${cpus().length} CPUs, node ${process.version}, ${s.warmup} s warm-up + ` +
        `${s.duration} s per run, concurrency ${s.concurrency.join(', ')}`,
    )
    const everything = await startEverything()
    const sqlitePath = join(dir, 'audit.db')
    const warden = await startWarden(writeConfig(dir, everything.port), sqlitePath)
    const sides: Side[] = [
      {
        name: 'direct',
        url: new URL(`http://127.0.0.1:${everything.port}/mcp`),
        tool: 'echo',
        headers: {},
      },
      {
        name: 'warden',
        url: new URL(`http://127.0.0.1:${warden.port}/mcp`),
        tool: 'everything.echo',
        headers: { authorization: `Bearer ${AGENT_KEY}` },
      },
      {
        name: 'rest',
        url: new URL(`http://127.0.0.1:${warden.port}/`),
        tool: 'everything.echo',
        headers: { authorization: `Bearer ${AGENT_KEY}` },
      },
    ]
    const results: RunResult[] = []
    for (const c of s.concurrency) {
      for (const side of sides) {
        const r = await run(side, c, s)
        results.push(r)
        console.log(
          `  ${side.name.padEnd(6)} c=${String(c).padStart(2)}: ${r.rps.toFixed(0).padStart(6)} req/s, ` +
            `p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms ` +
            `(${r.timed} timed, ${r.calls} calls, ${r.bad} wrong, ${r.errors} errors)`,
        )
        if (r.firstProblem) console.log(`    first problem: ${r.firstProblem}`)
      }
    }
    const clean = await stopWarden(warden.proc)
    if (!clean) console.log('Warden: close() did not return within 15 s; killed')
    everything.proc.kill()

    // Audit: one decision and one execution per call that reached Warden.
    const wardenCalls = results
      .filter((r) => r.side !== 'direct')
      .reduce((n, r) => n + r.calls - r.errors, 0)
    const stores = sqliteStores(sqlitePath)
    let auditOk = false
    try {
      const counts = await stores.audit.counts()
      const byType: Record<string, number> = {}
      for (const r of counts.rows) byType[r.type] = (byType[r.type] ?? 0) + r.n
      // The upstream call as Warden timed it (`latency_ms` of each execution event), per run:
      // the runs went one after the other, so their events are consecutive in the log.
      const hops: number[] = []
      for await (const page of stores.audit.scan())
        for (const e of page) {
          const ev = JSON.parse(e.body) as { type: string; latency_ms?: number }
          if (ev.type === 'tool_call_executed') hops.push(ev.latency_ms ?? NaN)
        }
      let at = 0
      for (const r of results.filter((x) => x.side !== 'direct')) {
        const n = r.calls - r.errors
        r.hop = percentile(Float64Array.from(hops.slice(at, at + n)).sort(), 50)
        at += n
      }
      const chain = await verifyChain(stores.audit)
      auditOk =
        chain.ok &&
        byType.tool_call_allowed === wardenCalls &&
        byType.tool_call_executed === wardenCalls &&
        Object.keys(byType).length === 2
      console.log(
        `\nAudit: ${wardenCalls} calls through Warden; events ${JSON.stringify(byType)}; ` +
          `chain ${chain.ok ? 'ok' : 'BROKEN'} (${chain.checked} checked)` +
          `${chain.firstBad ? `, first bad seq ${chain.firstBad.seq}: ${chain.firstBad.problem}` : ''}` +
          ` -> ${auditOk ? 'ok' : 'FAIL'}`,
      )
    } finally {
      await stores.close()
    }

    console.log(
      '\n| C | side | req/s | p50 ms | p99 ms | added p50 ms | p50 ratio | upstream call p50 ms |',
    )
    console.log('|---|---|---:|---:|---:|---:|---:|---:|')
    for (const c of s.concurrency) {
      const d = results.find((r) => r.side === 'direct' && r.c === c)!
      console.log(
        `| ${c} | direct | ${d.rps.toFixed(0)} | ${d.p50.toFixed(2)} | ${d.p99.toFixed(2)} | | | |`,
      )
      for (const [side, label] of [
        ['warden', 'Warden `/mcp`'],
        ['rest', 'Warden `/gateway/execute`'],
      ] as const) {
        const w = results.find((r) => r.side === side && r.c === c)!
        console.log(
          `| ${c} | ${label} | ${w.rps.toFixed(0)} | ${w.p50.toFixed(2)} | ${w.p99.toFixed(2)} | ` +
            `${(w.p50 - d.p50).toFixed(2)} | ${(w.p50 / d.p50).toFixed(2)}× | ${w.hop?.toFixed(1)} |`,
        )
      }
    }
    const c1 = s.concurrency[0]!
    const added =
      results.find((r) => r.side === 'warden' && r.c === c1)!.p50 -
      results.find((r) => r.side === 'direct' && r.c === c1)!.p50
    console.log(
      `\nTarget: Warden adds ≤ ${TARGET_ADDED_P50_MS} ms at p50 (C=${c1}): ` +
        `${added.toFixed(2)} ms -> ${added <= TARGET_ADDED_P50_MS ? 'met' : 'missed'}`,
    )
    const callsOk = results.every((r) => r.bad === 0 && r.errors === 0 && r.timed > 0)
    console.log(`Correctness: echoes ${callsOk ? 'ok' : 'FAIL'}, audit ${auditOk ? 'ok' : 'FAIL'}`)
    return callsOk && auditOk ? 0 : 1
  } finally {
    for (const p of live) p.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------

// Abort listeners pile up on a long-lived signal in the MCP clients (Warden's upstream client and
// this process's): Node warns once per listener past 1,500. Say it once per process, with the
// count at exit, instead of thousands of lines that also slow the run.
let listenerWarnings = 0
process.removeAllListeners('warning')
process.on('warning', (w) => {
  if (w.name === 'MaxListenersExceededWarning') {
    if (listenerWarnings++ === 0) console.error(`(${process.pid}) ${w.name}: ${w.message}`)
  } else console.error(w)
})
process.on('exit', () => {
  if (listenerWarnings > 1)
    console.error(`(${process.pid}) MaxListenersExceededWarning × ${listenerWarnings}`)
})

const argv = process.argv.slice(2)
if (argv[0] === '--serve') {
  serveWarden(argv[1]!, argv[2]!).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  process.on('SIGINT', () => {
    for (const p of live) p.kill()
    process.exit(130)
  })
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      console.error(err)
      for (const p of live) p.kill()
      process.exitCode = 1
    },
  )
}
