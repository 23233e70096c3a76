/**
 * Issue #11 finding 1 on the in-process gateway (demo configuration): N anonymous calls (bad key),
 * each with a ~1 MiB `[{},{},…]` params body, then the approver reads `/events/recent?limit=1000`
 * and `/events/timeline` a few times. Reports bytes stored per call (SQLite file growth / N) and
 * the RSS/heap growth of the reads, as ratios against a baseline run in the same process: the same
 * number of small authenticated calls and the same reads.
 *
 *   node --import tsx bench/view-heap.ts      (VIEW_HEAP_CALLS=200, VIEW_HEAP_READS=3)
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createWarden } from '../src/warden.js'

const N = Number(process.env.VIEW_HEAP_CALLS ?? 200)
const READS = Number(process.env.VIEW_HEAP_READS ?? 3)
const CONFIG = fileURLToPath(new URL('../config/demo/warden.yaml', import.meta.url))
const APPROVER = 'demo-approver-token'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * `[{},{},…]` just under the 1 MiB body limit. `server.max_items` (10,000 members per array or
 * object) refuses one 340k-item array at parse time, so the params hold 34 arrays of 10,000.
 */
const chunk = Array.from({ length: 10_000 }, () => ({}))
const bigBody = JSON.stringify({
  agent_id: 'support-agent',
  tool: 'lookup_order',
  params: Object.fromEntries(Array.from({ length: 34 }, (_, i) => [`a${i}`, chunk])),
})

/** Small allowed calls spread over the demo agents, so rate limits refuse as few as possible. */
const SMALL = [
  ['support-agent', 'search_knowledge_base', { query: 'reset password' }],
  ['support-agent', 'lookup_order', { order_id: 'ORD-1001' }],
  ['refund-agent', 'lookup_order', { order_id: 'ORD-1002' }],
  ['admin-agent', 'get_system_health', {}],
] as const

const fileBytes = (db: string) =>
  [db, `${db}-wal`].reduce((s, f) => s + (existsSync(f) ? statSync(f).size : 0), 0)

interface Result {
  statuses: Record<number, number>
  bytesPerCall: number
  rss: number
  heap: number
  readMs: number
  readBytes: number
}

async function run(attack: boolean): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-view-heap-'))
  const db = join(dir, 'audit.db')
  const w = await createWarden({
    config: CONFIG,
    sqlitePath: db,
    sweepIntervalMs: 0,
    mcp: { connect: false },
  })
  const statuses: Record<number, number> = {}
  let closed = false
  try {
    const size0 = fileBytes(db) // the empty schema, WAL included
    for (let i = 0; i < N; i++) {
      const small = SMALL[i % SMALL.length]!
      const res = attack
        ? await w.app.inject({
            method: 'POST',
            url: '/gateway/execute',
            headers: { authorization: 'Bearer wrong-key', 'content-type': 'application/json' },
            payload: bigBody,
          })
        : await w.app.inject({
            method: 'POST',
            url: '/gateway/execute',
            headers: {
              authorization: `Bearer demo-${small[0]}-key`,
              'content-type': 'application/json',
            },
            payload: { agent_id: small[0], tool: small[1], params: small[2], session_id: 'b' },
          })
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
    }

    gc()
    const m0 = process.memoryUsage()
    let rss = 0
    let heap = 0
    let readBytes = 0
    const t0 = performance.now()
    for (let r = 0; r < READS; r++) {
      for (const url of ['/events/recent?limit=1000', '/events/timeline']) {
        const res = await w.app.inject({ url, headers: { authorization: `Bearer ${APPROVER}` } })
        if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode}`)
        readBytes += res.body.length
        const m = process.memoryUsage()
        rss = Math.max(rss, m.rss - m0.rss)
        heap = Math.max(heap, m.heapUsed - m0.heapUsed)
      }
    }
    const readMs = performance.now() - t0
    // Closing flushes group commit and checkpoints the WAL into the main file.
    await w.close()
    closed = true
    const bytesPerCall = (fileBytes(db) - size0) / N
    return { statuses, bytesPerCall, rss, heap, readMs, readBytes }
  } finally {
    if (!closed) await w.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const MB = (b: number) => (b / 1048576).toFixed(2)
console.log(`calls=${N} reads=${READS}x(recent?limit=1000 + timeline) body=${bigBody.length} B`)
const base = await run(false)
gc()
const atk = await run(true)
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : 'n/a')
const rows: [string, string, string, string][] = [
  ['statuses', JSON.stringify(base.statuses), JSON.stringify(atk.statuses), ''],
  [
    'SQLite bytes / call',
    base.bytesPerCall.toFixed(0),
    atk.bytesPerCall.toFixed(0),
    ratio(atk.bytesPerCall, base.bytesPerCall),
  ],
  ['reads: peak RSS growth (MiB)', MB(base.rss), MB(atk.rss), ratio(atk.rss, base.rss)],
  ['reads: peak heap growth (MiB)', MB(base.heap), MB(atk.heap), ratio(atk.heap, base.heap)],
  ['reads: response bytes', `${base.readBytes}`, `${atk.readBytes}`, ''],
  ['reads: total ms', base.readMs.toFixed(0), atk.readMs.toFixed(0), ''],
]
const head: [string, string, string, string] = ['', 'baseline', 'attack', 'attack/base']
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
for (const r of [head, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '))
