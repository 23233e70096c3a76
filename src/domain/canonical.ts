import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'

// canonicalize ships CommonJS with an ESM-style type declaration; load it the CommonJS way.
const serialize = createRequire(import.meta.url)('canonicalize') as (
  input: unknown,
) => string | undefined

/** RFC 8785 (JCS) canonical JSON: key order and whitespace never change the bytes. */
export function canonicalJson(value: unknown): string {
  const text = serialize(value)
  if (text === undefined) throw new TypeError('value has no JSON form')
  return text
}

/** SHA-256 hex of the canonical JSON of `value`. */
export function canonicalHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex')
}
