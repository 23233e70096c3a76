import { scoreInstructions, shippedInstructionModel } from './instructions.js'
import { predictFolded, shippedModel } from './ngram-model.js'
import { normalizeForMatch, squeeze, type NormalizedText } from './normalize.js'
import { OVERRIDE_PHRASES } from './phrases.js'

/**
 * Prompt-injection detector: normalization, multilingual phrase patterns and a small n-gram
 * model, over the text and its bounded base64, hex and percent-encoded segments. It is a
 * signal, not a boundary: allowlists, schemas, guards, taint and approvals are what stop a
 * hijacked agent. Figures per dataset and per obfuscation class: bench/README.md.
 */
export interface InjectionResult {
  /** 0..1; categories combine as independent evidence: 1 − Π(1 − weight). */
  score: number
  categories: string[]
}

interface Pattern {
  category: string
  weight: number
  /** Which normalized copy the pattern reads. */
  on: 'unleet' | 'plain' | 'squeezed' | 'folded'
  re: RegExp
  /** Every match has a character outside ASCII: ASCII text is not read with it. */
  nonAscii: boolean
}

const P = (category: string, weight: number, on: Pattern['on'], re: RegExp): Pattern => ({
  category,
  weight,
  on,
  re,
  nonAscii: needsNonAscii(re),
})

/**
 * Whether every match of `re` must contain a character outside ASCII, read off its source: it
 * starts with a group that every match goes through (no `|` outside it, no quantifier after it)
 * whose every alternative has such a character outside brackets (`esque[çc]a` does not count:
 * `c` is ASCII). Any doubt answers false, which only costs time.
 */
export function needsNonAscii(re: RegExp): boolean {
  const src = re.source
  if (!src.startsWith('(') || /^\(\?/.test(src)) return false
  const close = src.indexOf(')')
  const group = src.slice(1, close)
  const rest = src.slice(close + 1)
  if (/[()\\]/.test(group) || /^[?*{]/.test(rest) || topLevelBar(rest)) return false
  return group
    .replace(/\[[^\]]*\]/g, '')
    .split('|')
    .every((alt) => /[^\p{ASCII}]/u.test(alt))
}

/** Whether `src` has a `|` outside any group or bracket (an alternative that skips the rest). */
function topLevelBar(src: string): boolean {
  let depth = 0
  let bracket = false
  for (let i = 0; i < src.length; i++) {
    const c = src[i]
    if (c === '\\') i++
    else if (bracket) bracket = c !== ']'
    else if (c === '[') bracket = true
    else if (c === '(') depth++
    else if (c === ')') depth--
    else if (c === '|' && depth === 0) return true
  }
  return false
}

const PATTERNS: Pattern[] = [
  // Instruction override, in the languages most seen in public injection sets.
  P(
    'instruction_override',
    0.9,
    'unleet',
    /\b(ignore|disregard|forget|skip|override|bypass|neglect)\b.{0,40}\b(previous|prior|above|earlier|preceding|all|any|your|system|original)\b.{0,30}\b(instructions?|prompts?|rules|directions|guidelines|commands|context)\b/,
  ),
  P(
    'instruction_override',
    0.9,
    'squeezed',
    /(ignore|disregard|forget)(all|the|any|your)?(previous|prior|above|earlier)(instructions|prompts|rules)/,
  ),
  // The same in other languages (src/detect/phrases.ts), on the copy that keeps their scripts.
  ...Object.values(OVERRIDE_PHRASES).map((re) => P('instruction_override', 0.9, 'plain', re)),
  P(
    'instruction_override',
    0.6,
    'unleet',
    /\b(forget|ignore) (everything|all that|what) (you|i|we)\b/,
  ),
  // New task or persona injected mid-text.
  P(
    'new_instructions',
    0.6,
    'unleet',
    /\b(new|updated|real|actual|additional) (instructions?|task|objective|directive)s?\s*[:-]/,
  ),
  P('new_instructions', 0.5, 'unleet', /\bfrom now on,? (you|your|always|only|never)\b/),
  P(
    'new_instructions',
    0.5,
    'plain',
    /(neue anweisung|nueva instrucci[oó]n|nouvelle instruction|ab (jetzt|sofort) (bist|wirst|sollst) du)/,
  ),
  P(
    'role_hijack',
    0.7,
    'unleet',
    /\b(you are now|you're now|act as|pretend (to be|you are)|roleplay as)\b.{0,30}\b(dan|unrestricted|unfiltered|jailbroken|evil|developer mode|without (any )?(restrictions|filters|limits))\b/,
  ),
  P('role_hijack', 0.7, 'unleet', /\b(developer mode|dan mode|do anything now|jailbreak(ed)?)\b/),
  P(
    'role_hijack',
    0.6,
    'plain',
    /(du bist jetzt|tu es maintenant|ahora eres|agora voc[eê] [eé]|ты теперь)/,
  ),
  // System prompt extraction.
  P(
    'prompt_exfiltration',
    0.7,
    'unleet',
    /\b(reveal|print|show|repeat|output|tell me|leak|display|dump)\b.{0,30}\b(system|initial|hidden|original|secret) (prompt|instructions|message|rules)\b/,
  ),
  P(
    'prompt_exfiltration',
    0.7,
    'plain',
    /(zeig|verrate|gib).{0,30}(systemprompt|system-prompt|deine anweisungen)/,
  ),
  // Chat-template and role delimiters smuggled into data.
  P(
    'delimiter',
    0.6,
    'folded',
    /<\/?(system|assistant|im_start|im_end)>|\[\/?inst\]|<\|im_(start|end)\|>|<\|(system|assistant)\|>|(^|\s)#{2,}\s*(system|instruction)s?\b/,
  ),
  P(
    'delimiter',
    0.5,
    'folded',
    /\b(end of (user )?(input|data|document)|begin (new )?(system|admin) (prompt|message))\b/,
  ),
  // The "important message" framing used by AgentDojo's and BIPIA's attacks.
  P(
    'urgent_framing',
    0.6,
    'folded',
    /<\s*information\s*>|this is an important message from|before you (can )?(solve|do|finish) the task/,
  ),
  // Directions to move data to an outside party.
  P(
    'exfiltration_directive',
    // Alone this is ordinary support text ("send the invoice to ada@example.com"); it only adds weight.
    0.4,
    // `folded` keeps `@` (the leetspeak copy reads it as `a`); bounded parts keep it linear.
    'folded',
    /\b(send|forward|transfer|email|export|upload|post|leak)\b.{0,60}\b(to|at)\b\s*(https?:\/\/\S|[^\s@]{1,64}@[^\s@.]{1,63}\.\S)/,
  ),
]

/**
 * Encoded text the detector decodes and scans like the text itself. Base64 takes the URL-safe
 * alphabet too (Node decodes both).
 */
const ENCODED = [
  {
    name: 'base64',
    re: /(?:[A-Za-z0-9+/_-]{4}){5,}(?:[A-Za-z0-9+/_-]{2}==|[A-Za-z0-9+/_-]{3}=)?/g,
    /** Decoded bytes for `chars` characters of the encoding. */
    bytes: (chars: number) => Math.ceil((chars * 3) / 4),
    /** Characters of the encoding that decode to at most `bytes` bytes, whole units only. */
    chars: (bytes: number) => Math.floor(bytes / 3) * 4,
    decode: (s: string) => Buffer.from(s, 'base64').toString('utf8'),
  },
  {
    name: 'hex',
    re: /\b(?:[0-9a-fA-F]{2}){10,}\b/g,
    bytes: (chars: number) => chars >> 1,
    chars: (bytes: number) => bytes * 2,
    decode: (s: string) => Buffer.from(s, 'hex').toString('utf8'),
  },
  {
    name: 'percent',
    re: /(?:%[0-9a-fA-F]{2}){4,}/g,
    bytes: (chars: number) => Math.floor(chars / 3),
    chars: (bytes: number) => bytes * 3,
    // Through the bytes, so a run cut at the budget still decodes (decodeURIComponent would throw).
    decode: (s: string) => Buffer.from(s.replace(/%/g, ''), 'hex').toString('utf8'),
  },
]
/** Model probabilities below this add nothing (chosen on the benign sets: bench/README.md). */
const MODEL_FLOOR = 0.8
/** Below the demo's deny threshold, so the model alone never denies. */
const MODEL_WEIGHT = 0.75

/**
 * The work one call may cost, whatever its shape (docs/detection.md). The phrase patterns read
 * all of the text; decoding and the model are bounded here. What a budget leaves unread is a
 * finding of its own (`unscanned_text`), never silently skipped.
 */
export const SCAN_LIMITS = Object.freeze({
  /** Decoded bytes over all encoded segments of one call, nested ones included. */
  decodedBytes: 1 << 20,
  /** Encodings inside encodings: a segment decoded from a decoded segment is the last layer read. */
  nestedLayers: 2,
  /** The model reads a text's first this many normalized characters as one piece (as trained)… */
  modelWhole: 8192,
  /** …and a longer text also in windows of this size, so a passage is not drowned by the rest… */
  modelWindow: 2048,
  /** …overlapping by this much, so a passage cut by one window's end is whole in the next. */
  modelOverlap: 512,
  /** Normalized characters the model reads per call, over all windows, copies and layers. */
  modelChars: 512 * 1024,
})
/**
 * The instructions-in-data signal's weight at its calibrated threshold (FPR ≤ 2% on benign
 * documents): just below the shipped hold threshold, so it holds together with other evidence
 * but a lone imperative ("Ignore the noise from the fan") does not. From `INSTRUCTION_ALONE` up
 * it holds alone (0.5), never denies alone.
 */
const INSTRUCTION_WEIGHT = 0.45
const INSTRUCTION_ALONE = 0.99
/** Text a budget left unread: enough to hold a call at the shipped thresholds, never to deny one. */
const UNSCANNED_WEIGHT = 0.5

/** What one call has left to spend; shared by every layer of decoding. */
interface Budget {
  decoded: number
  model: number
  unscanned: boolean
  seen: Set<string>
}

/** The detector's answer with a threshold applied, as `warden scan` and `POST /detect/injection` give it. */
export function scanText(
  text: string,
  threshold: number,
): { score: number; detected: boolean; categories: string[] } {
  const { score, categories } = detectInjection(text)
  return { score, detected: score >= threshold, categories }
}

/** Scan `text` (untrusted) for injection. */
export function detectInjection(text: string): InjectionResult {
  const found = new Map<string, number>()
  const budget: Budget = {
    decoded: SCAN_LIMITS.decodedBytes,
    model: SCAN_LIMITS.modelChars,
    unscanned: false,
    seen: new Set(),
  }
  scanLayer(text, 0, budget, found)
  if (budget.unscanned) found.set('unscanned_text', UNSCANNED_WEIGHT)
  let keep = 1
  for (const w of found.values()) keep *= 1 - w
  return { score: round(1 - keep), categories: [...found.keys()] }
}

/** One layer of text: its patterns, the model over it, then the encoded segments inside it. */
function scanLayer(text: string, depth: number, budget: Budget, found: Map<string, number>): void {
  const normalized = normalizeForMatch(text)
  scanNormalized(normalized, found)
  scoreModel(normalized, budget, found)
  scoreInstructionsIn(text, found)
  if (normalized.tagPayload) scoreInstructionsIn(normalized.tagPayload, found)
  scanEncoded(text, depth, budget, found)
}

/**
 * A request addressed to the assistant inside data (instructions.ts); with a phrase pattern or
 * the n-gram model it adds up like any other evidence.
 */
function scoreInstructionsIn(text: string, found: Map<string, number>): void {
  if (found.has('instruction_in_data')) return
  const model = shippedInstructionModel()
  const { score } = scoreInstructions(model, text)
  if (score >= model.threshold)
    found.set('instruction_in_data', score >= INSTRUCTION_ALONE ? 0.5 : INSTRUCTION_WEIGHT)
}

/**
 * The n-gram model adds evidence for injections that use no known phrase. It counts only when
 * confident, and then with a capped weight: alone it can hold a call, never deny one. It reads
 * the whole text in overlapping windows of the size it was trained on and keeps the highest.
 */
function scoreModel(n: NormalizedText, budget: Budget, found: Map<string, number>): void {
  if ((found.get('model') ?? 0) >= MODEL_WEIGHT) return
  const model = shippedModel()
  const { modelWhole, modelWindow, modelOverlap } = SCAN_LIMITS
  // Leetspeak hides the n-grams too: read the digits-as-letters copy when it differs.
  const copies = n.unleet !== n.folded ? [n.folded, n.unleet] : [n.folded]
  for (const copy of copies) {
    const windows = [copy.slice(0, modelWhole)]
    if (copy.length > modelWhole)
      for (let start = 0; start + modelOverlap < copy.length; start += modelWindow - modelOverlap)
        windows.push(copy.slice(start, start + modelWindow))
    for (const window of windows) {
      if (window.length > budget.model) {
        budget.unscanned = true
        return
      }
      budget.model -= window.length
      if (predictFolded(model, window) >= MODEL_FLOOR) {
        found.set('model', MODEL_WEIGHT)
        return
      }
    }
  }
}

function scanNormalized(n: NormalizedText, found: Map<string, number>): void {
  // The squeezed copy is built only if a pattern still needs it.
  const copies = { unleet: n.unleet, plain: n.plain, folded: n.folded, squeezed: '' }
  let squeezed = false
  const asciiPlain = ASCII.test(n.plain)
  for (const p of PATTERNS) {
    if ((found.get(p.category) ?? 0) >= p.weight) continue
    if (p.nonAscii && asciiPlain && p.on === 'plain') continue
    if (p.on === 'squeezed' && !squeezed) {
      copies.squeezed = squeeze(n.unleet)
      squeezed = true
    }
    if (p.re.test(copies[p.on])) found.set(p.category, p.weight)
  }
  if (n.flags.tags) {
    found.set('unicode_tags', 0.5)
    if (n.tagPayload) scanNormalized(normalizeForMatch(n.tagPayload), found)
  }
  if (n.flags.bidi) found.set('bidi_override', Math.max(found.get('bidi_override') ?? 0, 0.3))
}

/**
 * Every encoded segment is decoded, however many there are, until the call's decode budget is
 * spent: harmless blobs in front cannot push an encoded injection out of view. Segments nested
 * deeper than `nestedLayers`, or beyond the budget, mark the text as not fully scanned.
 */
function scanEncoded(text: string, depth: number, budget: Budget, found: Map<string, number>) {
  // Base64 and hex need 20 characters of the base64 alphabet in a row, percent-encoding a '%':
  // one look at the text saves running their expressions over ordinary prose.
  const longRun = hasBase64Run(text)
  if (!longRun && !text.includes('%')) return
  for (const enc of ENCODED) {
    if (enc.name !== 'percent' && !longRun) continue
    for (const m of text.matchAll(enc.re)) {
      let segment = m[0]
      const key = `${enc.name}:${segment}`
      if (budget.seen.has(key)) continue
      budget.seen.add(key)
      if (enc.bytes(segment.length) > budget.decoded) {
        budget.unscanned = true
        segment = segment.slice(0, enc.chars(budget.decoded))
      }
      budget.decoded -= enc.bytes(segment.length)
      const decoded = printableRuns(enc.decode(segment))
      if (decoded === '') continue
      if (depth + 1 > SCAN_LIMITS.nestedLayers) {
        // Readable text inside the last layer read: one more layer the detector will not open.
        budget.unscanned = true
        return
      }
      const inner = new Map<string, number>()
      scanLayer(decoded, depth + 1, budget, inner)
      if (inner.size > 0) {
        found.set(`encoded_${enc.name}`, 0.4)
        for (const [k, w] of inner) found.set(k, Math.max(found.get(k) ?? 0, w))
      }
      if (budget.decoded <= 0) return
    }
  }
}

/** Whether `text` has 20 characters in a row from [A-Za-z0-9+/_-] (what a segment starts with). */
function hasBase64Run(text: string): boolean {
  let run = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 128 && BASE64_ALPHABET[c] === 1) {
      if (++run >= 20) return true
    } else run = 0
  }
  return false
}
const BASE64_ALPHABET = new Uint8Array(128)
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-')
  BASE64_ALPHABET[ch.charCodeAt(0)] = 1

/**
 * The readable runs of decoded bytes, one per line ('' if none): text hidden after binary noise
 * in the same segment is still read, and random data yields nothing.
 */
function printableRuns(decoded: string): string {
  const runs = decoded.match(PRINTABLE_RUN)
  return runs === null ? '' : runs.join('\n')
}
// Letters, digits, punctuation, spacing and most symbols; not U+FFFD (an undecodable byte) nor
// other symbols (`So`), which random bytes decode to as often as not.
const PRINTABLE_RUN = /[\p{L}\p{N}\p{P}\p{Sm}\p{Sc}\p{Sk}\p{Zs}\t\n\r]{12,}/gu

const ASCII = /^\p{ASCII}*$/u

const round = (x: number) => Math.round(x * 1000) / 1000
