import { PII_KINDS, type PiiKind } from '../domain/config.js'
/**
 * PII and secret masking for tool results and stored parameters. Returns a masked copy and the
 * JSON Pointer paths that were changed, so the audit can say what was hidden (OPA's `masked`).
 */
export interface Masked<T> {
  value: T
  masked: string[]
}

// Bounded parts and a start only at a boundary keep matching linear on long runs of letters.
const EMAIL =
  /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z])/g
// Not inside a longer run of digit groups (a card-like number that fails Luhn is not a phone),
// nor the digits of an identifier (`INV-2026-004512`: joined to a word by `-`, `_`, `.`, `/`).
const PHONE =
  /(?<![\w+]|\d[ .-]|\w[-_./#])\+?\d{1,3}[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?![ .-]?\d|\w)/g
/**
 * Phone shape: an international `+` or an area code in parentheses, a trunk `0`, a first group
 * of at most three digits (country or area code), or one unbroken run. A first group of four or
 * more digits without those (`2026-1006-0042`) is a date, a year or a reference, not a phone.
 */
function phoneShaped(m: string): boolean {
  if (/^[+(]/.test(m)) return true
  const groups = m.split(/[ .-]/)
  return groups.length === 1 || groups[0]!.length <= 3 || groups[0]!.startsWith('0')
}
const CARD = /(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)/g
const SSN = /(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)/g
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g
/** Keys whose values are secrets whatever they look like. */
const SECRET_KEY = /(pass(word)?|secret|token|api[_-]?key|authorization|card[_-]?number|cvv|ssn)$/i

/** True when an IBAN passes its ISO 13616 mod-97 check (so a random code is not masked). */
export function ibanValid(iban: string): boolean {
  const compact = iban.replace(/ /g, '')
  const rearranged = compact.slice(4) + compact.slice(0, 4)
  let remainder = 0
  for (const ch of rearranged) {
    const digits = /\d/.test(ch) ? ch : String(ch.charCodeAt(0) - 55)
    for (const d of digits) remainder = (remainder * 10 + Number(d)) % 97
  }
  return remainder === 1
}

/** True when a digit string passes the Luhn checksum (card numbers). */
export function luhn(digits: string): boolean {
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return sum % 10 === 0
}

const ALL: ReadonlySet<PiiKind> = new Set(PII_KINDS)

/** Mask the PII of the given kinds inside one string; returns the same string when nothing matched. */
export function maskText(text: string, kinds: ReadonlySet<PiiKind> = ALL): string {
  if (text.length < 7 || kinds.size === 0) return text
  let out = text
  if (kinds.has('email'))
    out = out.replace(EMAIL, (m) => `${m[0]}***@${m.slice(m.indexOf('@') + 1)}`)
  if (kinds.has('card'))
    out = out.replace(CARD, (m) => {
      const digits = m.replace(/\D/g, '')
      return digits.length >= 13 && luhn(digits) ? `[card ****${digits.slice(-4)}]` : m
    })
  if (kinds.has('national_id')) out = out.replace(SSN, '[national id]')
  if (kinds.has('iban'))
    out = out.replace(IBAN, (m) => (ibanValid(m) ? `[iban ${m.slice(0, 2)}****]` : m))
  if (kinds.has('phone'))
    out = out.replace(PHONE, (m) =>
      m.replace(/\D/g, '').length >= 9 && phoneShaped(m)
        ? `[phone ***${m.replace(/\D/g, '').slice(-2)}]`
        : m,
    )
  return out
}

/**
 * Mask every string leaf of `value` (and, for `secret`, every value under a secret-looking key);
 * the copy is JSON-safe. The masked value says what it was (`[card ****4242]`, `[iban DE****]`).
 */
export function maskPii<T>(value: T, base = '', kinds: ReadonlySet<PiiKind> = ALL): Masked<T> {
  const masked: string[] = []
  const secrets = kinds.has('secret')
  const walk = (node: unknown, path: string, key: string): unknown => {
    if (typeof node === 'string') {
      if (secrets && SECRET_KEY.test(key)) {
        masked.push(path)
        return '[redacted]'
      }
      const out = maskText(node, kinds)
      if (out !== node) masked.push(path)
      return out
    }
    if (Array.isArray(node)) return node.map((v, i) => walk(v, `${path}/${i}`, key))
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(node)) out[k] = walk(v, `${path}/${escapePointer(k)}`, k)
      return out
    }
    if (typeof node === 'number' && secrets && SECRET_KEY.test(key)) {
      masked.push(path)
      return '[redacted]'
    }
    // JSON cannot store Infinity or NaN (`1e309` parses to Infinity); keep them readable instead
    // of letting the stored record silently turn them into null.
    if (typeof node === 'number' && !Number.isFinite(node)) return String(node)
    return node
  }
  return { value: walk(value, base, '') as T, masked }
}

const escapePointer = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1')
