/**
 * The demo starts over cleanly (issue 15, items 4 and 5): `warden demo reset` deletes the demo's
 * audit log and held agent runs while no gateway runs, so the next start has an empty log and a
 * fresh demo backend that agree; and a demo configuration refuses to listen beyond loopback unless
 * told twice. Runs the built gateway (`dist/`, `npm run build`) as `npm start` does.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { demoExposure } from '../src/main.js'
import { runCli } from './helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'warden-demo-reset-'))
const children: ChildProcess[] = []

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** `warden gateway` (built), on a free port, its store in the temp folder. */
async function startGateway(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [join(ROOT, 'bin/warden.js'), 'gateway'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...env },
  })
  children.push(child)
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)))
  return { child, exited, output: () => output }
}

async function waitReady(base: string, child: ChildProcess) {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error('the gateway exited')
    const ok = await fetch(`${base}/health/ready`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error('the gateway did not become ready')
}

async function call(base: string, agent: string, tool: string, params: Record<string, unknown>) {
  const res = await fetch(`${base}/gateway/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer demo-${agent}-key` },
    body: JSON.stringify({ agent_id: agent, tool, params }),
  })
  return {
    status: res.status,
    body: (await res.json()) as { approval_id?: string; result?: { balance: number } },
  }
}

async function balance(base: string, order: string): Promise<number> {
  const { body } = await call(base, 'refund-agent', 'lookup_order', { order_id: order })
  return body.result!.balance
}

/** A $500 refund held, then approved: it runs. */
async function approvedRefund(base: string, order: string) {
  const held = await call(base, 'refund-agent', 'issue_refund', {
    order_id: order,
    amount: 500,
    reason: 'never arrived',
  })
  expect(held.status).toBe(202)
  const res = await fetch(`${base}/gateway/approve`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer demo-approver-token' },
    body: JSON.stringify({ approval_id: held.body.approval_id, decision: 'approve' }),
  })
  expect(res.status).toBe(200)
}

async function executedRefunds(base: string): Promise<number> {
  const res = await fetch(`${base}/events/recent?type=tool_call_executed&tool=issue_refund`)
  const body = (await res.json()) as { events: unknown[] }
  return body.events.length
}

describe('warden demo reset', () => {
  it('starts the audit log and the demo backend over together, and only when no gateway runs', async () => {
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    const env = {
      PORT: String(port),
      WARDEN_SQLITE_PATH: join(dir, 'warden.db'),
      AGENT_RUNS_PATH: join(dir, 'agent-runs.db'),
    }
    const reset = () => runCli(['demo', 'reset'], env)

    let gw = await startGateway(env)
    await waitReady(base, gw.child)
    await approvedRefund(base, 'ORD-1006')
    await approvedRefund(base, 'ORD-1006')
    expect(await balance(base, 'ORD-1006')).toBe(200)
    expect(await executedRefunds(base)).toBe(2)

    // While the gateway writes to the log, nothing is deleted.
    const refused = await reset()
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(/stop it first/)
    expect(existsSync(env.WARDEN_SQLITE_PATH)).toBe(true)
    gw.child.kill('SIGTERM')
    expect(await gw.exited).toBe(0)

    // A restart alone keeps the log (with its refunds) but not the demo backend.
    gw = await startGateway(env)
    await waitReady(base, gw.child)
    expect(await executedRefunds(base)).toBe(2)
    expect(await balance(base, 'ORD-1006')).toBe(1200)
    gw.child.kill('SIGTERM')
    expect(await gw.exited).toBe(0)

    const done = await reset()
    expect(done.code, done.err).toBe(0)
    expect(done.out).toMatch(/removed .*warden\.db/)
    expect(existsSync(env.WARDEN_SQLITE_PATH)).toBe(false)

    // After the reset both start from nothing, and the refunds run again.
    gw = await startGateway(env)
    await waitReady(base, gw.child)
    expect(await executedRefunds(base)).toBe(0)
    expect(await balance(base, 'ORD-1006')).toBe(1200)
    await approvedRefund(base, 'ORD-1006')
    expect(await executedRefunds(base)).toBe(1)
    gw.child.kill('SIGTERM')
    expect(await gw.exited).toBe(0)
  }, 120_000)

  it('works on a demo configuration only', async () => {
    const res = await runCli(['demo', 'reset', '--config', 'config/agentdojo/warden.yaml'], {
      WARDEN_SQLITE_PATH: join(dir, 'other.db'),
    })
    expect(res.code).toBe(2)
    expect(res.err).toMatch(/demo configuration only/)
  })
})

describe('a demo configuration beyond loopback', () => {
  it('refuses HOST=0.0.0.0 alone, with the reason, and listens on nothing', async () => {
    const port = await freePort()
    const gw = await startGateway({
      PORT: String(port),
      HOST: '0.0.0.0',
      WARDEN_SQLITE_PATH: join(dir, 'public.db'),
    })
    expect(await gw.exited).toBe(1)
    expect(gw.output()).toMatch(/refusing to listen on 0\.0\.0\.0: this is a demo configuration/)
    expect(gw.output()).toMatch(/WARDEN_DEMO_PUBLIC=1/)
    const answered = await fetch(`http://127.0.0.1:${port}/health/live`).then(
      () => true,
      () => false,
    )
    expect(answered).toBe(false)
  }, 60_000)

  it('`start` refuses a non-loopback agent API or dashboard the same way', async () => {
    for (const extra of [{ AGENTS_HOST: '0.0.0.0' }, { DASHBOARD_HOST: '0.0.0.0' }]) {
      const child = spawn(process.execPath, [join(ROOT, 'bin/warden.js'), 'start'], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH,
          LOG_LEVEL: 'warn',
          PORT: String(await freePort()),
          AGENTS_PORT: String(await freePort()),
          DASHBOARD_PORT: String(await freePort()),
          WARDEN_SQLITE_PATH: join(dir, 'start.db'),
          ...extra,
        },
      })
      children.push(child)
      let output = ''
      child.stderr.on('data', (d: Buffer) => (output += d.toString()))
      const code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? -1)))
      expect(code, output).toBe(1)
      expect(output).toMatch(/refusing to listen on 0\.0\.0\.0/)
    }
  }, 60_000)

  it('`agents` and `dashboard` run on their own refuse a public address the same way', async () => {
    for (const [command, extra] of [
      ['agents', { AGENTS_HOST: '0.0.0.0', AGENTS_PORT: String(await freePort()) }],
      ['dashboard', { DASHBOARD_HOST: '0.0.0.0', DASHBOARD_PORT: String(await freePort()) }],
    ] as const) {
      const child = spawn(process.execPath, [join(ROOT, 'bin/warden.js'), command], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...extra },
      })
      children.push(child)
      let output = ''
      child.stderr.on('data', (d: Buffer) => (output += d.toString()))
      const code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? -1)))
      expect(code, output).toBe(1)
      expect(output).toMatch(/refusing to listen on 0\.0\.0\.0/)
    }
  }, 60_000)

  it('starts when told twice (HOST and WARDEN_DEMO_PUBLIC=1)', async () => {
    const port = await freePort()
    const gw = await startGateway({
      PORT: String(port),
      HOST: '0.0.0.0',
      WARDEN_DEMO_PUBLIC: '1',
      WARDEN_SQLITE_PATH: join(dir, 'public2.db'),
    })
    await waitReady(`http://127.0.0.1:${port}`, gw.child)
    gw.child.kill('SIGTERM')
    expect(await gw.exited).toBe(0)
  }, 60_000)

  it('takes loopback names and addresses as loopback, anything else as public', () => {
    for (const host of ['127.0.0.1', '127.0.1.1', 'localhost', '::1'])
      expect(demoExposure(true, host, {})).toBeUndefined()
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'gateway.internal', '127.0.0.1.example'])
      expect(demoExposure(true, host, {})).toMatch(/refusing/)
    expect(demoExposure(true, '0.0.0.0', { WARDEN_DEMO_PUBLIC: 'yes' })).toMatch(/refusing/)
    expect(demoExposure(true, '0.0.0.0', { WARDEN_DEMO_PUBLIC: '1' })).toBeUndefined()
    expect(demoExposure(false, '0.0.0.0', {})).toBeUndefined()
  })
})
