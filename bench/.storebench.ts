import { timeOrderedId } from '/work/main/src/domain/ids.js'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqliteStore } from '/work/main/src/store/sqlite.js'
import { decisionEvent, executionEvent } from '/work/main/src/gateway/audit-events.js'
const store = sqliteStore(join(mkdtempSync(join(tmpdir(), 'sb-')), 'a.db'))
const call = {
  requestId: timeOrderedId(),
  agentId: 'support-agent',
  tool: 'search_knowledge_base',
  params: { query: 'reset password' },
  sessionId: 'bench',
  context: {},
  credential: 'x',
  receivedAt: Date.now(),
}
const checks = [
  'identity',
  'tool_allowlist',
  'policy',
  'rate_limit',
  'params',
  'injection',
  'taint',
  'guards',
  'approval',
  'sequence',
].map((layer) => ({ layer, outcome: 'pass', reason: 'ok', duration_us: 3 }))
const d = {
  requestId: call.requestId,
  decision: 'allow',
  layer: null,
  code: null,
  reason: 'all layers passed',
  risk: { score: 5, level: 'low' },
  checks,
  policyVersion: 'v',
} as any
const result = {
  query: 'reset password',
  results: [
    {
      id: 'KB-1',
      title: 'Resetting your password',
      body: 'Use "Forgot password" on the sign-in page; the link is valid for 30 minutes.',
    },
  ],
}
const N = 20000,
  C = 50
const t = performance.now()
const cpu0 = process.cpuUsage()
let i = 0
async function worker() {
  while (i < N) {
    i++
    const c = { ...call, requestId: timeOrderedId() }
    const e = decisionEvent(c, { ...d, requestId: c.requestId }, 'support-agent')
    await store.append([e])
    await store.append([executionEvent(e, 'ok', result, 1)])
  }
}
await Promise.all(Array.from({ length: C }, worker))
const ms = performance.now() - t
const cpu = process.cpuUsage(cpu0)
console.log(
  `${N} calls (2 events each): ${((N / ms) * 1000).toFixed(0)} calls/s, cpu ${((cpu.user + cpu.system) / N).toFixed(1)} us/call`,
)
await store.close()
