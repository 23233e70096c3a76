import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { scanText } from '../detect/injection.js'
import type { Io } from './commands.js'

/** `warden scan TEXT`: score one text. */
export function scanOne(text: string, threshold: number, json: boolean, io: Io): number {
  const r = scanText(text, threshold)
  io.out(
    json
      ? JSON.stringify(r)
      : `${r.detected ? 'INJECTION' : 'clean'} score ${r.score}${r.categories.length ? ` (${r.categories.join(', ')})` : ''}`,
  )
  return 0
}

/**
 * `warden scan --jsonl FILE`: one `{"text": …}` per line in, one `{"score","detected","categories"}`
 * per line out, in order. A line that is not such an object gets `{"error": …}` in its place, so
 * the output always lines up with the input.
 */
export async function scanJsonl(file: string, threshold: number, io: Io): Promise<number> {
  const lines = createInterface({
    input: file === '-' ? process.stdin : createReadStream(file),
    crlfDelay: Infinity,
  })
  let bad = 0
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
    io.out(JSON.stringify(scanText(text, threshold)))
  }
  return bad === 0 ? 0 : 1
}
