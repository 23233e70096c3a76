import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { verifyChain } from '../src/audit/verify.js'
import { parseStored } from '../src/domain/audit-event.js'
import { StoreError } from '../src/store/errors.js'
import { migratePostgres, openStores, type Stores } from '../src/store/index.js'
import { MIGRATIONS } from '../src/store/postgres-migrations.js'
import {
  auditInput,
  dropSchema,
  openTempPostgres,
  tempSchema,
  TEST_DATABASE_URL,
} from './contract/backends.js'

/** What the suites below opened, closed (and their schemas dropped) after each test. */
const opened: Stores[] = []
const schemas: string[] = []
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close()
  for (const schema of schemas.splice(0)) await dropSchema(schema)
})

const open = (schema: string) =>
  openStores({ kind: 'postgres', url: TEST_DATABASE_URL, schema }).then((s) => {
    opened.push(s)
    return s
  })

/** Run SQL on the schema directly, as someone with database access would. */
async function sql(schema: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    options: `-c search_path=${schema}`,
  })
  await client.connect()
  try {
    return await client.query(text)
  } finally {
    await client.end()
  }
}

/** Fresh stores in their own schema with five events appended. */
async function fiveEvents(): Promise<{ stores: Stores; schema: string }> {
  const schema = tempSchema()
  schemas.push(schema)
  const stores = await open(schema)
  await stores.audit.append([1, 2, 3, 4, 5].map((i) => auditInput({ reason: `event ${i}` })))
  expect(await verifyChain(stores.audit)).toMatchObject({ ok: true, checked: 5 })
  return { stores, schema }
}

describe('verifying a PostgreSQL audit log that was tampered with', () => {
  it('names the edited event', async () => {
    const { stores, schema } = await fiveEvents()
    await sql(
      schema,
      `UPDATE audit_events SET body = replace(body, 'event 3', 'event 9') WHERE seq = 3`,
    )
    const result = await verifyChain(stores.audit)
    expect(result).toMatchObject({ ok: false, checked: 3, firstBad: { seq: 3 } })
    expect(result.firstBad?.problem).toContain('edited')
  })

  it('names where an event is missing', async () => {
    const { stores, schema } = await fiveEvents()
    await sql(schema, 'DELETE FROM audit_events WHERE seq = 3')
    const result = await verifyChain(stores.audit)
    expect(result).toMatchObject({ ok: false, checked: 3, firstBad: { seq: 4 } })
    expect(result.firstBad?.problem).toContain('expected seq 3 but found 4')
  })

  it('names where two events were swapped', async () => {
    const { stores, schema } = await fiveEvents()
    // Row by row: the primary key is checked after each one.
    await sql(
      schema,
      'UPDATE audit_events SET seq = -2 WHERE seq = 2; UPDATE audit_events SET seq = 2 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = -2',
    )
    const result = await verifyChain(stores.audit)
    expect(result).toMatchObject({ ok: false, checked: 2, firstBad: { seq: 3 } })
    expect(result.firstBad?.problem).toContain('expected seq 2 but found 3')
  })
})

describe('several instances on one PostgreSQL schema', () => {
  it('append concurrently to one gap-free chain that verifies', async () => {
    const schema = tempSchema()
    schemas.push(schema)
    const [a, b] = await Promise.all([open(schema), open(schema)])
    const batches = (stores: Stores, who: string) =>
      Array.from({ length: 40 }, (_, i) =>
        stores.audit.append(
          Array.from({ length: 5 }, (_, j) =>
            auditInput({ agent_id: who, id: `${who}-${i}-${j}` }),
          ),
        ),
      )
    const results = await Promise.all([...batches(a!, 'a'), ...batches(b!, 'b')])
    // Each caller's events are contiguous and numbered as stored.
    for (const events of results)
      for (let i = 1; i < events.length; i++) expect(events[i]!.seq).toBe(events[i - 1]!.seq + 1)
    expect(await verifyChain(a!.audit)).toMatchObject({ ok: true, checked: 400 })
    const seqs = (await a!.audit.query({ order: 'asc', limit: 1000 })).map((e) => e.seq)
    expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1))
    const { rows } = await b!.audit.counts()
    expect(rows.map((r) => [r.agent_id, r.n]).sort()).toEqual([
      ['a', 200],
      ['b', 200],
    ])
  })

  it('race their migrations at start-up: both open, each migration is applied once', async () => {
    const schema = tempSchema()
    schemas.push(schema)
    const all = await Promise.all([open(schema), open(schema), open(schema)])
    expect(all).toHaveLength(3)
    const { rows } = await sql(
      schema,
      'SELECT version, count(*)::int AS n FROM warden_migrations GROUP BY version ORDER BY version',
    )
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, n: 1 })))
    expect((await sql(schema, 'SELECT count(*)::int AS n FROM audit_head')).rows).toEqual([
      { n: 1 },
    ])
  })

  it('`migratePostgres` applies what is missing and then nothing', async () => {
    const schema = tempSchema()
    schemas.push(schema)
    expect((await migratePostgres(TEST_DATABASE_URL, schema)).map((m) => m.version)).toEqual(
      MIGRATIONS.map((m) => m.version),
    )
    expect(await migratePostgres(TEST_DATABASE_URL, schema)).toEqual([])
  })

  it('notifies `warden_audit` with the last seq of each committed append', async () => {
    const stores = await openTempPostgres()
    opened.push(stores)
    const listener = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await listener.connect()
    try {
      const payloads: string[] = []
      listener.on('notification', (n) => payloads.push(n.payload ?? ''))
      await listener.query('LISTEN warden_audit')
      const events = await stores.audit.append([auditInput(), auditInput(), auditInput()])
      await expect.poll(() => payloads).toContain(String(events[2]!.seq))
    } finally {
      await listener.end()
    }
  })
})

describe('PostgreSQL failures', () => {
  it('refuses an unsafe schema name', async () => {
    await expect(
      openStores({ kind: 'postgres', url: TEST_DATABASE_URL, schema: 'x"; DROP TABLE y' }),
    ).rejects.toThrow('invalid PostgreSQL schema name')
  })

  it('fails to open when the server cannot be reached', async () => {
    await expect(
      openStores({ kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/test' }),
    ).rejects.toThrow()
  })

  it('fails a batch whose statement fails with audit_unavailable, and keeps the chain', async () => {
    const { stores, schema } = await fiveEvents()
    await sql(schema, 'ALTER TABLE audit_events ADD CONSTRAINT no_boom CHECK (reason <> $$boom$$)')
    const err = await stores.audit.append([auditInput({ reason: 'boom' })]).catch((e) => e)
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('audit_unavailable')
    const [next] = await stores.audit.append([auditInput()])
    expect(next!.seq).toBe(6)
    expect(await verifyChain(stores.audit)).toMatchObject({ ok: true, checked: 6 })
    const stored = await stores.audit.queryStored({ limit: 1 })
    expect(parseStored(stored[0]!).seq).toBe(6)
  })
})
