import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayClient } from '../src/agents/gateway-client.js'
import type { ModelProvider, ModelTurn } from '../src/agents/providers/types.js'
import { AgentRuntime } from '../src/agents/runtime.js'
import { buildAgentApi } from '../src/agents/server.js'
import type { OpenRunStoreOptions } from '../src/store/open-run-store.js'
import { sqliteRunStore } from '../src/store/run-store-sqlite.js'
import { approve, keyOf, startWarden } from './helpers.js'

/**
 * Held runs are stored: a run held on one agent API instance is resumed on another built over
 * the same SQLite file, also after the first is closed (a restart), against a real gateway.
 */
describe('held agent runs across instances and restarts', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let gatewayUrl: string
  const dir = mkdtempSync(join(tmpdir(), 'warden-agent-runs-'))
  let files = 0

  beforeAll(async () => {
    w = await startWarden()
    gatewayUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => {
    await w.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const instance = (runs: OpenRunStoreOptions) =>
    buildAgentApi({
      gatewayUrl,
      logger: pino({ level: 'silent' }),
      keys: {},
      demoKeys: true,
      runs,
    })
  type Api = Awaited<ReturnType<typeof instance>>
  const resume = async (api: Api, runId: string) =>
    (await api.inject({ method: 'POST', url: `/agent/runs/${runId}/resume` })).json()

  /** Hold a $250 refund on a new instance over `sqlitePath`; the instance is closed after. */
  async function holdRefund(sqlitePath: string, sessionId: string, order: string) {
    const first = await instance({ kind: 'sqlite', sqlitePath })
    const run = (
      await first.inject({
        method: 'POST',
        url: '/agent/prompt',
        payload: {
          prompt: `Process a refund of $250 for order ${order}`,
          agent_id: 'refund-agent',
          session_id: sessionId,
        },
      })
    ).json()
    await first.close()
    expect(run).toMatchObject({
      status: 'pending_approval',
      pending_approval: { tool: 'issue_refund' },
    })
    return run as { run_id: string; pending_approval: { approval_id: string } }
  }

  /** What the gateway audited for a session: decisions and executions, by type. */
  async function audited(sessionId: string) {
    const events = await w.stores.audit.query({ session_id: sessionId, limit: 100 })
    const count: Record<string, number> = {}
    for (const e of events) count[e.type] = (count[e.type] ?? 0) + 1
    return count
  }

  it('a run held before a restart is resumed on a new instance and completes once approved', async () => {
    const sqlitePath = join(dir, `runs-${++files}.db`)
    const run = await holdRefund(sqlitePath, 'restart-1', '12345')
    // What is stored: the provider by name, no agent key.
    const db = new Database(sqlitePath, { readonly: true })
    const rows = db.prepare('SELECT agent_id, state FROM agent_runs').all() as {
      agent_id: string
      state: string
    }[]
    db.close()
    expect(rows).toHaveLength(1)
    expect(rows[0]!.agent_id).toBe('refund-agent')
    expect(JSON.parse(rows[0]!.state).input.provider).toBe('offline')
    expect(rows[0]!.state).not.toContain(keyOf('refund-agent'))

    const second = await instance({ kind: 'sqlite', sqlitePath })
    try {
      expect((await resume(second, run.run_id)).status).toBe('pending_approval')
      expect((await approve(w, run.pending_approval.approval_id, 'approve')).statusCode).toBe(200)
      const done = await resume(second, run.run_id)
      expect(done).toMatchObject({
        run_id: run.run_id,
        agent_id: 'refund-agent',
        provider: 'offline',
        status: 'completed',
        steps: [
          {
            tool: 'issue_refund',
            decision: 'approval_required',
            reason: 'approval approved',
            result: { order_id: 'ORD-12345' },
          },
        ],
      })
      expect(done.answer).toMatch(/issue_refund/)
      expect(await audited('restart-1')).toMatchObject({ tool_call_executed: 1 })
      expect((await resume(second, run.run_id)).error.code).toBe('run_not_found')
    } finally {
      await second.close()
    }
  })

  it('two instances over one file, resumed at once: one drives the run, the tool runs once', async () => {
    const sqlitePath = join(dir, `runs-${++files}.db`)
    const run = await holdRefund(sqlitePath, 'two-instances', '1003')
    const [b, c] = [
      await instance({ kind: 'sqlite', sqlitePath }),
      await instance({ kind: 'sqlite', sqlitePath }),
    ]
    try {
      await approve(w, run.pending_approval.approval_id, 'approve')
      const replies = await Promise.all([resume(b, run.run_id), resume(c, run.run_id)])
      expect(replies.map((r) => r.status ?? r.error.code).sort()).toEqual([
        'completed',
        'run_not_found',
      ])
      expect(await audited('two-instances')).toMatchObject({ tool_call_executed: 1 })
    } finally {
      await b.close()
      await c.close()
    }
  })

  it('a driver that crashed holding the lease blocks the run only until the lease runs out', async () => {
    const sqlitePath = join(dir, `runs-${++files}.db`)
    const run = await holdRefund(sqlitePath, 'crashed-driver', '1004')
    let t = Date.now()
    const clock = { now: () => t, leaseMs: 60_000 }
    // The crashed instance: it claimed the run and never gave it back.
    const crashed = sqliteRunStore(sqlitePath, clock)
    expect((await crashed.claim(run.run_id)).ok).toBe(true)
    await crashed.close()
    const next = await instance({ kind: 'sqlite', sqlitePath, ...clock })
    try {
      await approve(w, run.pending_approval.approval_id, 'approve')
      const blocked = await resume(next, run.run_id)
      expect(blocked.error).toMatchObject({ code: 'run_not_found' })
      expect(blocked.error.message).toMatch(/being resumed by another request/)
      t += 60_001
      expect((await resume(next, run.run_id)).status).toBe('completed')
      expect(await audited('crashed-driver')).toMatchObject({ tool_call_executed: 1 })
    } finally {
      await next.close()
    }
  })

  it('a driver whose lease was taken over stops before its next call', async () => {
    const sqlitePath = join(dir, `runs-${++files}.db`)
    let t = Date.now()
    const clock = { now: () => t, leaseMs: 60_000 }
    const runs = sqliteRunStore(sqlitePath, clock)
    const rival = sqliteRunStore(sqlitePath, clock)
    let runId = ''
    // A scripted model: a refund (held), then, after the approval, a lookup; while it "thinks"
    // about that lookup its driver's lease runs out and another instance claims the run.
    const turns: (() => Promise<ModelTurn>)[] = [
      async () => ({
        content: '',
        toolCalls: [
          {
            id: 'c1',
            name: 'issue_refund',
            arguments: { order_id: 'ORD-1002', amount: 250, reason: 'customer request' },
          },
        ],
      }),
      async () => {
        t += 60_001
        expect((await rival.claim(runId)).ok).toBe(true)
        return {
          content: '',
          toolCalls: [{ id: 'c2', name: 'lookup_order', arguments: { order_id: 'ORD-1002' } }],
        }
      },
    ]
    const provider: ModelProvider = {
      name: 'offline',
      chat: () => turns.shift()!(),
    }
    const runtime = new AgentRuntime({
      gateway: new GatewayClient(gatewayUrl),
      keyOf,
      runs,
      providerOf: () => provider,
    })
    try {
      const held = await runtime.run({
        agentId: 'refund-agent',
        prompt: 'Refund $250 on ORD-1002',
        provider,
        sessionId: 'taken-over',
      })
      expect(held.status).toBe('pending_approval')
      runId = held.run_id
      await approve(w, held.pending_approval!.approval_id, 'approve')
      const result = await runtime.resume(runId)
      expect(result).toMatchObject({
        status: 'failed',
        error: {
          code: 'run_not_pending',
          message: `run \`${runId}\` was taken over by another request`,
        },
      })
      expect(result.steps.map((s) => s.tool)).toEqual(['issue_refund'])
      // The lookup was never sent; the run is the rival's now.
      expect(await audited('taken-over')).not.toHaveProperty('tool_call_allowed')
      expect(await rival.load(runId)).not.toBeNull()
    } finally {
      await runs.close()
      await rival.close()
    }
  })
})
