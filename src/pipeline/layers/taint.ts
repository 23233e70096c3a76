import { normalizeForMatch } from '../../detect/normalize.js'
import type { ToolConfig } from '../../config/schema.js'
import type { Verdict } from '../../domain/types.js'
import type { TaintEntry } from '../../state/types.js'
import { resolved, type Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** The text form taint matching compares: NFKC, invisible characters gone, lowercase, one space. */
export function taintForm(text: string): string {
  return normalizeForMatch(text).folded
}

/** Session key for taint: scoped to the agent so one agent cannot taint another's session. */
export function taintSession(agentId: string, sessionId: string): string {
  return `${agentId}:${sessionId}`
}

/**
 * Layer 7: a sensitive parameter whose value appears in untrusted text of this session (the
 * user's input, an untrusted tool's output) gets the tool's configured action (hold or deny);
 * and once an untrusted output in the session carried an injection, risky tools get the action
 * `injection.after_injected_output` names for their risk level.
 */
export function taint(rt: Runtime): Layer {
  const minLength = rt.config.taint.min_match_length
  const afterInjected = rt.config.injection.after_injected_output
  return {
    name: 'taint',
    async check(ctx) {
      const { agent, tool } = resolved(ctx)
      const { sessionId, context } = ctx.call
      const current: TaintEntry[] = []
      if (typeof context.user_input === 'string' && context.user_input.length > 0) {
        current.push({
          source: 'context.user_input',
          text: taintForm(context.user_input),
          at: ctx.now,
        })
      }
      let sources: readonly TaintEntry[] = current
      if (sessionId !== undefined) {
        const key = taintSession(agent.id, sessionId)
        for (const entry of current) await rt.state.addTaint(key, entry)
        sources = await rt.state.taints(key)
      }
      if (sources.length === 0) return { outcome: 'pass' }
      const verdicts = [
        paramTaint(tool, ctx.call.params, sources, minLength),
        poisonedSession(afterInjected[tool.risk], tool.name, sources),
      ]
      // The stronger answer wins: a deny from either check beats a hold from the other.
      return (
        verdicts.find((v) => v?.outcome === 'deny') ??
        verdicts.find((v) => v !== null) ?? { outcome: 'pass' }
      )
    },
  }
}

/** A sensitive parameter whose value appears in untrusted text: the tool's taint action. */
function paramTaint(
  tool: ToolConfig,
  params: Readonly<Record<string, unknown>>,
  sources: readonly TaintEntry[],
  minLength: number,
): Verdict | null {
  if (!tool.taint) return null
  for (const param of tool.taint.params) {
    const value = params[param]
    const source = sources.find((e) => derivedFrom(value, e.text, minLength))
    if (!source) continue
    const path = `${source.source} → params.${param}`
    const reason = `sensitive parameter \`${param}\` comes from untrusted text (${path})`
    const details = { path: [source.source, `params.${param}`] }
    return tool.taint.action === 'deny'
      ? { outcome: 'deny', code: 'taint_violation', reason, risk: 35, details }
      : { outcome: 'hold', reason, risk: 25, details }
  }
  return null
}

/** A session that already received an injected tool output: risky tools get the configured action. */
function poisonedSession(
  action: 'hold' | 'deny' | undefined,
  tool: string,
  sources: readonly TaintEntry[],
): Verdict | null {
  const poisoned = action && sources.find((e) => e.injected)
  if (!poisoned) return null
  const reason = `this session received a prompt injection in \`${poisoned.source}\`; \`${tool}\` is ${action === 'deny' ? 'refused' : 'held'} for the rest of it`
  const details = { path: [poisoned.source, tool] }
  return action === 'deny'
    ? { outcome: 'deny', code: 'taint_violation', reason, risk: 40, details }
    : { outcome: 'hold', reason, risk: 30, details }
}

function derivedFrom(value: unknown, text: string, minLength: number): boolean {
  // A list (recipients, participants) is tainted when any element is.
  if (Array.isArray(value)) return value.some((v) => derivedFrom(v, text, minLength))
  if (typeof value === 'number') return numbersIn(text).includes(value)
  if (typeof value !== 'string') return false
  const v = taintForm(value)
  return v.length >= minLength && text.includes(v)
}

function numbersIn(text: string): number[] {
  return [...text.matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => Number(m[0].replace(/,/g, '')))
}
