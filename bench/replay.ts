/**
 * AgentDojo v1 replay: the shipped configuration (config/agentdojo) and variants of it that
 * switch one defence off or on, so each defence's share of the result is visible. Every variant
 * replays the same 726 traces through the real pipeline (`warden replay` does the same for one
 * configuration).
 *
 *   node --import tsx bench/replay.ts [--traces FILE]
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadConfig, type LoadedConfig } from '../src/config/loader.js'
import type { WardenConfig } from '../src/domain/config.js'
import { PII_KINDS } from '../src/domain/config.js'
import { Replayer, type ReplaySummary } from '../src/replay/replay.js'
import { parseTrace, type Trace } from '../src/replay/traces.js'

const { values } = parseArgs({
  options: {
    traces: {
      type: 'string',
      default: fileURLToPath(
        new URL('../../shared/datasets/agentdojo/traces_v1.jsonl', import.meta.url),
      ),
    },
  },
})
const shipped = loadConfig(
  fileURLToPath(new URL('../config/agentdojo/warden.yaml', import.meta.url)),
)
const traces: Trace[] = readFileSync(values.traces, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => {
    const r = parseTrace(l)
    if ('error' in r) throw new Error(r.error)
    return r.trace
  })

type Change = (c: WardenConfig) => WardenConfig
/** Calls carry no `context.user_input` (as the replay did before issue 14's data-flow rules). */
const NO_USER_INPUT = 'no user input'
const noQuarantine: Change = (c) => ({
  ...c,
  injection: { ...c.injection, after_injected_output: {} },
})
const noTaint: Change = (c) => ({ ...c, tools: c.tools.map(({ taint: _t, ...t }) => t) })
const anomaly: Change = (c) => ({ ...c, anomaly: { ...c.anomaly, enabled: true } })
const maskAll: Change = (c) => ({
  ...c,
  pii: {
    mask_in_results: {
      ...c.pii.mask_in_results,
      confidential: [...PII_KINDS],
      restricted: [...PII_KINDS],
    },
  },
})

// The injection detector switched off: no output is flagged, so neither the quarantine nor the
// `injected` provenance exists; only data flow from untrusted outputs (taint) is left.
const noDetector: Change = (c) => ({ ...c, injection: { ...c.injection, hold_at: 2, deny_at: 2 } })
// The quarantine refuses what it does not release, instead of holding it.
const quarantineDenies: Change = (c) => ({
  ...c,
  injection: {
    ...c.injection,
    after_injected_output: { low: 'deny', medium: 'deny', high: 'deny', critical: 'deny' },
  },
})

const VARIANTS: [string, (Change | typeof NO_USER_INPUT)[]][] = [
  ['shipped (config/agentdojo)', []],
  ['shipped, calls without the user’s request', [NO_USER_INPUT]],
  ['+ anomaly model', [anomaly]],
  ['− session quarantine', [noQuarantine]],
  ['− injection detector', [noDetector]],
  ['quarantine denies instead of holding', [quarantineDenies]],
  ['− session quarantine, + anomaly model', [noQuarantine, anomaly]],
  ['− session quarantine, − taint', [noQuarantine, noTaint]],
  ['shipped, all PII masked for agents', [maskAll]],
]

async function replayAll(
  loaded: LoadedConfig,
  userInput: boolean,
): Promise<{ s: ReplaySummary; ms: number }> {
  // The traces carry the user's request: an integration sends it as `context.user_input`.
  const r = new Replayer(loaded, {
    agent: 'agentdojo-{suite}',
    tool: '{suite}.{function}',
    detail: false,
    userInput,
  })
  const t0 = performance.now()
  for (const t of traces) await r.replay(t)
  return { s: r.result(), ms: performance.now() - t0 }
}

const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)}%`
console.log(`AgentDojo v1: ${traces.length} traces, Node ${process.version}`)
console.log(
  '| configuration | attacker executed | attacker held | attacker denied | benign allowed | benign held | benign denied | user calls after the injection allowed | after the injection held / denied | calls/s |',
)
console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
for (const [name, changes] of VARIANTS) {
  const config = changes.reduce((c, f) => (f === NO_USER_INPUT ? c : f(c)), shipped.config)
  const { s, ms } = await replayAll({ ...shipped, config }, !changes.includes(NO_USER_INPUT))
  const calls = s.attacker_calls + s.benign_calls + s.under_attack_calls
  console.log(
    `| ${name} | ${s.attacker_executed} / ${s.attacker_calls} (${pct(s.attacker_executed, s.attacker_calls)}) | ${s.attacker_held} | ${s.attacker_denied} | ${s.benign_allowed} / ${s.benign_calls} (${pct(s.benign_allowed, s.benign_calls)}) | ${s.benign_held} | ${s.benign_denied} | ${s.after_injection_allowed} / ${s.after_injection_calls} (${pct(s.after_injection_allowed, s.after_injection_calls)}) | ${s.after_injection_held} / ${s.after_injection_denied} | ${Math.round((calls / ms) * 1000).toLocaleString('en-US')} |`,
  )
}
