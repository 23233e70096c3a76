/**
 * The instructions-in-data signal (src/detect/instructions.ts):
 * 1. leave-one-category-out cross-validation on BIPIA train (15 text + 10 code attack
 *    categories): train without the category, set the threshold at FPR ≤ 2% on the benign test
 *    half, measure recall on the held-out category's attacks placed in benign test documents;
 * 2. the shipped model and the full `detectInjection` on deepset test, AgentDojo and BIPIA;
 * 3. the cost of the full `detectInjection` in µs per KB.
 *
 *   node --import tsx bench/instructions.ts [--folds N]
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { detectInjection } from '../src/detect/injection.js'
import { scoreInstructions, shippedInstructionModel } from '../src/detect/instructions.js'
import {
  benignDocs,
  bipiaAttacks,
  docScore,
  otherAttacks,
  TARGET_FPR,
  trainModel,
  type BenignDoc,
} from '../scripts/train-instructions.js'

const { values } = parseArgs({ options: { folds: { type: 'string' } } })
const DATA = fileURLToPath(new URL('../../shared/datasets/', import.meta.url))
const docs = benignDocs()
const test = docs.filter((d) => d.half === 'test')
const attacks = bipiaAttacks()
const others = otherAttacks()

/**
 * An attack placed in a document as BIPIA does: at the start, the middle or the end, on a
 * boundary (a line break in tables, code and tool outputs; a sentence end in emails and prompts).
 */
function place(ctx: BenignDoc, attack: string, where: 'start' | 'middle' | 'end'): string {
  const sep = ctx.source === 'bipia-email' || ctx.source === 'xstest' ? ' ' : '\n'
  if (where === 'start') return `${attack}${sep}${ctx.text}`
  if (where === 'end') return `${ctx.text}${sep}${attack}`
  const mid = ctx.text.length >> 1
  const boundary = sep === ' ' ? ctx.text.indexOf('. ', mid) + 1 : ctx.text.indexOf('\n', mid)
  const at = boundary > 0 ? boundary : ctx.text.length
  return `${ctx.text.slice(0, at)}${sep}${attack}${sep}${ctx.text.slice(at)}`
}

/** Host documents: text attacks go into emails, tables and tool outputs; code attacks into code. */
function hosts(kind: 'text' | 'code'): BenignDoc[] {
  const of = (source: BenignDoc['source'], n: number) =>
    test.filter((d) => d.source === source).slice(0, n)
  return kind === 'code'
    ? of('bipia-code', 25)
    : [...of('bipia-email', 25), ...of('bipia-table', 25), ...of('agentdojo', 25)]
}

const pct = (x: number) => x.toFixed(3)

function crossValidate() {
  const categories = [...new Set(attacks.map((a) => a.category))]
  const limit = values.folds ? Number(values.folds) : categories.length
  console.log(`## leave-one-category-out on BIPIA train (${limit} folds)\n`)
  console.log('| held-out category | attacks placed | threshold | benign FPR | recall |')
  console.log('|---|--:|--:|--:|--:|')
  let hits = 0
  let total = 0
  const recalls: number[] = []
  for (const category of categories.slice(0, limit)) {
    const model = trainModel([...attacks.filter((a) => a.category !== category), ...others], docs)
    const benign = test.map((d) => docScore(model.weights, d.text))
    const fp = benign.filter((s) => s >= model.threshold).length
    const held = attacks.filter((a) => a.category === category)
    const kind = category.startsWith('bipia-code') ? 'code' : 'text'
    let caught = 0
    let n = 0
    for (const a of held)
      for (const ctx of hosts(kind))
        for (const where of ['start', 'middle', 'end'] as const) {
          n++
          if (docScore(model.weights, place(ctx, a.text, where)) >= model.threshold) caught++
        }
    hits += caught
    total += n
    recalls.push(caught / n)
    console.log(
      `| ${category} | ${n} | ${model.threshold.toFixed(3)} | ${pct(fp / benign.length)} | ${pct(caught / n)} |`,
    )
  }
  const macro = recalls.reduce((a, b) => a + b, 0) / recalls.length
  console.log(`| **all (pooled)** | ${total} | | | **${pct(hits / total)}** |`)
  console.log(`| mean over categories | | | | ${pct(macro)} |`)
  console.log(`\nbenign test half: ${test.length} documents (${countBy(test)})\n`)
}

function countBy(ds: BenignDoc[]): string {
  const n = new Map<string, number>()
  for (const d of ds) n.set(d.source, (n.get(d.source) ?? 0) + 1)
  return [...n].map(([k, v]) => `${k} ${v}`).join(', ')
}

const jsonl = (path: string) =>
  readFileSync(`${DATA}${path}`, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>)

/** The shipped model alone, and the whole detector at the demo's hold threshold (0.5). */
function shipped() {
  const model = shippedInstructionModel()
  type Sample = { text: string; attack: boolean }
  const deepset: Sample[] = jsonl('deepset/test.jsonl').map((r) => ({
    text: String(r.text),
    attack: r.label === 1,
  }))
  const agentdojo: Sample[] = []
  for (const t of jsonl('agentdojo/traces_v1.jsonl'))
    for (const m of t.messages as { role: string; content: string; contains_injection?: boolean }[])
      if (m.role === 'tool')
        agentdojo.push({ text: m.content, attack: m.contains_injection === true })
  const benignTest: Sample[] = test.map((d) => ({ text: d.text, attack: false }))
  const placed: Sample[] = attacks.flatMap((a) =>
    hosts(a.category.startsWith('bipia-code') ? 'code' : 'text').map((ctx, i) => ({
      text: place(ctx, a.text, (['start', 'middle', 'end'] as const)[i % 3]!),
      attack: true,
    })),
  )
  const sets: [string, Sample[]][] = [
    ['deepset test', deepset],
    ['AgentDojo v1 tool outputs', agentdojo],
    ['benign test half (BIPIA contexts, AgentDojo, XSTest)', benignTest],
    ['BIPIA train attacks placed in benign test documents (seen in training)', placed],
  ]
  console.log(`## shipped model (threshold ${model.threshold}) and detectInjection at 0.5\n`)
  console.log('| set | n | attacks | signal recall | signal FPR | detector recall | detector FPR |')
  console.log('|---|--:|--:|--:|--:|--:|--:|')
  for (const [name, samples] of sets) {
    const rate = (pick: (s: Sample) => boolean, attack: boolean) => {
      const group = samples.filter((s) => s.attack === attack)
      return group.length === 0 ? '—' : pct(group.filter(pick).length / group.length)
    }
    const signal = (s: Sample) => scoreInstructions(model, s.text).score >= model.threshold
    const detector = (s: Sample) => detectInjection(s.text).score >= 0.5
    const attacksIn = samples.filter((s) => s.attack).length
    console.log(
      `| ${name} | ${samples.length} | ${attacksIn} | ${rate(signal, true)} | ${rate(signal, false)} | ${rate(detector, true)} | ${rate(detector, false)} |`,
    )
  }
  console.log('\n(BIPIA test split: not in ../shared/datasets, so not measured.)\n')
}

/** µs per KB of the full detectInjection over representative text: emails, tables, tool outputs. */
function cost() {
  const texts = [...docs.map((d) => d.text), ...attacks.map((a) => a.text)]
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0)
  for (const t of texts) detectInjection(t) // warm-up
  const runs = [0, 1, 2].map(() => {
    const started = performance.now()
    for (const t of texts) detectInjection(t)
    return performance.now() - started
  })
  const ms = runs.sort((a, b) => a - b)[1]!
  console.log(`## cost\n`)
  console.log(
    `detectInjection over ${texts.length} texts, ${(bytes / 1024).toFixed(0)} KB: ${((ms * 1000) / (bytes / 1024)).toFixed(1)} µs/KB (median of 3)`,
  )
}

console.log(`# instructions in data, node ${process.version}, target FPR ${TARGET_FPR}\n`)
crossValidate()
shipped()
cost()
