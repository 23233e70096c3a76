import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { verifyChain } from '../src/audit/verify.js'
import { openStores, storeOptions } from '../src/store/index.js'
import { sqliteStores } from '../src/store/sqlite.js'
import { execute, runCli, startWarden } from './helpers.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-store-'))
  dirs.push(dir)
  return dir
}

describe('choosing the store backend', () => {
  const section = { kind: 'sqlite' as const, sqlite_path: 'data/warden.db' }

  it('uses `store.kind`, with the test path overriding `store.sqlite_path`', () => {
    expect(storeOptions(section)).toEqual({ kind: 'sqlite', sqlitePath: 'data/warden.db' })
    expect(storeOptions(section, { sqlitePath: '/tmp/x.db' })).toEqual({
      kind: 'sqlite',
      sqlitePath: '/tmp/x.db',
    })
    expect(storeOptions({ ...section, kind: 'memory' })).toEqual({ kind: 'memory' })
  })

  it('takes a postgres:// DATABASE_URL as PostgreSQL', async () => {
    const url = 'postgres://warden:secret@db:5432/warden'
    expect(storeOptions(section, { databaseUrl: url })).toEqual({ kind: 'postgres', url })
    expect(() => storeOptions(section, { databaseUrl: 'mysql://db/warden' })).toThrow(
      'DATABASE_URL must be a postgres://',
    )
  })

  it('`warden gateway` with an unreachable DATABASE_URL exits 1 without printing the URL', async () => {
    const { code, err } = await runCli(['gateway'], {
      DATABASE_URL: 'postgresql://warden:hunter2@127.0.0.1:1/warden',
      LOG_LEVEL: 'silent',
    })
    expect(code).toBe(1)
    expect(err).toContain('error:')
    expect(err).not.toContain('hunter2')
  })

  it('runs a whole gateway on the memory backend, with a chain that verifies', async () => {
    const w = await startWarden({ stores: await openStores({ kind: 'memory' }) })
    try {
      expect(w.stores.kind).toBe('memory')
      const res = await execute(w, 'support-agent', 'search_knowledge_base', { query: 'shipping' })
      expect(res.statusCode).toBe(200)
      const events = await w.stores.audit.query({ order: 'asc' })
      expect(events.map((e) => [e.seq, e.type])).toEqual([
        [1, 'tool_call_allowed'],
        [2, 'tool_call_executed'],
      ])
      expect(await verifyChain(w.stores.audit)).toMatchObject({ ok: true, checked: 2 })
    } finally {
      await w.close()
    }
  })
})

describe('sqlite nonces from before expiry was kept', () => {
  it('are kept an hour and a minute after their use, then forgotten', async () => {
    const path = join(tempDir(), 'old.db')
    const old = new Database(path)
    old.exec('CREATE TABLE used_nonces (nonce TEXT PRIMARY KEY, used_at TEXT NOT NULL)')
    old.prepare('INSERT INTO used_nonces VALUES (?, ?)').run('apr-1:n1', '2030-01-01T00:00:00.000Z')
    old.close()
    const stores = sqliteStores(path)
    try {
      const until = '2030-01-01T02:00:00.000Z'
      expect(await stores.nonces.use('apr-1:n1', until, '2030-01-01T01:01:00.000Z')).toBe(false)
      expect(await stores.nonces.use('apr-1:n1', until, '2030-01-01T01:01:00.001Z')).toBe(true)
    } finally {
      await stores.close()
    }
  })

  it('left without an expiry by an interrupted upgrade are dated on the next open, not purged', async () => {
    const path = join(tempDir(), 'half.db')
    const half = new Database(path)
    half.exec(
      `CREATE TABLE used_nonces (nonce TEXT PRIMARY KEY, used_at TEXT NOT NULL, expires_at TEXT NOT NULL DEFAULT '')`,
    )
    half
      .prepare(`INSERT INTO used_nonces VALUES (?, ?, '')`)
      .run('apr-1:n1', '2030-01-01T00:00:00.000Z')
    half.close()
    const stores = sqliteStores(path)
    try {
      // `''` sorts before every time: left as it was, the first use would purge it.
      const until = '2030-01-01T02:00:00.000Z'
      expect(await stores.nonces.use('apr-1:n1', until, '2030-01-01T00:30:00.000Z')).toBe(false)
      expect(await stores.nonces.use('apr-1:n1', until, '2030-01-01T01:01:00.000Z')).toBe(false)
    } finally {
      await stores.close()
    }
  })
})
