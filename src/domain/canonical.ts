import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'

// canonicalize ships CommonJS with an ESM-style type declaration; load it the CommonJS way.
const serialize = createRequire(import.meta.url)('canonicalize') as (
  input: unknown,
) => string | undefined

/**
 * RFC 8785 (JCS) canonical JSON: key order and whitespace never change the bytes. JCS has no
 * form for non-finite numbers, which `JSON.parse` produces from literals such as `1e309`; they
 * are encoded as the strings `"Infinity"`, `"-Infinity"` and `"NaN"` so that a hostile request
 * can still be hashed and audited (the params layer denies it).
 */
export function canonicalJson(value: unknown): string {
  const text = serialize(hasNonFinite(value) ? replaceNonFinite(value) : value)
  if (text === undefined) throw new TypeError('value has no JSON form')
  return text
}

function hasNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value)
  if (value === null || typeof value !== 'object') return false
  return Object.values(value).some(hasNonFinite)
}

function replaceNonFinite(value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value)
  if (Array.isArray(value)) return value.map(replaceNonFinite)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceNonFinite(v)]))
}

/** SHA-256 hex of the canonical JSON of `value`. */
export function canonicalHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex')
}
