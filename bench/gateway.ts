// Throughput and latency of `POST /gateway/execute` against a bare Fastify JSON echo, measured in
// the same run, plus the in-process decision rate of the pipeline alone.
//
//   npm run bench
//   npm run bench -- --duration 10 --connections 50 --warmup 2 --decisions 200000 [--no-mixed]
//                     [--no-breakdown] [--profile]
//                     [--latency-duration 3]
//   (or BENCH_DURATION, BENCH_CONNECTIONS, BENCH_PIPELINING, BENCH_WARMUP, BENCH_DECISIONS,
//    BENCH_LATENCY_DURATION, BENCH_MIXED=0, BENCH_BREAKDOWN=0, BENCH_PROFILE=1)
//
// Each server under test runs in its own child process (this file with `--serve KIND`);
// autocannon runs here. On a 2-core machine that gives the server one core and the load generator
// the other, instead of both fighting over one event loop.
//
// - echo:   bare Fastify, `POST /echo` returns the parsed JSON body.
// - echo+audit: the same echo that also appends the gateway's two audit events for the call
//           (same content and size) to Warden's SQLite store, one after the other: what durable
//           auditing costs on its own, without the pipeline, the tool or the gateway's HTTP layer.
// - warden: createWarden(config/bench/warden.yaml) with a fresh SQLite file (WAL,
//           synchronous=FULL, group commit): all ten layers, the decision event committed, the
//           demo tool executed, the execution event committed, then the reply.
// - mixed:  the same gateway with a rotation of allowed calls from three agents and tools,
//           including `lookup_order`, whose result is PII-masked.
// - decide: `pipeline(buildRuntime(loadConfig(...), await openState())).decide(call)` awaited in a
//           loop, in this process, before any load runs.
//
// After each run with a store the audit log is checked: every request that reached the server
// left exactly two events (decision + execution), and the hash chain verifies.
// Exit code 0 when every correctness check passed (targets missed do not fail the run), 1 if not.

import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon, { type RequestSpec, type Result } from 'autocannon'
import Fastify, { type FastifyInstance } from 'fastify'
import type { AuditEventInput } from '../src/domain/audit-event.js'
import { verifyChain } from '../src/audit/verify.js'
import { loadConfig } from '../src/config/loader.js'
import type { ToolCall } from '../src/domain/types.js'
import { buildRuntime } from '../src/pipeline/runtime.js'
import { pipeline } from '../src/pipeline/runner.js'
import { openState } from '../src/state/index.js'
import { sqliteStores } from '../src/store/sqlite.js'
import { createWarden } from '../src/warden.js'

const CONFIG = fileURLToPath(new URL('../config/bench/warden.yaml', import.meta.url))
const SELF = fileURLToPath(import.meta.url)

/** `--profile` writes a V8 CPU profile of each gateway process here (git-ignored). */
const PROFILE_DIR = fileURLToPath(new URL('./profiles/', import.meta.url))

const TARGET_RATIO = 0.5
const TARGET_DECISIONS = 100_000

// ---------------------------------------------------------------------------------------------
// The calls

const SEARCH_BODY = JSON.stringify({
  agent_id: 'support-agent',
  tool: 'search_knowledge_base',
  params: { query: 'reset password' },
  session_id: 'bench',
})

/** Allowed calls only, so every request must come back 200 with two audit events. */
const MIXED: { key: string; body: Record<string, unknown> }[] = [
  { key: 'demo-support-agent-key', body: JSON.parse(SEARCH_BODY) as Record<string, unknown> },
  {
    key: 'demo-support-agent-key',
    body: {
      agent_id: 'support-agent',
      tool: 'lookup_order',
      params: { order_id: 'ORD-1001' },
      session_id: 'bench',
    },
  },
  {
    key: 'demo-refund-agent-key',
    body: {
      agent_id: 'refund-agent',
      tool: 'lookup_order',
      params: { order_id: 'ORD-1002' },
      session_id: 'bench',
    },
  },
  {
    key: 'demo-admin-agent-key',
    body: {
      agent_id: 'admin-agent',
      tool: 'get_system_health',
      params: { environment: 'prod' },
      session_id: 'bench',
    },
  },
]

const jsonHeaders = (key?: string): Record<string, string> => ({
  'content-type': 'application/json',
  ...(key && { authorization: `Bearer ${key}` }),
})

// ---------------------------------------------------------------------------------------------
// Server mode (child process)

type ToChild = { type: 'cpu' } | { type: 'stop' }
interface AuditSummary {
  rows: number
  byType: Record<string, number>
  chainOk: boolean
  chainChecked: number
  firstBad?: string
}
type FromChild =
  | { type: 'ready'; port: number }
  | { type: 'cpu'; usage: NodeJS.CpuUsage; at: number }
  | { type: 'stopped'; received: number; audit?: AuditSummary }

type Kind = 'echo' | 'echo-audit' | 'warden'
const KINDS: readonly Kind[] = ['echo', 'echo-audit', 'warden']

async function serve(kind: Kind, sqlitePath: string | undefined): Promise<void> {
  const send = (m: FromChild) => process.send?.(m)
  let app: FastifyInstance
  let close: () => Promise<void>
  let path: string
  if (kind === 'echo') {
    app = Fastify({ logger: false })
    app.post('/echo', async (req) => req.body)
    close = () => app.close()
    path = '/echo'
  } else if (kind === 'echo-audit') {
    // The echo plus what durability alone costs: per request, the gateway's two audit events
    // (same content and size) appended one after the other to Warden's store, nothing else.
    if (!sqlitePath) throw new Error('--serve echo-audit needs --db')
    const [decided, executed] = await sampleEvents()
    const stores = sqliteStores(sqlitePath)
    app = Fastify({ logger: false })
    app.post('/echo', async (req) => {
      const timestamp = new Date().toISOString()
      await stores.audit.append([{ ...decided, id: randomUUID(), request_id: req.id, timestamp }])
      await stores.audit.append([{ ...executed, id: randomUUID(), request_id: req.id, timestamp }])
      return req.body
    })
    close = async () => {
      await app.close()
      await stores.close()
    }
    path = '/echo'
  } else {
    if (!sqlitePath) throw new Error('--serve warden needs --db')
    const warden = await createWarden({
      config: CONFIG,
      sqlitePath,
      sweepIntervalMs: 5000,
      mcp: { connect: false },
    })
    app = warden.app
    close = () => warden.close()
    path = '/gateway/execute'
  }
  // Count requests as they arrive on the socket (not through a Fastify hook): exact even for a
  // request whose connection the load generator dropped at the end of the run.
  let received = 0
  app.server.on('request', (req: { url?: string }) => {
    if (req.url === path) received++
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')

  process.on('message', (msg: ToChild) => {
    if (msg.type === 'cpu') send({ type: 'cpu', usage: process.cpuUsage(), at: performance.now() })
    if (msg.type === 'stop') {
      void (async () => {
        // Closing waits for requests in flight and flushes the audit queue.
        await close()
        const audit = kind !== 'echo' && sqlitePath ? await auditSummary(sqlitePath) : undefined
        send({ type: 'stopped', received, ...(audit && { audit }) })
        process.disconnect?.()
      })().catch((err: unknown) => {
        console.error(err)
        process.exit(1)
      })
    }
  })
  send({ type: 'ready', port: address.port })
}

/** The two events the gateway writes for the allowed search call, as the store was given them. */
async function sampleEvents(): Promise<[AuditEventInput, AuditEventInput]> {
  const warden = await createWarden({
    config: CONFIG,
    sqlitePath: join(mkdtempSync(join(tmpdir(), 'warden-sample-')), 'sample.db'),
    sweepIntervalMs: 0,
    mcp: { connect: false },
  })
  try {
    const res = await warden.app.inject({
      method: 'POST',
      url: '/gateway/execute',
      headers: jsonHeaders('demo-support-agent-key'),
      payload: SEARCH_BODY,
    })
    if (res.statusCode !== 200) throw new Error(`sample call: ${res.statusCode} ${res.body}`)
    const events = await warden.stores.audit.query({ order: 'asc', limit: 2 })
    const inputs = events.map(({ seq: _seq, prev_hash: _prev, hash: _hash, ...input }) => input)
    if (inputs.length !== 2) throw new Error('sample call: expected two audit events')
    return [inputs[0]!, inputs[1]!]
  } finally {
    await warden.close()
  }
}

/** Reopen the closed store and count and verify what the run left in it. */
async function auditSummary(sqlitePath: string): Promise<AuditSummary> {
  const stores = sqliteStores(sqlitePath)
  try {
    const counts = await stores.audit.counts()
    const byType: Record<string, number> = {}
    let rows = 0
    for (const r of counts.rows) {
      byType[r.type] = (byType[r.type] ?? 0) + r.n
      rows += r.n
    }
    const chain = await verifyChain(stores.audit)
    return {
      rows,
      byType,
      chainOk: chain.ok,
      chainChecked: chain.checked,
      ...(chain.firstBad && { firstBad: `seq ${chain.firstBad.seq}: ${chain.firstBad.problem}` }),
    }
  } finally {
    await stores.close()
  }
}

// ---------------------------------------------------------------------------------------------
// Driver (parent process)

interface Settings {
  duration: number
  /** Seconds of the one-connection (unloaded) latency run after each measured run; 0 skips it. */
  latencyDuration: number
  warmup: number
  connections: number
  pipelining: number
  decisions: number
  mixed: boolean
  /** Also run `echo+audit`: the echo plus the two audit appends, to separate durability's cost. */
  breakdown: boolean
  profile: boolean
}

function settings(): Settings {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      duration: { type: 'string' },
      'latency-duration': { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      pipelining: { type: 'string' },
      decisions: { type: 'string' },
      'no-mixed': { type: 'boolean' },
      'no-breakdown': { type: 'boolean' },
      profile: { type: 'boolean' },
    },
  })
  const env = process.env
  const num = (
    flag: string | undefined,
    envValue: string | undefined,
    fallback: number,
    name: string,
  ) => {
    const raw = flag ?? envValue
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${raw}`)
    return n
  }
  return {
    duration: num(values.duration, env.BENCH_DURATION, 10, 'duration'),
    latencyDuration: num(
      values['latency-duration'],
      env.BENCH_LATENCY_DURATION,
      3,
      'latency-duration',
    ),
    warmup: num(values.warmup, env.BENCH_WARMUP, 2, 'warmup'),
    connections: Math.max(
      1,
      Math.round(num(values.connections, env.BENCH_CONNECTIONS, 50, 'connections')),
    ),
    pipelining: Math.max(
      1,
      Math.round(num(values.pipelining, env.BENCH_PIPELINING, 1, 'pipelining')),
    ),
    decisions: Math.max(
      1,
      Math.round(num(values.decisions, env.BENCH_DECISIONS, 200_000, 'decisions')),
    ),
    mixed: !values['no-mixed'] && env.BENCH_MIXED !== '0',
    breakdown: !values['no-breakdown'] && env.BENCH_BREAKDOWN !== '0',
    profile: Boolean(values.profile) || env.BENCH_PROFILE === '1',
  }
}

/** A server under test in its own process. */
class Child {
  private waiters: { type: FromChild['type']; resolve: (m: FromChild) => void }[] = []
  private constructor(private readonly proc: ChildProcess) {
    proc.on('message', (m: FromChild) => {
      const i = this.waiters.findIndex((w) => w.type === m.type)
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m)
    })
  }

  static async start(
    kind: Kind,
    args: string[],
    execArgv: string[],
  ): Promise<{ child: Child; port: number }> {
    const proc = fork(SELF, ['--serve', kind, ...args], {
      execArgv: [...process.execArgv, ...execArgv],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    live.add(proc)
    proc.on('exit', () => live.delete(proc))
    const child = new Child(proc)
    const ready = await child.next('ready', 30_000)
    if (ready.type !== 'ready') throw new Error('unexpected message')
    return { child, port: ready.port }
  }

  next(type: FromChild['type'], timeoutMs: number): Promise<FromChild> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server process: no \`${type}\` within ${timeoutMs} ms`)),
        timeoutMs,
      )
      const onExit = (code: number | null) =>
        reject(new Error(`server process exited (${code}) before \`${type}\``))
      this.proc.once('exit', onExit)
      this.waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer)
          this.proc.off('exit', onExit)
          resolve(m)
        },
      })
    })
  }

  async cpu(): Promise<{ usage: NodeJS.CpuUsage; at: number }> {
    const p = this.next('cpu', 10_000)
    this.proc.send({ type: 'cpu' } satisfies ToChild)
    const m = await p
    if (m.type !== 'cpu') throw new Error('unexpected message')
    return m
  }

  async stop(): Promise<Extract<FromChild, { type: 'stopped' }>> {
    const p = this.next('stopped', 60_000)
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()))
    this.proc.send({ type: 'stop' } satisfies ToChild)
    const m = await p
    await exited
    if (m.type !== 'stopped') throw new Error('unexpected message')
    return m
  }
}

const live = new Set<ChildProcess>()

interface LoadResult {
  name: string
  rps: number
  total: number
  /** Length of the measured run as autocannon reports it (it ends on a 1 s sample tick). */
  seconds: number
  p50: number
  p99: number
  p999: number
  max: number
  non2xx: number
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  /** Server CPU time over wall time during the measured run (1.0 = one core busy). */
  serverCpu: number
  /** Load generator (this process) CPU over wall time. */
  clientCpu: number
  /** The same requests over one connection: service time without queueing. */
  single?: { rps: number; p50: number; p99: number; total: number; non2xx: number }
  requestsReceived?: number
  audit?: AuditSummary
  auditOk?: boolean
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/**
 * Run autocannon; latencies are recorded here from each response (autocannon's own histogram
 * has 1 ms resolution, too coarse for sub-millisecond requests).
 */
async function load(
  port: number,
  requests: RequestSpec[],
  s: Settings,
  duration: number,
  connections = s.connections,
) {
  const latencies: number[] = []
  const instance = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    pipelining: connections === 1 ? 1 : s.pipelining,
    duration,
    timeout: 10,
    requests,
  })
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms)
  })
  const result: Result = await instance
  const sorted = Float64Array.from(latencies).sort()
  return { result, sorted }
}

async function measure(
  name: string,
  child: Child,
  port: number,
  requests: RequestSpec[],
  s: Settings,
): Promise<LoadResult> {
  if (s.warmup > 0) await load(port, requests, s, s.warmup)
  const cpu0 = await child.cpu()
  const mine0 = process.cpuUsage()
  const t0 = performance.now()
  const { result, sorted } = await load(port, requests, s, s.duration)
  const wall = performance.now() - t0
  const mine = process.cpuUsage(mine0)
  const cpu1 = await child.cpu()
  const serverCpuMs =
    (cpu1.usage.user - cpu0.usage.user + cpu1.usage.system - cpu0.usage.system) / 1000
  let single: LoadResult['single']
  if (s.latencyDuration > 0) {
    const one = await load(port, requests, s, s.latencyDuration, 1)
    single = {
      rps: one.result.requests.total / one.result.duration,
      p50: percentile(one.sorted, 50),
      p99: percentile(one.sorted, 99),
      total: one.result.requests.total,
      non2xx: one.result.non2xx + one.result.errors + one.result.timeouts,
    }
  }
  const statusCodes: Record<string, number> = {}
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {}))
    statusCodes[code] = Number(v.count)
  return {
    name,
    rps: result.requests.total / result.duration,
    total: result.requests.total,
    seconds: result.duration,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    serverCpu: serverCpuMs / (cpu1.at - cpu0.at),
    clientCpu: (mine.user + mine.system) / 1000 / wall,
    ...(single && { single }),
  }
}

const ECHO: RequestSpec = {
  method: 'POST',
  path: '/echo',
  headers: jsonHeaders(),
  body: SEARCH_BODY,
}

/** One server process: start, measure, stop, and check what it left in its audit log. */
async function runServer(
  name: string,
  kind: Kind,
  requests: RequestSpec[],
  s: Settings,
  dir: string,
): Promise<LoadResult> {
  const db = join(dir, `${name}.db`)
  const execArgv =
    s.profile && kind === 'warden' ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []
  const { child, port } = await Child.start(kind, ['--db', db], execArgv)
  let r: LoadResult
  try {
    r = await measure(name, child, port, requests, s)
  } catch (err) {
    await child.stop().catch(() => undefined)
    throw err
  }
  const stopped = await child.stop()
  r.requestsReceived = stopped.received
  const a = stopped.audit
  if (a) {
    r.audit = a
    // Every request that reached the server left exactly its two events, and the chain holds.
    r.auditOk =
      a.chainOk &&
      a.chainChecked === a.rows &&
      a.rows === 2 * stopped.received &&
      a.byType.tool_call_allowed === stopped.received &&
      a.byType.tool_call_executed === stopped.received
  }
  return r
}

/** The pipeline alone, awaited call after call, for the allowed search call. */
async function decisionRate(
  n: number,
): Promise<{ perSecond: number; usPerDecision: number; rounds: number[]; notAllowed: number }> {
  const loaded = loadConfig(CONFIG)
  const p = pipeline(buildRuntime(loaded, await openState()))
  const params = { query: 'reset password' }
  const context = {}
  let notAllowed = 0
  const call = (i: number): ToolCall => ({
    requestId: `bench-${i}`,
    agentId: 'support-agent',
    tool: 'search_knowledge_base',
    params,
    sessionId: 'bench',
    context,
    credential: 'demo-support-agent-key',
    receivedAt: Date.now(),
  })
  const loop = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const d = await p.decide(call(i))
      if (d.decision !== 'allow') notAllowed++
    }
  }
  await loop(Math.min(50_000, n)) // warm up: JIT, caches
  const rounds: number[] = []
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now()
    await loop(n)
    rounds.push(n / ((performance.now() - t0) / 1000))
  }
  const median = [...rounds].sort((a, b) => a - b)[1]!
  return { perSecond: median, usPerDecision: 1e6 / median, rounds, notAllowed }
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '-'

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  const line = (r: string[]) =>
    `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`
  const sep = `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n')
}

async function main(): Promise<number> {
  const s = settings()
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-'))
  const out = (line = '') => process.stdout.write(`${line}\n`)
  out(`# Warden gateway benchmark`)
  out(
    `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}), ` +
      `${s.connections} connections, pipelining ${s.pipelining}, ${s.warmup} s warm-up + ${s.duration} s per run`,
  )
  out(`config ${loadConfig(CONFIG).policyVersion}, audit store ${dir}/*.db (WAL, synchronous=FULL)`)
  out()
  try {
    out(`in-process decisions: ${fmt(s.decisions)} calls x 3 rounds ...`)
    const decide = await decisionRate(s.decisions)
    out(
      `  ${fmt(decide.perSecond)} decisions/s (${fmt(decide.usPerDecision, 2)} µs/decision); rounds: ${decide.rounds.map((r) => fmt(r)).join(', ')}`,
    )
    out()

    out('echo ...')
    const echo = await runServer('echo', 'echo', [ECHO], s, dir)
    const runs = [echo]
    if (s.breakdown) {
      out('echo+audit (the echo plus the gateway’s two audit events per request) ...')
      runs.push(await runServer('echo+audit', 'echo-audit', [ECHO], s, dir))
    }
    out('warden (search_knowledge_base) ...')
    const authSearch: RequestSpec = {
      method: 'POST',
      path: '/gateway/execute',
      headers: jsonHeaders('demo-support-agent-key'),
      body: SEARCH_BODY,
    }
    const warden = await runServer('warden', 'warden', [authSearch], s, dir)
    runs.push(warden)
    if (s.mixed) {
      out('warden (mixed: 4 allowed calls, 3 agents, 3 tools) ...')
      const specs = MIXED.map((m) => ({
        method: 'POST',
        path: '/gateway/execute',
        headers: jsonHeaders(m.key),
        body: JSON.stringify(m.body),
      }))
      runs.push(await runServer('warden-mixed', 'warden', specs, s, dir))
    }
    out()

    const header = [
      'run',
      'req/s',
      'vs echo',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'requests',
      'secs',
      'non-2xx',
      'errors',
      'server CPU',
      'client CPU',
    ]
    out(
      table([
        header,
        ...runs.map((r) => [
          r.name,
          fmt(r.rps),
          `${fmt(r.rps / echo.rps, 2)}x`,
          fmt(r.p50, 2),
          fmt(r.p99, 2),
          fmt(r.p999, 2),
          fmt(r.total),
          fmt(r.seconds, 2),
          fmt(r.non2xx),
          fmt(r.errors + r.timeouts),
          `${fmt(r.serverCpu * 100)}%`,
          `${fmt(r.clientCpu * 100)}%`,
        ]),
      ]),
    )
    out()
    if (s.latencyDuration > 0) {
      out(`one connection (no queueing), ${s.latencyDuration} s each:`)
      out()
      out(
        table([
          ['run', 'req/s', 'p50 ms', 'p99 ms', 'requests', 'non-2xx + errors'],
          ...runs.map((r) => [
            r.name,
            fmt(r.single?.rps ?? NaN),
            fmt(r.single?.p50 ?? NaN, 2),
            fmt(r.single?.p99 ?? NaN, 2),
            fmt(r.single?.total ?? NaN),
            fmt(r.single?.non2xx ?? NaN),
          ]),
        ]),
      )
      out()
    }
    out(
      `decide(): ${fmt(decide.perSecond)} decisions/s, ${fmt(decide.usPerDecision, 2)} µs/decision (median of 3 x ${fmt(s.decisions)})`,
    )
    out()

    let ok = true
    for (const r of runs) {
      const codes = Object.entries(r.statusCodes)
        .map(([c, n]) => `${c}: ${fmt(n)}`)
        .join(', ')
      if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0 || (r.single?.non2xx ?? 0) > 0) {
        ok = false
        out(
          `FAIL ${r.name}: ${fmt(r.non2xx)} non-2xx, ${fmt(r.errors)} errors, ${fmt(r.timeouts)} timeouts (${codes}); one-connection run: ${fmt(r.single?.non2xx ?? 0)} failed`,
        )
      }
      if (r.audit) {
        const a = r.audit
        const types = Object.entries(a.byType)
          .map(([t, n]) => `${t} ${fmt(n)}`)
          .join(', ')
        out(
          `${r.auditOk ? 'ok  ' : 'FAIL'} ${r.name} audit: ${fmt(a.rows)} events for ${fmt(r.requestsReceived ?? 0)} requests received ` +
            `(warm-up included; ${fmt(r.total)} answered in the measured run) = ${fmt(a.rows / (r.requestsReceived || 1), 2)} per request [${types}]; ` +
            `chain ${a.chainOk ? `verified (${fmt(a.chainChecked)} events)` : `BROKEN at ${a.firstBad}`}`,
        )
        if (!r.auditOk) ok = false
      }
    }
    if (decide.notAllowed > 0) {
      ok = false
      out(`FAIL decide(): ${fmt(decide.notAllowed)} decisions were not \`allow\``)
    }
    const ratio = warden.rps / echo.rps
    out()
    out(
      `target: warden >= ${TARGET_RATIO}x echo: ${fmt(ratio, 2)}x -> ${ratio >= TARGET_RATIO ? 'met' : 'NOT met'}`,
    )
    out(
      `target: >= ${fmt(TARGET_DECISIONS)} decisions/s: ${fmt(decide.perSecond)} -> ${decide.perSecond >= TARGET_DECISIONS ? 'met' : 'NOT met'}`,
    )
    if (s.profile) out(`CPU profiles of the gateway processes written to ${PROFILE_DIR}`)
    return ok ? 0 : 1
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------

const argv = process.argv.slice(2)
const serveAt = argv.indexOf('--serve')
if (serveAt >= 0) {
  const kind = argv[serveAt + 1]
  const dbAt = argv.indexOf('--db')
  if (!KINDS.includes(kind as Kind)) throw new Error(`--serve ${KINDS.join('|')}, not ${kind}`)
  serve(kind as Kind, dbAt >= 0 ? argv[dbAt + 1] : undefined).catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
} else {
  const stopAll = () => {
    for (const p of live) p.kill()
  }
  process.on('SIGINT', () => {
    stopAll()
    process.exit(130)
  })
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      console.error(err)
      stopAll()
      process.exitCode = 1
    },
  )
}
