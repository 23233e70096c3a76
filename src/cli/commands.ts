import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { once } from 'node:events'
import { exportHeader, exportLine, type ExportFormat } from '../audit/export.js'
import { verifyChain } from '../audit/verify.js'
import { loadConfig } from '../config/loader.js'
import { sha256Hex } from '../auth/credentials.js'
import { runScenarioFile, scenarioFiles } from '../replay/scenario-runner.js'
import {
  backupSqlite,
  migratePostgres,
  openStores,
  postgresHasAuditLog,
  type StoreOptions,
} from '../store/index.js'

/** Where commands print; injected so tests can read the output. */
export interface Io {
  out: (line: string) => void
  err: (line: string) => void
}

/** `warden keys create --agent ID`: a new random key and the line to paste into agents.yaml. */
export function keysCreate(agentId: string, json: boolean, io: Io): number {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(agentId)) {
    io.err(`invalid agent id \`${agentId}\``)
    return 2
  }
  const key = `wk_${randomBytes(32).toString('base64url')}`
  const hash = sha256Hex(key)
  if (json) io.out(JSON.stringify({ agent_id: agentId, key, key_sha256: hash }))
  else {
    io.out(`key for ${agentId} (shown once; give it to the agent):\n  ${key}`)
    io.out(`put this in the agent's entry in agents.yaml:\n    key_sha256: ${hash}`)
  }
  return 0
}

/** Where `warden audit` reads: a SQLite file, or PostgreSQL when `DATABASE_URL` is set. */
export type AuditSource = Exclude<StoreOptions, { kind: 'memory' }>

/** `warden audit verify`: walk the chain; exit 1 naming the first bad event. */
export async function auditVerify(source: AuditSource, json: boolean, io: Io): Promise<number> {
  if (!(await exists(source))) return missing(source, io)
  const stores = await openStores(source)
  try {
    const result = await verifyChain(stores.audit)
    if (json) io.out(JSON.stringify(result))
    else if (result.ok) io.out(`ok: ${result.checked} events verified; head ${result.head}`)
    else
      io.out(
        `FAILED at event seq ${result.firstBad?.seq}: ${result.firstBad?.problem} (${result.checked - 1} events before it verified)`,
      )
    return result.ok ? 0 : 1
  } finally {
    await stores.close()
  }
}

/** `warden audit export`: every event, in order, as JSONL or CSV. */
export async function auditExport(
  source: AuditSource,
  format: ExportFormat,
  outFile: string | undefined,
  io: Io,
): Promise<number> {
  if (!(await exists(source))) return missing(source, io)
  const stores = await openStores(source)
  const file = outFile ? createWriteStream(outFile) : undefined
  const write = async (line: string) => {
    if (!file) return io.out(line)
    if (!file.write(`${line}\n`)) await once(file, 'drain')
  }
  try {
    let n = 0
    const header = exportHeader(format)
    if (header) await write(header)
    for await (const page of stores.audit.scan()) {
      for (const row of page) await write(exportLine(row, format))
      n += page.length
    }
    if (file) {
      file.end()
      await once(file, 'finish')
      io.err(`exported ${n} events to ${outFile}`)
    }
    return 0
  } finally {
    await stores.close()
  }
}

/** `warden policy test <dir>`: run scenario files; exit 1 if any case fails. */
export async function policyTest(
  dir: string,
  configOverride: string | undefined,
  json: boolean,
  io: Io,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<number> {
  let failed = 0
  let total = 0
  for (const file of scenarioFiles(dir)) {
    for (const r of await runScenarioFile(file, configOverride, env)) {
      total++
      if (!r.passed) failed++
      if (json) io.out(JSON.stringify(r))
      else if (!r.passed) {
        io.out(
          `FAIL ${r.file} :: ${r.name}\n  expected ${JSON.stringify(r.expected)}\n  got      ${JSON.stringify(r.actual)}`,
        )
      }
    }
  }
  if (!json) io.out(`${total - failed} passed, ${failed} failed`)
  return failed === 0 && total > 0 ? 0 : 1
}

/** Validate a configuration and print its policy version. */
export function configCheck(file: string, io: Io): number {
  const loaded = loadConfig(file)
  io.out(`ok: ${loaded.file} (policy version ${loaded.policyVersion})`)
  return 0
}

/** `warden migrate`: apply the PostgreSQL migrations not yet applied, and say which. */
export async function migrate(
  url: string,
  schema: string | undefined,
  json: boolean,
  io: Io,
): Promise<number> {
  const applied = await migratePostgres(url, schema)
  if (json)
    io.out(JSON.stringify({ applied: applied.map(({ version, name }) => ({ version, name })) }))
  else if (applied.length === 0) io.out('ok: the schema is up to date')
  else for (const m of applied) io.out(`applied ${m.version}: ${m.name}`)
  return 0
}

/**
 * `warden migrate` without `DATABASE_URL`: bring the SQLite store file up to date (its schema is
 * created and upgraded in place when it is opened; this does it ahead of a start, and says so).
 */
export async function migrateSqlite(sqlitePath: string, json: boolean, io: Io): Promise<number> {
  const created = !existsSync(sqlitePath)
  const stores = await openStores({ kind: 'sqlite', sqlitePath })
  await stores.close()
  if (json) io.out(JSON.stringify({ sqlite: sqlitePath, created }))
  else io.out(`ok: ${sqlitePath} is up to date${created ? ' (created)' : ''}`)
  return 0
}

/**
 * `warden backup --out FILE`: an online copy of the SQLite store (the gateway may keep running),
 * whose hash chain is verified before the command reports success. PostgreSQL is backed up with
 * `pg_dump` (docs/operations.md).
 */
export async function backup(sqlitePath: string, outFile: string, json: boolean, io: Io) {
  const source: AuditSource = { kind: 'sqlite', sqlitePath }
  if (!(await exists(source))) return missing(source, io)
  const { pages } = await backupSqlite(sqlitePath, outFile)
  const stores = await openStores({ kind: 'sqlite', sqlitePath: outFile })
  try {
    const result = await verifyChain(stores.audit)
    if (json) io.out(JSON.stringify({ out: outFile, pages, ...result }))
    else if (result.ok)
      io.out(`ok: backed up to ${outFile}; ${result.checked} events verified; head ${result.head}`)
    else io.out(`FAILED: the copy at ${outFile} does not verify at seq ${result.firstBad?.seq}`)
    return result.ok ? 0 : 1
  } finally {
    await stores.close()
  }
}

async function exists(source: AuditSource): Promise<boolean> {
  return source.kind === 'sqlite'
    ? existsSync(source.sqlitePath)
    : postgresHasAuditLog({ url: source.url, schema: source.schema })
}

/**
 * Opening a missing file (or an unmigrated database) would create an empty log that
 * "verifies"; say so instead. The database URL is not printed: it may hold a password.
 */
function missing(source: AuditSource, io: Io): number {
  io.err(
    source.kind === 'sqlite'
      ? `no audit database at ${source.sqlitePath}`
      : `no audit log in the PostgreSQL database of DATABASE_URL${source.schema ? ` (schema ${source.schema})` : ''}`,
  )
  return 1
}
