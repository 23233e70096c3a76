import type { StreamStatus, WardenEvent } from '../api'
import { DECISION_ICON, DECISION_LABEL, RiskBadge, time } from '../format'

/** The live decision stream, newest first. */
export function Live(props: {
  events: WardenEvent[]
  status: StreamStatus
  onOpen: (e: WardenEvent) => void
}) {
  return (
    <section class="panel stream">
      <header>
        <h2>Live decisions</h2>
        <span class={`status s-${props.status}`} data-testid="stream-status">
          {props.status}
        </span>
      </header>
      {props.events.length === 0 && <p class="empty">No decisions yet. Run a scenario.</p>}
      <ul class="events" data-testid="events">
        {props.events.map((e) => (
          <li
            key={e.id}
            class={`event d-${e.decision}`}
            data-type={e.type}
            data-request={e.request_id}
            onClick={() => props.onOpen(e)}
          >
            <span class="t">{time(e.timestamp)}</span>
            <span class="icon" title={DECISION_LABEL[e.decision] ?? e.decision}>
              {DECISION_ICON[e.decision] ?? '•'}
            </span>
            <span class="who" title={e.chain?.join(' → ')}>
              {e.chain && e.chain.length > 1
                ? `${e.chain[0]} → ${e.agent_id}`
                : (e.agent_id ?? '—')}
            </span>
            <span class="tool">{e.tool ?? '—'}</span>
            <RiskBadge risk={e.risk} />
            <span class="why">{e.decision === 'allow' ? '' : e.reason}</span>
          </li>
        ))}
      </ul>
    </section>
  )
}
