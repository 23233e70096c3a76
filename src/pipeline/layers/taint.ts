import { normalizeForMatch } from '../../detect/normalize.js'
import type { ToolConfig } from '../../domain/config.js'
import type { Verdict } from '../../domain/types.js'
import type { ParamOrigin } from '../../policy/cel-policy.js'
import type { TaintEntry } from '../../state/types.js'
import type { DecisionContext, Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/** The text form taint matching compares: NFKC, invisible characters gone, lowercase, one space. */
export function taintForm(text: string): string {
  return normalizeForMatch(text).folded
}

/**
 * Layer 7: a sensitive parameter whose value appears in untrusted text of this session (the
 * user's input, an untrusted tool's output) gets the tool's configured action (hold or deny);
 * and once an untrusted output in the session carried an injection, risky tools get the action
 * `injection.after_injected_output` names for their risk level.
 */
export function taint(rt: Runtime): Layer<'taint'> {
  const minLength = rt.config.taint.min_match_length
  const afterInjected = rt.config.injection.after_injected_output
  const maxChars = rt.config.sessions.max_entry_chars
  const userInputUntrusted = !rt.config.user_input.trusted
  return {
    name: 'taint',
    check(ctx) {
      const { tool } = ctx
      const { fresh, sources } = sessionSources(ctx, maxChars)
      // This call's user input joins the session's taint, committed with the decision.
      ctx.newTaint.push(...fresh)
      // Where each sensitive parameter's value came from, recorded on every verdict (the decision
      // trace and the audit keep it), whatever the verdict is.
      const provenance = provenanceOf(tool, ctx.call.params, sources, minLength)
      if (sources.length === 0) return withProvenance({ outcome: 'pass' }, provenance)
      const verdicts = [
        paramTaint(tool, provenance, userInputUntrusted),
        // A data-flow rule (policy `effect: release`) may let this call out of the quarantine.
        ctx.released ? null : poisonedSession(afterInjected[tool.risk], tool.name, sources),
      ]
      // The stronger answer wins: a deny from either check beats a hold from the other.
      const verdict = verdicts.find((v) => v?.outcome === 'deny') ??
        verdicts.find((v) => v !== null) ?? { outcome: 'pass' }
      return withProvenance(verdict, provenance)
    },
  }
}

/**
 * The untrusted texts a call's parameters are matched against: this call's user input, what the
 * agent's session kept, and what the delegating agent's session read (an agent that read an
 * injection cannot launder it by asking another agent). `fresh`: this call's input that the
 * session does not keep yet (what the call adds to it; nothing without a session).
 */
export function sessionSources(
  ctx: DecisionContext,
  maxChars: number,
): { fresh: TaintEntry[]; sources: readonly TaintEntry[] } {
  const input = ctx.call.context.user_input
  const current: TaintEntry[] =
    typeof input === 'string' && input.length > 0 ? [inputEntry(input, ctx.now, maxChars)] : []
  let sources: readonly TaintEntry[] = current
  let fresh: TaintEntry[] = []
  if (ctx.call.sessionId !== undefined) {
    // The same request sent again with each call of a session is kept once, and counts from when
    // it was first sent (its `at`): that tells the user's own request from one sent after an
    // injected output.
    fresh = current.filter(
      (e) => !ctx.state.taint.some((k) => k.source === e.source && k.text === e.text),
    )
    sources = fresh.length > 0 ? [...ctx.state.taint, ...fresh] : ctx.state.taint
  }
  if (ctx.state.delegatorTaint.length > 0) sources = [...sources, ...ctx.state.delegatorTaint]
  return { fresh, sources }
}

/**
 * One origin of a parameter value: the session text it was found in (`context.user_input`, or
 * `tool:<name>#<request id>` for an untrusted tool's output), whether that text carried an
 * injection, and whether the text was cut (the value was not found, but may be in the cut part).
 */
export interface Origin {
  from: string
  injected?: true
  /** Found in an output that carried an injection, outside the passages that scored as one. */
  flagged?: true
  /**
   * The user's input, first sent after the session's first injected output: an agent that
   * read the injection may have written it, so it counts as outside text, not as the user's.
   */
  late?: true
  maybe?: true
}

/** Sensitive parameter → its origins in the session; an empty list: found nowhere. */
export type Provenance = Record<string, Origin[]>

/**
 * The provenance of the tool's sensitive parameters (`taint.params`) that the call carries:
 * every session text each value is found in (the same matching as the taint check), and the cut
 * texts it may hide in. Bounded by the session's kept texts (64 entries) and the parameter's
 * leaves (MAX_TAINT_LEAVES).
 */
export function provenanceOf(
  tool: ToolConfig,
  params: Readonly<Record<string, unknown>>,
  sources: readonly TaintEntry[],
  minLength: number,
): Provenance | undefined {
  if (!tool.taint) return undefined
  // INVARIANT: the user's input counts as the user's only if it was sent before the session's
  // first injected output; later, a hijacked agent could put the attacker's value in it.
  let firstInjected = Infinity
  const flaggedSources = new Set<string>()
  for (const e of sources)
    if (e.injected === true) {
      firstInjected = Math.min(firstInjected, e.at)
      flaggedSources.add(e.source)
    }
  let out: Provenance | undefined
  for (const param of tool.taint.params) {
    const value = params[param]
    if (value === undefined) continue
    // One origin per session text; a flagged output is kept as two entries of the same source
    // (the whole output, and its injected passages), merged here. User input sent after the
    // first injection is an origin of its own (`late`).
    const bySource = new Map<
      string,
      { from: string; late: boolean; found: boolean; inInjected: boolean; cutInjected: boolean }
    >()
    for (const e of sources) {
      const found = derivedFrom(value, viewOf(e), minLength)
      if (!found && !e.truncated) continue
      const late = e.source === USER_INPUT && e.at >= firstInjected
      const key = late ? `${e.source}\u0000late` : e.source
      const o = bySource.get(key) ?? {
        from: e.source,
        late,
        found: false,
        inInjected: false,
        cutInjected: false,
      }
      o.found ||= found
      if (e.injected === true) {
        o.inInjected ||= found
        o.cutInjected ||= !found
      }
      bySource.set(key, o)
    }
    const origins: Origin[] = []
    for (const o of bySource.values()) {
      // Injected: found in the injected passages, or found nowhere and possibly in their cut part.
      const injected = o.inInjected || (!o.found && o.cutInjected)
      const flagged = !injected && o.found && flaggedSources.has(o.from)
      origins.push({
        from: o.from,
        ...(injected && { injected: true as const }),
        ...(flagged && { flagged: true as const }),
        ...(o.late && { late: true as const }),
        ...(!o.found && { maybe: true as const }),
      })
    }
    ;(out ??= {})[param] = origins
  }
  return out
}

/** The user's own request, as data-flow rules and the trusted-input setting count it. */
const fromUser = (o: Origin) => o.from === USER_INPUT && o.late !== true

/** Provenance as data-flow rules read it (`provenance.<param>.untrusted`, ...). */
export function policyOrigins(provenance: Provenance | undefined): Record<string, ParamOrigin> {
  const out: Record<string, ParamOrigin> = {}
  for (const [param, origins] of Object.entries(provenance ?? {})) {
    const found = origins.filter((o) => !o.maybe)
    out[param] = {
      user: found.some(fromUser),
      untrusted: found.some((o) => !fromUser(o)),
      injected: found.some((o) => o.injected === true),
      flagged: found.some((o) => o.injected === true || o.flagged === true),
      maybe: origins.some((o) => o.maybe === true),
      none: origins.length === 0,
      sources: origins.map((o) => o.from),
    }
  }
  return out
}

function withProvenance(verdict: Verdict, provenance: Provenance | undefined): Verdict {
  if (!provenance) return verdict
  return { ...verdict, details: { ...verdict.details, provenance } }
}

/** The source name of the user's input in a session's taint. */
const USER_INPUT = 'context.user_input'

/** The user's input as taint, its text cut to `maxChars` (and then marked as cut). */
function inputEntry(input: string, at: number, maxChars: number): TaintEntry {
  const text = taintForm(input.length > maxChars * 2 ? input.slice(0, maxChars * 2) : input)
  return text.length > maxChars || input.length > maxChars * 2
    ? { source: USER_INPUT, text: text.slice(0, maxChars), at, truncated: true }
    : { source: USER_INPUT, text, at }
}

/** A sensitive parameter whose value appears in untrusted text: the tool's taint action. */
function paramTaint(
  tool: ToolConfig,
  provenance: Provenance | undefined,
  userInputUntrusted: boolean,
): Verdict | null {
  if (!tool.taint || !provenance) return null
  for (const param of tool.taint.params) {
    const all = provenance[param]
    if (!all) continue
    // The user's own request is not outside text when the configuration says so (input sent
    // after an injected output is: the agent may have written it for the attacker).
    const origins = userInputUntrusted ? all : all.filter((o) => !fromUser(o))
    // INVARIANT: fail closed. Untrusted text kept only in part may hold the value in the part
    // that was cut, so a value not found in what was kept still gets the action.
    const source = origins.find((o) => !o.maybe) ?? origins.find((o) => o.maybe)
    if (!source) continue
    const from = source.late
      ? `${source.from}, sent after the injected output`
      : source.flagged
        ? `${source.from}, which carried an injection`
        : source.from
    const path = `${from} → params.${param}`
    const reason = source.maybe
      ? `sensitive parameter \`${param}\` may come from untrusted text too long to check (${source.from})`
      : `sensitive parameter \`${param}\` comes from untrusted text (${path})`
    const details = { path: [source.from, `params.${param}`] }
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

/** Leaves of one parameter value that taint looks at; past this the parameter counts as tainted. */
export const MAX_TAINT_LEAVES = 256

/** A source text with what matching needs from it, worked out once per text. */
class SourceView {
  private numberSet?: Set<number>
  private compacted?: string
  constructor(readonly text: string) {}
  get numbers(): Set<number> {
    return (this.numberSet ??= new Set(numbersIn(this.text)))
  }
  get compact(): string {
    return (this.compacted ??= compact(this.text))
  }
}

// Views of the texts of the session's taint entries; entries are immutable once stored.
const views = new WeakMap<object, SourceView>()
function viewOf(entry: TaintEntry): SourceView {
  let v = views.get(entry)
  if (!v) views.set(entry, (v = new SourceView(entry.text)))
  return v
}

/**
 * Whether a parameter value comes from untrusted text (`text` is already in taint form). Matches
 * survive case, Unicode look-alikes and spacing (the taint form), separators inside numbers and
 * codes (`GB29 NWBK-6016` = `gb29nwbk6016`, for values with a digit), a value that is a long
 * enough piece of the text, and a value that embeds an identifier from the text
 * (`https://evil.example/?q=…` carries `evil.example`); a piece must not cut a word or number
 * in two. Numbers need two digits or more. A list or
 * object is tainted when any member is; one with more than MAX_TAINT_LEAVES leaves counts as
 * tainted (it cannot be checked in bounded time, so it is not let through unchecked).
 */
export function derivedFrom(
  value: unknown,
  source: string | SourceView,
  minLength: number,
): boolean {
  const view = typeof source === 'string' ? new SourceView(source) : source
  const leaves: (string | number)[] = []
  if (!collectLeaves(value, leaves)) return true
  return leaves.some((leaf) => leafDerived(leaf, view, minLength))
}

function collectLeaves(value: unknown, out: (string | number)[]): boolean {
  if (typeof value === 'string' || typeof value === 'number') {
    out.push(value)
    return out.length <= MAX_TAINT_LEAVES
  }
  if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) if (!collectLeaves(v, out)) return false
  return true
}

function leafDerived(value: string | number, view: SourceView, minLength: number): boolean {
  if (typeof value === 'number')
    return Math.abs(value) >= 10 && Number.isFinite(value) && view.numbers.has(value)
  const v = taintForm(value)
  if (v.length < minLength) return false
  if (occursWhole(view.text, v)) return true
  const compactValue = compact(v)
  if (
    compactValue.length >= minLength &&
    /\d/.test(compactValue) &&
    standsAlone(view.compact, compactValue)
  )
    return true
  for (const token of identifiers(v)) if (occursWhole(view.text, token)) return true
  return false
}

const WORD = /[\p{L}\p{N}]/u

/** `needle` occurs in `hay` without cutting a word or number in two at either end. */
function occursWhole(hay: string, needle: string): boolean {
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) {
    const before = hay[i - 1]
    const after = hay[i + needle.length]
    const cutsStart = before !== undefined && WORD.test(before) && WORD.test(needle[0]!)
    const cutsEnd = after !== undefined && WORD.test(after) && WORD.test(needle[needle.length - 1]!)
    if (!cutsStart && !cutsEnd) return true
  }
  return false
}

/** `needle` occurs in `hay` not as a piece of a longer number (`12345678` in `12345678901`). */
function standsAlone(hay: string, needle: string): boolean {
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) {
    const before = hay[i - 1]
    const after = hay[i + needle.length]
    const digitEdge =
      (/\d/.test(needle[0]!) && before !== undefined && /\d/.test(before)) ||
      (/\d/.test(needle[needle.length - 1]!) && after !== undefined && /\d/.test(after))
    if (!digitEdge) return true
  }
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
