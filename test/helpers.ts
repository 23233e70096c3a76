import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { main } from '../src/main.js'
import { createWarden, type Warden, type WardenOptions } from '../src/warden.js'

export const DEMO_CONFIG = fileURLToPath(new URL('../config/demo/warden.yaml', import.meta.url))
export const APPROVER = 'demo-approver-token'
export const keyOf = (agent: string) => `demo-${agent}-key`
/** The demo configuration's agents and tools, for generators and tables in tests. */
export const DEMO_AGENT_IDS = ['support-agent', 'refund-agent', 'admin-agent', 'hacker-bot']
export const DEMO_TOOL_NAMES = [
  'search_knowledge_base',
  'create_support_ticket',
  'lookup_order',
  'issue_refund',
  'get_system_health',
  'restart_service',
  'export_customer_data',
]

/**
 * A gateway on the demo configuration with its own temp SQLite file; `close()` removes it. The
 * demo's MCP upstream is not started unless `mcp.connect` is set: only the MCP tests use it.
 */
export async function startWarden(
  opts: Partial<WardenOptions> = {},
): Promise<Warden & { dbPath: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-test-'))
  const dbPath = join(dir, 'audit.db')
  const warden = await createWarden({
    config: DEMO_CONFIG,
    sqlitePath: dbPath,
    sweepIntervalMs: 0,
    ...opts,
    mcp: { connect: false, ...opts.mcp },
  })
  const started = {
    ...warden,
    dbPath,
    dir,
    async close() {
      await warden.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
  // `loaded` is the configuration in force: it follows reloads (a spread would freeze it).
  return Object.defineProperty(started, 'loaded', { get: () => warden.loaded, enumerable: true })
}

/** POST /gateway/execute as `agent` with its demo key. */
export function execute(
  warden: Warden,
  agent: string,
  tool: string,
  params: Record<string, unknown>,
  extra: {
    session_id?: string
    context?: Record<string, unknown>
    key?: string | null
    delegation?: string
  } = {},
) {
  const { key, ...rest } = extra
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (key !== null) headers.authorization = `Bearer ${key ?? keyOf(agent)}`
  return warden.app.inject({
    method: 'POST',
    url: '/gateway/execute',
    headers,
    payload: { agent_id: agent, tool, params, ...rest },
  })
}

/** Run the CLI in process, capturing what it prints. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const [log, error] = [console.log, console.error]
  console.log = (l: string) => out.push(l)
  console.error = (l: string) => err.push(l)
  try {
    return { code: await main(args, env), out: out.join('\n'), err: err.join('\n') }
  } finally {
    ;[console.log, console.error] = [log, error]
  }
}

/** POST /gateway/approve as an approver (the demo approver unless told). */
export function approve(
  warden: Warden,
  approvalId: string,
  decision: 'approve' | 'deny' = 'approve',
  token = APPROVER,
) {
  return warden.app.inject({
    method: 'POST',
    url: '/gateway/approve',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: { approval_id: approvalId, decision },
  })
}
