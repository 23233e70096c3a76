import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, qs, type WardenEvent } from '../api'
import { dateTime, partiesOf, reasonOf, RiskBadge, statusOf, StatusBadge } from '../format'

type Filters = Record<
  'agent_id' | 'tool' | 'decision' | 'risk_level' | 'from' | 'to' | 'text',
  string
>
const EMPTY: Filters = {
  agent_id: '',
  tool: '',
  decision: '',
  risk_level: '',
  from: '',
  to: '',
  text: '',
}

interface VerifyBody {
  ok: boolean
  checked: number
  head?: string
  firstBad?: { seq: number; problem: string }
}

interface ReplayBody {
  session_id: string
  policy_version: string
  calls: {
    request_id: string
    tool: string
    original: string
    now: string
    layer: string | null
    reason: string
    changed: boolean
    params_masked: boolean
  }[]
}

/** Search the audit log, check its hash chain, export what was found, replay a session. */
export function Audit(props: {
  agents: string[]
  tools: string[]
  approver: string | null
  onOpen: (e: WardenEvent) => void
  onTimeline: (session: string, agent: string | null) => void
}) {
  const [filters, setFilters] = useState<Filters>(EMPTY)
  const [rows, setRows] = useState<WardenEvent[]>([])
  const [verify, setVerify] = useState<VerifyBody | null>(null)
  const [note, setNote] = useState<string | null>(null)
  const [replay, setReplay] = useState<ReplayBody | null>(null)

  const query = (from: Filters = filters) => {
    const f: Record<string, string> = { ...from }
    // datetime-local has no zone: read it as local time and send ISO.
    for (const k of ['from', 'to'] as const) if (f[k]) f[k] = new Date(f[k]).toISOString()
    return f
  }
  const search = (from: Filters = filters) =>
    api
      .get<{ events: WardenEvent[] }>(`/events/recent${qs({ ...query(from), limit: 200 })}`)
      .then((r) => setRows(r.events))
      .catch((e: Error) => setNote(e.message))

  useEffect(() => {
    void search()
  }, [])
  useEffect(() => {
    if (!props.approver) return setVerify(null)
    api
      .get<VerifyBody>('/audit/verify')
      .then(setVerify)
      .catch(() => setVerify(null))
  }, [props.approver])

  const exportAs = async (format: 'jsonl' | 'csv' | 'cef', extra: Record<string, string> = {}) => {
    try {
      const { count, nextBeforeSeq } = await api.download(
        `/audit/export${qs({ ...query(), ...extra, format })}`,
        `warden-audit${extra.session_id ? `-${extra.session_id}` : ''}.${format === 'cef' ? 'cef.txt' : format}`,
      )
      setNote(
        nextBeforeSeq === null
          ? `exported ${count} events as ${format.toUpperCase()}`
          : `exported the newest ${count} events as ${format.toUpperCase()}; older matches were ` +
              `left out (export again with before_seq=${nextBeforeSeq})`,
      )
    } catch (e) {
      setNote(
        e instanceof ApiError && e.status === 401
          ? 'log in with an approver token to export'
          : String(e),
      )
    }
  }
  const replaySession = async (session: string) => {
    try {
      setReplay(await api.get<ReplayBody>(`/audit/sessions/${encodeURIComponent(session)}/replay`))
    } catch (e) {
      setNote(e instanceof ApiError ? e.message : String(e))
    }
  }

  const field = (
    k: keyof Filters,
    el: 'input' | 'select',
    options: string[] = [],
    type: 'text' | 'datetime-local' = 'text',
  ) =>
    el === 'select' ? (
      <select
        name={k}
        value={filters[k]}
        onChange={(e) => setFilters({ ...filters, [k]: (e.target as HTMLSelectElement).value })}
      >
        <option value="">{k.replace('_', ' ')}: any</option>
        {options.map((o) => (
          <option key={o}>{o}</option>
        ))}
      </select>
    ) : type === 'datetime-local' ? (
      <input
        name={k}
        type="datetime-local"
        aria-label={k}
        value={filters[k]}
        onInput={(e) => setFilters({ ...filters, [k]: (e.target as HTMLInputElement).value })}
      />
    ) : (
      <input
        name={k}
        type="text"
        placeholder={k}
        value={filters[k]}
        onInput={(e) => setFilters({ ...filters, [k]: (e.target as HTMLInputElement).value })}
      />
    )

  return (
    <section class="panel audit">
      <header>
        <h2>Audit log</h2>
        <span class={`chain ${verify ? (verify.ok ? 'ok' : 'bad') : ''}`} data-testid="chain">
          {verify
            ? verify.ok
              ? `hash chain verified: ${verify.checked} events`
              : `hash chain BROKEN at seq ${verify.firstBad?.seq}: ${verify.firstBad?.problem}`
            : 'log in to verify the hash chain'}
        </span>
      </header>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault()
          void search()
        }}
      >
        {field('agent_id', 'select', props.agents)}
        {field('tool', 'select', props.tools)}
        {field('decision', 'select', [
          'allow',
          'deny',
          'approval_required',
          'executed',
          'approved',
          'denied',
          'expired',
          'rejected',
          'pinned',
          'blocked',
          'reloaded',
        ])}
        {field('risk_level', 'select', ['low', 'medium', 'high', 'critical'])}
        {field('from', 'input', [], 'datetime-local')}
        {field('to', 'input', [], 'datetime-local')}
        {field('text', 'input')}
        <button type="submit">Search</button>
        <button
          type="button"
          onClick={() => {
            // Clearing shows the unfiltered log again, not the last filtered rows.
            setFilters(EMPTY)
            void search(EMPTY)
          }}
        >
          Clear
        </button>
        <span class="exports">
          Export {rows.length > 0 ? 'these' : ''}:
          <button type="button" onClick={() => exportAs('jsonl')}>
            JSONL
          </button>
          <button type="button" onClick={() => exportAs('csv')}>
            CSV
          </button>
          <button type="button" onClick={() => exportAs('cef')}>
            CEF
          </button>
        </span>
      </form>
      {note && (
        <p class="note" data-testid="audit-note">
          {note}
        </p>
      )}
      <table class="rows" data-testid="audit-rows">
        <thead>
          <tr>
            <th>seq</th>
            <th>time</th>
            <th>agent</th>
            <th>tool</th>
            <th>decision</th>
            <th>risk</th>
            <th>reason</th>
            <th>session</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((e) => (
            <tr
              key={e.id}
              class={`t-${statusOf(e).tone}`}
              data-status={statusOf(e).key}
              onClick={() => props.onOpen(e)}
            >
              <td>{e.seq}</td>
              <td>{dateTime(e.timestamp)}</td>
              <td>{partiesOf(e).text}</td>
              <td>{e.tool}</td>
              <td>
                <StatusBadge status={statusOf(e)} />
              </td>
              <td>
                <RiskBadge risk={e.risk} />
              </td>
              <td class="why">{reasonOf(e)}</td>
              <td onClick={(ev) => ev.stopPropagation()}>
                {e.session_id && (
                  <span class="session-actions">
                    <code>{e.session_id}</code>
                    <button onClick={() => props.onTimeline(e.session_id!, e.agent_id)}>
                      timeline
                    </button>
                    <button onClick={() => exportAs('jsonl', { session_id: e.session_id! })}>
                      export
                    </button>
                    <button onClick={() => replaySession(e.session_id!)}>replay</button>
                  </span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {replay && (
        <div class="replay" data-testid="replay">
          <h3>
            Session {replay.session_id} under the current policy ({replay.policy_version})
            <button onClick={() => setReplay(null)} aria-label="close the replay">
              Close
            </button>
          </h3>
          <table>
            <thead>
              <tr>
                <th>tool</th>
                <th>then</th>
                <th>now</th>
                <th>why</th>
              </tr>
            </thead>
            <tbody>
              {replay.calls.map((c) => (
                <tr key={c.request_id} class={c.changed ? 'changed' : ''}>
                  <td>{c.tool}</td>
                  <td>{c.original}</td>
                  <td>
                    {c.now} {c.changed && <strong>changed</strong>}
                  </td>
                  <td>
                    {c.reason}
                    {c.params_masked && (
                      <em> (parameters were masked in the audit; replayed masked)</em>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
