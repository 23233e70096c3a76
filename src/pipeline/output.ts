import type { ToolConfig } from '../domain/config.js'
import type { JudgeRecord } from '../judge/index.js'
import { detectInjection } from '../detect/injection.js'
import { maskPii, type Masked } from '../detect/pii.js'
import { PII_KINDS } from '../domain/config.js'
import { stringLeaves } from './layers/injection.js'
import { taintForm } from './layers/taint.js'
import { injectedSpans } from './spans.js'
import type { Runtime } from './runtime.js'
import type { TaintEntry } from '../state/types.js'

/** What Warden makes of a tool's result before the agent sees it. */
export interface InspectedOutput {
  /** What the agent gets: PII masked for confidential and restricted tools. */
  delivered: unknown
  /** What the audit keeps: always masked, with the paths that were. */
  audited: Masked<unknown>
  /** Set when an untrusted output scored as a prompt injection (or the judge held it as one). */
  scan?: { score: number; categories: string[]; judge?: 'injection' | 'failed' }
  /** Set when the output scored in the judge's grey zone: the judge's answer, for the audit. */
  judged?: JudgeRecord & { score: number }
}

/**
 * The detector's finding on a text, with the judge's second opinion when the score is in its grey
 * zone (decision 0023). `flagged`: the text is to be treated as an injection. A judge that failed
 * flags it (hold, never allow); "benign" unflags a text only where the judge may clear.
 */
export async function judgedScan(
  rt: Runtime,
  text: string,
): Promise<{ score: number; categories: string[]; flagged: boolean; judged?: JudgeRecord }> {
  const { score, categories } = detectInjection(text)
  const byDetector = score >= rt.config.injection.hold_at
  if (!rt.judge?.inZone(score)) return { score, categories, flagged: byDetector }
  const judged = await rt.judge.judge(text)
  const flagged = judged.verdict === 'benign' ? byDetector && !rt.judge.clears(judged) : true
  return { score, categories, flagged, judged }
}

/**
 * Mask a successful result, scan it if the tool's output is untrusted, and remember untrusted
 * output as session taint (poisoning the session when it carried an injection). The gateway runs
 * this after every executed call; `warden replay` runs it on recorded results.
 */
export async function inspectOutput(
  rt: Runtime,
  tool: ToolConfig,
  call: { agentId: string; sessionId: string | undefined; requestId: string },
  result: unknown,
  now: number,
  onTaintError: (err: unknown) => void,
): Promise<InspectedOutput> {
  // The audit always stores every kind masked; the agent gets the kinds its class calls for.
  const audited = maskPii(result, '/result')
  const kinds = rt.maskInResults[tool.classification]
  const delivered =
    kinds.size === 0
      ? result
      : kinds.size === PII_KINDS.length
        ? audited.value
        : maskPii(result, '', kinds).value
  if (tool.output_trust !== 'untrusted') return { delivered, audited }
  // Untrusted output is scanned before the agent sees it; a finding is flagged on the reply,
  // kept in the audit record, and poisons the session for later risky calls.
  const found = await judgedScan(rt, stringLeaves(delivered).join('\n'))
  const verdict = found.judged?.verdict
  const scan = found.flagged
    ? {
        score: found.score,
        categories: found.categories,
        ...((verdict === 'injection' || verdict === 'failed') && { judge: verdict }),
      }
    : undefined
  const judged = found.judged && { ...found.judged, score: found.score }
  if (call.sessionId !== undefined) {
    const limits = rt.config.sessions
    // The whole output, numbers included: any value in it may come back as a parameter (cut to
    // `sessions.max_entry_chars`, and then marked so that parameter taint fails closed).
    const whole = taintForm(JSON.stringify(delivered) ?? '')
    const source = `tool:${tool.name}#${call.requestId}`
    // Provenance per span: when the detector can point at the injected passages, only values
    // inside them are the attacker's (`injected`); the whole output stays untrusted taint. When
    // it cannot, the whole output is the injected span (as before).
    const spans = scan ? injectedSpans(delivered, rt.config.injection.hold_at) : null
    const entry = (text: string, injected: boolean): TaintEntry => ({
      source,
      text: text.slice(0, limits.max_entry_chars),
      at: now,
      ...(injected && { injected: true }),
      ...(text.length > limits.max_entry_chars && { truncated: true }),
    })
    const entries = spans
      ? [entry(whole, false), entry(taintForm(spans.join('\n')), true)]
      : [entry(whole, scan !== undefined)]
    const taint = {
      session: call.sessionId,
      entries,
      maxChars: limits.max_session_chars,
      idleMs: limits.idle_ttl_seconds * 1000,
    }
    await rt.state.sessions
      .commit({ agent: call.agentId, taint })
      // The session loses this output's taint; logged and counted rather than hidden.
      .catch(onTaintError)
  }
  return {
    delivered,
    audited,
    ...(scan && { scan }),
    ...(judged && { judged }),
  }
}
