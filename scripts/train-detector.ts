/**
 * Train the detector's n-gram model on the deepset train split and write
 * models/injection-ngram-lr.json. Deterministic: same data and Node version, same bytes
 * (test/detect.test.ts checks that the committed file is reproduced).
 *
 *   node --import tsx scripts/train-detector.ts [--out FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  BUCKETS,
  encodeModel,
  features,
  MODEL_FILE,
  type NgramModel,
} from '../src/detect/ngram-model.js'

const EPOCHS = 12
const LEARNING_RATE = 0.5
const L2 = 1e-5

/** Train on (text, label) pairs; a fixed-seed shuffle keeps it reproducible. */
export function train(samples: { text: string; label: 0 | 1 }[]): NgramModel {
  const data = samples.map((s) => ({ x: features(s.text), y: s.label }))
  const weights = new Float64Array(BUCKETS)
  let bias = 0
  let seed = 42
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = data.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[data[i], data[j]] = [data[j]!, data[i]!]
    }
    const rate = LEARNING_RATE / (1 + epoch)
    for (const { x, y } of data) {
      let z = bias
      for (const [b, v] of x) z += weights[b]! * v
      const error = 1 / (1 + Math.exp(-z)) - y
      for (const [b, v] of x) weights[b] = weights[b]! - rate * (error * v + L2 * weights[b]!)
      bias -= rate * error
    }
  }
  return { weights: Float32Array.from(weights), bias }
}

export function deepsetTrain(): { text: string; label: 0 | 1 }[] {
  const file = new URL('../../shared/datasets/deepset/train.jsonl', import.meta.url)
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { text: string; label: number })
    .map((r) => ({ text: r.text, label: r.label === 1 ? 1 : 0 }))
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { out: { type: 'string' } } })
  const out = values.out ?? fileURLToPath(MODEL_FILE)
  writeFileSync(out, encodeModel(train(deepsetTrain())))
  console.log(`wrote ${out}`)
}
