import { detectInjection } from '../detect/injection.js'
import type { AuditEvent } from '../domain/audit-event.js'
import { canonicalHash } from '../domain/canonical.js'
import type { FirstSightBlock, PinBlock, PinChange } from '../domain/tool-pins.js'
import type { AuditLog } from '../store/types.js'

/** The parts of an upstream's tool definition that are pinned (what a model is shown). */
export interface ToolDefinition {
  name: string
  description?: string | undefined
  inputSchema?: unknown
  outputSchema?: unknown
  annotations?: unknown
}

export type { PinBlock, PinChange }

/**
 * A description longer than this is not scored (scoring is linear in its length and runs on the
 * event loop): it blocks the tool as `poisoned` (score 1) until a person accepts it. Real
 * descriptions are a few hundred characters.
 */
export const MAX_DESCRIPTION_CHARS = 16_384

/** Detector categories that come from trained models rather than known injection phrases. */
const TRAINED_SIGNALS = new Set(['model', 'instruction_in_data'])

/** What Warden knows about one upstream tool's definition, by its Warden name. */
export interface Pin {
  tool: string
  /** SHA-256 of the definition first seen (or last accepted). */
  pinned: string
  /** SHA-256 of the definition the upstream offers now. */
  current: string
  blocked?: PinBlock
  /** The injection detector's score of the description, when it blocked the tool. */
  score?: number
  /** The other tools its description names, when that blocked the tool. */
  shadows?: string[]
  /** False until the pin is in the audit log: until then the tool is not callable. */
  recorded: boolean
  /**
   * What a person accepts, as text: the definition offered now and the pinned one, when this
   * instance saw them (a definition seen only through another instance's events is a hash).
   * Descriptions are cut to MAX_DESCRIPTION_CHARS.
   */
  offered?: ToolDefinition
  pinned_definition?: ToolDefinition
}

/** The audit event types that carry pins; `readPins` and `PinBook.apply` read these. */
export const PIN_EVENT_TYPES = new Set<string>([
  'tool_definition_pinned',
  'tool_definition_changed',
  'tool_definition_accepted',
])

/** The pinned fields as one canonical JSON value; absent fields are left out, not `null`. */
export function definitionHash(def: ToolDefinition): string {
  return canonicalHash({
    name: def.name,
    ...(def.description !== undefined && { description: def.description }),
    ...(def.inputSchema !== undefined && { inputSchema: def.inputSchema }),
    ...(def.outputSchema !== undefined && { outputSchema: def.outputSchema }),
    ...(def.annotations !== undefined && { annotations: def.annotations }),
  })
}

/**
 * Tool pins (rug-pull and poisoning defence, decision 0021): the first definition seen of each
 * tool is pinned; a different one later blocks the tool until `accept`; a description the
 * injection detector scores at or above `holdAt` blocks it at first sight.
 *
 * The audit log is the durable copy: every pin, change and acceptance is an event, `apply`
 * rebuilds the book from them at start-up (and follows other instances' events), so neither a
 * restart nor a second instance pins afresh what an upstream offers after a rug pull.
 */
export class PinBook {
  private readonly pins = new Map<string, Pin>()
  /**
   * Tools this instance's own upstream has listed. Once listed, `current` is what this instance's
   * upstream offers, and events from elsewhere (another instance's upstream, a late echo) never
   * overwrite it: an acceptance unblocks only the definition this instance itself is offered.
   */
  private readonly listedHere = new Set<string>()

  private others: { name: string; namespace: string; pattern: RegExp }[] = []

  /**
   * `holdAt`: the injection score that blocks a description. `toolNames`: every configured tool
   * (Warden names): a description that names one outside its own namespace shadows it.
   */
  constructor(
    private holdAt: number,
    toolNames: readonly string[] = [],
  ) {
    this.configure(holdAt, toolNames)
  }

  /**
   * Take a reloaded configuration's `holdAt` and tool names. They apply to first sights from now
   * on; a pin already taken keeps the verdict it was recorded with.
   */
  configure(holdAt: number, toolNames: readonly string[]): void {
    this.holdAt = holdAt
    this.others = toolNames.flatMap((name) => {
      const dot = name.indexOf('.')
      const namespace = dot > 0 ? name.slice(0, dot) : ''
      const bare = dot > 0 ? name.slice(dot + 1) : name
      // The Warden name always; the bare name of an upstream tool only when it reads as an
      // identifier (`get-sum`, `send_email`), not an everyday word (`echo`, `search`).
      const forms = [
        name,
        ...(bare !== name && /[_-]/.test(bare) && bare.length >= 5 ? [bare] : []),
      ]
      return forms.map((form) => ({
        name,
        namespace,
        pattern: new RegExp(`(?<![\\w.-])${escapeRegExp(form)}(?![\\w-])`, 'i'),
      }))
    })
  }

  /**
   * Record a listing's definition of `tool` (its Warden name). Returns the pin as it stands and
   * what the listing changed that must be recorded.
   */
  observe(tool: string, def: ToolDefinition): { pin: Pin; change?: PinChange } {
    const hash = definitionHash(def)
    this.listedHere.add(tool)
    this.remember(tool, hash, def)
    const known = this.pins.get(tool)
    if (!known) {
      const pin: Pin = { tool, pinned: hash, current: hash, recorded: false }
      const description = def.description ?? ''
      const score = this.poisonScore(description)
      const shadows = this.shadowed(tool, description)
      if (score >= this.holdAt) Object.assign(pin, { blocked: 'poisoned', score })
      else if (shadows.length > 0) Object.assign(pin, { blocked: 'shadowing', shadows })
      this.pins.set(tool, pin)
      return { pin, change: firstPin(pin) }
    }
    // A first pin whose recording failed is offered for recording again at the next listing.
    if (!known.recorded && hash === known.pinned && known.current === hash)
      return { pin: known, change: firstPin(known) }
    const previous = known.current
    known.current = hash
    // INVARIANT: a block is lifted only by `accept`, never by the upstream changing back: a
    // definition that flips between two versions would otherwise pick when it is callable.
    if (hash !== known.pinned && known.blocked === undefined) known.blocked = 'changed'
    if (hash !== previous && hash !== known.pinned)
      return { pin: known, change: { kind: 'changed', tool, pinned: known.pinned, current: hash } }
    return { pin: known }
  }

  /** The pin `hash` of `tool` is in the audit log now: the tool may be called (unless blocked). */
  recorded(tool: string, hash: string): void {
    const pin = this.pins.get(tool)
    if (pin && pin.pinned === hash) pin.recorded = true
  }

  /**
   * Apply a recorded pin event (from the log at start-up, or another instance's from the bus).
   * Applying one twice changes nothing; an event never unblocks except an acceptance.
   */
  apply(event: Pick<AuditEvent, 'type' | 'tool' | 'params'>): void {
    const p = (event.params ?? {}) as Record<string, unknown>
    const hashOf = (key: string) =>
      typeof p[key] === 'string' && /^[0-9a-f]{64}$/.test(p[key]) ? p[key] : undefined
    const known = this.pins.get(event.tool)
    switch (event.type) {
      case 'tool_definition_pinned': {
        const hash = hashOf('pinned')
        if (hash === undefined) return
        if (!known) {
          const pin: Pin = { tool: event.tool, pinned: hash, current: hash, recorded: true }
          if (p.blocked === 'poisoned')
            Object.assign(pin, { blocked: 'poisoned', score: Number(p.score) || 0 })
          if (p.blocked === 'shadowing')
            Object.assign(pin, {
              blocked: 'shadowing',
              shadows: Array.isArray(p.shadows) ? p.shadows.map(String) : [],
            })
          this.pins.set(event.tool, pin)
        } else if (known.pinned === hash) {
          known.recorded = true
          const first =
            p.blocked === 'poisoned' || p.blocked === 'shadowing' ? p.blocked : undefined
          if (first && known.blocked === undefined) known.blocked = first
        } else if (known.blocked === undefined) {
          // Two first sights with different definitions (two instances starting at once while
          // the upstream changed): neither is trusted over the other.
          known.blocked = 'changed'
        }
        return
      }
      case 'tool_definition_changed': {
        const current = hashOf('current')
        if (current === undefined || !known) return
        // What an upstream offered when it was recorded: the best knowledge until this instance
        // lists the tool itself (at start-up); after that, only its own listings set `current`.
        if (!this.listedHere.has(event.tool)) known.current = current
        if (current !== known.pinned && known.blocked === undefined) known.blocked = 'changed'
        return
      }
      case 'tool_definition_accepted': {
        const hash = hashOf('pinned')
        if (hash === undefined) return
        if (!known) {
          this.pins.set(event.tool, {
            tool: event.tool,
            pinned: hash,
            current: hash,
            recorded: true,
          })
          return
        }
        known.pinned = hash
        known.recorded = true
        if (known.current === hash) {
          delete known.blocked
          delete known.score
          delete known.shadows
        } else known.blocked = 'changed'
        return
      }
    }
  }

  /**
   * The detector's score of a description, or 0 when only the trained signals (the n-gram model,
   * instructions in data) found it suspect. A tool description is an instruction to a model by
   * design ("Use this tool when you need to…"), which is what those signals were trained to
   * notice in data: alone they flag honest descriptions (server-filesystem's `read_text_file`).
   * A known injection phrase is evidence.
   */
  private poisonScore(description: string): number {
    // INVARIANT: fail closed. Too long to check in bounded time means blocked, not unchecked.
    if (description.length > MAX_DESCRIPTION_CHARS) return 1
    const { score, categories } = detectInjection(description)
    return categories.some((c) => !TRAINED_SIGNALS.has(c)) ? score : 0
  }

  /** Configured tools outside `tool`'s namespace that its description names. */
  private shadowed(tool: string, description: string): string[] {
    if (description.length > MAX_DESCRIPTION_CHARS) return []
    const own = tool.slice(0, tool.indexOf('.'))
    const found = new Set<string>()
    for (const o of this.others)
      if (o.name !== tool && o.namespace !== own && o.pattern.test(description)) found.add(o.name)
    return [...found]
  }

  /**
   * Why `tool` may not be called, if it may not: blocked, never seen (`unknown`), or seen but not
   * yet in the audit log (`unrecorded`: a pin a restart could forget protects nothing).
   */
  check(tool: string): PinBlock | 'unknown' | 'unrecorded' | undefined {
    const pin = this.pins.get(tool)
    if (!pin) return 'unknown'
    return pin.blocked ?? (pin.recorded ? undefined : 'unrecorded')
  }

  /**
   * An approver accepts the definition offered now: it becomes the pin. False if never seen, or
   * when `definition` (the hash the approver saw) is no longer the one offered.
   */
  accept(tool: string, definition?: string): boolean {
    const pin = this.pins.get(tool)
    if (!pin) return false
    if (definition !== undefined && pin.current !== definition) return false
    pin.pinned = pin.current
    pin.recorded = true
    delete pin.blocked
    delete pin.score
    delete pin.shadows
    return true
  }

  /** First pins of tools named `<prefix>…` not yet in the audit log, to record again. */
  unrecorded(prefix: string): PinChange[] {
    return [...this.pins.values()]
      .filter((p) => !p.recorded && p.tool.startsWith(prefix) && p.current === p.pinned)
      .map(firstPin)
  }

  list(): Pin[] {
    return [...this.pins.values()].map((p) => {
      const seen = this.texts.get(p.tool)
      const offered = seen?.get(p.current)
      const pinned = seen?.get(p.pinned)
      return {
        ...p,
        ...(offered && { offered }),
        ...(pinned && { pinned_definition: pinned }),
      }
    })
  }

  /** Tool → definition hash → the definition, for the hashes a pin names (at most two per tool). */
  private readonly texts = new Map<string, Map<string, ToolDefinition>>()

  private remember(tool: string, hash: string, def: ToolDefinition): void {
    const seen = this.texts.get(tool) ?? new Map<string, ToolDefinition>()
    this.texts.set(tool, seen)
    seen.set(hash, shown(def))
    const pin = this.pins.get(tool)
    // Bounded: only the pinned and the offered definition are kept.
    for (const h of seen.keys()) if (h !== hash && h !== pin?.pinned) seen.delete(h)
  }
}

/** A definition as shown to a person: the pinned fields, the description cut to the limit. */
function shown(def: ToolDefinition): ToolDefinition {
  const description =
    def.description !== undefined && def.description.length > MAX_DESCRIPTION_CHARS
      ? `${def.description.slice(0, MAX_DESCRIPTION_CHARS)}… (cut: ${def.description.length} characters in all)`
      : def.description
  return {
    name: def.name.slice(0, 256),
    ...(description !== undefined && { description }),
    ...(def.inputSchema !== undefined && { inputSchema: bounded(def.inputSchema) }),
    ...(def.outputSchema !== undefined && { outputSchema: bounded(def.outputSchema) }),
    ...(def.annotations !== undefined && { annotations: bounded(def.annotations) }),
  }
}

/** A schema as shown: itself, or a note of its size when its JSON is over the description limit. */
function bounded(value: unknown): unknown {
  const size = JSON.stringify(value)?.length ?? 0
  return size > MAX_DESCRIPTION_CHARS ? `(${size} characters of JSON, too large to show)` : value
}

/** The event-to-be of a first pin, with what blocked it at once, if anything. */
function firstPin(pin: Pin): PinChange {
  const blocked: FirstSightBlock | undefined =
    pin.blocked === 'poisoned' || pin.blocked === 'shadowing' ? pin.blocked : undefined
  return {
    kind: 'pinned',
    tool: pin.tool,
    hash: pin.pinned,
    ...(blocked && { blocked }),
    ...(pin.score !== undefined && { score: pin.score }),
    ...(pin.shadows && { shadows: [...pin.shadows] }),
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * The pin events of the whole log, oldest first (pins never expire, unlike the state restored
 * by `restoreState`). Read by type, a page at a time, so the rest of the log is not scanned.
 */
export async function readPins(audit: AuditLog, pageSize = 1000): Promise<AuditEvent[]> {
  const found: AuditEvent[] = []
  for (const type of PIN_EVENT_TYPES) {
    for (let after = 0; ;) {
      const page = await audit.query({ type, after_seq: after, order: 'asc', limit: pageSize })
      found.push(...page)
      if (page.length < pageSize) break
      after = page[page.length - 1]!.seq
    }
  }
  return found.sort((a, b) => a.seq - b.seq)
}
