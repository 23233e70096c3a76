import { resolve } from 'node:path'
import type { Readable } from 'node:stream'
import {
  Client,
  StreamableHTTPClientTransport,
  type Tool,
  type Transport,
} from '@modelcontextprotocol/client'
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/client/stdio'
import type { Logger } from 'pino'
import type { AuditEvent } from '../domain/audit-event.js'
import type { McpUpstreamConfig, WardenConfig } from '../domain/config.js'
import type { AuditLog } from '../store/types.js'
import {
  PIN_EVENT_TYPES,
  PinBook,
  readPins,
  type Pin,
  type PinBlock,
  type PinChange,
} from './mcp-pins.js'

/** How an upstream is doing, for the dashboard and operators. */
export interface UpstreamStatus {
  name: string
  state: 'connecting' | 'connected' | 'down' | 'closed'
  /** Connection attempts after the first (restarts of a stdio server, reconnects over HTTP). */
  restarts: number
  lastError?: string
  /** The upstream's tools, by their Warden names, as last listed. */
  tools: string[]
  /** The process id of a connected stdio server. */
  pid?: number
}

export interface McpUpstreamOptions {
  /** Relative `stdio.cwd` values are taken from here (the configuration file's folder). */
  baseDir: string
  logger: Logger
  /** First delay before a reconnect; doubled per failed attempt up to `maxBackoffMs`. */
  backoffMs?: number
  maxBackoffMs?: number
  /** How often a connected upstream is pinged; a failed ping drops and reconnects it. */
  healthIntervalMs?: number
  /** Longest a connect (spawn, handshake, first listing) may take. */
  connectTimeoutMs?: number
  /**
   * Writes a pin change to the audit log (durably, before it resolves). A first pin makes its
   * tool callable only once this resolved; a change blocks the tool at once, whatever this does.
   */
  record?: (change: PinChange) => Promise<void>
}

/** The MCP upstreams Warden is a client of: connections, tool listings, pins. */
export interface McpUpstreams {
  /** Connect every upstream once (failures retry in the background); resolves when each tried. */
  start(): Promise<void>
  /** The connected client of `upstream`, if it is connected now. */
  client(upstream: string): Client | undefined
  /**
   * Rebuild the pins from the audit log's pin events (before `start`): an upstream that changed
   * a tool while Warden was down finds it blocked, not pinned afresh.
   */
  restore(audit: AuditLog): Promise<number>
  /** Apply a pin event recorded by any instance (from the event bus); others are ignored. */
  follow(event: AuditEvent): void
  /** Why the tool (by Warden name) may not be called now, if it may not. */
  check(tool: string): PinBlock | 'unknown' | 'unrecorded' | undefined
  /** Tools upstreams offer that `tools:` does not configure (Warden names): never callable. */
  unlisted(): string[]
  /** Every tool definition seen, with its pin. */
  pins(): Pin[]
  /**
   * An approver accepts the tool's current definition; false for a tool never seen, or when
   * `definition` (the SHA-256 the approver saw) is no longer the one the upstream offers.
   */
  accept(tool: string, definition?: string): boolean
  status(): UpstreamStatus[]
  /**
   * Follow a configuration reload (configured tools, shadowing names, `hold_at`), and list each
   * connected upstream again. Never throws.
   */
  reconfigure(config: WardenConfig): Promise<void>
  close(): Promise<void>
}

const CLIENT_INFO = { name: 'warden', version: '0.1.0' }
/** How long a reload waits for each upstream to list its tools again. */
const RELIST_TIMEOUT_MS = 5_000
/** Tool names kept from one upstream listing (the rest are ignored and reported). */
export const MAX_LISTED_TOOLS = 1_000
/** A listed tool with a longer name is ignored (configured names are far shorter). */
export const MAX_TOOL_NAME = 128
const STABLE_MS = 10_000
const PING_TIMEOUT_MS = 5_000

/** Start nothing yet: `start()` connects. */
export function mcpUpstreams(config: WardenConfig, opts: McpUpstreamOptions): McpUpstreams {
  const pins = new PinBook(
    config.injection.hold_at,
    config.tools.map((t) => t.name),
  )
  const configured = new Set<string>()
  const configure = (c: WardenConfig) => {
    configured.clear()
    for (const t of c.tools) if (t.executor.type === 'mcp') configured.add(t.name)
  }
  configure(config)
  const upstreams = new Map(
    config.mcp_upstreams.map((u) => [u.name, new Upstream(u, opts, pins, configured)]),
  )
  return {
    async start() {
      await Promise.all([...upstreams.values()].map((u) => u.connect()))
    },
    async restore(audit) {
      const events = await readPins(audit)
      for (const e of events) pins.apply(e)
      return events.length
    },
    follow(event) {
      if (PIN_EVENT_TYPES.has(event.type)) pins.apply(event)
    },
    client: (name) => upstreams.get(name)?.current(),
    check: (tool) => pins.check(tool),
    unlisted: () => [...upstreams.values()].flatMap((u) => u.unlisted()),
    pins: () => pins.list(),
    accept(tool, definition) {
      const accepted = pins.accept(tool, definition)
      if (accepted) opts.logger.warn({ tool }, 'MCP tool definition accepted')
      return accepted
    },
    async reconfigure(next) {
      // What a reload changes: which tools are configured (only those are pinned), the names a
      // description may not shadow and the score that blocks one. Each connected upstream is
      // listed again, so a tool the reload configured is pinned (and callable) now.
      configure(next)
      pins.configure(
        next.injection.hold_at,
        next.tools.map((t) => t.name),
      )
      await Promise.all([...upstreams.values()].map((u) => u.relist()))
    },
    status: () => [...upstreams.values()].map((u) => u.status()),
    async close() {
      await Promise.all([...upstreams.values()].map((u) => u.close()))
    },
  }
}

/** One upstream: connect, list, watch, and reconnect with capped exponential back-off. */
class Upstream {
  private state: UpstreamStatus['state'] = 'down'
  private connected: Client | undefined
  private connecting: Client | undefined
  private attempts = 0
  private restarts = 0
  private connectedAt = 0
  private lastError: string | undefined
  private tools: string[] = []
  private stdio: StdioClientTransport | undefined
  private retry: NodeJS.Timeout | undefined
  private health: NodeJS.Timeout | undefined
  /** Pin changes being written now (JSON of the change). */
  private readonly recording = new Set<string>()
  private readonly log: Logger

  constructor(
    private readonly cfg: McpUpstreamConfig,
    private readonly opts: McpUpstreamOptions,
    private readonly pins: PinBook,
    private readonly configured: ReadonlySet<string>,
  ) {
    this.log = opts.logger.child({ upstream: cfg.name })
  }

  current(): Client | undefined {
    return this.connected
  }

  unlisted(): string[] {
    return this.tools.filter((t) => !this.configured.has(t))
  }

  status(): UpstreamStatus {
    return {
      name: this.cfg.name,
      state: this.state,
      restarts: this.restarts,
      tools: [...this.tools],
      ...(this.connected && this.stdio?.pid != null && { pid: this.stdio.pid }),
      ...(this.lastError !== undefined && { lastError: this.lastError }),
    }
  }

  /** List the tools again (after a reload); nothing when not connected. Never throws. */
  async relist(): Promise<void> {
    const client = this.connected
    if (!client) return
    try {
      // A reload waits for this: a slow upstream costs it at most RELIST_TIMEOUT_MS (its tools
      // are then pinned at its next listing, and stay uncallable until then).
      const { tools } = await client.listTools(undefined, {
        timeout: RELIST_TIMEOUT_MS,
        cacheMode: 'bypass',
      })
      if (client === this.connected) await this.listed(tools)
    } catch (err) {
      this.log.warn({ err }, 'MCP tools/list after a reload failed')
    }
  }

  /** One attempt; a failure schedules the next. Never throws: an upstream never stops Warden. */
  async connect(): Promise<void> {
    if (this.state === 'closed') return
    this.state = 'connecting'
    const client = new Client(CLIENT_INFO, {
      listChanged: {
        tools: {
          onChanged: (err, tools) => {
            if (err) this.log.warn({ err }, 'MCP tools/list after list_changed failed')
            else if (client === this.connected && tools) void this.listed(tools)
          },
        },
      },
    })
    this.connecting = client
    client.onerror = (err) => this.log.warn({ err: err.message }, 'MCP upstream error')
    // INVARIANT: only the current connection's close counts; a failed attempt's own close (or
    // one `close()` made) must not schedule a second reconnect.
    client.onclose = () => {
      if (client === this.connected) this.lost('connection closed')
    }
    try {
      await this.handshake(client)
    } catch (err) {
      this.connecting = undefined
      await client.close().catch(() => undefined)
      this.failed(err)
    }
  }

  private async handshake(client: Client): Promise<void> {
    const timeoutMs = this.opts.connectTimeoutMs ?? 20_000
    const deadline = AbortSignal.timeout(timeoutMs)
    await client.connect(this.transport(), { signal: deadline, timeout: timeoutMs })
    const { tools } = await client.listTools(undefined, {
      signal: deadline,
      timeout: timeoutMs,
      cacheMode: 'bypass',
    })
    if (this.state === 'closed') throw new Error('closed while connecting')
    this.connecting = undefined
    this.connected = client
    this.state = 'connected'
    this.connectedAt = Date.now()
    delete this.lastError
    this.log.info({ tools: tools.length, restarts: this.restarts }, 'MCP upstream connected')
    await this.listed(tools)
    this.watch(client)
  }

  private transport(): Transport {
    const { stdio, http } = this.cfg
    if (http)
      return new StreamableHTTPClientTransport(new URL(http.url), {
        requestInit: { headers: http.headers, redirect: 'error' },
      })
    if (!stdio) throw new Error('an upstream has neither stdio nor http')
    const transport = new StdioClientTransport({
      command: stdio.command,
      args: stdio.args,
      // The default environment is a short safe list (PATH, HOME, …): Warden's own secrets
      // (DATABASE_URL, keys) are not handed to a tool server.
      env: { ...getDefaultEnvironment(), ...stdio.env },
      ...(stdio.cwd !== undefined && { cwd: resolve(this.opts.baseDir, stdio.cwd) }),
      stderr: 'pipe',
    })
    this.stdio = transport
    ;(transport.stderr as Readable | null)?.on('data', (chunk: Buffer) =>
      this.log.debug({ stderr: chunk.toString('utf8').slice(0, 2000) }, 'MCP upstream stderr'),
    )
    return transport
  }

  /**
   * A listing (first, after a reconnect, or after `list_changed`): pin, record, report. Never
   * throws: a pin that could not be recorded leaves its tool uncallable until the next listing.
   */
  private async listed(listing: readonly Tool[]): Promise<void> {
    const before = new Set(this.tools)
    // Bounded whatever the upstream sends: at most MAX_LISTED_TOOLS names are kept, each at most
    // MAX_TOOL_NAME characters; only configured tools are pinned, scored and audited (the others
    // are not callable, and the door never shows their descriptions to a model).
    if (listing.length > MAX_LISTED_TOOLS)
      this.log.error(
        { offered: listing.length, kept: MAX_LISTED_TOOLS },
        'MCP upstream lists too many tools; the rest are ignored',
      )
    const tools = listing
      .slice(0, MAX_LISTED_TOOLS)
      .filter((t) => typeof t.name === 'string' && t.name.length <= MAX_TOOL_NAME)
    this.tools = tools.map((t) => `${this.cfg.name}.${t.name}`)
    const changes: PinChange[] = []
    for (const tool of tools) {
      const name = `${this.cfg.name}.${tool.name}`
      if (!this.configured.has(name)) continue
      const wasBlocked = this.pins.check(name)
      const { pin, change } = this.pins.observe(name, tool)
      if (change) changes.push(change)
      if (pin.blocked && wasBlocked !== pin.blocked)
        this.log.error(
          { tool: name, reason: pin.blocked, score: pin.score, shadows: pin.shadows },
          pin.blocked === 'poisoned'
            ? 'MCP tool description looks like an injection; tool blocked until accepted'
            : pin.blocked === 'shadowing'
              ? 'MCP tool description names tools of another server; tool blocked until accepted'
              : 'MCP tool definition changed; tool blocked until accepted',
        )
    }
    await Promise.all(changes.map((c) => this.record(c)))
    const unlisted = this.unlisted().filter((t) => !before.has(t))
    if (unlisted.length > 0)
      this.log.warn({ tools: unlisted }, 'MCP upstream tools not configured; they are not callable')
    for (const name of this.configured)
      if (name.startsWith(`${this.cfg.name}.`) && !this.tools.includes(name))
        this.log.warn({ tool: name }, 'configured MCP tool not offered by its upstream')
  }

  private async record(change: PinChange): Promise<void> {
    // A slow write must not be doubled by the health tick's retry of unrecorded pins.
    const key = JSON.stringify(change)
    if (this.recording.has(key)) return
    this.recording.add(key)
    try {
      await this.opts.record?.(change)
      if (change.kind === 'pinned') this.pins.recorded(change.tool, change.hash)
    } catch (err) {
      this.log.error(
        { err, tool: change.tool, change: change.kind },
        'MCP tool pin not recorded; the tool is not callable until it is',
      )
    } finally {
      this.recording.delete(key)
    }
  }

  /** Ping now and then: a dead HTTP upstream gives no close event, a hung stdio one neither. */
  private watch(client: Client): void {
    clearInterval(this.health)
    this.health = setInterval(() => {
      if (client !== this.connected) return
      // Pins a failed write left unrecorded are tried again while the upstream is healthy.
      for (const change of this.pins.unrecorded(`${this.cfg.name}.`)) void this.record(change)
      client.ping({ timeout: PING_TIMEOUT_MS }).catch((err: unknown) => {
        if (client !== this.connected) return
        this.log.warn({ err: (err as Error).message }, 'MCP upstream ping failed; reconnecting')
        this.lost(`ping failed: ${(err as Error).message}`)
        void client.close().catch(() => undefined)
      })
    }, this.opts.healthIntervalMs ?? 15_000).unref()
  }

  private lost(reason: string): void {
    if (this.state === 'closed') return
    this.connected = undefined
    clearInterval(this.health)
    // A connection that stayed up a while starts the back-off afresh; one that dies at once
    // (a crash loop) keeps doubling it.
    if (Date.now() - this.connectedAt >= STABLE_MS) this.attempts = 0
    this.failed(new Error(reason))
  }

  private failed(err: unknown): void {
    if (this.state === 'closed') return
    this.state = 'down'
    this.lastError = (err as Error).message
    const base = this.opts.backoffMs ?? 500
    const delay = Math.min(this.opts.maxBackoffMs ?? 30_000, base * 2 ** this.attempts)
    this.attempts = Math.min(this.attempts + 1, 30)
    this.log.warn({ err: this.lastError, retryInMs: delay }, 'MCP upstream unavailable')
    clearTimeout(this.retry)
    this.retry = setTimeout(() => {
      this.restarts++
      void this.connect()
    }, delay).unref()
  }

  async close(): Promise<void> {
    this.state = 'closed'
    clearTimeout(this.retry)
    clearInterval(this.health)
    const clients = [this.connected, this.connecting]
    this.connected = undefined
    this.connecting = undefined
    await Promise.all(clients.map((c) => c?.close().catch(() => undefined)))
  }
}
