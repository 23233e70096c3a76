/**
 * Train the instructions-in-data model (src/detect/instructions.ts) and write
 * models/instructions-lr.json. Deterministic: fixed splits, fixed-seed shuffle.
 *
 *   node --import tsx scripts/train-instructions.ts [--out FILE]
 *
 * Attacks (positives, one example per sentence): BIPIA's text and code attack strings (code
 * blocks stripped: the order is the sentence around them), AgentDojo's injection goals and
 * injection texts, deepset train injections. Benign (negatives, one example per sentence): the
 * *train half* of the benign documents (BIPIA email/table/code contexts, AgentDojo tool outputs
 * without an injection, XSTest safe prompts) and deepset train benign prompts. The other half of
 * the benign documents is never trained on: the threshold is set there at FPR ≤ 2%, and
 * bench/instructions.ts measures on it.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  encodeInstructionModel,
  INSTRUCTION_BUCKETS,
  INSTRUCTION_MODEL_FILE,
  sentenceFeatures,
  sentences,
  type InstructionModel,
} from '../src/detect/instructions.js'

const DATA = fileURLToPath(new URL('../../shared/datasets/', import.meta.url))
const read = (path: string) => readFileSync(`${DATA}${path}`, 'utf8')
const jsonl = (path: string) =>
  read(path)
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>)

export interface Attack {
  /** `bipia-text:<category>`, `bipia-code:<category>`, `agentdojo`, `deepset`. */
  category: string
  text: string
}
export interface BenignDoc {
  source: 'bipia-email' | 'bipia-table' | 'bipia-code' | 'agentdojo' | 'xstest'
  text: string
  /** Half the documents of each source train; the other half calibrates and tests. */
  half: 'train' | 'test'
}

export function bipiaAttacks(): Attack[] {
  const out: Attack[] = []
  for (const kind of ['text', 'code'] as const) {
    const file = JSON.parse(read(`bipia/${kind}_attack_train.json`)) as Record<string, string[]>
    for (const [category, texts] of Object.entries(file))
      for (const text of texts) out.push({ category: `bipia-${kind}:${category}`, text })
  }
  return out
}

/** Attacks from the other datasets: always in training, never held out (not BIPIA categories). */
export function otherAttacks(): Attack[] {
  const out: Attack[] = []
  const tasks = JSON.parse(read('agentdojo/tasks.json')) as {
    v1: Record<string, { injection_tasks: { goal: string }[] }>
  }
  for (const suite of Object.values(tasks.v1))
    for (const t of suite.injection_tasks) out.push({ category: 'agentdojo', text: t.goal })
  const injected = new Set<string>()
  for (const trace of jsonl('agentdojo/traces_v1.jsonl'))
    for (const text of Object.values((trace.injections ?? {}) as Record<string, string>))
      injected.add(text)
  for (const text of injected) out.push({ category: 'agentdojo', text })
  for (const r of jsonl('deepset/train.jsonl'))
    if (r.label === 1) out.push({ category: 'deepset', text: String(r.text) })
  return out
}

export function benignDocs(): BenignDoc[] {
  const docs: Omit<BenignDoc, 'half'>[] = []
  for (const kind of ['email', 'table', 'code'] as const)
    for (const r of jsonl(`bipia/${kind}/train.jsonl`)) {
      const ctx = Array.isArray(r.context) ? (r.context as string[]).join('\n') : String(r.context)
      docs.push({ source: `bipia-${kind}`, text: ctx })
    }
  const outputs = new Set<string>()
  for (const trace of jsonl('agentdojo/traces_v1.jsonl'))
    for (const m of trace.messages as {
      role: string
      content: string
      contains_injection?: boolean
    }[])
      if (m.role === 'tool' && m.contains_injection !== true && m.content.trim())
        outputs.add(m.content)
  for (const text of outputs) docs.push({ source: 'agentdojo', text })
  for (const row of read('xstest/xstest_prompts.csv').split('\n').slice(1)) {
    const fields = csvFields(row)
    if (fields[3] === 'safe') docs.push({ source: 'xstest', text: fields[1]! })
  }
  // Alternate within each source, so both halves see every source in the same proportion.
  const seen = new Map<string, number>()
  return docs.map((d) => {
    const i = seen.get(d.source) ?? 0
    seen.set(d.source, i + 1)
    return { ...d, half: i % 2 === 0 ? 'train' : 'test' }
  })
}

/** One CSV row's fields (quoted fields may hold commas and doubled quotes). */
function csvFields(row: string): string[] {
  const out: string[] = []
  for (const m of row.matchAll(/("(?:[^"]|"")*"|[^,]*)(,|$)/g)) {
    const f = m[1]!
    out.push(f.startsWith('"') ? f.slice(1, -1).replace(/""/g, '"') : f)
    if (m[2] === '') break
  }
  return out
}

function deepsetBenign(): string[] {
  return jsonl('deepset/train.jsonl')
    .filter((r) => r.label !== 1)
    .map((r) => String(r.text))
}

/** The sentences of an attack that can carry its order: code blocks out, three words or more. */
export function attackSentences(text: string): string[] {
  return sentences(text.replace(/```[\s\S]*?(```|$)/g, '\n')).filter(
    (s) => s.split(' ').length >= 3,
  )
}

interface Example {
  x: number[]
  y: 0 | 1
  weight: number
}

/** Featurize once: sentence → features, shared by every fold of the cross-validation. */
const featureCache = new Map<string, number[]>()
function featuresOf(sentence: string): number[] {
  let f = featureCache.get(sentence)
  if (!f) featureCache.set(sentence, (f = sentenceFeatures(sentence)))
  return f
}

export function examples(attacks: Attack[], benign: string[]): Example[] {
  const pos = attacks.flatMap((a) => attackSentences(a.text))
  const neg = benign.flatMap((t) => sentences(t))
  // Attacks are few: weight them up to half the benign mass, so the model is not all-benign.
  const posWeight = Math.min(30, (0.5 * neg.length) / Math.max(1, pos.length))
  return [
    ...pos.map((s) => ({ x: featuresOf(s), y: 1 as const, weight: posWeight })),
    ...neg.map((s) => ({ x: featuresOf(s), y: 0 as const, weight: 1 })),
  ]
}

const EPOCHS = 10
const LEARNING_RATE = 0.1
const L2 = 1e-5

/** Logistic regression by SGD over binary hashed features; fixed-seed shuffle. */
export function fit(data: Example[]): Float32Array {
  const order = data.slice()
  const weights = new Float64Array(INSTRUCTION_BUCKETS)
  let seed = 7
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      ;[order[i], order[j]] = [order[j]!, order[i]!]
    }
    const rate = LEARNING_RATE / (1 + epoch)
    for (const { x, y, weight } of order) {
      let z = 0
      for (const b of x) z += weights[b]!
      const step = rate * weight * (1 / (1 + Math.exp(-z)) - y)
      for (const b of x) weights[b] = weights[b]! - step - rate * L2 * weights[b]!
    }
  }
  return Float32Array.from(weights)
}

/** A document's score: its highest sentence. */
export function docScore(weights: Float32Array, text: string): number {
  let best = -Infinity
  for (const s of sentences(text)) {
    let z = 0
    for (const b of featuresOf(s)) z += weights[b]!
    if (z > best) best = z
  }
  return best === -Infinity ? 0 : 1 / (1 + Math.exp(-best))
}

/** The lowest threshold at which at most `fpr` of the benign scores reach it. */
export function thresholdAt(benignScores: number[], fpr: number): number {
  const sorted = benignScores.slice().sort((a, b) => b - a)
  const allowed = Math.floor(fpr * sorted.length)
  return allowed >= sorted.length ? 0 : sorted[allowed]! + 1e-9
}

export const TARGET_FPR = 0.02

/** Train on the given attacks and the benign train half; calibrate on the benign test half. */
export function trainModel(attacks: Attack[], docs = benignDocs()): InstructionModel {
  // deepset's benign prompts are requests a user types to an assistant. Left out, the
  // leave-one-category-out recall rises (0.68 → 0.72) but half of them are flagged: the gateway
  // also scans call parameters, where such requests are ordinary. They stay in.
  const benign = [...docs.filter((d) => d.half === 'train').map((d) => d.text), ...deepsetBenign()]
  const weights = fit(examples(attacks, benign))
  const scores = docs.filter((d) => d.half === 'test').map((d) => docScore(weights, d.text))
  // Rounded up (never below the calibrated point) so the weights file is stable text.
  return { weights, threshold: Math.ceil(thresholdAt(scores, TARGET_FPR) * 1e6) / 1e6 }
}

export function shippedTraining(): InstructionModel {
  return trainModel([...bipiaAttacks(), ...otherAttacks()])
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { out: { type: 'string' } } })
  const out = values.out ?? fileURLToPath(INSTRUCTION_MODEL_FILE)
  const model = shippedTraining()
  writeFileSync(out, encodeInstructionModel(model))
  console.log(`wrote ${out} (threshold ${model.threshold})`)
}
