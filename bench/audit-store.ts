import { LAYER_NAMES } from '../src/domain/types.js'
/**
 * The audit store alone: N calls, each appending the gateway's two events for an allowed call
 * (decision, then execution), C calls at a time. Prints calls/s and CPU µs per call.
 *
 *   node --import tsx bench/audit-store.ts [calls=20000] [concurrency=50]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { timeOrderedId } from '../src/domain/ids.js'
import type { Decision, ToolCall } from '../src/domain/types.js'
import { maskPii } from '../src/detect/pii.js'
import { decisionEvent, executionEvent } from '../src/audit/events.js'
import { sqliteStores } from '../src/store/sqlite.js'

const calls = Number(process.argv[2] ?? 20_000)
const concurrency = Number(process.argv[3] ?? 50)
const dir = mkdtempSync(join(tmpdir(), 'warden-store-bench-'))
const stores = sqliteStores(join(dir, 'audit.db'))

const checks = LAYER_NAMES.map((layer) => ({
  layer,
  outcome: 'pass' as const,
  reason: 'ok',
  duration_us: 3,
}))
const result = {
  query: 'reset password',
  results: [
    {
      id: 'KB-1',
      title: 'Resetting your password',
      body: 'Use "Forgot password" on the sign-in page.',
    },
  ],
}

function call(): ToolCall {
  return {
    requestId: timeOrderedId(),
    agentId: 'support-agent',
    tool: 'search_knowledge_base',
    params: { query: 'reset password' },
    sessionId: 'bench',
    context: {},
    credential: undefined,
    receivedAt: Date.now(),
  }
}
function decision(c: ToolCall): Decision {
  return {
    requestId: c.requestId,
    decision: 'allow',
    layer: null,
    code: null,
    reason: 'all layers passed',
    risk: { score: 5, level: 'low' },
    checks,
    policyVersion: 'bench',
  }
}

let started = 0
async function worker(): Promise<void> {
  while (started < calls) {
    started++
    const c = call()
    const event = decisionEvent(c, decision(c), c.agentId)
    await stores.audit.append([event])
    await stores.audit.append([executionEvent(event, 'ok', maskPii(result, '/result'), 1)])
  }
}

const t0 = performance.now()
const cpu0 = process.cpuUsage()
await Promise.all(Array.from({ length: concurrency }, worker))
const seconds = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
console.log(
  `${calls} calls, ${concurrency} at a time, 2 events each: ${Math.round(calls / seconds)} calls/s, ${((cpu.user + cpu.system) / calls).toFixed(1)} µs CPU per call (both threads)`,
)
await stores.close()
rmSync(dir, { recursive: true, force: true })
