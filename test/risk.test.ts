import { describe, expect, it } from 'vitest'
import { loadConfig } from '../src/config/loader.js'
import type { WardenConfig } from '../src/domain/config.js'
import type { ToolCall } from '../src/domain/types.js'
import { agentRecord } from '../src/pipeline/layers/sequence.js'
import { pipeline } from '../src/pipeline/runner.js'
import { buildRuntime } from '../src/pipeline/runtime.js'
import { openState } from '../src/state/index.js'
import { DEMO_CONFIG, keyOf } from './helpers.js'

const loaded = loadConfig(DEMO_CONFIG)
let seq = 0
const call = (agent: string, tool: string, params: Record<string, unknown>): ToolCall => ({
  requestId: `q${++seq}`,
  agentId: agent,
  tool,
  params,
  sessionId: undefined,
  context: {},
  credential: keyOf(agent),
  receivedAt: 1_700_000_000_000 + seq * 1000,
})
const refund = () =>
  call('refund-agent', 'issue_refund', { order_id: 'ORD-1001', amount: 50, reason: 'damaged' })

async function withRisk(actions: Partial<WardenConfig['risk']['actions']>) {
  const risk = { ...loaded.config.risk, actions: { ...loaded.config.risk.actions, ...actions } }
  return pipeline(
    buildRuntime({ ...loaded, config: { ...loaded.config, risk } }, await openState()),
  )
}

describe('risk levels mapped to actions', () => {
  it('by default a level adds nothing: a $50 refund (risk 45, medium) is allowed', async () => {
    const d = await pipeline(buildRuntime(loaded, await openState())).decide(refund())
    expect(d).toMatchObject({ decision: 'allow', risk: { score: 45, level: 'medium' } })
  })

  it('`medium: hold` holds it, on the approval layer’s line of the trace', async () => {
    const d = await (await withRisk({ medium: 'hold' })).decide(refund())
    expect(d).toMatchObject({ decision: 'approval_required', layer: 'approval' })
    expect(d.reason).toBe('risk 45 is medium, which is configured to hold')
    expect(d.checks.find((c) => c.layer === 'approval')).toMatchObject({ outcome: 'hold' })
  })

  it('`medium: deny` refuses it with risk_too_high; lower levels are untouched', async () => {
    const p = await withRisk({ medium: 'deny' })
    const d = await p.decide(refund())
    expect(d).toMatchObject({ decision: 'deny', layer: 'approval', code: 'risk_too_high' })
    const low = await p.decide(call('support-agent', 'search_knowledge_base', { query: 'hours' }))
    expect(low).toMatchObject({ decision: 'allow', risk: { level: 'low' } })
  })

  it('a level action never loosens: a layer’s deny stays a deny under `allow`', async () => {
    const d = await (
      await withRisk({ low: 'allow' })
    ).decide(
      call('support-agent', 'issue_refund', { order_id: 'ORD-1001', amount: 5, reason: 'x' }),
    )
    expect(d).toMatchObject({ decision: 'deny', layer: 'tool_allowlist' })
  })
})

describe('agent record', () => {
  const entry = (decision: 'allow' | 'deny' | 'approval_required') => ({
    tool: 't',
    decision,
    at: 0,
    params: {},
  })

  it('denials count 1 and holds ½ of the last `window` calls; risk is 20 × that share', () => {
    const h = [entry('deny'), entry('allow'), entry('approval_required'), entry('deny')]
    expect(agentRecord(h, 4)).toEqual({ calls: 4, denied: 2, held: 1, risk: 13 })
    // Only the window counts: the old denial has aged out.
    expect(agentRecord(h, 2)).toEqual({ calls: 2, denied: 1, held: 1, risk: 15 })
    expect(agentRecord([], 20)).toEqual({ calls: 0, denied: 0, held: 0, risk: 0 })
    // Throttling is not misconduct.
    const throttled = [
      { ...entry('deny'), code: 'rate_limited' },
      { ...entry('deny'), code: 'policy_denied' },
    ]
    expect(agentRecord(throttled, 2)).toEqual({ calls: 2, denied: 1, held: 0, risk: 10 })
  })

  it('an agent that keeps getting refused carries more risk on its next call', async () => {
    const p = pipeline(buildRuntime(loaded, await openState()))
    const before = await p.decide(call('support-agent', 'search_knowledge_base', { query: 'a' }))
    // Three refusals: well below the demo's quarantine (10 in 60 s), so the next call is still judged.
    for (let i = 0; i < 3; i++)
      await p.decide(call('support-agent', 'export_customer_data', { format: 'csv' }))
    const after = await p.decide(call('support-agent', 'search_knowledge_base', { query: 'a' }))
    expect(after.risk.score).toBeGreaterThan(before.risk.score)
    const seqCheck = after.checks.find((c) => c.layer === 'sequence')
    expect(seqCheck?.details).toMatchObject({ agent_record: { denied: 3 } })
  })
})
