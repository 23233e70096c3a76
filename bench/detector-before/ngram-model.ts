import { readFileSync } from 'node:fs'
import { normalizeForMatch } from './normalize.js'

/**
 * A small logistic-regression model over hashed character n-grams (3 to 5) of the normalized
 * text. It complements the phrase patterns on injections that use no known phrase. Trained by
 * `scripts/train-detector.ts` on the deepset train split only; the weights are a data file.
 */
export const BUCKETS = 1 << 16
/** n-gram sizes, as recorded in the weights file (counting below is written for exactly these). */
const NGRAMS = [3, 4, 5]
/** The longest piece scored at once; the detector hands longer texts over in windows (injection.ts). */
const MAX_CHARS = 8192

/** The padded, capped text the model reads: the detector's folded normalization. */
export function modelText(folded: string): string {
  return ` ${folded.slice(0, MAX_CHARS)} `
}

// Scratch space for counting: one slot per bucket, reset after each text (all synchronous).
const scratch = new Uint32Array(BUCKETS)
const touched: number[] = []
// The 3-, 4- and 5-gram hashes starting at each position of the model text.
const LONGEST = MAX_CHARS + 2
const h3 = new Uint32Array(LONGEST)
const h4 = new Uint32Array(LONGEST)
const h5 = new Uint32Array(LONGEST)

/**
 * Count the text's n-gram buckets (3, 4 and 5 characters; FNV-1a over UTF-16 code units, so
 * stable across runs and platforms) into `scratch`; returns the touched buckets, in the order
 * all 3-grams, then 4-grams, then 5-grams, and the L2 norm. FNV-1a runs left to right, so the
 * 4- and 5-gram hashes at a position continue the 3-gram's: five steps per position, not twelve.
 */
function count(folded: string): { buckets: number[]; norm: number } {
  const t = modelText(folded)
  const n = t.length
  for (let i = 0; i + 3 <= n; i++) {
    let h = 0x811c9dc5
    h = Math.imul(h ^ t.charCodeAt(i), 0x01000193)
    h = Math.imul(h ^ t.charCodeAt(i + 1), 0x01000193)
    h = Math.imul(h ^ t.charCodeAt(i + 2), 0x01000193)
    h3[i] = h
    if (i + 4 > n) continue
    h = Math.imul(h ^ t.charCodeAt(i + 3), 0x01000193)
    h4[i] = h
    if (i + 5 > n) continue
    h5[i] = Math.imul(h ^ t.charCodeAt(i + 4), 0x01000193)
  }
  touched.length = 0
  const add = (hashes: Uint32Array, size: number) => {
    for (let i = 0; i + size <= n; i++) {
      const b = hashes[i]! & (BUCKETS - 1)
      if (scratch[b] === 0) touched.push(b)
      scratch[b]! += 1
    }
  }
  add(h3, 3)
  add(h4, 4)
  add(h5, 5)
  let squares = 0
  for (const b of touched) squares += scratch[b]! * scratch[b]!
  return { buckets: touched, norm: Math.sqrt(squares) || 1 }
}

/** Feature vector for training: bucket → count, L2-normalized. */
export function features(text: string): Map<number, number> {
  const { buckets, norm } = count(normalizeForMatch(text).folded)
  const out = new Map<number, number>()
  for (const b of buckets) {
    out.set(b, scratch[b]! / norm)
    scratch[b] = 0
  }
  return out
}

export interface NgramModel {
  weights: Float32Array
  bias: number
}

/** Probability that a text is an injection, given its folded normalization. */
export function predictFolded(model: NgramModel, folded: string): number {
  const { buckets, norm } = count(folded)
  let z = 0
  for (const b of buckets) {
    z += model.weights[b]! * scratch[b]!
    scratch[b] = 0
  }
  return 1 / (1 + Math.exp(-(model.bias + z / norm)))
}

/** Probability that `text` is an injection. */
export function predict(model: NgramModel, text: string): number {
  return predictFolded(model, normalizeForMatch(text).folded)
}

/** Encode / decode the weights file: `{ buckets, bias, weights: base64 of little-endian float32 }`. */
export function encodeModel(model: NgramModel): string {
  const bytes = Buffer.from(
    model.weights.buffer,
    model.weights.byteOffset,
    model.weights.byteLength,
  )
  return `${JSON.stringify({ format: 'warden-ngram-lr-1', buckets: BUCKETS, ngrams: NGRAMS, bias: model.bias, weights: bytes.toString('base64') })}\n`
}

export function decodeModel(text: string): NgramModel {
  const data = JSON.parse(text) as {
    format: string
    buckets: number
    bias: number
    weights: string
  }
  if (data.format !== 'warden-ngram-lr-1' || data.buckets !== BUCKETS)
    throw new Error('unknown detector model format')
  const bytes = Buffer.from(data.weights, 'base64')
  return {
    bias: data.bias,
    weights: new Float32Array(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    ),
  }
}

export const MODEL_FILE = new URL('../../models/injection-ngram-lr.json', import.meta.url)

/** The shipped model, read once on first use. */
let shipped: NgramModel | undefined
export function shippedModel(): NgramModel {
  shipped ??= decodeModel(readFileSync(MODEL_FILE, 'utf8'))
  return shipped
}
