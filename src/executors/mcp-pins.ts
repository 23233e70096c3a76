import { detectInjection } from '../detect/injection.js'
import { canonicalHash } from '../domain/canonical.js'

/** The parts of an upstream's tool definition that are pinned (what a model is shown). */
export interface ToolDefinition {
  name: string
  description?: string | undefined
  inputSchema?: unknown
  outputSchema?: unknown
  annotations?: unknown
}

/** Why a pinned tool may not be called; absent when it may. */
export type PinBlock = 'changed' | 'poisoned'

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
}

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
 * Kept in memory: a restart pins afresh whatever the upstreams offer then. A store capability
 * for pins (surviving restarts, shared by instances) is future work.
 */
export class PinBook {
  private readonly pins = new Map<string, Pin>()

  constructor(private readonly holdAt: number) {}

  /** Record a listing's definition of `tool` (its Warden name); returns the pin as it stands. */
  observe(tool: string, def: ToolDefinition): Pin {
    const hash = definitionHash(def)
    const known = this.pins.get(tool)
    if (!known) {
      const pin: Pin = { tool, pinned: hash, current: hash }
      const score = this.poisonScore(def.description ?? '')
      if (score >= this.holdAt) Object.assign(pin, { blocked: 'poisoned', score })
      this.pins.set(tool, pin)
      return pin
    }
    known.current = hash
    // INVARIANT: a block is lifted only by `accept`, never by the upstream changing back: a
    // definition that flips between two versions would otherwise pick when it is callable.
    if (hash !== known.pinned && known.blocked === undefined) known.blocked = 'changed'
    return known
  }

  /**
   * The detector's score of a description, or 0 when only the trained signals (the n-gram model,
   * instructions in data) found it suspect. A tool description is an instruction to a model by
   * design ("Use this tool when you need to…"), which is what those signals were trained to
   * notice in data: alone they flag honest descriptions (server-filesystem's `read_text_file`).
   * A known injection phrase is evidence.
   */
  private poisonScore(description: string): number {
    const { score, categories } = detectInjection(description)
    return categories.some((c) => !TRAINED_SIGNALS.has(c)) ? score : 0
  }

  /** Why `tool` may not be called, if it may not; a tool never seen may not be called either. */
  check(tool: string): PinBlock | 'unknown' | undefined {
    const pin = this.pins.get(tool)
    return pin ? pin.blocked : 'unknown'
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
    delete pin.blocked
    delete pin.score
    return true
  }

  list(): Pin[] {
    return [...this.pins.values()].map((p) => ({ ...p }))
  }
}
