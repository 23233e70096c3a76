import { detectInjection } from '../../detect/injection.js'
import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** Every string leaf of a value, for scanning as one text (catches payloads split across fields). */
export function stringLeaves(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value)
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) stringLeaves(v, out)
  return out
}

/** Layer 6: prompt-injection detection over the parameters and the untrusted context. */
export function injection(rt: Runtime): Layer<'injection'> {
  const { hold_at, deny_at } = rt.config.injection
  return {
    name: 'injection',
    check(ctx) {
      const text = stringLeaves(ctx.call.context, stringLeaves(ctx.call.params)).join('\n')
      if (text.length === 0) return { outcome: 'pass' }
      const { score, categories } = detectInjection(text)
      const details = { score, categories }
      const risk = Math.round(score * 60)
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
