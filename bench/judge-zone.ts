/**
 * How much of the traffic the injection judge would see (decision 0023): the share of each
 * public set's texts whose detector score falls below, inside or above the grey zone. Inside is
 * what is sent to the model; for attacks, inside is the most the judge can add, for benign text
 * it is the most it can clear (above `hold_at`) and what it costs.
 *
 *   node --import tsx bench/judge-zone.ts [--from 0.3] [--to 0.8] [--hold-at 0.5]
 */
import { parseArgs } from 'node:util'
import { detectInjection } from '../src/detect/injection.js'
import { jsonl, read, type Sample } from './datasets.js'

const { values } = parseArgs({
  options: {
    from: { type: 'string', default: '0.3' },
    to: { type: 'string', default: '0.8' },
    'hold-at': { type: 'string', default: '0.5' },
  },
})
const [from, to, holdAt] = [Number(values.from), Number(values.to), Number(values['hold-at'])]

function agentdojoToolOutputs(): Sample[] {
  return jsonl('agentdojo/traces_v1.jsonl').flatMap((trace) =>
    (trace.messages as { role: string; content: string; contains_injection?: boolean }[])
      .filter((m) => m.role === 'tool')
      .map((m) => ({ text: m.content, attack: m.contains_injection === true })),
  )
}

function bipia(): Sample[] {
  const contexts = (kind: string) =>
    jsonl(`bipia/${kind}/train.jsonl`).map((r) =>
      Array.isArray(r.context)
        ? (r.context as string[]).join('\n')
        : String(r.context ?? r.error ?? ''),
    )
  const attacks = (file: string) =>
    Object.values(JSON.parse(read(`bipia/${file}`)) as Record<string, string[]>).flat()
  const text = attacks('text_attack_train.json')
  const code = attacks('code_attack_train.json')
  const out: Sample[] = []
  for (const kind of ['email', 'table', 'code'] as const) {
    const pool = kind === 'code' ? code : text
    contexts(kind).forEach((ctx, i) => {
      const half = ctx.length >> 1
      out.push({ text: ctx, attack: false })
      out.push({
        text: `${ctx.slice(0, half)}\n${pool[i % pool.length]!}\n${ctx.slice(half)}`,
        attack: true,
      })
    })
  }
  return out
}

function deepsetTest(): Sample[] {
  return jsonl('deepset/test.jsonl').map((r) => ({ text: String(r.text), attack: r.label === 1 }))
}

const pct = (n: number, d: number) => (d === 0 ? '–' : `${((100 * n) / d).toFixed(1)}%`)

console.log(`grey zone [${from}, ${to}), hold_at ${holdAt}\n`)
console.log('| set | class | n | below | in zone (sent) | of which ≥ hold_at | above |')
console.log('|---|---|--:|--:|--:|--:|--:|')
for (const [name, samples] of [
  ['AgentDojo v1 tool outputs', agentdojoToolOutputs()],
  ['BIPIA train (email, table, code)', bipia()],
  ['deepset test', deepsetTest()],
] as const) {
  for (const attack of [false, true]) {
    const scores = samples
      .filter((s) => s.attack === attack)
      .map((s) => detectInjection(s.text).score)
    const n = scores.length
    const inZone = scores.filter((s) => s >= from && s < to)
    console.log(
      `| ${name} | ${attack ? 'attack' : 'benign'} | ${n} | ${pct(scores.filter((s) => s < from).length, n)} | ${pct(inZone.length, n)} | ${pct(inZone.filter((s) => s >= holdAt).length, n)} | ${pct(scores.filter((s) => s >= to).length, n)} |`,
    )
  }
}
