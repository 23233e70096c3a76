import { createHash } from 'node:crypto'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { verifyChain } from '../src/audit/verify.js'
import { DemoBackend } from '../src/demo/backend.js'
import { APPROVER, DEMO_CONFIG, execute, keyOf, startWarden } from './helpers.js'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const root = mkdtempSync(join(tmpdir(), 'warden-reload-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** A private copy of the demo configuration, to edit between reloads. */
function configCopy(name: string) {
  const dir = join(root, name)
  cpSync(dirname(DEMO_CONFIG), dir, { recursive: true })
  const file = (f: string) => join(dir, f)
  // The MCP upstream's working directory is given relative to the repository's config folder.
  const mcp = file('mcp.yaml')
  writeFileSync(mcp, readFileSync(mcp, 'utf8').replace('cwd: ../..', `cwd: ${REPO}`))
  const edit = (f: string, change: (text: string) => string) => {
    const before = readFileSync(file(f), 'utf8')
    const after = change(before)
    expect(after).not.toBe(before)
    writeFileSync(file(f), after)
  }
  return { main: file('warden.yaml'), file, edit }
}

/** A forbid rule for order lookups, put before the demo's other rules. */
const pauseLookups = (text: string) =>
  text.replace(
    '  rules:\n',
    `  rules:
    - id: lookups-paused
      effect: forbid
      tools: [lookup_order]
      when: 'true'
      reason: order lookups are paused
`,
  )

/** The demo backend with an order lookup that waits until told to answer. */
class HeldLookups extends DemoBackend {
  private began: () => void = () => {}
  private release: () => void = () => {}
  readonly started = new Promise<void>((resolve) => (this.began = resolve))
  private readonly released = new Promise<void>((resolve) => (this.release = resolve))
  finish() {
    this.release()
  }
  override lookup_order(params: Parameters<DemoBackend['lookup_order']>[0]) {
    this.began()
    return this.released.then(() => super.lookup_order(params)) as unknown as ReturnType<
      DemoBackend['lookup_order']
    >
  }
}

type Started = Awaited<ReturnType<typeof startWarden>>
let open: Started[] = []
afterEach(async () => {
  for (const w of open) await w.close()
  open = []
})
async function start(...args: Parameters<typeof startWarden>) {
  const w = await startWarden(...args)
  open.push(w)
  return w
}

const reload = (w: Started, token: string | null = APPROVER) =>
  w.app.inject({
    method: 'POST',
    url: '/admin/reload',
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  })
const lookup = (w: Started) => execute(w, 'support-agent', 'lookup_order', { order_id: 'ORD-1001' })

describe('POST /admin/reload', () => {
  it('puts an edited policy in force for new calls, names the version on each decision, and is audited', async () => {
    const cfg = configCopy('edit')
    const w = await start({ config: cfg.main })
    const before = w.loaded.policyVersion
    const first = await lookup(w)
    expect(first.statusCode).toBe(200)
    expect(first.json().policy_version).toBe(before)

    cfg.edit('policy.yaml', pauseLookups)
    const r = await reload(w)
    expect(r.statusCode).toBe(200)
    const body = r.json()
    expect(body).toMatchObject({ reloaded: true, changed: true, previous_policy_version: before })
    expect(body.policy_version).not.toBe(before)
    expect(w.loaded.policyVersion).toBe(body.policy_version)

    const second = await lookup(w)
    expect(second.statusCode).toBe(403)
    expect(second.json()).toMatchObject({
      decision: 'deny',
      error: { code: 'policy_denied' },
      policy_version: body.policy_version,
    })
    // The health page and the audit name the version in force; the reload is an event of its own.
    expect((await w.app.inject({ url: '/health' })).json().policy_version).toBe(body.policy_version)
    const [reloaded] = await w.stores.audit.query({ type: 'config_reloaded', limit: 5 })
    expect(reloaded).toMatchObject({
      principal: 'demo-approver',
      policy_version: body.policy_version,
      params: { previous_policy_version: before, file: cfg.main },
    })
    const allowed = await w.stores.audit.query({ type: 'tool_call_allowed', limit: 5 })
    const denied = await w.stores.audit.query({ type: 'tool_call_denied', limit: 5 })
    expect(allowed.map((e) => e.policy_version)).toEqual([before])
    expect(denied.map((e) => e.policy_version)).toEqual([body.policy_version])
    expect(reloaded!.seq).toBeGreaterThan(allowed[0]!.seq)
    expect(reloaded!.seq).toBeLessThan(denied[0]!.seq)
    expect((await verifyChain(w.stores.audit)).ok).toBe(true)
  })

  it('a call in flight during a reload finishes under the version it started with', async () => {
    const cfg = configCopy('in-flight')
    const backend = new HeldLookups()
    const w = await start({ config: cfg.main, demoBackend: backend })
    const before = w.loaded.policyVersion
    const running = lookup(w)
    await backend.started
    cfg.edit('policy.yaml', pauseLookups)
    expect((await reload(w)).statusCode).toBe(200)
    // A call that starts now is decided under the new policy while the first is still running.
    expect((await lookup(w)).statusCode).toBe(403)
    backend.finish()
    const first = await running
    expect(first.statusCode).toBe(200)
    expect(first.json()).toMatchObject({ decision: 'allow', policy_version: before })
    const [executed] = await w.stores.audit.query({ type: 'tool_call_executed', limit: 5 })
    expect(executed).toMatchObject({ request_id: first.json().request_id, outcome: 'ok' })
    expect(executed!.policy_version).toBe(before)
  })

  it('an invalid file keeps the configuration in force, and the error names the file and field', async () => {
    const cfg = configCopy('invalid')
    const w = await start({ config: cfg.main })
    const before = w.loaded.policyVersion
    cfg.edit('policy.yaml', (t) => t.replace('effect: permit', 'effect: allow-everything'))
    const r = await reload(w)
    expect(r.statusCode).toBe(422)
    const { error } = r.json()
    expect(error.code).toBe('config_invalid')
    expect(error.message).toContain(cfg.file('policy.yaml'))
    expect(error.message).toContain('policy.rules[0].effect')
    expect(w.loaded.policyVersion).toBe(before)
    const still = await lookup(w)
    expect(still.statusCode).toBe(200)
    expect(still.json().policy_version).toBe(before)
    expect(await w.stores.audit.query({ type: 'config_reloaded', limit: 5 })).toEqual([])
    const metrics = (await w.app.inject({ url: '/metrics' })).body
    expect(metrics).toContain('warden_config_reloads_total{result="config_invalid"} 1')
  })

  it('a file that does not parse is refused the same way', async () => {
    const cfg = configCopy('yaml')
    const w = await start({ config: cfg.main })
    cfg.edit('agents.yaml', (t) => `${t}\n  : [unclosed\n`)
    const r = await reload(w)
    expect(r.statusCode).toBe(422)
    expect(r.json().error.message).toContain(cfg.file('agents.yaml'))
  })

  it('refuses a change that needs a restart, naming the file and field, and keeps the rest too', async () => {
    const cfg = configCopy('restart-only')
    const w = await start({ config: cfg.main })
    const before = w.loaded.policyVersion
    // A policy edit that would be fine alone is not applied half-way with a port change.
    cfg.edit('policy.yaml', pauseLookups)
    cfg.edit('warden.yaml', (t) => t.replace('port: 8004', 'port: 8014'))
    const r = await reload(w)
    expect(r.statusCode).toBe(409)
    const { error } = r.json()
    expect(error.code).toBe('config_needs_restart')
    expect(error.message).toContain(cfg.main)
    expect(error.message).toContain('server.port')
    expect(w.loaded.policyVersion).toBe(before)
    expect((await lookup(w)).statusCode).toBe(200)
  })

  it('is for approvers only: an agent key or no token is refused and nothing is reloaded', async () => {
    const cfg = configCopy('auth')
    const w = await start({ config: cfg.main })
    const before = w.loaded.policyVersion
    cfg.edit('policy.yaml', pauseLookups)
    for (const token of [keyOf('admin-agent'), null, 'not-a-token']) {
      const r = await reload(w, token)
      expect(r.statusCode).toBe(401)
      expect(r.json().error.code).toBe('approver_unauthenticated')
    }
    expect(w.loaded.policyVersion).toBe(before)
    expect((await lookup(w)).statusCode).toBe(200)
  })

  it('a reload the audit log cannot record is refused and changes nothing', async () => {
    const cfg = configCopy('unrecorded')
    const w = await start({ config: cfg.main })
    const before = w.loaded.policyVersion
    // A real SQLite failure, for this event type only: the log refuses the reload's event.
    const db = new Database(w.dbPath)
    db.exec(`CREATE TRIGGER refuse_reloads BEFORE INSERT ON audit_events
      WHEN NEW.type = 'config_reloaded' BEGIN SELECT RAISE(ABORT, 'disk full'); END`)
    db.close()
    cfg.edit('policy.yaml', pauseLookups)
    const r = await reload(w)
    expect(r.statusCode).toBe(503)
    expect(r.json().error.code).toBe('audit_unavailable')
    expect(w.loaded.policyVersion).toBe(before)
    const still = await lookup(w)
    expect(still.statusCode).toBe(200)
    expect(still.json().policy_version).toBe(before)
  })

  it('a live event stream whose token a reload removed stops at once (closed, nothing more sent)', async () => {
    const cfg = configCopy('revoke')
    const token = 'temporary-approver-token'
    const hash = createHash('sha256').update(token).digest('hex')
    const second = `    - id: temp-approver
      name: Temporary Approver
      token_sha256: ${hash}
      roles: [security-lead]
`
    cfg.edit('warden.yaml', (t) =>
      t
        .replace('  approvers:\n', `  approvers:\n${second}`)
        .replace('read_access: open', 'read_access: approver'),
    )
    const w = await start({ config: cfg.main })
    const address = await w.app.listen({ port: 0, host: '127.0.0.1' })
    const ws = new WebSocket(`${address.replace('http', 'ws')}/ws/events`, {
      headers: { authorization: `Bearer ${token}` },
    })
    const received: { type: string; seq: number }[] = []
    ws.on('message', (data: Buffer) => received.push(JSON.parse(data.toString())))
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    expect((await lookup(w)).statusCode).toBe(200)
    await expect.poll(() => received.map((e) => e.type)).toContain('tool_call_executed')
    // The approver is taken out of the configuration.
    cfg.edit('warden.yaml', (t) => t.replace(second, ''))
    expect((await reload(w)).statusCode).toBe(200)
    expect((await lookup(w)).statusCode).toBe(200)
    expect(await closed).toBe(1008)
    // Nothing committed after the reload reached the revoked reader (the reload's own event is
    // committed before the new configuration takes effect, so it may or may not have).
    const [reloaded] = await w.stores.audit.query({ type: 'config_reloaded', limit: 1 })
    expect(received.length).toBeGreaterThan(0)
    for (const e of received) expect(e.seq).toBeLessThanOrEqual(reloaded!.seq)
  })

  it('an unchanged configuration reloads to the same version, still recorded', async () => {
    const cfg = configCopy('same')
    const w = await start({ config: cfg.main })
    const r = await reload(w)
    expect(r.json()).toMatchObject({ changed: false, policy_version: w.loaded.policyVersion })
    expect(await w.stores.audit.query({ type: 'config_reloaded', limit: 5 })).toHaveLength(1)
  })
})
