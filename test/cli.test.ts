import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { openStores } from '../src/store/index.js'
import { MIGRATIONS } from '../src/store/postgres-migrations.js'
import { auditInput, dropSchema, tempSchema, TEST_DATABASE_URL } from './contract/backends.js'
import { execute, runCli, startWarden } from './helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const run = runCli

describe('warden CLI', () => {
  it('keys create prints a key and the SHA-256 line for the config', async () => {
    const { code, out } = await run(['keys', 'create', '--agent', 'billing-bot', '--json'])
    expect(code).toBe(0)
    const { key, key_sha256, agent_id } = JSON.parse(out)
    expect(agent_id).toBe('billing-bot')
    expect(key).toMatch(/^wk_[A-Za-z0-9_-]{43}$/)
    expect(key_sha256).toBe(createHash('sha256').update(key).digest('hex'))
    const human = await run(['keys', 'create', '--agent', 'billing-bot'])
    expect(human.out).toMatch(/key_sha256: [0-9a-f]{64}/)
  })

  it('keys create refuses a bad agent id', async () => {
    expect((await run(['keys', 'create', '--agent', '../x'])).code).toBe(2)
  })

  it('policy test runs the scenario files and exits 0 when all pass', async () => {
    const { code, out } = await run([
      'policy',
      'test',
      fileURLToPath(new URL('./scenarios/', import.meta.url)),
    ])
    expect(code).toBe(0)
    expect(out).toMatch(/^\d+ passed, 0 failed$/m)
  })

  it('policy test takes one scenario file too, and names a path that does not exist', async () => {
    const one = await run([
      'policy',
      'test',
      fileURLToPath(new URL('./scenarios/sessions.yaml', import.meta.url)),
    ])
    expect(one.code).toBe(0)
    expect(one.out).toMatch(/^[1-9]\d* passed, 0 failed$/m)
    const missing = await run(['policy', 'test', '/nonexistent/scenarios.yaml'])
    expect(missing.code).toBe(1)
    expect(missing.err).toContain('/nonexistent/scenarios.yaml: no such scenario file or folder')
  })

  it('policy test exits 1 and shows the difference when a policy no longer matches', async () => {
    // The HTTP example configuration has no refund burst rule, so the sessions file fails against it.
    const { code, out } = await run([
      'policy',
      'test',
      fileURLToPath(new URL('./scenarios/', import.meta.url)),
      '--config',
      fileURLToPath(new URL('../config/http-upstream/warden.yaml', import.meta.url)),
    ])
    expect(code).toBe(1)
    expect(out).toMatch(/FAIL .*sessions\.yaml :: sequence - the fourth refund/)
  })

  it('config check names the file and field of a problem', async () => {
    expect(
      (
        await run([
          'config',
          'check',
          '--config',
          fileURLToPath(new URL('../config/demo/warden.yaml', import.meta.url)),
        ])
      ).code,
    ).toBe(0)
    const bad = await run(['config', 'check', '--config', '/nonexistent/warden.yaml'])
    expect(bad.code).toBe(1)
    expect(bad.err).toContain('/nonexistent/warden.yaml: cannot read')
  })

  it('audit verify refuses a database that does not exist instead of verifying an empty one', async () => {
    const { code, err } = await run(['audit', 'verify', '--db', '/nonexistent/audit.db'])
    expect(code).toBe(1)
    expect(err).toContain('no audit database at /nonexistent/audit.db')
  })

  it('approvals list / approve / deny talk to a running gateway as an approver', async () => {
    const w = await startWarden()
    try {
      const env = {
        GATEWAY_URL: await w.app.listen({ port: 0, host: '127.0.0.1' }),
        WARDEN_APPROVER_TOKEN: 'demo-approver-token',
      }
      const hold = async (service: string) =>
        (await execute(w, 'admin-agent', 'restart_service', { service, environment: 'dev' })).json()
          .approval_id as string
      const [a, b] = [await hold('api'), await hold('search')]
      const list = await run(['approvals', 'list'], env)
      expect(list.code).toBe(0)
      expect(list.out).toContain(`${a}  admin-agent → restart_service  risk`)
      expect((await run(['approvals', 'approve', a, '--comment', 'ok by ops'], env)).out).toBe(
        `${a}: approved, executed (ok)`,
      )
      expect((await run(['approvals', 'deny', b], env)).out).toBe(`${b}: denied`)
      const again = await run(['approvals', 'approve', a], env)
      expect(again.code).toBe(1)
      expect(again.err).toContain('409: approval_already_decided')
      expect((await run(['approvals', 'approve', a], { GATEWAY_URL: env.GATEWAY_URL })).code).toBe(
        2,
      )
    } finally {
      await w.close()
    }
  })

  it('unknown commands print usage and exit 2', async () => {
    const { code, out } = await run(['frobnicate'])
    expect(code).toBe(2)
    expect(out).toContain('usage: warden')
  })

  it('the installed bin runs (compiled by npm ci)', () => {
    // What `npm ci` built (its `prepare` script), as it is: nothing is compiled here first, so a
    // build that npm ci did not make (or made broken) fails this test.
    const r = spawnSync(
      process.execPath,
      ['bin/warden.js', 'keys', 'create', '--agent', 'x', '--json'],
      { cwd: ROOT, encoding: 'utf8' },
    )
    expect(r.status).toBe(0)
    expect(JSON.parse(r.stdout).agent_id).toBe('x')
  })

  // Runs what `npm ci` built (dist/), like the bin test above: after changing src/, `npm run
  // build` first. Three servers and the demo's MCP upstream start: on a loaded 2-core machine that
  // takes longer than the default bound.
  it('`warden start` runs gateway, agent API and dashboard together; Ctrl-C stops all three', async () => {
    const [gateway, agents, dashboard] = await freePorts(3)
    const cwd = mkdtempSync(join(tmpdir(), 'warden-start-'))
    const child = spawn(process.execPath, [join(ROOT, 'bin/warden.js'), 'start'], {
      cwd,
      env: {
        ...process.env,
        WARDEN_CONFIG: join(ROOT, 'config/demo/warden.yaml'),
        PORT: String(gateway),
        AGENTS_PORT: String(agents),
        DASHBOARD_PORT: String(dashboard),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    )
    try {
      const up = async (url: string) => {
        for (let i = 0; i < 100; i++) {
          const r = await fetch(url).catch(() => null)
          if (r?.ok) return r
          await new Promise((res) => setTimeout(res, 100))
        }
        throw new Error(`${url} never answered:\n${output}`)
      }
      expect(await (await up(`http://127.0.0.1:${gateway}/health`)).json()).toMatchObject({
        status: 'ok',
      })
      expect(await (await up(`http://127.0.0.1:${agents}/health`)).json()).toMatchObject({
        status: 'ok',
      })
      expect(await (await up(`http://127.0.0.1:${dashboard}/api/health`)).json()).toMatchObject({
        status: 'ok',
      })
      const run = await fetch(`http://127.0.0.1:${agents}/agent/prompt`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          prompt: 'Create a support ticket for customer 12345',
          agent_id: 'support-agent',
        }),
      })
      expect(await run.json()).toMatchObject({
        status: 'completed',
        steps: [{ decision: 'allow' }],
      })
      child.kill('SIGINT')
      expect(await exited).toBe(0)
    } finally {
      child.kill('SIGKILL')
      rmSync(cwd, { recursive: true, force: true })
    }
  }, 90_000)
})

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve) => {
          const s = createServer()
          s.listen(0, '127.0.0.1', () => resolve(s))
        }),
    ),
  )
  const ports = servers.map((s) => (s.address() as AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

describe('warden CLI on PostgreSQL (DATABASE_URL)', () => {
  const env = { DATABASE_URL: TEST_DATABASE_URL }

  it('migrate applies the migrations once, then says the schema is up to date', async () => {
    const schema = tempSchema()
    try {
      // `--schema` is PostgreSQL's: without DATABASE_URL it is a usage error, not a SQLite migrate.
      expect(await run(['migrate', '--schema', schema], {})).toMatchObject({ code: 2 })
      const first = await run(['migrate', '--schema', schema], env)
      expect(first.code).toBe(0)
      expect(first.out).toBe(MIGRATIONS.map((m) => `applied ${m.version}: ${m.name}`).join('\n'))
      expect(await run(['migrate', '--schema', schema, '--json'], env)).toMatchObject({
        code: 0,
        out: JSON.stringify({ applied: [] }),
      })
    } finally {
      await dropSchema(schema)
    }
  })

  it('audit verify and export read PostgreSQL, and refuse a database without a log', async () => {
    const schema = tempSchema()
    const stores = await openStores({ kind: 'postgres', url: TEST_DATABASE_URL, schema })
    try {
      const missing = await run(['audit', 'verify', '--schema', `${schema}_none`], env)
      expect(missing.code).toBe(1)
      expect(missing.err).toContain('no audit log in the PostgreSQL database of DATABASE_URL')
      const events = await stores.audit.append([auditInput(), auditInput(), auditInput()])
      const verified = await run(['audit', 'verify', '--schema', schema], env)
      expect(verified).toMatchObject({ code: 0 })
      expect(verified.out).toBe(`ok: 3 events verified; head ${events[2]!.hash}`)
      const exported = await run(['audit', 'export', '--schema', schema], env)
      expect(exported.code).toBe(0)
      expect(exported.out.split('\n').map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3])
    } finally {
      await stores.close()
      await dropSchema(schema)
    }
  })
})
