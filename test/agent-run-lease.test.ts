import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayClient } from '../src/agents/gateway-client.js'
import type { ModelProvider, ModelTurn, ToolCallRequest } from '../src/agents/providers/types.js'
import { AgentRuntime, type RunResult } from '../src/agents/runtime.js'
import { buildAgentApi } from '../src/agents/server.js'
import { loadConfig } from '../src/config/loader.js'
import { sqliteRunStore } from '../src/store/run-store-sqlite.js'
import type { RunStoreOptions } from '../src/store/run-store.js'
import { approve, DEMO_CONFIG, keyOf, startWarden } from './helpers.js'

/**
 * A driver keeps its run's lease for as long as it works, however deep the runs it drives are
 * nested: a delegated agent's run, or a held nested run being resumed, can take longer than the
 * lease, and a second resume meanwhile must still be told the run is busy. The clock of the run
 * store is injected; the scripted model advances it on each turn.
 */
describe('the lease of a resumed run while nested runs work', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let gatewayUrl: string
  const dir = mkdtempSync(join(tmpdir(), 'warden-agent-lease-'))
  let files = 0

  beforeAll(async () => {
    // The demo, but support may refund too (no billing-only rule): a $250 refund by support, or
    // by the refund agent on support's behalf, is held by the $250 guard.
    const loaded = loadConfig(DEMO_CONFIG)
    const agents = loaded.config.agents.map((a) =>
      a.id === 'support-agent' ? { ...a, tools: [...a.tools, 'issue_refund'] } : a,
    )
    const rules = loaded.config.policy.rules.filter((r) => r.id !== 'refunds-by-billing-only')
    w = await startWarden({
      config: { ...loaded, config: { ...loaded.config, agents, policy: { rules } } },
    })
    gatewayUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => {
    await w.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** A run store over a new file with an injected clock, an API instance over the same file. */
  async function setup(leaseMs: number) {
    const sqlitePath = join(dir, `runs-${++files}.db`)
    const clock = { t: Date.now() }
    const opts: RunStoreOptions = { now: () => clock.t, leaseMs }
    const runs = sqliteRunStore(sqlitePath, opts)
    // Another instance's handle on the same runs.
    const rival = sqliteRunStore(sqlitePath, opts)
    const script: ((messages: unknown[]) => Promise<ModelTurn>)[] = []
    const provider: ModelProvider = {
      name: 'offline',
      chat: (messages) => {
        const turn = script.shift()
        if (!turn) throw new Error('script exhausted')
        return turn(messages)
      },
    }
    const runtime = new AgentRuntime({
      gateway: new GatewayClient(gatewayUrl),
      keyOf,
      runs,
      providerOf: () => provider,
    })
    const api = await buildAgentApi({
      gatewayUrl,
      logger: pino({ level: 'silent' }),
      keys: {},
      demoKeys: true,
      runs: { kind: 'sqlite', sqlitePath, ...opts },
    })
    const resumeElsewhere = async (runId: string) =>
      (await api.inject({ method: 'POST', url: `/agent/runs/${runId}/resume` })).json()
    const close = async () => {
      await api.close()
      await runs.close()
      await rival.close()
    }
    return { clock, script, provider, runtime, rival, resumeElsewhere, close }
  }

  const calls = (...list: Omit<ToolCallRequest, 'id'>[]): ModelTurn => ({
    content: '',
    toolCalls: list.map((c, i) => ({ id: `c${i}`, ...c })),
  })
  const answer = (content: string): ModelTurn => ({ content, toolCalls: [] })
  const refund = (order: string) =>
    calls({
      name: 'issue_refund',
      arguments: { order_id: order, amount: 250, reason: 'customer request' },
    })
  const lookup = (order: string) => calls({ name: 'lookup_order', arguments: { order_id: order } })

  /** What the gateway audited for a session, by event type. */
  async function audited(sessionId: string) {
    const events = await w.stores.audit.query({ session_id: sessionId, limit: 100 })
    const count: Record<string, number> = {}
    for (const e of events) count[e.type] = (count[e.type] ?? 0) + 1
    return count
  }

  const busy = (runId: string) => ({
    error: {
      code: 'run_not_found',
      message: `run \`${runId}\` is being resumed by another request`,
    },
  })

  it('a delegated run longer than the lease keeps the parent leased; a resume meanwhile is busy', async () => {
    const LEASE = 60_000
    const s = await setup(LEASE)
    try {
      s.script.push(async () => refund('ORD-1004'))
      const held = await s.runtime.run({
        agentId: 'support-agent',
        prompt: 'Refund $250 on ORD-1004, then ask billing to check it',
        provider: s.provider,
        sessionId: 'lease-delegate',
      })
      expect(held.status).toBe('pending_approval')
      expect((await approve(w, held.pending_approval!.approval_id)).statusCode).toBe(200)

      // Resumed: support asks the refund agent, whose run takes four model turns of 25 s each
      // (100 s, past the 60 s lease); in its last turn, another request tries to resume.
      let meanwhile: unknown
      const slow = (turn: ModelTurn) => async () => {
        s.clock.t += 25_000
        return turn
      }
      s.script.push(
        async () =>
          calls({
            name: 'message_agent',
            arguments: { to_agent: 'refund-agent', content: 'check ORD-1004 three times' },
          }),
        slow(lookup('ORD-1004')),
        slow(lookup('ORD-1004')),
        slow(lookup('ORD-1004')),
        async () => {
          s.clock.t += 25_000
          meanwhile = await s.resumeElsewhere(held.run_id)
          return answer('ORD-1004 is refunded')
        },
        async () => answer('Refunded, and billing confirms it.'),
      )
      const done = await s.runtime.resume(held.run_id)
      expect(meanwhile).toMatchObject(busy(held.run_id))
      expect(done).toMatchObject({
        status: 'completed',
        answer: 'Refunded, and billing confirms it.',
        steps: [
          { tool: 'issue_refund', reason: 'approval approved', result: { order_id: 'ORD-1004' } },
          {
            tool: 'message_agent',
            decision: 'delivered',
            delegated: { status: 'completed', steps: [{}, {}, {}] },
          },
        ],
      })
      // The refund ran once (when approved), each lookup once, and nobody drove the run again.
      expect(await audited('lease-delegate')).toMatchObject({ tool_call_executed: 1 })
      expect(await audited('lease-delegate>refund-agent')).toMatchObject({
        tool_call_executed: 3,
      })
      expect(s.script).toHaveLength(0)
      // The run finished: it is gone, not waiting for another driver.
      expect(await s.resumeElsewhere(held.run_id)).toMatchObject({
        error: { code: 'run_not_found', message: `no held run \`${held.run_id}\`` },
      })
    } finally {
      await s.close()
    }
  })

  it('resuming a held nested run longer than the lease keeps both leases; resumes meanwhile are busy', async () => {
    const LEASE = 60_000
    const s = await setup(LEASE)
    try {
      s.script.push(
        async () =>
          calls({
            name: 'message_agent',
            arguments: { to_agent: 'refund-agent', content: 'refund 250 on ORD-1006' },
          }),
        async () => refund('ORD-1006'),
      )
      const held = await s.runtime.run({
        agentId: 'support-agent',
        prompt: 'Have billing refund ORD-1006',
        provider: s.provider,
        sessionId: 'lease-nested',
      })
      expect(held.status).toBe('pending_approval')
      const nestedId = held.pending_approval!.run_id!
      expect(nestedId).toBe((held.steps[0]!.delegated as RunResult).run_id)
      expect((await approve(w, held.pending_approval!.approval_id)).statusCode).toBe(200)

      // Resumed: the refund agent goes on for four turns of 25 s (past the lease) before it
      // answers; in its last turn, other requests try to resume either run.
      const meanwhile: unknown[] = []
      const slow = (turn: ModelTurn) => async () => {
        s.clock.t += 25_000
        return turn
      }
      s.script.push(
        slow(lookup('ORD-1006')),
        slow(lookup('ORD-1006')),
        slow(lookup('ORD-1006')),
        async () => {
          s.clock.t += 25_000
          meanwhile.push(await s.resumeElsewhere(held.run_id), await s.resumeElsewhere(nestedId))
          return answer('Refunded $250 on ORD-1006.')
        },
        async () => answer('Billing refunded ORD-1006.'),
      )
      const done = await s.runtime.resume(held.run_id)
      expect(meanwhile).toMatchObject([busy(held.run_id), busy(nestedId)])
      expect(done).toMatchObject({
        status: 'completed',
        answer: 'Billing refunded ORD-1006.',
        steps: [
          {
            tool: 'message_agent',
            reason: 'delegated run completed',
            delegated: {
              run_id: nestedId,
              status: 'completed',
              steps: [{ tool: 'issue_refund' }, {}, {}, {}],
            },
          },
        ],
      })
      expect(await audited('lease-nested>refund-agent')).toMatchObject({ tool_call_executed: 4 })
      expect(s.script).toHaveLength(0)
    } finally {
      await s.close()
    }
  })

  it('a parent lease taken over while a delegated run works stops that run before its next call', async () => {
    const LEASE = 60_000
    const s = await setup(LEASE)
    try {
      s.script.push(async () => refund('ORD-1007'))
      const held = await s.runtime.run({
        agentId: 'support-agent',
        prompt: 'Refund $250 on ORD-1007, then ask billing to check it',
        provider: s.provider,
        sessionId: 'lease-lost',
      })
      expect((await approve(w, held.pending_approval!.approval_id)).statusCode).toBe(200)
      // The refund agent's first turn outlasts the lease with no step in between (a driver
      // stalled), and another instance claims the parent run meanwhile.
      let claimed: unknown
      s.script.push(
        async () =>
          calls({
            name: 'message_agent',
            arguments: { to_agent: 'refund-agent', content: 'check ORD-1007' },
          }),
        async () => {
          s.clock.t += LEASE + 1
          claimed = (await s.rival.claim(held.run_id)).ok
          return lookup('ORD-1007')
        },
      )
      const result = await s.runtime.resume(held.run_id)
      expect(claimed).toBe(true)
      const takenOver = `run \`${held.run_id}\` was taken over by another request`
      expect(result).toMatchObject({
        status: 'failed',
        error: { code: 'run_not_pending', message: takenOver },
        steps: [
          { tool: 'issue_refund' },
          { tool: 'message_agent', decision: 'error', error: { code: 'run_not_pending' } },
        ],
      })
      // The lookup was never sent, and the parent is the rival's now, as it was held.
      expect(await audited('lease-lost>refund-agent')).toEqual({})
      expect(s.script).toHaveLength(0)
      expect(await s.rival.load(held.run_id)).toMatchObject({ state: { held: {} } })
    } finally {
      await s.close()
    }
  })

  it('one model turn longer than the lease: the lease is renewed while it runs', async () => {
    // A 6 ms lease is renewed every 2 ms of real time; the model "thinks" 4 ms on the store's
    // clock, waits 5 ms (a renewal comes), then 4 ms more before another request tries the run.
    const s = await setup(6)
    try {
      s.script.push(async () => refund('ORD-1003'))
      const held = await s.runtime.run({
        agentId: 'refund-agent',
        prompt: 'Refund $250 on ORD-1003',
        provider: s.provider,
        sessionId: 'lease-long-turn',
      })
      expect((await approve(w, held.pending_approval!.approval_id)).statusCode).toBe(200)
      let meanwhile: unknown
      s.script.push(async () => {
        s.clock.t += 4
        await new Promise((resolve) => setTimeout(resolve, 5))
        s.clock.t += 4
        meanwhile = await s.resumeElsewhere(held.run_id)
        return answer('Refunded.')
      })
      const done = await s.runtime.resume(held.run_id)
      expect(meanwhile).toMatchObject(busy(held.run_id))
      expect(done.status).toBe('completed')
      expect(await audited('lease-long-turn')).toMatchObject({ tool_call_executed: 1 })
    } finally {
      await s.close()
    }
  })
})
