import type { FastifyInstance } from 'fastify'
import { dirname } from 'node:path'
import { pino, type Logger } from 'pino'
import { buildApp } from './http/app.js'
import type { UpstreamAdmin } from './http/routes/mcp-upstreams.js'
import { configReloadedEvent, toolAcceptedEvent, toolPinEvent } from './audit/events.js'
import { ConfigError, formatPath, loadConfig, type LoadedConfig } from './config/loader.js'
import { canonicalHash } from './domain/canonical.js'
import { WardenError } from './domain/errors.js'
import { DemoBackend } from './demo/backend.js'
import { memoryBus, type EventBus } from './events/bus.js'
import { followedBus } from './events/follow.js'
import { demoExecutor } from './executors/demo.js'
import { httpExecutor, missingHeaderVariables } from './executors/http.js'
import { mcpExecutor } from './executors/mcp.js'
import { mcpUpstreams, type McpUpstreams } from './executors/mcp-upstreams.js'
import type { PinChange } from './domain/tool-pins.js'
import type { ToolCall } from './domain/types.js'
import { createEngine } from './gateway/engine.js'
import type { Gateway } from './gateway/service.js'
import { Metrics } from './http/metrics.js'
import { buildRuntime, LiveRuntime, type RuntimeSources } from './pipeline/runtime.js'
import { restoreState } from './pipeline/restore.js'
import { pipeline } from './pipeline/runner.js'
import { openState, type StateBackend } from './state/index.js'
import { memoryStores } from './store/memory.js'
import { openStores, storeOptions, type AuditLog, type Stores } from './store/index.js'
import { listenForCommits } from './store/postgres-listen.js'

/** How long a shutdown waits for running tools to finish and be recorded. */
const DRAIN_TIMEOUT_MS = 15_000
/** How long a shutdown lets open requests (long waits) finish before closing their connections. */
const CLOSE_GRACE_MS = 5_000

/** The principal a demo scenario's calls are made by, and its approvals' id prefix. */
export const SCENARIO_PRINCIPAL = 'demo-scenario'
export const SCENARIO_APPROVAL_PREFIX = 'apr_scenario_'

/** The real audit log, with each event marked as a demo scenario's, by its own principal. */
function scenarioAudit(audit: AuditLog): AuditLog {
  return {
    ...audit,
    append: (events) =>
      audit.append(
        events.map((e) => ({
          ...e,
          principal: e.principal === 'anonymous' ? e.principal : SCENARIO_PRINCIPAL,
          scenario: true,
        })),
      ),
  }
}

export interface WardenOptions {
  /** A loaded configuration, or the file to load. */
  config: LoadedConfig | string
  /** Overrides `store.sqlite_path` (tests use a temp file). */
  sqlitePath?: string
  /** `DATABASE_URL`, passed in by main.ts: a `postgres://` URL selects PostgreSQL. */
  databaseUrl?: string
  /** Stores to use instead of opening the `store:` section's backend; closed with the gateway. */
  stores?: Stores
  /** An open state backend; by default the one `state.kind` names is opened (and closed). */
  state?: StateBackend
  /** The Redis server for `state.kind: redis` (`REDIS_URL`). */
  redisUrl?: string
  /** The PostgreSQL schema for Warden's tables (`DATABASE_SCHEMA`; default: the connection's). */
  databaseSchema?: string
  /** The prefix of every Redis key (`REDIS_PREFIX`; default `warden:`). */
  redisPrefix?: string
  logger?: Logger
  /**
   * The environment the configuration's `*_env` names are read from (`injection.judge.api_key_env`);
   * main.ts passes its own. Default: none.
   */
  env?: Readonly<Record<string, string | undefined>>
  demoBackend?: DemoBackend
  /** How often pending approvals are checked for expiry; 0 disables the sweeper. */
  sweepIntervalMs?: number
  /** MCP upstream tuning (tests shorten the back-off and the health interval). */
  mcp?: {
    /**
     * False: start no upstream (their tools answer `upstream_error`). For gateways that never
     * forward an MCP call: most tests, and tools that only decide (replays, benchmarks).
     */
    connect?: boolean
    backoffMs?: number
    maxBackoffMs?: number
    healthIntervalMs?: number
    connectTimeoutMs?: number
  }
}

/** What a reload did: the version it replaced and the one now in force. */
export interface ReloadResult {
  file: string
  previous_policy_version: string
  policy_version: string
  /** False when the files load to the configuration already in force (still recorded). */
  changed: boolean
}

/**
 * The parts of the configuration that are wired once at start (a listening socket, a store, a
 * state backend, child processes, the demo world, a bound on the state's memory, the Host guard's
 * notify host): a reload that changes one is refused naming the field; they need a restart.
 */
const RESTART_ONLY: readonly (readonly string[])[] = [
  ['server'],
  ['store'],
  ['state'],
  ['mcp_upstreams'],
  ['demo'],
  ['sessions', 'max_sessions'],
  ['approvals', 'notify'],
]

/** The first path under which `a` and `b` differ, or null when they are equal. */
function firstDifference(
  a: unknown,
  b: unknown,
  path: (string | number)[],
): (string | number)[] | null {
  if (canonicalHash(a ?? null) === canonicalHash(b ?? null)) return null
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const key of keys) {
      const k = Array.isArray(a) ? Number(key) : key
      const found = firstDifference(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        [...path, k],
      )
      if (found) return found
    }
  }
  return path
}

/** Why `next` cannot replace `current` without a restart, naming the file and field; or null. */
export function restartOnlyChange(current: LoadedConfig, next: LoadedConfig): string | null {
  for (const section of RESTART_ONLY) {
    const pick = (c: LoadedConfig) =>
      section.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], c.config)
    const diff = firstDifference(pick(current), pick(next), [...section])
    if (diff) {
      const file = next.sources[section[0]!] ?? next.file
      return `${file}: ${formatPath(diff)}: changed, and it takes effect only at a restart (the configuration in force is kept)`
    }
  }
  return null
}

/** A wired gateway: the HTTP app and the parts behind it. */
export interface Warden {
  app: FastifyInstance
  gateway: Gateway
  stores: Stores
  bus: EventBus
  /** The configuration in force (replaced by a successful reload). */
  readonly loaded: LoadedConfig
  /**
   * Load the configuration files again and put them in force for calls that start from now on;
   * calls in flight finish under the version they started with. Validated first: on any error
   * (`config_invalid`, `config_needs_restart`, `audit_unavailable`) the configuration in force
   * is kept. Recorded as a `config_reloaded` event before it takes effect. `by` is who asked.
   */
  reload(by: string): Promise<ReloadResult>
  /** The MCP upstreams (none unless `mcp_upstreams` is set): status, unlisted tools, pins. */
  mcp: McpUpstreams
  close(): Promise<void>
}

/**
 * The event bus: in process for a store only this process writes (SQLite, memory); for a shared
 * store (PostgreSQL) one that delivers every instance's events from the log, in `seq` order, woken
 * by PostgreSQL's commit notices (decision 0019).
 */
async function eventBus(
  stores: Stores,
  databaseUrl: string | undefined,
  logger: Logger,
): Promise<EventBus & { close?(): Promise<void> }> {
  const onError = (err: unknown) => logger.error({ err }, 'event listener failed')
  if (stores.kind !== 'postgres') return memoryBus(onError)
  return followedBus({
    log: stores.audit,
    ...(databaseUrl && {
      wake: (onCommit: () => void) =>
        listenForCommits(databaseUrl, onCommit, (err) =>
          logger.warn({ err }, 'commit notices interrupted; reconnecting'),
        ),
    }),
    onError: (err) => logger.error({ err }, 'reading new events from the shared log failed'),
  })
}

/** Wire a gateway from a configuration. Nothing here reads the environment or opens a port. */
export async function createWarden(opts: WardenOptions): Promise<Warden> {
  const loaded = typeof opts.config === 'string' ? loadConfig(opts.config) : opts.config
  // A tool whose secret header has no value could only fail (or, worse, be called without it).
  const checkHeaderVariables = (l: LoadedConfig) => {
    const missing = missingHeaderVariables(l.config.tools, opts.env ?? {})
    if (missing.length > 0)
      throw new ConfigError(
        missing
          .map(
            (m) =>
              `tool \`${m.tool}\`: executor.headers_env.${m.header}: environment variable ${m.variable} is not set`,
          )
          .join('\n'),
      )
  }
  checkHeaderVariables(loaded)
  const logger = opts.logger ?? pino({ level: 'silent' })
  const metrics = new Metrics()
  // State first: a bad REDIS_URL is refused before any file is opened.
  const stateKind = opts.redisUrl !== undefined ? 'redis' : loaded.config.state.kind
  // A memory backend starts empty and is rebuilt from the audit log below; while recorded
  // rate-limit hits are replayed its clock reads each hit's recorded time.
  let replayAt: number | undefined
  const restore = opts.state === undefined && stateKind === 'memory'
  const state =
    opts.state ??
    (await openState({
      kind: stateKind,
      maxSessions: loaded.config.sessions.max_sessions,
      ...(restore && {
        clock: () => replayAt ?? Date.now(),
        replaying: () => replayAt !== undefined,
      }),
      ...(opts.redisUrl !== undefined && { url: opts.redisUrl }),
      ...(opts.redisPrefix !== undefined && { prefix: opts.redisPrefix }),
    }))
  const stores =
    opts.stores ??
    (await openStores(
      storeOptions(loaded.config.store, {
        sqlitePath: opts.sqlitePath,
        databaseUrl: opts.databaseUrl,
        databaseSchema: opts.databaseSchema,
      }),
    ))
  const { connect: connectUpstreams = true, ...mcpTuning } = opts.mcp ?? {}
  // The MCP upstreams (nothing connects before `start` below). Pins of tool definitions are
  // written to the audit log (their durable, shared copy); the recorder exists only once the
  // engine does, and no upstream is listed before that. The pipeline reads the pins' blocks.
  const pinLog: { record?: (change: PinChange) => Promise<void> } = {}
  const mcp = mcpUpstreams(loaded.config, {
    baseDir: dirname(loaded.file),
    logger: logger.child({ part: 'mcp' }),
    ...mcpTuning,
    record: async (change) => {
      if (!pinLog.record) throw new Error('audit recorder not ready')
      await pinLog.record(change)
    },
  })
  // Live facts the pipeline reads that are not configuration; a reload keeps them.
  const sources: RuntimeSources = {
    ...(opts.env && { env: opts.env }),
    definitionBlock: (tool) => {
      const blocked = mcp.check(tool)
      return blocked === 'unknown' || blocked === 'unrecorded' ? undefined : blocked
    },
  }
  let current = loaded
  const runtime = new LiveRuntime(buildRuntime(loaded, state, sources))
  if (restore) {
    // INVARIANT: before the app exists, so no call is decided on state not yet rebuilt. A log
    // that cannot be read stops the start-up: serving with forgotten limits would fail open.
    const started = performance.now()
    const setClock = (at: number | undefined) => {
      replayAt = at
    }
    const report = await restoreState(runtime, stores.audit, stores.approvals, {
      now: Date.now(),
      setClock,
    }).catch(async (err: unknown) => {
      await state.close()
      if (!opts.stores) await stores.close()
      throw err
    })
    logger.info(
      { ...report, ms: Math.round(performance.now() - started) },
      'security state restored from the audit log',
    )
  }
  // A start-up that fails after this point closes what it opened (connections, child processes).
  const opened: (() => Promise<unknown>)[] = [
    () => state.close(),
    ...(opts.stores ? [] : [() => stores.close()]),
  ]
  const failed = async (err: unknown): Promise<never> => {
    for (const close of opened.reverse()) await close().catch(() => {})
    throw err
  }
  const bus = await eventBus(stores, opts.databaseUrl, logger).catch(failed)
  if (bus.close) opened.push(bus.close)
  const executors = {
    demo: demoExecutor(opts.demoBackend ?? new DemoBackend()),
    http: httpExecutor(opts.env ?? {}),
    mcp: mcpExecutor(loaded.config, mcp),
  }
  const decide = pipeline(runtime, {
    onLayerError: (layer, err) => {
      metrics.layerFailures.inc({ layer })
      logger.error({ err, layer }, 'pipeline layer failed; call denied')
    },
  })
  const engine = createEngine({
    pipeline: decide,
    onDecision: (d, principal) => metrics.observe(d, principal),
    onToolRun: (tool, outcome, seconds) => metrics.toolSeconds.observe({ tool, outcome }, seconds),
    stores,
    bus,
    executors,
    onError: (err, where) => {
      // Failures that did not fail their call are counted: nothing degrades silently.
      if (where.startsWith('state:') || where.startsWith('audit:')) metrics.degraded.inc({ where })
      logger.error({ err, where }, 'gateway error')
    },
  })
  // Demo scenarios run in a world of their own: fresh state, backend, approvals, nonces and
  // idempotency keys per run, so clicking them (or a page that posts to them) never quarantines,
  // rate-limits, queues for approval or refunds anything of the real agents. Their events go to
  // the real audit log, made by the `demo-scenario` principal and marked `scenario: true`; their
  // holds have `apr_scenario_` ids that exist nowhere the real approval routes look.
  const { gateway, messenger } = engine
  const runScenario = loaded.config.demo
    ? async (call: ToolCall) => {
        const world = memoryStores()
        try {
          return await createEngine({
            pipeline: pipeline({ ...runtime.current, state: await openState({ kind: 'memory' }) }),
            stores: { ...world, audit: scenarioAudit(stores.audit) },
            bus,
            executors: { ...executors, demo: demoExecutor(new DemoBackend()) },
            approvalIdPrefix: SCENARIO_APPROVAL_PREFIX,
            onError: (err, where) => logger.error({ err, where }, 'demo scenario error'),
          }).gateway.execute(call)
        } finally {
          await world.close()
        }
      }
    : undefined
  pinLog.record = async (change) => {
    await engine.recorder.record([toolPinEvent(change, runtime.policyVersion)])
  }
  // INVARIANT: the pins are read back from the log before any upstream is listed, so a
  // definition changed while Warden was down (or by another instance's upstream) is a change,
  // not a first sight. A log that cannot be read stops the start-up, as for the other state.
  // Another instance's pins, changes and acceptances reach this one through the event bus; the
  // subscription comes first, so an event committed while the log is read is not missed
  // (applying one twice changes nothing).
  const unfollowPins = bus.subscribe((e) => mcp.follow(e))
  if (loaded.config.mcp_upstreams.length > 0) {
    const restoredPins = await mcp.restore(stores.audit).catch(failed)
    if (restoredPins > 0) logger.info({ events: restoredPins }, 'MCP tool pins restored')
  }
  // Before serving: each upstream gets one bounded try, so the first calls find it connected.
  // One that fails is retried in the background and its tools answer `unavailable` meanwhile.
  opened.push(async () => {
    unfollowPins()
    await mcp.close()
  })
  if (connectUpstreams) await mcp.start().catch(failed)
  // Approvers see the upstreams and accept changed tool definitions; each acceptance is audited.
  const mcpAdmin: UpstreamAdmin = {
    view: () => ({ upstreams: mcp.status(), pins: mcp.pins(), unlisted: mcp.unlisted() }),
    async accept(tool, definition, approver) {
      const pin = mcp.pins().find((p) => p.tool === tool)
      if (!pin) return 'unknown'
      if (pin.current !== definition) return 'changed'
      // INVARIANT: recorded before it takes effect; the accept applies only to the definition
      // recorded (if the upstream changed it meanwhile, nothing is unblocked).
      await engine.recorder.record([
        toolAcceptedEvent(tool, approver, definition, runtime.policyVersion),
      ])
      if (!mcp.accept(tool, definition)) return 'changed'
      return mcp.pins().find((p) => p.tool === tool)!
    },
  }
  const app = await buildApp({
    gateway,
    messenger,
    stores,
    bus,
    logger,
    metrics,
    runScenario,
    mcpAdmin,
    reload: (by) => reload(by),
  }).catch(failed)
  const interval = opts.sweepIntervalMs ?? 5000
  const sweeper =
    interval > 0
      ? setInterval(() => {
          gateway.approvals
            .sweepExpired()
            .catch((err) => logger.error({ err }, 'approval expiry sweep failed'))
        }, interval).unref()
      : undefined
  // Reloads run one at a time: each validates against (and replaces) the one before it.
  let reloading: Promise<unknown> = Promise.resolve()
  const reloadOnce = async (by: string): Promise<ReloadResult> => {
    let next: LoadedConfig
    let nextRuntime
    try {
      next = loadConfig(current.file)
      checkHeaderVariables(next)
      nextRuntime = buildRuntime(next, state, sources)
    } catch (err) {
      if (err instanceof ConfigError) throw new WardenError('config_invalid', err.message)
      throw err
    }
    const refused = restartOnlyChange(current, next)
    if (refused) throw new WardenError('config_needs_restart', refused)
    const previous = current.policyVersion
    // INVARIANT: recorded before it takes effect; no decision names a version the log does not
    // show coming into force. A log that cannot take the event keeps the configuration in force.
    await engine.recorder.record([configReloadedEvent(by, previous, next.policyVersion, next.file)])
    runtime.swap(nextRuntime)
    current = next
    // Newly configured MCP tools are pinned (and so callable) now, not at the next listing.
    await mcp.reconfigure(next.config)
    logger.info(
      { by, previous_policy_version: previous, policy_version: next.policyVersion },
      'configuration reloaded',
    )
    return {
      file: next.file,
      previous_policy_version: previous,
      policy_version: next.policyVersion,
      changed: previous !== next.policyVersion,
    }
  }
  const reload = (by: string): Promise<ReloadResult> => {
    const result = reloading.then(() => reloadOnce(by))
    reloading = result.then(
      () => metrics.configReloads.inc({ result: 'ok' }),
      (err: unknown) =>
        metrics.configReloads.inc({
          result: err instanceof WardenError ? err.code : 'internal_error',
        }),
    )
    return result
  }
  return {
    app,
    gateway,
    stores,
    bus,
    get loaded() {
      return current
    },
    mcp,
    reload,
    async close() {
      if (sweeper) clearInterval(sweeper)
      // Long waits (a held call's `?wait=`, an MCP call waiting for its approval) get a grace
      // period, then their connections are closed: a stop must not outlast an orchestrator's
      // grace time before the drain below has run.
      const closing = app.close()
      let timer: NodeJS.Timeout | undefined
      const graceful = await Promise.race([
        closing.then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CLOSE_GRACE_MS))),
      ])
      clearTimeout(timer)
      if (!graceful) {
        logger.warn('requests still open at shutdown; closing their connections')
        app.server.closeAllConnections()
        await closing
      }
      // Requests whose clients left are still running: a tool that ran gets its outcome recorded
      // before the store closes (nothing accepted is lost on a graceful stop).
      if (!(await engine.drain(DRAIN_TIMEOUT_MS)))
        logger.error('tools still running at shutdown; their outcomes may be unrecorded')
      // Closing upstreams is bounded too: one that does not hang up within the grace period is
      // left to end with the process (a stdio server's input closes when Warden exits).
      await Promise.race([mcp.close(), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())])
      await bus.close?.()
      await state.close()
      await stores.close()
    },
  }
}
