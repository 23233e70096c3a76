import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { dropSchema, tempSchema, TEST_DATABASE_URL } from './contract/backends.js'
import { execute, runCli, startWarden } from './helpers.js'

/**
 * Backup and restore as docs/operations.md tells an operator to do them: an online backup while
 * the gateway keeps deciding calls, a restore into a fresh place, and the restored log verifies,
 * exports as the prefix of the live one, and takes new events on its chain.
 */
const dir = mkdtempSync(join(tmpdir(), 'warden-backup-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

type Started = Awaited<ReturnType<typeof startWarden>>

/** `n` calls by two agents: allowed lookups and a denied export (both leave audit rows). */
async function traffic(w: Started, n: number) {
  for (let i = 0; i < n; i++) {
    const r =
      i % 3 === 2
        ? await execute(w, 'support-agent', 'export_customer_data', { customer_id: 'C-1' })
        : await execute(w, 'support-agent', 'lookup_order', { order_id: `ORD-100${1 + (i % 4)}` })
    expect([200, 403]).toContain(r.statusCode)
  }
}

const exported = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = await runCli(['audit', 'export', ...args], env)
  expect(r.code).toBe(0)
  return r.out.split('\n')
}

describe('SQLite: warden backup, restore by copying the file', () => {
  it('an online backup restores to a store whose chain verifies and continues', async () => {
    const w = await startWarden()
    const backup = join(dir, 'backup.db')
    let atBackup: string[]
    try {
      await traffic(w, 6)
      const before = await exported(['--db', w.dbPath])
      const head = JSON.parse(before.at(-1)!).hash as string
      // Online: the gateway is running and keeps writing after the copy.
      const taken = await runCli(['backup', '--db', w.dbPath, '--out', backup])
      expect(taken.code).toBe(0)
      expect(taken.out).toBe(
        `ok: backed up to ${backup}; ${before.length} events verified; head ${head}`,
      )
      await traffic(w, 3)
      // A backup never overwrites a file.
      const again = await runCli(['backup', '--db', w.dbPath, '--out', backup])
      expect(again.code).toBe(1)
      expect(again.err).toContain('already exists')
      atBackup = await exported(['--db', backup])
      const live = await exported(['--db', w.dbPath])
      expect(atBackup).toEqual(before)
      expect(live.length).toBeGreaterThan(before.length)
      expect(live.slice(0, before.length)).toEqual(atBackup)
    } finally {
      await w.close()
    }

    // Restore: the gateway is stopped, the backup is copied into place, the schema brought up
    // to date, the chain verified; the gateway then starts on it and appends to the same chain.
    const restoredDir = join(dir, 'restored')
    const restored = join(restoredDir, 'warden.db')
    execFileSync('mkdir', ['-p', restoredDir])
    copyFileSync(backup, restored)
    expect((await runCli(['migrate', '--db', restored])).out).toBe(`ok: ${restored} is up to date`)
    const verified = await runCli(['audit', 'verify', '--db', restored])
    expect(verified).toMatchObject({ code: 0 })
    expect(verified.out).toMatch(new RegExp(`^ok: ${atBackup.length} events verified`))
    const w2 = await startWarden({ sqlitePath: restored })
    try {
      await traffic(w2, 2)
    } finally {
      await w2.close()
    }
    const after = await runCli(['audit', 'verify', '--db', restored])
    expect(after).toMatchObject({ code: 0 })
    const continued = await exported(['--db', restored])
    expect(continued.length).toBeGreaterThan(atBackup.length)
    expect(after.out).toMatch(new RegExp(`^ok: ${continued.length} events verified`))
    expect(continued.slice(0, atBackup.length)).toEqual(atBackup)
  })
})

describe('PostgreSQL: pg_dump, pg_restore into a fresh database', () => {
  it('a dump taken while the gateway runs restores to a log that verifies and continues', async () => {
    const schema = tempSchema()
    const database = `warden_restore_${randomBytes(6).toString('hex')}`
    const restoredUrl = new URL(TEST_DATABASE_URL)
    restoredUrl.pathname = `/${database}`
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    const dump = join(dir, `${schema}.dump`)
    const live = { DATABASE_URL: TEST_DATABASE_URL }
    const restoredEnv = { DATABASE_URL: restoredUrl.toString() }
    try {
      const w = await startWarden({ databaseUrl: TEST_DATABASE_URL, databaseSchema: schema })
      let atDump: string[]
      try {
        await traffic(w, 6)
        atDump = await exported(['--schema', schema], live)
        // pg_dump reads one snapshot: a consistent copy while the gateway keeps writing.
        execFileSync('pg_dump', [
          '--format=custom',
          `--schema=${schema}`,
          `--file=${dump}`,
          TEST_DATABASE_URL,
        ])
        await traffic(w, 3)
        const later = await exported(['--schema', schema], live)
        expect(later.length).toBeGreaterThan(atDump.length)
        expect(later.slice(0, atDump.length)).toEqual(atDump)
      } finally {
        await w.close()
      }
      // A separate database: the restore cannot touch the live schema (or other tests' ones).
      await admin.query(`CREATE DATABASE "${database}"`)
      execFileSync('pg_restore', ['--no-owner', `--dbname=${restoredUrl}`, dump])
      const verified = await runCli(['audit', 'verify', '--schema', schema], restoredEnv)
      expect(verified).toMatchObject({ code: 0 })
      expect(verified.out).toMatch(new RegExp(`^ok: ${atDump.length} events verified`))
      expect(await runCli(['migrate', '--schema', schema], restoredEnv)).toMatchObject({
        code: 0,
        out: 'ok: the schema is up to date',
      })
      const restored = await exported(['--schema', schema], restoredEnv)
      expect(restored).toEqual(atDump)

      const w2 = await startWarden({
        databaseUrl: restoredUrl.toString(),
        databaseSchema: schema,
      })
      try {
        await traffic(w2, 2)
      } finally {
        await w2.close()
      }
      const after = await runCli(['audit', 'verify', '--schema', schema], restoredEnv)
      expect(after).toMatchObject({ code: 0 })
      const continued = await exported(['--schema', schema], restoredEnv)
      expect(continued.length).toBeGreaterThan(atDump.length)
      expect(continued.slice(0, atDump.length)).toEqual(atDump)
      expect(after.out).toMatch(new RegExp(`^ok: ${continued.length} events verified`))
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
      await admin.end()
      await dropSchema(schema)
    }
  }, 60_000)
})
