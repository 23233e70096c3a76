import { useLayoutEffect } from 'preact/hooks'
import type { WardenEvent } from '../api'
import { dateTime, errorOf, Json, partiesOf, RiskBadge, statusOf, StatusBadge } from '../format'

/** The whole record of one event: every layer's verdict, the (masked) parameters, the result. */
export function Drawer({ event, onClose }: { event: WardenEvent; onClose: () => void }) {
  // Escape closes it, as a dialog does. Listening from before the drawer is painted: a key pressed
  // as soon as it shows must not be lost (a busy machine ran the plain effect too late).
  useLayoutEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onClose()
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [onClose])
  const status = statusOf(event)
  const error = errorOf(event.result)
  return (
    <aside class={`drawer t-${status.tone}`} aria-label="decision details" data-status={status.key}>
      <header>
        <h2>
          {event.tool || event.type} · {partiesOf(event).text}
        </h2>
        <button class="close" onClick={onClose} aria-label="close">
          ✕
        </button>
      </header>
      <dl class="facts">
        <dt>{event.type === 'tool_call_executed' ? 'outcome' : 'decision'}</dt>
        <dd data-testid="drawer-status">
          <StatusBadge status={status} /> <RiskBadge risk={event.risk} />
        </dd>
        <dt>reason</dt>
        <dd>{event.reason}</dd>
        {status.tone === 'bad' && error && (
          <>
            <dt>error</dt>
            <dd class="error" data-testid="drawer-error">
              {error}
            </dd>
          </>
        )}
        {event.code && (
          <>
            <dt>code</dt>
            <dd>
              <code>{event.code}</code> {event.layer && <>at layer {event.layer}</>}
            </dd>
          </>
        )}
        <dt>time</dt>
        <dd>{dateTime(event.timestamp)}</dd>
        <dt>request</dt>
        <dd>
          <code>{event.request_id}</code>
        </dd>
        {event.chain && event.chain.length > 0 && (
          <>
            <dt>chain</dt>
            <dd data-testid="chain">
              {event.human && <>{event.human} → </>}
              {event.chain.join(' → ')}
            </dd>
          </>
        )}
        {event.session_id && (
          <>
            <dt>session</dt>
            <dd>
              <code>{event.session_id}</code>
            </dd>
          </>
        )}
        <dt>event</dt>
        <dd>
          {event.type} · seq {event.seq}
        </dd>
        {event.policy_version && (
          <>
            <dt>policy</dt>
            <dd>{event.policy_version}</dd>
          </>
        )}
      </dl>
      {event.checks && event.checks.length > 0 && (
        <>
          <h3>Decision trace</h3>
          <table class="trace">
            <thead>
              <tr>
                <th>layer</th>
                <th>verdict</th>
                <th>reason</th>
                <th>risk</th>
                <th>µs</th>
              </tr>
            </thead>
            <tbody>
              {event.checks.map((c) => (
                <tr key={c.layer} class={`v-${c.outcome}`}>
                  <td>{c.layer}</td>
                  <td>{c.outcome}</td>
                  <td>
                    {c.reason}
                    {c.code && (
                      <>
                        {' '}
                        <code>{c.code}</code>
                      </>
                    )}
                  </td>
                  <td>{c.risk ?? ''}</td>
                  <td>{c.duration_us ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {event.params !== undefined && event.params !== null && (
        <>
          <h3>
            Parameters {event.masked && event.masked.length > 0 && <small>(PII masked)</small>}
          </h3>
          <Json value={event.params} />
        </>
      )}
      {event.result !== undefined && event.result !== null && (
        <>
          <h3>{status.key === 'failed' ? 'Error' : 'Result'}</h3>
          <Json value={event.result} />
        </>
      )}
    </aside>
  )
}
