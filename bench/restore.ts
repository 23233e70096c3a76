/**
 * Restart recovery (decision 0016): how long a memory-state gateway takes to rebuild its security
 * state from N recent audit events at start-up, against reading the same events without applying
 * them (the baseline, measured in the same run on the same file).
 *
 *   node --import tsx bench/restore.ts        (RESTORE_EVENTS=100000)
 *
 * The log is filled directly through the store (decision records as the gateway writes them:
 * identity and rate limit passed, spread over the demo agents, the last hour), so filling it
 * does not depend on the gateway's own rate limits.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decisionEvent } from '../src/audit/events.js'
import { loadConfig } from '../src/config/loader.js'
import type { Decision, ToolCall } from '../src/domain/types.js'
import { buildRuntime } from '../src/pipeline/runtime.js'
import { restoreState } from '../src/pipeline/restore.js'
import { openState } from '../src/state/index.js'
import { openStores } from '../src/store/index.js'

const N = Number(process.env.RESTORE_EVENTS ?? 100_000)
const CONFIG = fileURLToPath(new URL('../config/demo/warden.yaml', import.meta.url))
const CALLS = [
  ['support-agent', 'search_knowledge_base', { query: 'reset password' }],
  ['refund-agent', 'lookup_order', { order_id: 'ORD-1002' }],
  ['refund-agent', 'issue_refund', { order_id: 'ORD-1003', amount: 20, reason: 'damaged' }],
  ['admin-agent', 'get_system_health', {}],
] as const

const pass = (layer: string) => ({ layer, outcome: 'pass', reason: 'ok', duration_us: 1 })

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-restore-bench-'))
  const path = join(dir, 'audit.db')
  const loaded = loadConfig(CONFIG)
  const stores = await openStores({ kind: 'sqlite', sqlitePath: path })
  try {
    const now = Date.now()
    for (let i = 0; i < N; i += 1000) {
      const batch = []
      for (let j = i; j < Math.min(N, i + 1000); j++) {
        const [agent, tool, params] = CALLS[j % CALLS.length]!
        const call: ToolCall = {
          requestId: `r${j}`,
          agentId: agent,
          tool,
          params: { ...params },
          sessionId: `s${j % 500}`,
          context: {},
          credential: undefined,
          // Spread over the last 50 minutes, oldest first.
          receivedAt: now - 3_000_000 + Math.floor((j / N) * 3_000_000),
        }
        const d: Decision = {
          requestId: call.requestId,
          decision: 'allow',
          layer: null,
          code: null,
          reason: 'all layers passed',
          risk: { score: 10, level: 'low' },
          checks: [pass('identity'), pass('tool_allowlist'), pass('policy'), pass('rate_limit')],
          policyVersion: loaded.policyVersion,
        } as Decision
        batch.push(decisionEvent(call, d, agent))
      }
      await stores.audit.append(batch)
    }

    // Baseline: read the same events, in the same pages, without applying them.
    let t = performance.now()
    let read = 0
    for (let after = 0; ;) {
      const page = await stores.audit.query({ after_seq: after, order: 'asc', limit: 2000 })
      read += page.length
      if (page.length < 2000) break
      after = page[page.length - 1]!.seq
    }
    const readMs = performance.now() - t

    const rt = buildRuntime(loaded, await openState({ kind: 'memory' }))
    t = performance.now()
    const report = await restoreState(rt, stores.audit, stores.approvals, {
      now: Date.now(),
      setClock: () => {},
    })
    const restoreMs = performance.now() - t
    const rate = (ms: number) => Math.round((N / ms) * 1000).toLocaleString('en')
    console.log(`events in the log (last 50 min): ${N.toLocaleString('en')}`)
    console.log(`baseline, read only:  ${readMs.toFixed(0)} ms (${rate(readMs)} events/s), ${read}`)
    console.log(
      `restore:              ${restoreMs.toFixed(0)} ms (${rate(restoreMs)} events/s), ` +
        `applied ${report.applied}, hits ${report.hits}`,
    )
    console.log(`ratio restore / read: ${(restoreMs / readMs).toFixed(2)}×`)
  } finally {
    await stores.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
