import { predictFolded, shippedModel } from './ngram-model.js'
import { normalizeForMatch, squeeze, type NormalizedText } from './normalize.js'

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
}

const P = (category: string, weight: number, on: Pattern['on'], re: RegExp): Pattern => ({
  category,
  weight,
  on,
  re,
})

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
  P(
    'instruction_override',
    0.9,
    'plain',
    /(ignorier|vergiss|vergessen sie|missachte).{0,40}(anweisung|instruktion|regeln|vorgaben|befehle|alles)/,
  ),
  P(
    'instruction_override',
    0.9,
    'plain',
    /(ignora|olvida|omite|ignore[rz]?|oublie[rz]?|dimentica|esque[çc]a).{0,40}(instrucciones|indicaciones|reglas|instructions|consignes|r[eè]gles|istruzioni|regole|instru[çc][õo]es|regras)/,
  ),
  P('instruction_override', 0.9, 'plain', /(忽略|无视|忘记|忘掉).{0,20}(指令|指示|说明|规则|提示)/),
  P(
    'instruction_override',
    0.9,
    'plain',
    /(игнорируй|проигнорируй|забудь|игнорировать).{0,40}(инструкци|указани|правил)/,
  ),
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

const ENCODED = [
  {
    name: 'base64',
    re: /(?:[A-Za-z0-9+/]{4}){5,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?/g,
    decode: (s: string) => Buffer.from(s, 'base64').toString('utf8'),
  },
  {
    name: 'hex',
    re: /\b(?:[0-9a-fA-F]{2}){10,}\b/g,
    decode: (s: string) => Buffer.from(s, 'hex').toString('utf8'),
  },
  {
    name: 'percent',
    re: /(?:%[0-9a-fA-F]{2}){4,}/g,
    // Through the bytes, so a run cut at the segment limit still decodes (decodeURIComponent would throw).
    decode: (s: string) => Buffer.from(s.replace(/%/g, ''), 'hex').toString('utf8'),
  },
]
/** Model probabilities below this add nothing (chosen on the benign sets: bench/README.md). */
const MODEL_FLOOR = 0.8
/** Below the demo's deny threshold, so the model alone never denies. */
const MODEL_WEIGHT = 0.75
const MAX_DECODED_SEGMENTS = 8
const MAX_SEGMENT = 8192

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
  const normalized = normalizeForMatch(text)
  scanNormalized(normalized, found)
  scanEncoded(text, found)
  scoreModel(normalized, found)
  let keep = 1
  for (const w of found.values()) keep *= 1 - w
  return { score: round(1 - keep), categories: [...found.keys()] }
}

/**
 * The n-gram model adds evidence for injections that use no known phrase. It counts only when
 * confident, and then with a capped weight: alone it can hold a call, never deny one.
 */
function scoreModel(n: NormalizedText, found: Map<string, number>): void {
  const model = shippedModel()
  let p = predictFolded(model, n.folded)
  // Leetspeak hides the n-grams too: read the digits-as-letters copy when it differs.
  if (p < MODEL_FLOOR && n.unleet !== n.folded) p = Math.max(p, predictFolded(model, n.unleet))
  if (p >= MODEL_FLOOR) found.set('model', MODEL_WEIGHT)
}

function scanNormalized(n: NormalizedText, found: Map<string, number>): void {
  const copies = { unleet: n.unleet, plain: n.plain, folded: n.folded, squeezed: squeeze(n.unleet) }
  for (const p of PATTERNS) {
    if ((found.get(p.category) ?? 0) >= p.weight) continue
    if (p.re.test(copies[p.on])) found.set(p.category, p.weight)
  }
  if (n.flags.tags) {
    found.set('unicode_tags', 0.5)
    if (n.tagPayload) scanNormalized(normalizeForMatch(n.tagPayload), found)
  }
  if (n.flags.bidi) found.set('bidi_override', Math.max(found.get('bidi_override') ?? 0, 0.3))
}

function scanEncoded(text: string, found: Map<string, number>): void {
  let segments = 0
  for (const enc of ENCODED) {
    for (const m of text.matchAll(enc.re)) {
      if (++segments > MAX_DECODED_SEGMENTS) return
      let decoded: string
      try {
        decoded = enc.decode(m[0].slice(0, MAX_SEGMENT))
      } catch {
        continue
      }
      if (!mostlyPrintable(decoded)) continue
      const inner = new Map<string, number>()
      const normalized = normalizeForMatch(decoded)
      scanNormalized(normalized, inner)
      scoreModel(normalized, inner)
      if (inner.size > 0) {
        found.set(`encoded_${enc.name}`, 0.4)
        for (const [k, w] of inner) found.set(k, Math.max(found.get(k) ?? 0, w))
      }
    }
  }
}

function mostlyPrintable(s: string): boolean {
  if (s.length < 8) return false
  let printable = 0
  for (const ch of s) if (/[\p{L}\p{N}\p{P}\p{Zs}]/u.test(ch)) printable++
  return printable / s.length > 0.85
}

const round = (x: number) => Math.round(x * 1000) / 1000
