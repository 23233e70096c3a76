import { useEffect, useState } from 'preact/hooks'
import { api, qs, type TimelineBody, type WardenEvent } from '../api'
import { reasonOf, RiskBadge, statusOf, StatusBadge, time } from '../format'

/** What one agent (or one session) did, in order: follow an agent through its calls. */
export function Timeline(props: {
  agents: string[]
  version: number
  focus: { session_id?: string; agent_id?: string } | null
  onOpen: (e: WardenEvent) => void
}) {
  const [agent, setAgent] = useState(props.focus?.agent_id ?? props.agents[0] ?? '')
  const [session, setSession] = useState(props.focus?.session_id ?? '')
  const [body, setBody] = useState<TimelineBody | null>(null)

  useEffect(() => {
    if (props.focus) {
      setSession(props.focus.session_id ?? '')
      if (props.focus.agent_id) setAgent(props.focus.agent_id)
    }
  }, [props.focus])

  useEffect(() => {
    const filter = session ? { session_id: session } : { agent_id: agent }
    api
      .get<TimelineBody>(`/events/timeline${qs({ ...filter, limit: 500 })}`)
      .then(setBody)
      .catch(() => setBody(null))
  }, [agent, session, props.version])

  const events = (session ? body?.sessions[0]?.events : body?.agents[0]?.events) ?? []
  return (
    <section class="panel timeline">
      <header>
        <h2>Timeline</h2>
        <label>
          agent{' '}
          <select
            value={agent}
            onChange={(e) => {
              setSession('')
              setAgent((e.target as HTMLSelectElement).value)
            }}
          >
            {props.agents.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          or session{' '}
          <input
            placeholder="session id"
            value={session}
            onChange={(e) => setSession((e.target as HTMLInputElement).value.trim())}
          />
        </label>
      </header>
      {events.length === 0 && (
        <p class="empty">No events for this {session ? 'session' : 'agent'}.</p>
      )}
      <ol class="steps" data-testid="timeline">
        {events.map((e, i) => {
          const prev = events[i - 1]
          const gap = prev
            ? Math.round((Date.parse(e.timestamp) - Date.parse(prev.timestamp)) / 1000)
            : 0
          return (
            <li
              key={e.id}
              class={`step d-${e.decision} t-${statusOf(e).tone}`}
              data-status={statusOf(e).key}
              onClick={() => props.onOpen(e)}
            >
              <span class="t">{time(e.timestamp)}</span>
              {gap > 0 && <span class="gap">+{gap}s</span>}
              <StatusBadge status={statusOf(e)} />
              <span class="tool">{e.tool ?? e.type}</span>
              <RiskBadge risk={e.risk} />
              <span class="why">{reasonOf(e)}</span>
              {e.session_id && !session && <span class="session">{e.session_id}</span>}
            </li>
          )
        })}
      </ol>
    </section>
  )
}
