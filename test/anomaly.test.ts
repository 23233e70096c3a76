import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config/loader.js'
import type { WardenConfig } from '../src/domain/config.js'
import type { ToolCall } from '../src/domain/types.js'
import { judgeTransition, SESSION_START } from '../src/pipeline/layers/sequence.js'
import { pipeline } from '../src/pipeline/runner.js'
import { buildRuntime } from '../src/pipeline/runtime.js'
import { openState, type StateBackend } from '../src/state/index.js'
import { DEMO_CONFIG, keyOf } from './helpers.js'

const CFG: WardenConfig['anomaly'] = {
  enabled: true,
  min_observations: 10,
  hold_below: 0.05,
  smoothing: 1,
}

describe('sequence anomaly: the transition model', () => {
  it('stays silent until it has seen enough transitions out of the previous tool', () => {
    expect(judgeTransition(CFG, 'a', 'z', { b: 9 }, 5)).toEqual({ outcome: 'pass' })
  })

  it('a usual transition passes with little risk; an unusual one holds and says why', () => {
    const row = { b: 40, c: 10 }
    const usual = judgeTransition(CFG, 'a', 'b', row, 5)
    expect(usual.outcome).toBe('pass')
    // P = (40 + 1) / (50 + 5) ≈ 0.745 → 0.42 bits → risk 1
    expect(usual).toMatchObject({ risk: 1, details: { seen: 40, total: 50, probability: 0.7455 } })
    const rare = judgeTransition(CFG, 'a', 'z', row, 5)
    // P = 1 / 55 ≈ 0.018 → 5.8 bits → risk 17
    expect(rare).toMatchObject({ outcome: 'hold', risk: 17 })
    expect(rare.outcome === 'hold' && rare.reason).toBe(
      'unusual for this agent: `z` after `a` (0 of 50 times before)',
    )
    const first = judgeTransition(CFG, SESSION_START, 'z', row, 5)
    expect(first.outcome === 'hold' && first.reason).toMatch(/as the first call of a session/)
  })

  it('risk grows with surprise and is capped at 30', () => {
    const row = { b: 100_000 }
    const v = judgeTransition({ ...CFG, hold_below: 0 }, 'a', 'z', row, 3)
    expect(v).toMatchObject({ outcome: 'pass', risk: 30 })
  })
})

describe('sequence anomaly in the pipeline', () => {
  const loaded = loadConfig(DEMO_CONFIG)
  const config = { ...loaded.config, anomaly: CFG }
  let seq = 0
  const call = (tool: string, params: Record<string, unknown>, session: string): ToolCall => ({
    requestId: `r${++seq}`,
    agentId: 'support-agent',
    tool,
    params,
    sessionId: session,
    context: {},
    credential: keyOf('support-agent'),
    receivedAt: 1_700_000_000_000 + seq * 1000,
  })
  const search = (s: string) => call('search_knowledge_base', { query: 'refund policy' }, s)
  const ticket = (s: string) =>
    call('create_support_ticket', { customer_id: 'CUST-001', subject: 'help' }, s)

  /** The agent's learned transitions out of `from`. */
  const learned = async (state: StateBackend, from: string) => ({
    ...(await state.sessions.load({ agent: 'support-agent', now: 0 })).transitions.get(from),
  })

  it('learns the agent’s workflow from allowed calls and holds a call off it', async () => {
    const state = await openState()
    const p = pipeline(buildRuntime({ ...loaded, config }, state))
    for (let i = 0; i < 20; i++) {
      expect((await p.decide(search(`s${i}`))).decision).toBe('allow')
      expect((await p.decide(ticket(`s${i}`))).decision).toBe('allow')
    }
    expect(await learned(state, SESSION_START)).toEqual({
      search_knowledge_base: 20,
    })
    expect(await learned(state, 'search_knowledge_base')).toEqual({
      create_support_ticket: 20,
    })
    // The usual path still passes; opening a session with a ticket is off the learned workflow.
    expect((await p.decide(search('s-new'))).decision).toBe('allow')
    const odd = await p.decide(ticket('s-odd'))
    expect(odd).toMatchObject({ decision: 'approval_required', layer: 'sequence' })
    expect(odd.reason).toMatch(/unusual for this agent: `create_support_ticket` as the first call/)
    const check = odd.checks.find((c) => c.layer === 'sequence')
    expect(check?.details).toMatchObject({ from: SESSION_START, seen: 0, total: 21 })
    // A held call is not learned as normal.
    expect(await learned(state, SESSION_START)).toEqual({
      search_knowledge_base: 21,
    })
  })

  it('is off unless enabled: the same call is allowed and nothing is learned', async () => {
    const state = await openState()
    const p = pipeline(buildRuntime(loaded, state))
    for (let i = 0; i < 12; i++) await p.decide(search(`x${i}`))
    expect((await p.decide(ticket('x-odd'))).decision).toBe('allow')
    expect(await learned(state, SESSION_START)).toEqual({})
  })
})
