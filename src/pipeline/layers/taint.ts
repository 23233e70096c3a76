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

/**
 * Whether a parameter value comes from untrusted text (`text` is already in taint form). Matches
 * survive case, Unicode look-alikes and spacing (the taint form), separators inside numbers and
 * codes (`GB29 NWBK-6016` = `gb29nwbk6016`), a value that is a long enough piece of the text, and
 * a value that embeds an identifier from the text (`https://evil.example/?q=…` carries
 * `evil.example`). A list or object is tainted when any member is.
 */
export function derivedFrom(value: unknown, text: string, minLength: number): boolean {
  if (Array.isArray(value)) return value.some((v) => derivedFrom(v, text, minLength))
  if (value !== null && typeof value === 'object')
    return Object.values(value).some((v) => derivedFrom(v, text, minLength))
  if (typeof value === 'number') return numbersIn(text).includes(value)
  if (typeof value !== 'string') return false
  const v = taintForm(value)
  if (v.length < minLength) return false
  if (text.includes(v)) return true
  const compactValue = compact(v)
  if (compactValue.length >= minLength && compact(text).includes(compactValue)) return true
  for (const token of identifiers(v)) if (text.includes(token)) return true
  return false
}

/** Spacing and the separators people put inside numbers and codes, removed. */
const compact = (s: string) => s.replace(/[\s\-().]/g, '')

/**
 * Identifier-like pieces of a value: hosts, addresses, account numbers (eight characters or
 * more, with a digit, `@`, `.` or `/`). Plain words are left out so that a common word shared by
 * the value and the text does not taint it.
 */
function identifiers(v: string): string[] {
  const out: string[] = []
  for (const piece of v.split(/[\s,;?&=#"'<>()[\]{}|]+|:\/\//)) {
    const token = piece.replace(/^[./:-]+|[./:-]+$/g, '')
    if (token.length >= 8 && token !== v && /[\d@./]/.test(token)) out.push(token)
  }
  return out
}

function numbersIn(text: string): number[] {
  return [...text.matchAll(/\d[\d,]*(?:\.\d+)?/g)].map((m) => Number(m[0].replace(/,/g, '')))
}
