import { detectInjection } from '../../detect/injection.js'
import type { Verdict } from '../../domain/types.js'
import type { Judge } from '../../judge/index.js'
import type { TaintEntry } from '../../state/types.js'
import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** Every string leaf of a value, for scanning as one text (catches payloads split across fields). */
export function stringLeaves(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value)
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) stringLeaves(v, out)
  return out
}

/** The session's user input since `since`, oldest first, as one text. */
function recentInput(taint: readonly TaintEntry[], since: number): string {
  return taint
    .filter((e) => e.source === 'context.user_input' && e.at >= since)
    .map((e) => e.text)
    .join(' ')
}

/** Layer 6: prompt-injection detection over the parameters and the untrusted context. */
export function injection(rt: Runtime): Layer<'injection'> {
  const { hold_at, deny_at } = rt.config.injection
  const sessions = rt.config.sessions
  const trustInput = rt.config.user_input.trusted
  return {
    name: 'injection',
    check(ctx) {
      // The owner's own request is not scanned when the configuration trusts it (`user_input`).
      const context = trustInput ? withoutUserInput(ctx.call.context) : ctx.call.context
      const own = stringLeaves(context, stringLeaves(ctx.call.params)).join('\n')
      // With `sessions.scan_across_calls`, the session's recent user input goes in front, so a
      // payload split over several calls is scanned whole.
      const recent =
        sessions.scan_across_calls && !trustInput && ctx.call.sessionId !== undefined
          ? recentInput(ctx.state.taint, ctx.now - sessions.recent_seconds * 1000).slice(
              -sessions.recent_chars,
            )
          : ''
      const text = recent.length > 0 ? `${recent}\n${own}` : own
      if (text.length === 0) return { outcome: 'pass' }
      let found = detectInjection(text)
      let across = false
      // The text `found` is about (what the judge would be shown).
      let scanned = text
      if (recent.length > 0 && found.score >= hold_at) {
        const alone = detectInjection(own)
        across = alone.score < found.score
        if (alone.score >= found.score) [found, scanned] = [alone, own]
      }
      const { score, categories } = found
      const details: Record<string, unknown> = across
        ? { score, categories, across_calls: true }
        : { score, categories }
      const risk = Math.round(score * 60)
      // A grey-zone score gets the judge's second opinion (decision 0023) on the text it came from.
      if (rt.judge?.inZone(score))
        return judged(rt.judge, scanned, score >= hold_at, categories, risk, details)
      if (score >= deny_at) {
        return {
          outcome: 'deny',
          code: 'injection_detected',
          reason: `prompt injection detected (${categories.join(', ')})`,
          risk,
          details,
        }
      }
      if (score >= hold_at)
        return {
          outcome: 'hold',
          reason: `possible prompt injection (${categories.join(', ')})`,
          risk,
          details,
        }
      return { outcome: 'pass', risk, details: score > 0 ? details : undefined }
    },
  }
}

/**
 * The verdict on a grey-zone text after the judge's answer: "injection" denies, a judge that
 * failed holds (never allows), "benign" passes a text the detector would have let through, and
 * one it would have held only where the judge may clear it (`may_clear`, whole text seen).
 */
async function judged(
  judge: Judge,
  text: string,
  held: boolean,
  categories: string[],
  risk: number,
  details: Record<string, unknown>,
): Promise<Verdict> {
  const answer = await judge.judge(text)
  const withJudge = { ...details, judge: answer }
  const found = categories.join(', ')
  if (answer.verdict === 'injection')
    return {
      outcome: 'deny',
      code: 'injection_detected',
      reason: `prompt injection detected (${found}; confirmed by the judge)`,
      risk,
      details: withJudge,
    }
  if (answer.verdict === 'failed' || (held && !judge.clears(answer)))
    return {
      outcome: 'hold',
      reason:
        answer.verdict === 'failed'
          ? `possible prompt injection (${found}; the judge gave no verdict: ${answer.reason})`
          : answer.truncated === true
            ? `possible prompt injection (${found}; the judge saw only part of the text)`
            : `possible prompt injection (${found}; the judge may not clear it)`,
      risk,
      details: withJudge,
    }
  return { outcome: 'pass', risk, details: withJudge }
}

function withoutUserInput(context: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { user_input: _input, ...rest } = context
  return rest
}
