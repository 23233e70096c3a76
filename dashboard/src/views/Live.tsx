import type { StreamStatus, WardenEvent } from '../api'
import { partiesOf, reasonOf, RiskBadge, statusOf, StatusBadge, time } from '../format'

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
      <div class="event head" role="row" data-testid="events-head">
        <span role="columnheader">time</span>
        <span role="columnheader">status</span>
        <span role="columnheader">agent</span>
        <span role="columnheader">tool</span>
        <span role="columnheader">risk</span>
        <span role="columnheader">reason</span>
      </div>
      <ul class="events" data-testid="events">
        {props.events.map((e) => {
          const status = statusOf(e)
          const who = partiesOf(e)
          return (
            <li
              key={e.id}
              class={`event d-${e.decision} s-${status.key} t-${status.tone}`}
              data-type={e.type}
              data-status={status.key}
              data-request={e.request_id}
              onClick={() => props.onOpen(e)}
            >
              <span class="t">{time(e.timestamp)}</span>
              <StatusBadge status={status} />
              <span class="who" title={who.title}>
                {who.text}
              </span>
              <span class="tool">
                {e.tool || (e.type.startsWith('agent_message_') ? 'message' : '—')}
              </span>
              <RiskBadge risk={e.risk} />
              <span class="why" title={e.reason}>
                {e.decision === 'allow' ? '' : reasonOf(e)}
              </span>
            </li>
          )
        })}
      </ul>
    </section>
  )
}
