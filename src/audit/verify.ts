import { chainHash, GENESIS_HASH, type AuditEvent } from './event.js'
import type { Store } from '../store/types.js'

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
export async function verifyChain(store: Store): Promise<VerifyResult> {
  let expected = 1
  let prev = GENESIS_HASH
  for await (const page of store.scan()) {
    for (const event of page) {
      const problem = linkProblem(event, expected, prev)
      if (problem)
        return {
          ok: false,
          checked: expected,
          head: prev,
          firstBad: { seq: event.seq ?? expected, problem },
        }
      prev = event.hash
      expected++
    }
  }
  return { ok: true, checked: expected - 1, head: prev }
}

function linkProblem(event: AuditEvent, expected: number, prev: string): string | null {
  if (event.seq !== expected)
    return `expected seq ${expected} but found ${event.seq}: an event is missing or out of order`
  if (event.prev_hash !== prev)
    return 'prev_hash does not match the previous event: the chain was cut or reordered'
  const { hash, ...body } = event
  if (chainHash(body) !== hash) return 'hash does not match the content: the event was edited'
  return null
}
