import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, type Approval, type PendingApprovals } from '../api'
import { duration, Json, RiskBadge, secondsLeft } from '../format'

/**
 * Held calls waiting for a person. The list is re-read whenever an approval event arrives on the
 * stream (`version` changes), so a card resolved on another dashboard disappears here too.
 */
export function Approvals(props: { version: number; approver: string | null }) {
  const [pending, setPending] = useState<Approval[]>([])
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

  const live = pending.filter((a) => secondsLeft(a.expires_at, now) > 0)
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
        {live.map((a) => (
          <ApprovalCard
            key={a.id}
            approval={a}
            left={secondsLeft(a.expires_at, now)}
            canDecide={props.approver !== null}
            onDecided={(id) => setPending((p) => p.filter((x) => x.id !== id))}
          />
        ))}
      </ul>
    </section>
  )
}

function ApprovalCard(props: {
  approval: Approval
  left: number
  canDecide: boolean
  onDecided: (id: string) => void
}) {
  const a = props.approval
  const [comment, setComment] = useState('')
  const [busy, setBusy] = useState(false)
  const [outcome, setOutcome] = useState<string | null>(null)

  const decide = async (decision: 'approve' | 'deny') => {
    setBusy(true)
    try {
      const r = await api.post<{ status?: string; approval?: { status: string } }>(
        '/gateway/approve',
        { approval_id: a.id, decision, ...(comment && { comment }) },
      )
      setOutcome(r.approval?.status ?? decision)
      setTimeout(() => props.onDecided(a.id), 800)
    } catch (e) {
      setOutcome(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e))
      setBusy(false)
    }
  }

  return (
    <li class="card" data-approval={a.id} data-tool={a.tool}>
      <div class="row">
        <strong>{a.tool}</strong> <span class="who">{a.agent_id}</span> <RiskBadge risk={a.risk} />
        <span class={`ttl ${props.left < 60 ? 'soon' : ''}`}>{duration(props.left)} left</span>
      </div>
      <p class="why">{a.reason}</p>
      <Json value={a.params} />
      <div class="actions">
        <input
          placeholder="comment (optional)"
          value={comment}
          onInput={(e) => setComment((e.target as HTMLInputElement).value)}
          disabled={!props.canDecide || busy}
        />
        <button
          class="approve"
          disabled={!props.canDecide || busy}
          onClick={() => decide('approve')}
        >
          Approve
        </button>
        <button class="deny" disabled={!props.canDecide || busy} onClick={() => decide('deny')}>
          Deny
        </button>
      </div>
      {outcome && <p class="outcome">{outcome}</p>}
    </li>
  )
}
