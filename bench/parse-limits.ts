/**
 * How fast the strict body parser (`src/http/safe-json.ts`) refuses a body over `max_items`,
 * against `JSON.parse` of the same text in the same run (the baseline: what accepting the body
 * would cost before any check). The two bodies are those of test/bad-input.test.ts: an object
 * with 200,000 keys (about 2.5 MB) and an array of 1,000,000 ints (about 2 MB). The refusal stops
 * at the 10,001st member, so it should cost a small fraction of the parse; the test checks what
 * the parser does, this measures how long it takes (moved here from the test's 2 s limit).
 *
 *   node --import tsx bench/parse-limits.ts      (PARSE_LIMITS_ROUNDS=20)
 */
import { parseStrictJson } from '../src/http/safe-json.js'

const ROUNDS = Number(process.env.PARSE_LIMITS_ROUNDS ?? 20)
const LIMITS = { maxDepth: 64, maxItems: 10_000 }

const bodies = {
  'object, 200,000 keys': `{"params":{${Array.from({ length: 200_000 }, (_, i) => `"k${i}":0`).join(',')}}}`,
  'array, 1,000,000 ints': `{"params":{"x":[${Array.from({ length: 1_000_000 }, (_, i) => i % 10).join(',')}]}}`,
}

/** Median milliseconds of `ROUNDS` runs of `fn`, after two warm-up runs. */
function median(fn: () => void): number {
  fn()
  fn()
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now()
    fn()
    times.push(performance.now() - started)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]!
}

console.log(`| body | bytes | JSON.parse ms | refusal ms | refusal / JSON.parse |`)
console.log(`| --- | --: | --: | --: | --: |`)
for (const [name, text] of Object.entries(bodies)) {
  // As the gateway gets them: bytes, decoded as UTF-8 by both sides.
  const raw = Buffer.from(text)
  const baseline = median(() => JSON.parse(raw.toString('utf8')))
  const refusal = median(() => {
    try {
      parseStrictJson(raw, LIMITS)
    } catch (err) {
      if ((err as { code?: string }).code === 'max_items') return
      throw err
    }
    throw new Error(`${name}: not refused`)
  })
  const bytes = raw.length.toLocaleString('en')
  console.log(
    `| ${name} | ${bytes} | ${baseline.toFixed(2)} | ${refusal.toFixed(3)} | ${(refusal / baseline).toFixed(4)}x |`,
  )
}
