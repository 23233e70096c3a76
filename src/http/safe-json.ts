import { FORBIDDEN_KEYS } from '../domain/types.js'
import { WardenError } from '../domain/errors.js'

export interface JsonLimits {
  maxDepth: number
  maxItems: number
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/**
 * Strict JSON parsing for request bodies. `JSON.parse` alone keeps the last of duplicate keys
 * (so a guard and a tool could read different values), accepts `__proto__` keys, lone
 * surrogates and any depth. A single iterative pass over the text rejects those first, without
 * recursion, then `JSON.parse` does the actual parsing. Written by hand: secure-json-parse
 * covers prototype keys but not duplicates, depth or item counts (docs/decisions/0003).
 */
export function parseStrictJson(body: Buffer | string, limits: JsonLimits): unknown {
  let text: string
  try {
    text = typeof body === 'string' ? body : decoder.decode(body)
  } catch {
    throw new WardenError('invalid_encoding', 'the body is not valid UTF-8')
  }
  if (text.trim().length === 0) throw new WardenError('invalid_json', 'the body is empty')
  scanStructure(text, limits)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new WardenError('invalid_json', `the body is not valid JSON: ${(err as Error).message}`)
  }
  checkStrings(value)
  return value
}

interface Frame {
  keys: Set<string> | null
  items: number
}

function scanStructure(text: string, { maxDepth, maxItems }: JsonLimits): void {
  const stack: Frame[] = []
  let expectKey = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      const start = i
      let escaped = false
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i)
        if (d === 0x5c /* \ */) {
          escaped = true
          i++
        } else if (d === 0x22) break
      }
      const top = stack[stack.length - 1]
      if (expectKey && top?.keys) {
        checkKey(readKey(text, start, i, escaped), top.keys)
        expectKey = false
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth)
        throw new WardenError('max_depth', `the body nests deeper than ${maxDepth} levels`)
      stack.push({ keys: c === 0x7b ? new Set() : null, items: 0 })
      expectKey = c === 0x7b
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop()
      expectKey = false
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1]
      if (top && ++top.items >= maxItems)
        throw new WardenError('max_items', `an object or array has more than ${maxItems} members`)
      expectKey = top?.keys !== null && top !== undefined
    }
  }
}

function readKey(text: string, start: number, end: number, escaped: boolean): string {
  if (!escaped) return text.slice(start + 1, end)
  try {
    return JSON.parse(text.slice(start, end + 1)) as string
  } catch {
    throw new WardenError('invalid_json', 'the body has a malformed key')
  }
}

function checkKey(key: string, seen: Set<string>): void {
  if (FORBIDDEN_KEYS.has(key))
    throw new WardenError('forbidden_key', `key \`${key}\` is not allowed`)
  if (seen.has(key))
    throw new WardenError('duplicate_key', `key \`${key}\` appears twice in one object`)
  seen.add(key)
}

/** Reject lone surrogates (`"\ud800"`) anywhere in keys or strings. Iterative: depth is bounded already. */
function checkStrings(root: unknown): void {
  const pending: unknown[] = [root]
  while (pending.length > 0) {
    const node = pending.pop()
    if (typeof node === 'string') {
      if (!node.isWellFormed())
        throw new WardenError('invalid_encoding', 'a string contains a lone surrogate')
    } else if (Array.isArray(node)) pending.push(...node)
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (!k.isWellFormed())
          throw new WardenError('invalid_encoding', 'a key contains a lone surrogate')
        pending.push(v)
      }
    }
  }
}
