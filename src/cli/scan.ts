import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { scanText } from '../detect/injection.js'
import type { Io } from './commands.js'

/**
 * Exit status of `warden scan`, as scanners and linters use it: 0 nothing found, 1 an injection
 * found, 2 input it could not read (a line that is not a `{"text"}` object).
 */
const CLEAN = 0
const FOUND = 1
const BAD_INPUT = 2

/** `warden scan TEXT`: score one text; exit 1 when it is an injection. */
export function scanOne(text: string, threshold: number, json: boolean, io: Io): number {
  const r = scanText(text, threshold)
  io.out(
    json
      ? JSON.stringify(r)
      : `${r.detected ? 'INJECTION' : 'clean'} score ${r.score}${r.categories.length ? ` (${r.categories.join(', ')})` : ''}`,
  )
  return r.detected ? FOUND : CLEAN
}

/**
 * `warden scan --jsonl FILE`: one `{"text": …}` per line in, one `{"score","detected","categories"}`
 * per line out, in order. A line that is not such an object gets `{"error": …}` in its place, so
 * the output always lines up with the input. Exit 2 if any line was bad, else 1 if any text was an
 * injection, else 0.
 */
export async function scanJsonl(file: string, threshold: number, io: Io): Promise<number> {
  const lines = createInterface({
    input: file === '-' ? process.stdin : createReadStream(file),
    crlfDelay: Infinity,
  })
  let bad = 0
  let found = 0
  for await (const line of lines) {
    if (line.trim() === '') continue
    let text: unknown
    try {
      text = (JSON.parse(line) as { text?: unknown }).text
    } catch {
      text = undefined
    }
    if (typeof text !== 'string') {
      bad++
      io.out(JSON.stringify({ error: 'each line must be a JSON object with a string `text`' }))
      continue
    }
    const r = scanText(text, threshold)
    if (r.detected) found++
    io.out(JSON.stringify(r))
  }
  return bad > 0 ? BAD_INPUT : found > 0 ? FOUND : CLEAN
}
