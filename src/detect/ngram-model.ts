import { readFileSync } from 'node:fs'
import { normalizeForMatch } from './normalize.js'

/**
 * A small logistic-regression model over hashed character n-grams (3 to 5) of the normalized
 * text. It complements the phrase patterns on injections that use no known phrase. Trained by
 * `scripts/train-detector.ts` on the deepset train split only; the weights are a data file.
 */
export const BUCKETS = 1 << 16
const NGRAMS = [3, 4, 5]
/** Texts are scored on their first 8 KiB of normalized characters; the patterns see everything. */
const MAX_CHARS = 8192

/** FNV-1a over UTF-16 code units: cheap, stable across runs and platforms. */
function hash(s: string, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The padded, capped text the model reads: the detector's folded normalization. */
export function modelText(folded: string): string {
  return ` ${folded.slice(0, MAX_CHARS)} `
}

/** Visit every n-gram bucket of `t` (with repeats); returns how many there were. */
function eachBucket(t: string, visit: (bucket: number) => void): number {
  let n = 0
  for (const size of NGRAMS) {
    for (let i = 0; i + size <= t.length; i++) {
      visit(hash(t, i, i + size) % BUCKETS)
      n++
    }
  }
  return n
}

// Scratch space for counting: one slot per bucket, reset after each text (all synchronous).
const scratch = new Uint32Array(BUCKETS)
const touched: number[] = []

/** Count the text's n-gram buckets into `scratch`; returns the touched buckets and the L2 norm. */
function count(folded: string): { buckets: number[]; norm: number } {
  touched.length = 0
  eachBucket(modelText(folded), (b) => {
    if (scratch[b] === 0) touched.push(b)
    scratch[b]! += 1
  })
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
