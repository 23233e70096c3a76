import type { Warden } from '../../src/warden.js'
import { APPROVER, approve } from '../helpers.js'

/**
 * What a person at the dashboard does, in parallel with an agent that waits: watch the pending
 * approvals until the call of `sessionId` is held, then decide it (through the approver API).
 */
export async function approveWhenHeld(
  warden: Warden,
  sessionId: string,
  decision: 'approve' | 'deny' = 'approve',
  timeoutMs = 15_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const res = await warden.app.inject({
      url: '/gateway/pending-approvals',
      headers: { authorization: `Bearer ${APPROVER}` },
    })
    const { approvals } = res.json() as { approvals: { id: string; session_id: string | null }[] }
    const held = approvals.find((a) => a.session_id === sessionId)
    if (held) {
      const decided = await approve(warden, held.id, decision)
      if (decided.statusCode !== 200 && decided.statusCode !== 502)
        throw new Error(`approve answered ${decided.statusCode}: ${decided.body}`)
      return held.id
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`no call of session ${sessionId} was held within ${timeoutMs} ms`)
}
