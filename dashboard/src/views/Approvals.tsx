import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, qs, type Approval, type PendingApprovals, type WardenEvent } from '../api'
import {
  dateTime,
  duration,
  errorOf,
  Json,
  RiskBadge,
  secondsLeft,
  summarize,
  type Tone,
} from '../format'

/** How long the outcome of a decision stays on its card unless dismissed. */
const OUTCOME_KEEP_MS = 120_000

/** What became of a decision this dashboard made, shown on its card. */
export interface Outcome {
  key: 'working' | 'executed' | 'failed' | 'unknown' | 'approved' | 'denied' | 'error'
  tone: Tone
  text: string
}

interface Decided {
  approval: Approval
  outcome: Outcome
  at: number
}

/**
 * Held calls waiting for a person. The list is re-read whenever an approval event arrives on the
 * stream (`version` changes), so a card resolved on another dashboard disappears here too. A card
 * this dashboard decided stays, with what came of it (executed, failed, denied), until it is
 * dismissed or two minutes have passed.
 */
export function Approvals(props: { version: number; approver: string | null }) {
  const [pending, setPending] = useState<Approval[]>([])
  const [decided, setDecided] = useState<Record<string, Decided>>({})
  const [error, setError] = useState<string | null>(null)
  const [now, setNow] = useState(Date.now())

  useEffect(() => {
    api
      .get<PendingApprovals>('/gateway/pending-approvals')
      .then((r) => {
        setPending(r.approvals)
        setError(null)
      })
      .catch((e: Error) => setError(e.message))
  }, [props.version])

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(t)
  }, [])

  const record = (approval: Approval, outcome: Outcome | null) =>
    setDecided((d) => {
      const next = { ...d }
      if (outcome) next[approval.id] = { approval, outcome, at: Date.now() }
      else delete next[approval.id]
      return next
    })

  const kept = Object.values(decided).filter((d) => now - d.at < OUTCOME_KEEP_MS)
  const live = pending.filter((a) => !decided[a.id] && secondsLeft(a.expires_at, now) > 0)
  const cards = [...kept.map((d) => d.approval), ...live].sort((x, y) =>
    x.created_at.localeCompare(y.created_at),
  )
  return (
    <section class="panel approvals">
      <header>
        <h2>Approvals queue</h2>
        <span class="count" data-testid="pending-count">
          {live.length} pending
        </span>
      </header>
      {error && <p class="error">{error}</p>}
      {!props.approver && live.length > 0 && (
        <p class="hint">Log in with an approver token to approve or deny.</p>
      )}
      {live.length === 0 && <p class="empty">Nothing is waiting for a person.</p>}
      <ul class="cards">
        {cards.map((a) => (
          <ApprovalCard
            key={a.id}
            approval={a}
            now={now}
            outcome={decided[a.id]?.outcome ?? null}
            canDecide={props.approver !== null}
            onOutcome={(o) => record(a, o)}
          />
        ))}
      </ul>
    </section>
  )
}

/** Every reason the call was held: each layer that said `hold`, from the recorded trace. */
function useHoldReasons(a: Approval): string[] {
  const [reasons, setReasons] = useState<string[]>([a.reason])
  useEffect(() => {
    api
      .get<{ events: WardenEvent[] }>(
        `/events/recent${qs({ type: 'approval_required', text: a.request_id, limit: 5 })}`,
      )
      .then(({ events }) => {
        const held = events.find((e) => e.request_id === a.request_id)
        const holds = (held?.checks ?? [])
          .filter((c) => c.outcome === 'hold')
          .map((c) => `${c.layer}: ${c.reason}`)
        if (holds.length > 0) setReasons(holds)
      })
      .catch(() => {})
  }, [a.request_id])
  return reasons
}

/** What the gateway's answer to a decision means for the person who made it. */
function outcomeOf(decision: 'approve' | 'deny', body: unknown, err?: ApiError): Outcome {
  const r = body as { approval?: Approval; result?: unknown } | null
  const status = r?.approval?.status
  if (status === 'denied') return { key: 'denied', tone: 'info', text: 'denied by you' }
  if (status === 'approved') {
    const outcome = r?.approval?.outcome
    if (err || outcome === 'error')
      return {
        key: 'failed',
        tone: 'bad',
        text: `approved → failed: ${err ? `${err.message} (${err.code})` : (errorOf(r?.result) ?? 'the tool failed')}`,
      }
    if (outcome === 'unknown')
      return {
        key: 'unknown',
        tone: 'warn',
        text: `approved → outcome unknown: ${errorOf(r?.result) ?? 'the tool did not answer in time'}`,
      }
    if (outcome === 'ok')
      return { key: 'executed', tone: 'ok', text: `approved → executed: ${summarize(r?.result)}` }
    return { key: 'approved', tone: 'ok', text: 'approved; the agent runs the call' }
  }
  return {
    key: 'error',
    tone: 'bad',
    text: err
      ? `could not ${decision}: ${err.message} (${err.code})`
      : `could not ${decision}: unexpected answer`,
  }
}

function ApprovalCard(props: {
  approval: Approval
  now: number
  outcome: Outcome | null
  canDecide: boolean
  onOutcome: (o: Outcome | null) => void
}) {
  const a = props.approval
  const [comment, setComment] = useState('')
  const reasons = useHoldReasons(a)
  const left = secondsLeft(a.expires_at, props.now)
  const age = Math.max(0, Math.round((props.now - Date.parse(a.created_at)) / 1000))
  const o = props.outcome

  const decide = async (decision: 'approve' | 'deny') => {
    props.onOutcome({
      key: 'working',
      tone: 'info',
      text: decision === 'approve' ? 'approving…' : 'denying…',
    })
    try {
      const body = await api.post('/gateway/approve', {
        approval_id: a.id,
        decision,
        ...(comment && { comment }),
      })
      props.onOutcome(outcomeOf(decision, body))
    } catch (e) {
      props.onOutcome(
        e instanceof ApiError
          ? outcomeOf(decision, e.body, e)
          : { key: 'error', tone: 'bad', text: `could not ${decision}: ${String(e)}` },
      )
    }
  }

  return (
    <li
      class={`card ${o ? `decided t-${o.tone}` : ''}`}
      data-approval={a.id}
      data-tool={a.tool}
      data-outcome={o?.key}
    >
      <div class="row">
        <strong>{a.tool}</strong> <RiskBadge risk={a.risk} />
        {!o && <span class={`ttl ${left < 60 ? 'soon' : ''}`}>{duration(left)} left</span>}
      </div>
      <dl class="meta" data-testid="card-meta">
        <dt>asked by</dt>
        <dd data-field="agent">
          {a.chain && a.chain.length > 1 ? a.chain.join(' → ') : a.agent_id}
          {a.requested_by && <> for {a.requested_by}</>}
        </dd>
        <dt>created</dt>
        <dd data-field="created" title={a.created_at}>
          {dateTime(a.created_at)} ({duration(age)} ago)
        </dd>
        <dt>session</dt>
        <dd data-field="session">
          {a.session_id ? <code>{a.session_id}</code> : <span class="muted">none</span>}
        </dd>
        <dt>approval</dt>
        <dd data-field="id">
          <code>{a.id}</code>
        </dd>
      </dl>
      <ul class="why" data-testid="hold-reasons">
        {reasons.map((r) => (
          <li key={r}>{r}</li>
        ))}
      </ul>
      <Json value={a.params} />
      {(!o || o.key === 'working') && (
        <div class="actions">
          <input
            placeholder="comment (optional)"
            value={comment}
            onInput={(e) => setComment((e.target as HTMLInputElement).value)}
            disabled={!props.canDecide || o !== null}
          />
          <button
            class="approve"
            disabled={!props.canDecide || o !== null}
            onClick={() => decide('approve')}
          >
            Approve
          </button>
          <button
            class="deny"
            disabled={!props.canDecide || o !== null}
            onClick={() => decide('deny')}
          >
            Deny
          </button>
        </div>
      )}
      {o && (
        <div class={`outcome t-${o.tone}`} role="status" data-testid="outcome">
          <span class="text">{o.text}</span>
          {o.key !== 'working' && (
            <button class="dismiss" onClick={() => props.onOutcome(null)}>
              Dismiss
            </button>
          )}
        </div>
      )}
    </li>
  )
}
