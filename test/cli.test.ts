import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { main } from '../src/main.js'
import { execute, startWarden } from './helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function run(
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
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT })
    const r = spawnSync(
      process.execPath,
      ['bin/warden.js', 'keys', 'create', '--agent', 'x', '--json'],
      { cwd: ROOT, encoding: 'utf8' },
    )
    expect(r.status).toBe(0)
    expect(JSON.parse(r.stdout).agent_id).toBe('x')
  })
})
