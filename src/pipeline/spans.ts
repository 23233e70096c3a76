import { parse as parseYaml } from 'yaml'
import { detectInjection } from '../detect/injection.js'

/**
 * Where in a flagged tool output the injection sits (issue 14: provenance per span, not per
 * output). The detector scored the output as a whole; here its pieces are scored alone, so that
 * only the values inside the injected passage count as the attacker's, and values elsewhere in
 * the same output (the legitimate part of a bill that also carries an injection) stay plain
 * untrusted data.
 *
 * Pieces: the output's string values; a string that is itself a serialized record (JSON, YAML or
 * a Python-style dict, as many tools return) is read as its values; each value is cut into
 * paragraphs (blank lines). A paragraph the detector flags alone is injected. Paragraphs that
 * carry some evidence but not enough alone are grouped with their neighbours in the same value
 * (at most one clean paragraph between them) and the group is flagged when it scores as a whole:
 * an injection written over several short paragraphs is one span. Nothing here knows any attack's
 * wording: the detector decides, this only narrows where.
 *
 * Fail closed: when no piece can be flagged (the evidence is spread over the whole output), or the
 * output is too large or has too many pieces to localise in bounded time, the answer is `null`
 * and the whole output counts as injected.
 */
export function injectedSpans(delivered: unknown, threshold: number): string[] | null {
  const values: string[] = []
  if (!stringValues(delivered, values, 0)) return null
  const budget = { chars: SPAN_LIMITS.chars }
  const spans: string[] = []
  for (const value of values) {
    const paragraphs = value.split(PARAGRAPH_BREAK).filter((p) => p.trim() !== '')
    if (paragraphs.length > SPAN_LIMITS.paragraphs) return null
    const scores: number[] = []
    for (const p of paragraphs) {
      const s = score(p, budget)
      if (s === null) return null
      scores.push(s)
    }
    let i = 0
    while (i < paragraphs.length) {
      if (scores[i]! >= threshold) {
        spans.push(paragraphs[i]!)
        i++
        continue
      }
      if (scores[i] === 0) {
        i++
        continue
      }
      // A run of paragraphs with evidence, allowing one clean paragraph between two of them.
      let end = i
      for (let j = i + 1; j < paragraphs.length && j <= end + 2; j++)
        if (scores[j]! > 0 && scores[j]! < threshold) end = j
      if (end > i) {
        const group = paragraphs.slice(i, end + 1).join('\n\n')
        const s = score(group, budget)
        if (s === null) return null
        if (s >= threshold) spans.push(group)
      }
      i = end + 1
    }
  }
  return spans.length > 0 ? spans : null
}

/** A blank line, also when the line breaks are escaped (`\\n`, as in a serialized string). */
const PARAGRAPH_BREAK = /(?:\r?\n|\\n)[ \t]*(?:\r?\n|\\n)/

/** Bounds on the work one output may cost; past them the whole output counts as injected. */
export const SPAN_LIMITS = Object.freeze({
  /** Characters scored over all pieces and groups (each is at most scored twice). */
  chars: 256 * 1024,
  /** String values of one output, records inside strings included. */
  values: 2048,
  /** Paragraphs of one value. */
  paragraphs: 512,
  /** A string parsed as a record only up to this size. */
  parse: 64 * 1024,
})

function score(text: string, budget: { chars: number }): number | null {
  budget.chars -= text.length
  if (budget.chars < 0) return null
  return detectInjection(text).score
}

/** Collect the string values of `v` (records serialized inside strings are opened once). */
function stringValues(v: unknown, out: string[], depth: number): boolean {
  if (typeof v === 'string') {
    const record = depth === 0 ? asRecord(v) : undefined
    if (record !== undefined) return stringValues(record, out, depth + 1)
    out.push(v)
    return out.length <= SPAN_LIMITS.values
  }
  if (Array.isArray(v)) {
    for (const x of v) if (!stringValues(x, out, depth)) return false
  } else if (v !== null && typeof v === 'object') {
    for (const x of Object.values(v)) if (!stringValues(x, out, depth)) return false
  }
  return true
}

/** A string that parses as a list or mapping (JSON, YAML, a Python-style dict); else undefined. */
function asRecord(s: string): unknown {
  if (s.length > SPAN_LIMITS.parse || !/^\s*[[{-]|^[^\n:]{1,80}:\s/.test(s)) return undefined
  try {
    const parsed: unknown = parseYaml(s, { maxAliasCount: 0, uniqueKeys: false })
    return parsed !== null && typeof parsed === 'object' ? parsed : undefined
  } catch {
    return undefined
  }
}
