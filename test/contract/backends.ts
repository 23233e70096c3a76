import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { AuditEventInput } from '../../src/domain/audit-event.js'
import { openStores, type Stores } from '../../src/store/index.js'
import type { ApprovalRecord } from '../../src/store/types.js'

/**
 * Every store backend, each opening a fresh, empty set of stores. The contract suites run
 * against each one; a new backend (PostgreSQL) is one more line here.
 */
export const BACKENDS: [name: string, open: () => Promise<Stores>][] = [
  ['sqlite', openTempSqlite],
  ['memory', () => openStores({ kind: 'memory' })],
  ['postgres', openTempPostgres],
]

/** The test database; a server that cannot be reached fails the suites (they never skip). */
export const TEST_DATABASE_URL =
  process.env.WARDEN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** A fresh schema name, so concurrent test files never see each other's tables. */
export const tempSchema = () => `warden_t_${randomBytes(6).toString('hex')}`

/** Drop a test schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

/** Stores in a schema of their own, dropped by `close()`. */
export async function openTempPostgres(schema = tempSchema()): Promise<Stores> {
  const stores = await openStores({ kind: 'postgres', url: TEST_DATABASE_URL, schema })
  return {
    ...stores,
    async close() {
      await stores.close()
      await dropSchema(schema)
    },
  }
}

async function openTempSqlite(): Promise<Stores> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-contract-'))
  const stores = await openStores({ kind: 'sqlite', sqlitePath: join(dir, 'warden.db') })
  return {
    ...stores,
    async close() {
      await stores.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

let counter = 0

/** An audit event as the gateway would build it; `over` changes any field. */
export function auditInput(over: Partial<AuditEventInput> = {}): AuditEventInput {
  counter++
  return {
    version: 1,
    id: `evt-${counter}`,
    type: 'tool_call_allowed',
    timestamp: '2030-01-01T00:00:00.000Z',
    request_id: `req-${counter}`,
    agent_id: 'support-agent',
    principal: 'support-agent',
    tool: 'lookup_order',
    session_id: null,
    decision: 'allow',
    layer: null,
    code: null,
    reason: 'allowed by policy',
    risk: { score: 10, level: 'low' },
    policy_version: 'v1',
    args_hash: 'a'.repeat(64),
    params: { order_id: 'ORD-1' },
    masked: [],
    checks: [],
    ...over,
  }
}

/** A pending approval; `over` changes any field. */
export function approvalRecord(over: Partial<ApprovalRecord> = {}): ApprovalRecord {
  counter++
  return {
    id: `apr-${counter}`,
    status: 'pending',
    request_id: `req-${counter}`,
    agent_id: 'refund-agent',
    tool: 'issue_refund',
    session_id: 's1',
    params: { order_id: 'ORD-1', amount: 50 },
    context: { requested_by: 'ada' },
    args_hash: 'b'.repeat(64),
    policy_version: 'v1',
    idempotency_key: null,
    requested_by: 'ada',
    reason: 'refunds over 20 need a person',
    layer: 'approval',
    risk: { score: 60, level: 'high' },
    created_at: '2030-01-01T00:00:00.000Z',
    expires_at: '2030-01-01T00:15:00.000Z',
    decided_by: null,
    decided_at: null,
    comment: null,
    executed_at: null,
    outcome: null,
    result: null,
    ...over,
  }
}
