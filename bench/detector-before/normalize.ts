import { foldConfusables, stripMarks } from '../../src/detect/confusables.js'
/**
 * Normalization of untrusted text for matching. The original text is never changed; detectors
 * match on these copies so that spacing, width, case, invisible characters and lookalike letters
 * do not hide a known phrase.
 */

/** Unicode tag characters (U+E0000–U+E007F): invisible, and they can spell ASCII. */
const TAGS = /[\u{E0000}-\u{E007F}]/gu
const HAS_TAGS = /[\u{E0000}-\u{E007F}]/u
/** Bidirectional overrides and isolates, used to make text read differently than it is stored. */
const BIDI = /[\u202A-\u202E\u2066-\u2069]/g
const HAS_BIDI = /[\u202A-\u202E\u2066-\u2069]/
/** Other invisible format characters: zero-width spaces and joiners, soft hyphen, BOM, etc. */
const FORMAT = /[\p{Cf}\u034F\u115F\u1160\u3164]/gu

const LEET: Record<string, string> = {
  '0': 'o',
  '1': 'i',
  '3': 'e',
  '4': 'a',
  '5': 's',
  '7': 't',
  '@': 'a',
  $: 's',
  '!': 'i',
}

export interface NormalizedText {
  /** NFKC, invisible characters removed, lowercased, spacing collapsed (scripts kept). */
  plain: string
  /** NFKC, invisible characters removed, lowercased, lookalikes folded, spacing collapsed. */
  folded: string
  /** `folded` without accents, leetspeak digits and symbols read as letters. */
  unleet: string
  /** Text spelled with Unicode tag characters, decoded to ASCII ('' if none). */
  tagPayload: string
  flags: { tags: boolean; bidi: boolean; invisible: boolean; confusables: boolean }
}

const ASCII = /^\p{ASCII}*$/u
const LEET_CHARS = /[0134579@$!]/g

/** Normalize `text` for matching. */
export function normalizeForMatch(text: string): NormalizedText {
  // Plain ASCII (most tool calls) has no tags, bidi controls, format characters, compatibility
  // forms or look-alike letters: skip straight to case and spacing.
  if (ASCII.test(text)) {
    const lower = unspace(text.toLowerCase()).replace(/\s+/g, ' ').trim()
    return { plain: lower, folded: lower, unleet: unleet(lower), tagPayload: '', flags: NO_FLAGS }
  }
  let tagPayload = ''
  const tags = HAS_TAGS.test(text)
  if (tags) {
    for (const ch of text) {
      const cp = ch.codePointAt(0) ?? 0
      if (cp >= 0xe0020 && cp <= 0xe007e) tagPayload += String.fromCharCode(cp - 0xe0000)
    }
  }
  const bidi = HAS_BIDI.test(text)
  const stripped = text.normalize('NFKC').replace(TAGS, '').replace(BIDI, '')
  const visible = stripped.replace(FORMAT, '')
  const lower = unspace(visible.toLowerCase()).replace(/\s+/g, ' ').trim()
  const fold = foldConfusables(visible)
  const confusables = fold.changed
  const folded = unspace(fold.text).replace(/\s+/g, ' ').trim()
  return {
    plain: lower,
    folded,
    // Accents only here: `folded` is what the model was trained on, and stays as it was.
    unleet: unleet(stripMarks(folded)),
    tagPayload,
    flags: { tags, bidi, invisible: visible.length !== stripped.length, confusables },
  }
}

/**
 * Text written with a space between letters (`i g n o r e   a l l`) becomes words again: when
 * most space-separated tokens are single characters, single spaces are dropped and runs of two
 * or more stay word breaks. Ordinary text is returned unchanged.
 */
function unspace(text: string): string {
  const tokens = text.split(/\s+/)
  if (tokens.length < 8) return text
  let single = 0
  for (const t of tokens) if (t.length === 1) single++
  if (single / tokens.length < 0.8) return text
  return text
    .split(/\s{2,}/)
    .map((word) => word.replace(/\s/g, ''))
    .join(' ')
}

const NO_FLAGS = Object.freeze({ tags: false, bidi: false, invisible: false, confusables: false })

function unleet(folded: string): string {
  return folded.replace(LEET_CHARS, (ch) => LEET[ch] ?? ch)
}

/** Letters only, no spaces: catches `i g n o r e` and `i.g.n.o.r.e` style splitting. */
export function squeeze(text: string): string {
  return text.replace(/[^\p{L}\p{N}]+/gu, '')
}
