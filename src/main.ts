import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { approvalsDecide, approvalsList } from './cli/approvals.js'
import { replayCommand } from './cli/replay.js'
import { scanJsonl, scanOne } from './cli/scan.js'
import {
  auditExport,
  auditVerify,
  backup,
  configCheck,
  keysCreate,
  migrate,
  migrateSqlite,
  policyTest,
  type AuditSource,
  type Io,
} from './cli/commands.js'
import { demoReset } from './cli/demo.js'
import { ConfigError, loadConfig } from './config/loader.js'
import { readFileSync } from 'node:fs'
import { buildAgentApi, DEFAULT_RUNS_PATH, PROVIDERS, type ProviderName } from './agents/server.js'
import { buildDashboard } from './dashboard/server.js'
import { startTracing } from './telemetry.js'
import { storeOptions } from './store/index.js'
import { createWarden } from './warden.js'

const DEFAULT_CONFIG = fileURLToPath(new URL('../config/demo/warden.yaml', import.meta.url))

const USAGE = `usage: warden <command>
  start                         run the gateway (port 8004), the agent API (8005) and the dashboard
                                (8006) with WARDEN_CONFIG or the demo configuration
  gateway                       run the gateway alone
  agents                        run the agent API alone (8005; AGENTS_PORT), for the gateway at GATEWAY_URL
  dashboard                     run the dashboard alone (8006; DASHBOARD_PORT), for the gateway at GATEWAY_URL
  keys create --agent ID        print a new agent key and the hash line for agents.yaml
  audit verify [--db FILE]      check the audit hash chain; names the first bad event
  audit export [--format jsonl|csv|cef] [--db FILE] [--out FILE]
                                with DATABASE_URL set, both read PostgreSQL (--schema NAME) instead
  migrate [--db FILE | --schema NAME]  bring the store schema up to date: the SQLite file, or
                                with DATABASE_URL the PostgreSQL migrations (listed as applied)
  backup --out FILE [--db FILE] an online copy of the SQLite store, verified (PostgreSQL: pg_dump)
  policy test <dir or file> [--config FILE]   run scenario files through the pipeline
  demo reset                    with the gateway stopped: start the demo over (deletes the demo's
                                audit log and held agent runs; the demo backend starts fresh)
  config check [--config FILE]  validate a configuration
  scan TEXT | --jsonl FILE      score text with the prompt-injection detector (FILE - is stdin);
                                exit 0 clean, 1 an injection found, 2 unreadable input
  replay FILE [--config FILE] [--agent ID] [--tool NAME] [--detail] [--user-input]
                                decide recorded agent sessions (AgentDojo trace JSONL) without
                                running tools; --agent and --tool may use {suite} and {function};
                                --detail lists each call with its provenance; --user-input sends
                                the trace's user message as context.user_input
  approvals list                held calls waiting for a person (gateway at GATEWAY_URL)
  approvals approve|deny ID [--comment TEXT] [--token T]   decide one (token: WARDEN_APPROVER_TOKEN)
  every command takes --json for machine-readable output`

const io: Io = { out: (l) => console.log(l), err: (l) => console.error(l) }

/** The only place that reads the environment and argv, opens ports and handles signals. */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed
  try {
    parsed = parseCli(argv)
  } catch (err) {
    return usage((err as Error).message)
  }
  const { values, positionals } = parsed

  const configFile = values.config ?? env.WARDEN_CONFIG ?? DEFAULT_CONFIG
  // WARDEN_SQLITE_PATH, like PORT and HOST, overrides the file (store.sqlite_path).
  const dbPath = () =>
    values.db ?? sqliteOverride(env) ?? loadConfig(configFile).config.store.sqlite_path
  const databaseUrl = env.DATABASE_URL === '' ? undefined : env.DATABASE_URL
  const auditSource = (): AuditSource =>
    databaseUrl !== undefined
      ? {
          kind: 'postgres',
          url: postgresUrl(databaseUrl),
          schema: values.schema ?? (env.DATABASE_SCHEMA || undefined),
        }
      : { kind: 'sqlite', sqlitePath: dbPath() }
  const [command, sub, arg] = positionals
  const client = {
    gatewayUrl: env.GATEWAY_URL ?? 'http://localhost:8004',
    token: values.token ?? env.WARDEN_APPROVER_TOKEN,
  }
  try {
    const single = ['scan', 'replay', 'migrate', 'backup'].includes(command ?? '')
    switch (single ? command : `${command ?? ''} ${sub ?? ''}`.trim()) {
      case 'start':
        return await serve(configFile, env, { gateway: true, agents: true, dashboard: true })
      case 'gateway':
        return await serve(configFile, env, { gateway: true, agents: false, dashboard: false })
      case 'agents':
        return await serve(configFile, env, { gateway: false, agents: true, dashboard: false })
      case 'dashboard':
        return await serve(configFile, env, { gateway: false, agents: false, dashboard: true })
      case 'keys create':
        if (!values.agent) return usage('keys create needs --agent ID')
        return keysCreate(values.agent, values.json, io)
      case 'audit verify':
        return await auditVerify(auditSource(), values.json, io)
      case 'audit export':
        if (values.format !== 'jsonl' && values.format !== 'csv' && values.format !== 'cef')
          return usage('--format must be jsonl, csv or cef')
        return await auditExport(auditSource(), values.format, values.out, io)
      case 'migrate':
        if (databaseUrl === undefined) {
          if (values.schema !== undefined)
            return usage('--schema needs DATABASE_URL (postgres://…)')
          return await migrateSqlite(dbPath(), values.json, io)
        }
        return await migrate(
          postgresUrl(databaseUrl),
          values.schema ?? (env.DATABASE_SCHEMA || undefined),
          values.json,
          io,
        )
      case 'backup':
        if (databaseUrl !== undefined)
          return usage(
            'backup copies a SQLite store; back up PostgreSQL with pg_dump (docs/operations.md)',
          )
        if (!values.out) return usage('backup needs --out FILE (a new file)')
        return await backup(dbPath(), values.out, values.json, io)
      case 'approvals list':
        return await approvalsList(client, values.json, io)
      case 'approvals approve':
      case 'approvals deny':
        if (!arg) return usage(`approvals ${sub} needs an approval id`)
        return await approvalsDecide(
          client,
          arg,
          sub === 'approve' ? 'approve' : 'deny',
          values.comment,
          values.json,
          io,
        )
      case 'scan': {
        const threshold = loadConfig(configFile).config.injection.hold_at
        if (values.jsonl) return await scanJsonl(values.jsonl, threshold, io)
        if (sub === undefined) return usage('scan needs a text, or --jsonl FILE')
        return scanOne(positionals.slice(1).join(' '), threshold, values.json, io)
      }
      case 'replay': {
        if (sub === undefined) return usage('replay needs a trace file (JSONL, - for stdin)')
        const loaded = loadConfig(configFile)
        const agents = loaded.config.agents
        const agent = values.agent ?? (agents.length === 1 ? agents[0]?.id : undefined)
        if (!agent) return usage('replay needs --agent when the configuration has several agents')
        return await replayCommand(
          sub,
          loaded,
          {
            agent,
            tool: values.tool ?? '{function}',
            detail: values.detail,
            userInput: values['user-input'],
            env,
          },
          values.json,
          io,
        )
      }
      case 'config check':
        return configCheck(configFile, io)
      case 'demo reset': {
        const loaded = loadConfig(configFile)
        if (!loaded.config.demo)
          return usage('demo reset works on a demo configuration only (`demo: true`)')
        if (databaseUrl !== undefined)
          return usage('demo reset clears a SQLite store; unset DATABASE_URL')
        return await demoReset(
          {
            sqlitePath: dbPath(),
            runsPath: env.AGENT_RUNS_PATH || DEFAULT_RUNS_PATH,
            gatewayUrl:
              env.GATEWAY_URL ?? `http://127.0.0.1:${env.PORT || loaded.config.server.port}`,
          },
          values.json,
          io,
        )
      }
      default:
        if (command === 'policy' && sub === 'test' && arg)
          return await policyTest(arg, values.config, values.json, io, env)
        return usage(
          values.help || !command ? null : `unknown command \`${positionals.join(' ')}\``,
        )
    }
  } catch (err) {
    io.err(
      err instanceof ConfigError
        ? `invalid configuration:\n${err.message}`
        : `error: ${(err as Error).message}`,
    )
    return 1
  }
}

function parseCli(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      agent: { type: 'string' },
      db: { type: 'string' },
      format: { type: 'string', default: 'jsonl' },
      out: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      token: { type: 'string' },
      jsonl: { type: 'string' },
      comment: { type: 'string' },
      tool: { type: 'string' },
      detail: { type: 'boolean', default: false },
      'user-input': { type: 'boolean', default: false },
      schema: { type: 'string' },
    },
  })
}

function usage(problem: string | null): number {
  if (problem) io.err(problem)
  io.out(USAGE)
  return problem ? 2 : 0
}

async function serve(
  configFile: string,
  env: NodeJS.ProcessEnv,
  parts: { gateway: boolean; agents: boolean; dashboard: boolean },
): Promise<number> {
  const logger = pino({ level: env.LOG_LEVEL?.toLowerCase() ?? 'info' })
  const closers: (() => Promise<void>)[] = []
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    closers.push(startTracing(env.OTEL_EXPORTER_OTLP_ENDPOINT))
    logger.info({ endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'exporting traces over OTLP')
  }
  let gatewayUrl = env.GATEWAY_URL ?? 'http://127.0.0.1:8004'
  /** What a person at a terminal is told once everything listens (the log stays JSON). */
  const banner: string[] = []
  const agentsHost = env.AGENTS_HOST ?? '127.0.0.1'
  const dashboardHost = env.DASHBOARD_HOST ?? '127.0.0.1'
  // The agent API (it calls with the demo agents' keys) and the dashboard (it proxies the
  // gateway, approver token and all) follow the gateway's rule, with it or on their own.
  const sideHosts = [
    ...(parts.agents ? [agentsHost] : []),
    ...(parts.dashboard ? [dashboardHost] : []),
  ]
  if (!parts.gateway) {
    // A configuration they cannot read is the gateway's concern (they do not use it otherwise).
    const refusal = firstExposure(demoConfigured(configFile), sideHosts, env)
    if (refusal) {
      io.err(refusal)
      return 1
    }
  }
  if (parts.gateway) {
    const loaded = loadConfig(configFile)
    if (loaded.config.demo) {
      logger.warn(
        'demo credentials are active (demo-<agent>-key, demo-approver-token): do not expose this gateway',
      )
    }
    const port = env.PORT ? Number(env.PORT) : loaded.config.server.port
    // HOST, like PORT, overrides the file: the image listens on every interface of its container
    // while the demo configuration keeps its public keys on loopback.
    // An empty HOST (an unset compose variable) is no override: "" would mean every interface.
    const host = env.HOST || loaded.config.server.host
    const refusal = firstExposure(loaded.config.demo, [host, ...sideHosts], env)
    if (refusal) {
      io.err(refusal)
      return 1
    }
    const warden = await createWarden({
      config: loaded,
      logger,
      env,
      ...(sqliteOverride(env) && { sqlitePath: sqliteOverride(env) }),
      databaseUrl: env.DATABASE_URL,
      ...(env.DATABASE_SCHEMA && { databaseSchema: env.DATABASE_SCHEMA }),
      ...(env.REDIS_URL !== undefined && { redisUrl: env.REDIS_URL }),
      ...(env.REDIS_PREFIX && { redisPrefix: env.REDIS_PREFIX }),
    })
    closers.push(() => warden.close())
    // SIGHUP reloads the configuration files (as `POST /admin/reload` does); a refused reload
    // keeps the configuration in force and says why (docs/operations.md).
    const onHangup = () => {
      warden.reload('signal:SIGHUP').then(
        (r) => logger.info(r, 'SIGHUP: configuration reloaded'),
        (err: unknown) =>
          logger.error(
            { code: (err as { code?: string }).code, err: (err as Error).message },
            'SIGHUP: reload refused; the configuration in force is kept',
          ),
      )
    }
    process.on('SIGHUP', onHangup)
    closers.unshift(async () => {
      process.off('SIGHUP', onHangup)
    })
    await warden.app.listen({ host, port })
    banner.push(`gateway    http://${urlHost(host)}:${port}   (MCP: /mcp, API docs: /docs)`)
    if (loaded.config.demo)
      banner.push(
        'demo keys  Bearer demo-<agent>-key (support-agent, refund-agent, admin-agent, hacker-bot)',
        'approver   demo-approver-token',
      )
    logger.info(
      { host, port, policy_version: loaded.policyVersion, config: loaded.file },
      'warden gateway listening',
    )
    if (env.GATEWAY_URL === undefined) gatewayUrl = `http://127.0.0.1:${port}`
  }
  if (parts.agents) {
    const keysFile = env.WARDEN_AGENT_KEYS_FILE
    const keys = keysFile
      ? (JSON.parse(readFileSync(keysFile, 'utf8')) as Record<string, string>)
      : {}
    const provider = env.WARDEN_AGENT_PROVIDER ?? 'offline'
    if (!(PROVIDERS as readonly string[]).includes(provider))
      throw new Error(`WARDEN_AGENT_PROVIDER must be one of ${PROVIDERS.join(', ')}`)
    const agentApi = await buildAgentApi({
      gatewayUrl,
      logger,
      keys,
      demoKeys: true,
      publicOrigins: (env.AGENTS_PUBLIC_ORIGINS ?? '').split(',').filter((o) => o.trim()),
      allowedHosts: [env.AGENTS_HOST, ...listOf(env.AGENTS_ALLOWED_HOSTS)],
      defaultProvider: provider as ProviderName,
      openai: {
        ...(env.OPENAI_API_KEY && { apiKey: env.OPENAI_API_KEY }),
        ...(env.OPENAI_BASE_URL && { baseURL: env.OPENAI_BASE_URL }),
        ...(env.OPENAI_MODEL && { model: env.OPENAI_MODEL }),
      },
      ollama: {
        ...(env.OLLAMA_HOST && { host: normalizeOllamaHost(env.OLLAMA_HOST) }),
        ...(env.OLLAMA_MODEL && { model: env.OLLAMA_MODEL }),
      },
      // Held runs survive restarts; instances sharing this file resume each other's runs.
      runs: { kind: 'sqlite', sqlitePath: env.AGENT_RUNS_PATH || DEFAULT_RUNS_PATH },
    })
    closers.unshift(() => agentApi.close())
    const port = env.AGENTS_PORT ? Number(env.AGENTS_PORT) : 8005
    // Loopback by default: whoever reaches it can drive the agents (with their keys).
    await agentApi.listen({ host: agentsHost, port })
    banner.push(`agent API  http://${urlHost(agentsHost)}:${port}`)
    logger.info(
      { port, gateway_url: gatewayUrl, provider, runs: env.AGENT_RUNS_PATH || DEFAULT_RUNS_PATH },
      'warden agent API listening',
    )
  }
  if (parts.dashboard) {
    const dashboard = await buildDashboard({
      gatewayUrl,
      logger,
      publicOrigins: (env.DASHBOARD_PUBLIC_ORIGINS ?? '').split(',').filter((o) => o.trim()),
      allowedHosts: [env.DASHBOARD_HOST, ...listOf(env.DASHBOARD_ALLOWED_HOSTS)],
    })
    closers.unshift(() => dashboard.close())
    const port = env.DASHBOARD_PORT ? Number(env.DASHBOARD_PORT) : 8006
    // Loopback by default: the dashboard proxies the whole gateway API.
    await dashboard.listen({ host: dashboardHost, port })
    banner.push(`dashboard  http://${urlHost(dashboardHost)}:${port}`)
    logger.info({ port, gateway_url: gatewayUrl }, 'warden dashboard listening')
  }
  if (process.stderr.isTTY && banner.length > 0)
    process.stderr.write(`\nWarden is up (Ctrl-C stops it)\n  ${banner.join('\n  ')}\n\n`)
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down')
      resolve()
    }
    // SIGTERM (an orchestrator's stop) and SIGINT: stop taking requests, let the running ones
    // finish (bounded), record every tool run, close the store; then exit 0 (docs/operations.md).
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  for (const close of closers) await close()
  return 0
}

/** The second confirmation a demo configuration needs to listen beyond loopback. */
export const DEMO_PUBLIC_ENV = 'WARDEN_DEMO_PUBLIC'

/**
 * A demo configuration's keys and approver token are public: it listens on a non-loopback
 * address only when told twice (the host, and `WARDEN_DEMO_PUBLIC=1`). The reason, or undefined.
 */
export function demoExposure(
  demo: boolean,
  host: string,
  env: NodeJS.ProcessEnv,
): string | undefined {
  if (!demo || isLoopback(host) || env[DEMO_PUBLIC_ENV] === '1') return undefined
  return (
    `refusing to listen on ${host}: this is a demo configuration, whose agent keys and approver ` +
    `token are public (demo-<agent>-key, demo-approver-token), so anyone who reaches ${host} ` +
    `could act as any agent and approve anything. Listen on 127.0.0.1 (unset HOST), use your own ` +
    `configuration (WARDEN_CONFIG, keys from \`warden keys create\`), or, if you really mean it, ` +
    `set ${DEMO_PUBLIC_ENV}=1 as well.`
  )
}

/** Whether `file` is a demo configuration; false when it cannot be read. */
function demoConfigured(file: string): boolean {
  try {
    return loadConfig(file).config.demo
  } catch {
    return false
  }
}

/** The first refusal among `hosts` (see demoExposure), or undefined. */
function firstExposure(demo: boolean, hosts: string[], env: NodeJS.ProcessEnv): string | undefined {
  return hosts.map((h) => demoExposure(demo, h, env)).find((r) => r !== undefined)
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** `WARDEN_SQLITE_PATH`: the SQLite store file, instead of the configuration's `store.sqlite_path`. */
function sqliteOverride(env: NodeJS.ProcessEnv): string | undefined {
  return env.WARDEN_SQLITE_PATH || undefined
}

/** `DATABASE_URL` as the store takes it (a postgres:// URL), checked the same way. */
function postgresUrl(url: string): string {
  const options = storeOptions({ kind: 'sqlite', sqlite_path: '' }, { databaseUrl: url })
  if (options.kind !== 'postgres') throw new Error('DATABASE_URL is empty')
  return options.url
}

/** A listen address as a browser takes it: any-address as loopback, IPv6 in brackets. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}

/** A comma-separated environment value as a list (empty items dropped). */
function listOf(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '')
}

/** OLLAMA_HOST may be `host:port` without a scheme (as the Ollama CLI accepts it). */
function normalizeOllamaHost(host: string): string {
  return /^https?:\/\//.test(host) ? host : `http://${host}`
}
