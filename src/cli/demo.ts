import { existsSync, rmSync } from 'node:fs'
import type { Io } from './commands.js'

export interface DemoResetTarget {
  /** The demo's SQLite audit log (and approvals, nonces, idempotency keys). */
  sqlitePath: string
  /** The agent API's held runs. */
  runsPath: string
  /** Where a running gateway would answer; a reset waits until it is stopped. */
  gatewayUrl: string
}

/**
 * `warden demo reset`: start the demo over. The demo backend (orders, balances, tickets,
 * services) lives in the gateway's memory and starts from its seed at every start, while the audit
 * log, approvals and held agent runs are files that survive a restart; this deletes those files,
 * so the next start has a fresh backend and an empty log that agree. The audit log is append-only
 * and hash-chained, so it is never cut while a gateway writes to it: a running gateway is refused.
 */
export async function demoReset(target: DemoResetTarget, json: boolean, io: Io): Promise<number> {
  if (await answers(target.gatewayUrl)) {
    io.err(
      `a gateway answers at ${target.gatewayUrl}: stop it first (Ctrl-C or SIGTERM), then run ` +
        '`warden demo reset` again, then start it',
    )
    return 1
  }
  const removed: string[] = []
  for (const base of [target.sqlitePath, target.runsPath]) {
    for (const file of [base, `${base}-wal`, `${base}-shm`, `${base}-journal`]) {
      if (!existsSync(file)) continue
      rmSync(file, { force: true })
      removed.push(file)
    }
  }
  if (json) io.out(JSON.stringify({ reset: true, removed }))
  else if (removed.length === 0) io.out('ok: nothing to reset (no demo audit log or held runs)')
  else
    io.out(
      `ok: removed ${removed.join(', ')}; the next start has an empty audit log and a fresh demo backend`,
    )
  return 0
}

/**
 * Whether a gateway may be running at `url`. INVARIANT: only a refused connection counts as
 * stopped; an answer of any status, a timeout (a busy gateway) or any other error counts as
 * running, so a reset never deletes a log a gateway may be writing.
 */
async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health/live', url), { signal: AbortSignal.timeout(2000) })
    await res.arrayBuffer()
    return true
  } catch (err) {
    const code = ((err as { cause?: { code?: unknown } }).cause ?? {}).code
    return code !== 'ECONNREFUSED'
  }
}
