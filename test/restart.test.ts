import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { verifyChain } from '../src/audit/verify.js'
import { sqliteStores } from '../src/store/sqlite.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'warden-restart-'))
const dbPath = join(dir, 'audit.db')
const configFile = join(dir, 'warden.yaml')
writeFileSync(
  configFile,
  readFileSync(new URL('./fixtures/approvals/warden.yaml', import.meta.url), 'utf8').replaceAll(
    '../../../config/',
    join(ROOT, 'config/'),
  ) + `store:\n  sqlite_path: ${dbPath}\n`,
)

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** A real gateway process, started the way `warden start` starts it. */
async function startProcess(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', "import('./src/main.ts').then((m) => m.main(['start']))"],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        WARDEN_CONFIG: configFile,
        PORT: String(port),
        // `start` runs the agent API and the dashboard too: on free ports, never 8005/8006
        // (another test file may be running `warden start` at the same time).
        AGENTS_PORT: String(await freePort()),
        DASHBOARD_PORT: String(await freePort()),
        LOG_LEVEL: 'warn',
        AGENT_RUNS_PATH: join(dir, 'agent-runs.db'),
      },
      stdio: 'ignore',
    },
  )
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return child
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  child.kill('SIGKILL')
  throw new Error('the gateway did not start')
}

const post = (port: number, path: string, token: string, body: unknown) =>
  fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  })

describe('durable approvals across kill -9', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('a pending approval survives SIGKILL and restart, and the approved call runs exactly once', async () => {
    const port = await freePort()
    const first = await startProcess(port)
    const held = await post(port, '/gateway/execute', 'demo-admin-agent-key', {
      agent_id: 'admin-agent',
      tool: 'restart_service',
      params: { service: 'billing', environment: 'staging' },
    })
    expect(held.status).toBe(202)
    const { approval_id: id } = (await held.json()) as { approval_id: string }
    first.kill('SIGKILL')
    await new Promise((r) => first.once('exit', r))

    const second = await startProcess(port)
    try {
      const pending = (await (
        await fetch(`http://127.0.0.1:${port}/gateway/pending-approvals`, {
          // Read views need an approver token by default (issue #11 finding 5).
          headers: { authorization: 'Bearer demo-approver-token' },
        })
      ).json()) as { approvals: { id: string }[] }
      expect(pending.approvals.map((a) => a.id)).toContain(id)
      const approved = await post(port, '/gateway/approve', 'demo-approver-token', {
        approval_id: id,
        decision: 'approve',
      })
      expect(approved.status).toBe(200)
      expect(((await approved.json()) as { approval: { outcome: string } }).approval.outcome).toBe(
        'ok',
      )
      expect(
        (
          await post(port, '/gateway/approve', 'demo-approver-token', {
            approval_id: id,
            decision: 'approve',
          })
        ).status,
      ).toBe(409)
    } finally {
      second.kill('SIGTERM')
      await new Promise((r) => second.once('exit', r))
    }
    const stores = sqliteStores(dbPath)
    try {
      const executed = await stores.audit.query({ type: 'tool_call_executed', limit: 100 })
      expect(executed.filter((e) => e.approval_id === id)).toHaveLength(1)
      expect((await verifyChain(stores.audit)).ok).toBe(true)
    } finally {
      await stores.close()
    }
  })
})
