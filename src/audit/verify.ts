import { chainHash, GENESIS_HASH } from '../domain/audit-event.js'
import type { StoredEvent } from '../domain/audit-event.js'
import type { AuditLog } from '../store/types.js'

export interface VerifyResult {
  ok: boolean
  /** Events checked (up to and including the first bad one). */
  checked: number
  /** Hash of the last good event: the head an auditor can publish. */
  head: string
  firstBad?: { seq: number; problem: string }
}

/**
 * Walk the whole chain in order and name the first event that does not link: a gap or reorder
 * (its `seq` is not the next number), a broken link (`prev_hash`), or edited content (`hash`).
 * A plain chain cannot catch an attacker who rewrites every later hash, nor a cut tail; signed
 * checkpoints published elsewhere are what close that gap (see docs/audit.md).
 */
export async function verifyChain(log: Pick<AuditLog, 'scan'>): Promise<VerifyResult> {
  let expected = 1
  let prev = GENESIS_HASH
  for await (const page of log.scan()) {
    for (const row of page) {
      const problem = linkProblem(row, expected, prev)
      if (problem)
        return {
          ok: false,
          checked: expected,
          head: prev,
          firstBad: { seq: problem.seq, problem: problem.text },
        }
      prev = row.hash
      expected++
    }
  }
  return { ok: true, checked: expected - 1, head: prev }
}

function linkProblem(
  row: StoredEvent,
  expected: number,
  prev: string,
): { seq: number; text: string } | null {
  let event: { seq?: unknown; prev_hash?: unknown }
  try {
    event = JSON.parse(row.body) as typeof event
  } catch {
    return { seq: expected, text: 'the stored text is not JSON: the event was edited' }
  }
  const seq = typeof event.seq === 'number' ? event.seq : expected
  if (event.seq !== expected)
    return {
      seq,
      text: `expected seq ${expected} but found ${String(event.seq)}: an event is missing or out of order`,
    }
  if (event.prev_hash !== prev)
    return {
      seq,
      text: 'prev_hash does not match the previous event: the chain was cut or reordered',
    }
  if (chainHash(prev, row.body) !== row.hash)
    return { seq, text: 'hash does not match the content: the event was edited' }
  return null
}
