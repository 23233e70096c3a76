import { foldConfusables, stripMarks } from './confusables.js'
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

/** Normalize `text` for matching. */
export function normalizeForMatch(text: string): NormalizedText {
  // Plain ASCII (most tool calls) has no tags, bidi controls, format characters, compatibility
  // forms or look-alike letters: skip straight to case and spacing.
  if (ASCII.test(text)) {
    const lower = asciiFold(text)
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
  const lower = spacing(visible.toLowerCase())
  const fold = foldConfusables(visible)
  const confusables = fold.changed
  const folded = spacing(fold.text)
  return {
    plain: lower,
    folded,
    // Accents only here: `folded` is what the model was trained on, and stays as it was.
    unleet: unleet(stripMarks(folded)),
    tagPayload,
    flags: { tags, bidi, invisible: visible.length !== stripped.length, confusables },
  }
}

/** The `folded` copy of `normalizeForMatch(text)` alone (the other copies are not built). */
export function foldForMatch(text: string): string {
  if (ASCII.test(text)) return asciiFold(text)
  const visible = text.normalize('NFKC').replace(TAGS, '').replace(BIDI, '').replace(FORMAT, '')
  return spacing(foldConfusables(visible).text)
}

const asciiFold = (text: string) => spacing(text.toLowerCase())

/**
 * Spacing of a copy: spaced-out letters rejoined (`unspace`), then every whitespace run one
 * space and none at either end (`/\s+/g` → ' ', then trim). One look at each character decides
 * both; most text needs neither and comes back as it is, with no new string.
 */
function spacing(text: string): string {
  // The tokens of `text.split(/\s+/)`, counted without building them.
  let tokens = 1
  let single = 0
  let length = 0
  let inSpace = true
  let collapse = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 32 || isSpace(c)) {
      // Another space after a space (or at the start), or a space that is not ' ': not as it reads.
      if (inSpace || c !== 32) collapse = true
      if (i === 0 || !inSpace) {
        tokens++
        if (length === 1) single++
        length = 0
      }
      inSpace = true
    } else {
      length++
      inSpace = false
    }
  }
  if (length === 1) single++
  if (inSpace && text.length > 0) collapse = true
  if (tokens >= 8 && single / tokens >= 0.8) return unspace(text).replace(/\s+/g, ' ').trim()
  return collapse ? text.replace(/\s+/g, ' ').trim() : text
}

/** What `\s` matches in a regular expression, for one UTF-16 code unit. */
function isSpace(c: number): boolean {
  if (c < 0x80) return c === 32 || (c >= 9 && c <= 13)
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  )
}

/**
 * Text written with a space between letters (`i g n o r e   a l l`) becomes words again: when
 * most space-separated tokens are single characters (`spacing` counts them), single spaces are
 * dropped and runs of two or more stay word breaks.
 */
function unspace(text: string): string {
  return text
    .split(/\s{2,}/)
    .map((word) => word.replace(/\s/g, ''))
    .join(' ')
}

const NO_FLAGS = Object.freeze({ tags: false, bidi: false, invisible: false, confusables: false })

const LEET_CHARS = /[0134579@$!]/g
const HAS_LEET = /[0134579@$!]/

function unleet(folded: string): string {
  return HAS_LEET.test(folded) ? folded.replace(LEET_CHARS, (ch) => LEET[ch] ?? ch) : folded
}

/** Letters only, no spaces: catches `i g n o r e` and `i.g.n.o.r.e` style splitting. */
export function squeeze(text: string): string {
  // ASCII letters and digits are kept as runs; any other character sends the text to the
  // Unicode-aware expression.
  let out = ''
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) return text.replace(/[^\p{L}\p{N}]+/gu, '')
    const keep = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (c >= 65 && c <= 90)
    if (!keep) {
      if (i > start) out += text.slice(start, i)
      start = i + 1
    }
  }
  return start === 0 ? text : out + text.slice(start)
}
