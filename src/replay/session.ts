import type { AuditEvent } from '../domain/audit-event.js'
import type { Runtime } from '../pipeline/runtime.js'
import { Replayer } from './replay.js'
import type { Trace } from './traces.js'

const DECIDED = new Set(['allow', 'deny', 'approval_required'])

/**
 * A recorded session decided again under the current configuration, without executing anything:
 * the session's calls (as audited: masked parameters) and recorded results go through
 * `Replayer` with a fresh state. Calls whose parameters were masked are flagged, since their
 * real values may decide differently.
 */
export async function replaySession(rt: Runtime, sessionId: string, all: AuditEvent[]) {
  // Session ids are the caller's: two agents may share one. Replay the first agent's calls.
  const agent = all.find((e) => DECIDED.has(e.decision) && e.tool !== null)?.agent_id ?? ''
  const events = all.filter((e) => e.agent_id === agent)
  const decisions = events.filter((e) => DECIDED.has(e.decision) && e.tool !== null)
  const messages: Trace['messages'] = []
  for (const e of events) {
    if (DECIDED.has(e.decision) && e.tool !== null)
      messages.push({
        role: 'assistant',
        content: '',
        tool_calls: [
          { id: e.request_id, function: e.tool, args: (e.params ?? {}) as Record<string, unknown> },
        ],
      })
    else if (e.type === 'tool_call_executed' && e.tool !== null && e.outcome === 'ok')
      messages.push({ role: 'tool', tool: e.tool, tool_call_id: e.request_id, content: e.result })
  }
  const replayer = new Replayer(
    { config: rt.config, policyVersion: rt.policyVersion, file: '', sources: {} },
    { agent, tool: '{function}', detail: true },
  )
  const report = await replayer.replay({
    id: sessionId,
    suite: '',
    label: 'benign',
    messages,
    attacker_ground_truth_calls: [],
  })
  return {
    session_id: sessionId,
    agent_id: agent,
    policy_version: rt.policyVersion,
    calls: decisions.map((e, i) => {
      const now = report.calls?.[i]
      return {
        request_id: e.request_id,
        tool: e.tool,
        original: e.decision,
        now: now?.decision ?? 'unknown',
        layer: now?.layer ?? null,
        reason: now?.reason ?? '',
        changed: now?.decision !== e.decision,
        params_masked: (e.masked ?? []).some((p) => p.startsWith('/params')),
      }
    }),
  }
}
