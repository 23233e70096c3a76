// Issue 12: `POST /gateway/execute` on one machine, from the default deployment (SQLite store,
// memory state) to the scaled-out one (PostgreSQL store, Redis state, several instances behind a
// load balancer), with a bare Fastify echo measured in the same run as the baseline.
//
//   npm run bench:scale
//   npm run bench:scale -- --duration 10 --warmup 2 --connections 50 [--no-lb-one]
//                          [--balancer child|parent] [--profile]
//   (or BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_LB_ONE=0, BENCH_BALANCER,
//    BENCH_PROFILE=1; DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test;
//    REDIS_URL, default redis://127.0.0.1:6379)
//
// Runs, one after the other, each server in its own child process (this file with `--serve`):
//
// - echo:        bare Fastify, `POST /echo` returns the parsed JSON body.
// - sqlite:      createWarden(config/bench/warden.yaml) on a fresh SQLite file, memory state.
// - pg+redis x1: the same gateway on PostgreSQL (a schema of this run's own) and Redis (a key
//                prefix of this run's own), one instance, hit directly.
// - pg+redis x1 via lb: the same, behind scripts/balancer.ts: the cost of the extra hop alone.
// - pg+redis x2: two instances (two processes) sharing that schema and prefix, behind the balancer.
//
// The balancer runs in a child process of its own by default (`--balancer parent` runs it in this
// process, next to autocannon). autocannon runs here. On a 2-core machine everything (load
// generator, balancer, instances, PostgreSQL, Redis) shares the two cores.
//
// After each gateway run its instances are closed (flushing their audit queues) and the log is
// checked: exactly one `tool_call_allowed` and one `tool_call_executed` per request that reached
// an instance (counted on the socket, warm-up included), and `verifyChain` walks the whole chain.
// The schemas and key prefixes are dropped at the end. Exit code 0 when every request got a 2xx
// and every audit check passed, 1 if not.

import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon, { type RequestSpec, type Result } from 'autocannon'
import Fastify from 'fastify'
import pg from 'pg'
import { createClient } from 'redis'
import { startBalancer, type Balancer } from '../scripts/balancer.js'
import { verifyChain } from '../src/audit/verify.js'
import { loadConfig } from '../src/config/loader.js'
import { openState } from '../src/state/index.js'
import { openStores, type Stores } from '../src/store/index.js'
import { createWarden } from '../src/warden.js'

const CONFIG = fileURLToPath(new URL('../config/bench/warden.yaml', import.meta.url))
const SELF = fileURLToPath(import.meta.url)
/** `--profile` writes a V8 CPU profile of each gateway process here (git-ignored). */
const PROFILE_DIR = fileURLToPath(new URL('./profiles/', import.meta.url))
const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** The same call as bench/gateway.ts: allowed, so every request must come back 200. */
const SEARCH_BODY = JSON.stringify({
  agent_id: 'support-agent',
  tool: 'search_knowledge_base',
  params: { query: 'reset password' },
  session_id: 'bench',
})
const EXECUTE: RequestSpec = {
  method: 'POST',
  path: '/gateway/execute',
  headers: { 'content-type': 'application/json', authorization: 'Bearer demo-support-agent-key' },
  body: SEARCH_BODY,
}
const ECHO: RequestSpec = {
  method: 'POST',
  path: '/echo',
  headers: { 'content-type': 'application/json' },
  body: SEARCH_BODY,
}

// ---------------------------------------------------------------------------------------------
// Server mode (child process)

type ToChild = { type: 'cpu' } | { type: 'stop' }
type FromChild =
  | { type: 'ready'; port: number }
  | { type: 'cpu'; usage: NodeJS.CpuUsage; at: number }
  | { type: 'stopped'; received: number }

type Kind = 'echo' | 'sqlite' | 'pg' | 'balancer'
const KINDS: readonly Kind[] = ['echo', 'sqlite', 'pg', 'balancer']

interface ServeArgs {
  db?: string
  schema?: string
  prefix?: string
  backends?: string
}

interface Server {
  port: number
  /** Requests for the measured path, counted as they arrive on the socket. */
  received(): number
  close(): Promise<void>
}

async function fastifyServer(
  app: import('fastify').FastifyInstance,
  path: string,
  close: () => Promise<void>,
): Promise<Server> {
  let received = 0
  app.server.on('request', (req: { url?: string }) => {
    if (req.url === path) received++
  })
  // Handlers still running. When the load generator stops it drops its connections, and
  // `app.close()` then resolves at once, while a handler whose client has gone may still be
  // between its decision and its execution event: closing the stores under it would lose that
  // event. So the bench waits for the handlers before closing.
  let inFlight = 0
  app.addHook('onRequest', async () => {
    inFlight++
  })
  app.addHook('onSend', async () => {
    inFlight--
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return {
    port: address.port,
    received: () => received,
    async close() {
      const end = Date.now() + 30_000
      while (inFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
      if (inFlight > 0) console.error(`${inFlight} handlers still running after 30 s; closing`)
      await close()
    },
  }
}

async function startServer(kind: Kind, a: ServeArgs): Promise<Server> {
  switch (kind) {
    case 'echo': {
      const app = Fastify({ logger: false })
      app.post('/echo', async (req) => req.body)
      return fastifyServer(app, '/echo', () => app.close())
    }
    case 'sqlite': {
      if (!a.db) throw new Error('--serve sqlite needs --db')
      const w = await createWarden({
        config: CONFIG,
        sqlitePath: a.db,
        sweepIntervalMs: 5000,
        mcp: { connect: false },
      })
      return fastifyServer(w.app, '/gateway/execute', () => w.close())
    }
    case 'pg': {
      if (!a.schema || !a.prefix) throw new Error('--serve pg needs --schema and --prefix')
      const w = await createWarden({
        config: CONFIG,
        stores: await openStores({ kind: 'postgres', url: PG_URL, schema: a.schema }),
        state: await openState({ kind: 'redis', url: REDIS_URL, prefix: a.prefix }),
        databaseUrl: PG_URL,
        sweepIntervalMs: 5000,
        mcp: { connect: false },
      })
      return fastifyServer(w.app, '/gateway/execute', () => w.close())
    }
    case 'balancer': {
      const lb = await balancerFor(a.backends ?? '')
      return { port: lb.port, received: () => 0, close: () => lb.close() }
    }
  }
}

function balancerFor(list: string): Promise<Balancer> {
  const backends = list
    .split(',')
    .filter(Boolean)
    .map((hp) => {
      const [host, port] = hp.split(':')
      return { host: host!, port: Number(port) }
    })
  if (backends.length === 0) throw new Error('balancer: no backends')
  return startBalancer(backends, { checkMs: 500 })
}

async function serve(kind: Kind, a: ServeArgs): Promise<void> {
  const send = (m: FromChild) => process.send?.(m)
  const server = await startServer(kind, a)
  process.on('message', (msg: ToChild) => {
    if (msg.type === 'cpu') send({ type: 'cpu', usage: process.cpuUsage(), at: performance.now() })
    if (msg.type === 'stop') {
      void (async () => {
        // Closing waits for requests in flight and flushes the audit queue.
        await server.close()
        send({ type: 'stopped', received: server.received() })
        process.disconnect?.()
      })().catch((err: unknown) => {
        console.error(err)
        process.exit(1)
      })
    }
  })
  send({ type: 'ready', port: server.port })
}

// ---------------------------------------------------------------------------------------------
// Driver (parent process)

interface Settings {
  duration: number
  warmup: number
  connections: number
  /** Also run one PostgreSQL + Redis instance behind the balancer (the hop's cost alone). */
  lbOne: boolean
  balancer: 'child' | 'parent'
  /** Write a V8 CPU profile of each gateway process to bench/profiles/ (git-ignored). */
  profile: boolean
}

function settings(): Settings {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      'no-lb-one': { type: 'boolean' },
      balancer: { type: 'string' },
      profile: { type: 'boolean' },
    },
  })
  const env = process.env
  const num = (flag: string | undefined, envValue: string | undefined, fallback: number) => {
    const raw = flag ?? envValue
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < 0) throw new Error(`not a number: ${raw}`)
    return n
  }
  const balancer = values.balancer ?? env.BENCH_BALANCER ?? 'child'
  if (balancer !== 'child' && balancer !== 'parent')
    throw new Error(`--balancer child|parent, not ${balancer}`)
  return {
    duration: num(values.duration, env.BENCH_DURATION, 10),
    warmup: num(values.warmup, env.BENCH_WARMUP, 2),
    connections: Math.max(1, Math.round(num(values.connections, env.BENCH_CONNECTIONS, 50))),
    lbOne: !values['no-lb-one'] && env.BENCH_LB_ONE !== '0',
    balancer,
    profile: Boolean(values.profile) || env.BENCH_PROFILE === '1',
  }
}

const live = new Set<ChildProcess>()

/** A server (or the balancer) in its own process. */
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
    execArgv: string[] = [],
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

  /** CPU time used so far, in ms. */
  async cpuMs(): Promise<number> {
    const p = this.next('cpu', 10_000)
    this.proc.send({ type: 'cpu' } satisfies ToChild)
    const m = await p
    if (m.type !== 'cpu') throw new Error('unexpected message')
    return (m.usage.user + m.usage.system) / 1000
  }

  async stop(): Promise<number> {
    const p = this.next('stopped', 60_000)
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()))
    this.proc.send({ type: 'stop' } satisfies ToChild)
    const m = await p
    await exited
    if (m.type !== 'stopped') throw new Error('unexpected message')
    return m.received
  }
}

/** Busy and total jiffies of the whole machine (all processes, both cores), from /proc/stat. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    const idle = (f[3] ?? 0) + (f[4] ?? 0)
    const total = f.reduce((s, n) => s + n, 0)
    return { busy: total - idle, total }
  } catch {
    return undefined
  }
}

/**
 * CPU ticks (1/100 s on Linux) of every PostgreSQL and Redis server process, by pid. These servers
 * are shared: whatever else uses them at the time is counted too.
 */
function serverTicks(): Map<number, number> {
  const ticks = new Map<number, number>()
  let pids: string[]
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d))
  } catch {
    return ticks
  }
  for (const pid of pids) {
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
      if (comm !== 'postgres' && comm !== 'redis-server') continue
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks.set(Number(pid), Number(f[11]) + Number(f[12]))
    } catch {
      // exited meanwhile
    }
  }
  return ticks
}

/** Seconds of CPU the servers used between two `serverTicks()` (a new process counts whole). */
function serverSeconds(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0
  for (const [pid, t] of after) sum += t - (before.get(pid) ?? 0)
  return sum / 100
}

interface AuditCheck {
  rows: number
  allowed: number
  executed: number
  other: number
  chainOk: boolean
  chainChecked: number
  firstBad?: string
  ok: boolean
}

interface LoadResult {
  name: string
  rps: number
  total: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  statusCodes: Record<string, number>
  /** CPU of the gateway processes (and a child balancer) over wall time; 1.0 = one core. */
  serverCpu: number
  /** CPU of this process (autocannon, and the balancer with `--balancer parent`). */
  clientCpu: number
  /** PostgreSQL and Redis processes (shared: anything else using them counts too); 1.0 = one core. */
  dbCpu: number
  /** The whole machine's busy share of all its cores during the run (others' work included). */
  machineCpu: number
  received?: number
  audit?: AuditCheck
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/** Latencies are recorded per response (autocannon's histogram has 1 ms resolution). */
async function load(port: number, request: RequestSpec, s: Settings, duration: number) {
  const latencies: number[] = []
  const instance = autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: s.connections,
    pipelining: 1,
    duration,
    timeout: 10,
    requests: [request],
  })
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    latencies.push(ms)
  })
  const result: Result = await instance
  return { result, sorted: Float64Array.from(latencies).sort() }
}

async function measure(
  name: string,
  processes: Child[],
  port: number,
  request: RequestSpec,
  s: Settings,
): Promise<LoadResult> {
  if (s.warmup > 0) await load(port, request, s, s.warmup)
  const cpuOf = async () =>
    (await Promise.all(processes.map((c) => c.cpuMs()))).reduce((a, b) => a + b, 0)
  const server0 = await cpuOf()
  const mine0 = process.cpuUsage()
  const m0 = machineTicks()
  const db0 = serverTicks()
  const t0 = performance.now()
  const { result, sorted } = await load(port, request, s, s.duration)
  const wall = performance.now() - t0
  const m1 = machineTicks()
  const db1 = serverTicks()
  const mine = process.cpuUsage(mine0)
  const server1 = await cpuOf()
  const statusCodes: Record<string, number> = {}
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {}))
    statusCodes[code] = Number(v.count)
  return {
    name,
    rps: result.requests.total / result.duration,
    total: result.requests.total,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statusCodes,
    serverCpu: (server1 - server0) / wall,
    clientCpu: (mine.user + mine.system) / 1000 / wall,
    dbCpu: serverSeconds(db0, db1) / (wall / 1000),
    machineCpu: m0 && m1 ? (m1.busy - m0.busy) / (m1.total - m0.total) : NaN,
  }
}

/** Count and verify what a run left in its log (the instances are closed by now). */
async function checkAudit(stores: Stores, received: number): Promise<AuditCheck> {
  const counts = await stores.audit.counts()
  const byType: Record<string, number> = {}
  let rows = 0
  for (const r of counts.rows) {
    byType[r.type] = (byType[r.type] ?? 0) + r.n
    rows += r.n
  }
  const allowed = byType.tool_call_allowed ?? 0
  const executed = byType.tool_call_executed ?? 0
  const chain = await verifyChain(stores.audit)
  return {
    rows,
    allowed,
    executed,
    other: rows - allowed - executed,
    chainOk: chain.ok,
    chainChecked: chain.checked,
    ...(chain.firstBad && { firstBad: `seq ${chain.firstBad.seq}: ${chain.firstBad.problem}` }),
    ok:
      chain.ok &&
      chain.checked === rows &&
      rows === 2 * received &&
      allowed === received &&
      executed === received,
  }
}

interface World {
  schema: string
  prefix: string
}

async function dropWorlds(worlds: World[]): Promise<void> {
  if (worlds.length === 0) return
  const admin = new pg.Client({ connectionString: PG_URL })
  await admin.connect()
  try {
    for (const w of worlds) await admin.query(`DROP SCHEMA IF EXISTS ${w.schema} CASCADE`)
  } finally {
    await admin.end()
  }
  const redis = createClient({ url: REDIS_URL })
  await redis.connect()
  try {
    for (const w of worlds)
      for await (const keys of redis.scanIterator({ MATCH: `${w.prefix}*`, COUNT: 500 }))
        if (keys.length > 0) await redis.del(keys)
  } finally {
    await redis.quit()
  }
}

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
  const started = performance.now()
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-scale-'))
  const worlds: World[] = []
  const newWorld = (): World => {
    const id = randomBytes(6).toString('hex')
    const w = { schema: `warden_bench_${id}`, prefix: `warden-bench:${id}:` }
    worlds.push(w)
    return w
  }
  const out = (line = '') => process.stdout.write(`${line}\n`)
  out('# Warden scale-out benchmark')
  out(
    `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim() ?? 'unknown'}), ` +
      `${s.connections} connections, ${s.warmup} s warm-up + ${s.duration} s per run, ` +
      `balancer in ${s.balancer === 'child' ? 'its own child process' : 'the load generator’s process'}`,
  )
  out(`config ${loadConfig(CONFIG).policyVersion}; PostgreSQL ${PG_URL}; Redis ${REDIS_URL}`)
  out()

  const runs: LoadResult[] = []
  const prof = s.profile ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []

  /** Start `n` PostgreSQL + Redis instances on a fresh world, one after the other. */
  const pgInstances = async (n: number, world: World) => {
    const started: { child: Child; port: number }[] = []
    // One at a time: the first applies the migrations (the others would wait on its lock).
    for (let i = 0; i < n; i++)
      started.push(
        await Child.start('pg', ['--schema', world.schema, '--prefix', world.prefix], prof),
      )
    return started
  }

  /** Measure through a balancer in front of `ports`, in a child process or in this one. */
  const behindBalancer = async (
    name: string,
    instances: Child[],
    ports: number[],
  ): Promise<LoadResult> => {
    const backends = ports.map((p) => `127.0.0.1:${p}`).join(',')
    if (s.balancer === 'parent') {
      const lb = await balancerFor(backends)
      try {
        return await measure(name, instances, lb.port, EXECUTE, s)
      } finally {
        await lb.close()
      }
    }
    const lb = await Child.start('balancer', ['--backends', backends])
    try {
      return await measure(name, [...instances, lb.child], lb.port, EXECUTE, s)
    } finally {
      await lb.child.stop()
    }
  }

  /** Stop the instances, then count and verify the shared log. */
  const finish = async (r: LoadResult, instances: Child[], world: World) => {
    let received = 0
    for (const c of instances) received += await c.stop()
    r.received = received
    const stores = await openStores({ kind: 'postgres', url: PG_URL, schema: world.schema })
    try {
      r.audit = await checkAudit(stores, received)
    } finally {
      await stores.close()
    }
  }

  try {
    out('echo ...')
    {
      const { child, port } = await Child.start('echo', [])
      const r = await measure('echo', [child], port, ECHO, s)
      r.received = await child.stop()
      runs.push(r)
    }

    out('warden, SQLite + memory state ...')
    {
      const db = join(dir, 'sqlite.db')
      const { child, port } = await Child.start('sqlite', ['--db', db], prof)
      const r = await measure('sqlite + memory', [child], port, EXECUTE, s)
      r.received = await child.stop()
      const stores = await openStores({ kind: 'sqlite', sqlitePath: db })
      try {
        r.audit = await checkAudit(stores, r.received)
      } finally {
        await stores.close()
      }
      runs.push(r)
    }

    out('warden, PostgreSQL + Redis, one instance ...')
    {
      const world = newWorld()
      const [one] = await pgInstances(1, world)
      const r = await measure('pg + redis x1', [one!.child], one!.port, EXECUTE, s)
      await finish(r, [one!.child], world)
      runs.push(r)
    }

    if (s.lbOne) {
      out('warden, PostgreSQL + Redis, one instance behind the balancer ...')
      const world = newWorld()
      const [one] = await pgInstances(1, world)
      const r = await behindBalancer('pg + redis x1 via lb', [one!.child], [one!.port])
      await finish(r, [one!.child], world)
      runs.push(r)
    }

    out('warden, PostgreSQL + Redis, two instances behind the balancer ...')
    {
      const world = newWorld()
      const two = await pgInstances(2, world)
      const children = two.map((t) => t.child)
      const r = await behindBalancer(
        'pg + redis x2 via lb',
        children,
        two.map((t) => t.port),
      )
      await finish(r, children, world)
      runs.push(r)
    }
    out()

    const echo = runs[0]!
    const sqlite = runs[1]!
    out(
      table([
        [
          'run',
          'req/s',
          'vs echo',
          'vs sqlite',
          'p50 ms',
          'p99 ms',
          'requests',
          'non-2xx',
          'errors',
          'server CPU',
          'client CPU',
          'pg+redis CPU',
          'machine CPU',
        ],
        ...runs.map((r) => [
          r.name,
          fmt(r.rps),
          `${fmt(r.rps / echo.rps, 2)}x`,
          `${fmt(r.rps / sqlite.rps, 2)}x`,
          fmt(r.p50, 2),
          fmt(r.p99, 2),
          fmt(r.total),
          fmt(r.non2xx),
          fmt(r.errors),
          `${fmt(r.serverCpu * 100)}%`,
          `${fmt(r.clientCpu * 100)}%`,
          `${fmt(r.dbCpu * 100)}%`,
          `${fmt(r.machineCpu * 100)}%`,
        ]),
      ]),
    )
    out()
    out(
      'server CPU: the gateway processes (and a child balancer) over wall time, 100% = one core; ' +
        'client CPU: this process (autocannon); pg+redis CPU: every PostgreSQL and Redis server ' +
        'process (shared servers: other users count too); machine CPU: all cores busy, any process.',
    )
    out()

    let ok = true
    for (const r of runs) {
      if (r.non2xx > 0 || r.errors > 0) {
        ok = false
        const codes = Object.entries(r.statusCodes)
          .map(([c, n]) => `${c}: ${fmt(n)}`)
          .join(', ')
        out(`FAIL ${r.name}: ${fmt(r.non2xx)} non-2xx, ${fmt(r.errors)} errors (${codes})`)
      }
      const a = r.audit
      if (a) {
        if (!a.ok) ok = false
        out(
          `${a.ok ? 'ok  ' : 'FAIL'} ${r.name} audit: ${fmt(a.rows)} events for ${fmt(r.received ?? 0)} requests received ` +
            `(warm-up included): ${fmt(a.allowed)} tool_call_allowed, ${fmt(a.executed)} tool_call_executed, ${fmt(a.other)} other; ` +
            `chain ${a.chainOk ? `verified (${fmt(a.chainChecked)} events)` : `BROKEN at ${a.firstBad}`}`,
        )
      }
    }
    out()
    if (s.profile) out(`CPU profiles of the gateway processes written to ${PROFILE_DIR}`)
    out(`total ${fmt((performance.now() - started) / 1000, 0)} s`)
    return ok ? 0 : 1
  } finally {
    rmSync(dir, { recursive: true, force: true })
    await dropWorlds(worlds).catch((err: unknown) => {
      console.error('cleanup failed: schemas', worlds.map((w) => w.schema).join(', '), err)
    })
  }
}

// ---------------------------------------------------------------------------------------------

const argv = process.argv.slice(2)
const serveAt = argv.indexOf('--serve')
if (serveAt >= 0) {
  const kind = argv[serveAt + 1]
  const arg = (name: string) => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  if (!KINDS.includes(kind as Kind)) throw new Error(`--serve ${KINDS.join('|')}, not ${kind}`)
  serve(kind as Kind, {
    db: arg('db'),
    schema: arg('schema'),
    prefix: arg('prefix'),
    backends: arg('backends'),
  }).catch((err: unknown) => {
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
