import { useEffect, useState } from 'preact/hooks'
import {
  api,
  ApiError,
  type McpAccepted,
  type McpPin,
  type McpUpstream,
  type McpUpstreams,
} from '../api'

/** How long the view waits before reading the upstreams again on its own (state, restarts). */
const POLL_MS = 10_000

/** A definition hash, short enough to compare by eye; the full one is in the tooltip. */
function Hash({ value }: { value: string }) {
  return (
    <code class="hash" title={value}>
      {value.slice(0, 12)}
    </code>
  )
}

const STATE_CLASS: Record<McpUpstream['state'], string> = {
  connected: 'ok',
  connecting: 'warn',
  down: 'bad',
  closed: 'off',
}

/** A tool's standing in words (never a colour or an icon alone), and the badge colour. */
function pinStatus(pin: McpPin | undefined, unlisted: boolean): { label: string; cls: string } {
  if (unlisted) return { label: 'unlisted · not callable', cls: 'off' }
  if (!pin) return { label: 'not pinned yet · not callable', cls: 'warn' }
  if (pin.blocked === 'changed') return { label: 'blocked · definition changed', cls: 'bad' }
  if (pin.blocked === 'poisoned')
    return { label: `blocked · poisoned (score ${score(pin.score)})`, cls: 'bad' }
  if (pin.blocked === 'shadowing')
    return { label: `blocked · names ${(pin.shadows ?? []).join(', ')}`, cls: 'bad' }
  if (!pin.recorded) return { label: 'unrecorded · not callable yet', cls: 'warn' }
  return { label: 'pinned', cls: 'ok' }
}

const score = (s: number | undefined) => (s ?? 0).toFixed(2)

/**
 * The MCP upstreams Warden is a client of: how each is connected, the tools it offers with their
 * pinned definitions, and the definitions waiting for a person (a rug pull or a poisoned
 * description). Read again when a `tool_definition_*` event arrives (`version`) and every few
 * seconds; the route needs an approver token, so nothing shows before a login.
 */
export function Mcp(props: { version: number; approver: string | null }) {
  const [view, setView] = useState<McpUpstreams | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [reloads, setReloads] = useState(0)
  const [notice, setNotice] = useState<string | null>(null)

  useEffect(() => {
    if (!props.approver) {
      setView(null)
      return
    }
    let stale = false
    const load = () =>
      api
        .get<McpUpstreams>('/mcp/upstreams')
        .then((r) => {
          if (stale) return
          setView(r)
          setError(null)
        })
        .catch((e: unknown) => {
          if (!stale) setError(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e))
        })
    void load()
    const t = setInterval(() => void load(), POLL_MS)
    return () => {
      stale = true
      clearInterval(t)
    }
  }, [props.version, props.approver, reloads])

  if (!props.approver)
    return (
      <section class="panel mcp">
        <header>
          <h2>MCP upstreams</h2>
        </header>
        <p class="hint" data-testid="mcp-login">
          Log in with an approver token to see the MCP upstreams and their pinned tool definitions.
        </p>
      </section>
    )

  const unlisted = new Set(view?.unlisted ?? [])
  const pins = new Map((view?.pins ?? []).map((p) => [p.tool, p]))
  // Unlisted tools are never callable, whatever their pin says: accepting them changes nothing.
  const pending = (view?.pins ?? []).filter((p) => p.blocked && !unlisted.has(p.tool))

  return (
    <div class="mcp">
      <section class="panel">
        <header>
          <h2>Pending definition changes</h2>
          <span class="count" data-testid="mcp-pending-count">
            {pending.length} pending
          </span>
          <button onClick={() => setReloads((n) => n + 1)}>Refresh</button>
        </header>
        {error && <p class="error">{error}</p>}
        {notice && (
          <p class="note" data-testid="mcp-notice">
            {notice}
          </p>
        )}
        {view && pending.length === 0 && (
          <p class="empty">Every configured tool offers the definition that was pinned.</p>
        )}
        <ul class="cards">
          {pending.map((p) => (
            <PendingCard
              key={p.tool}
              pin={p}
              onAccepted={(tool) => {
                setNotice(`Accepted the current definition of ${tool}.`)
                setReloads((n) => n + 1)
              }}
              onStale={() => setReloads((n) => n + 1)}
            />
          ))}
        </ul>
      </section>
      {view?.upstreams.length === 0 && (
        <section class="panel">
          <p class="empty">No MCP upstreams are configured (`mcp_upstreams:`).</p>
        </section>
      )}
      {view?.upstreams.map((u) => (
        <UpstreamPanel key={u.name} upstream={u} pins={pins} unlisted={unlisted} />
      ))}
    </div>
  )
}

function UpstreamPanel(props: {
  upstream: McpUpstream
  pins: Map<string, McpPin>
  unlisted: Set<string>
}) {
  const u = props.upstream
  // The tools it lists now, and any pinned before that it no longer offers.
  const offered = new Set(u.tools)
  // The ones configured first (those an agent may call), then the unlisted ones.
  const names = [
    ...u.tools,
    ...[...props.pins.keys()].filter((t) => t.startsWith(`${u.name}.`) && !offered.has(t)).sort(),
  ].sort((a, b) => Number(props.unlisted.has(a)) - Number(props.unlisted.has(b)))
  const unlistedHere = names.filter((t) => props.unlisted.has(t)).length
  return (
    <section class="panel upstream" data-upstream={u.name}>
      <header>
        <h2>{u.name}</h2>
        <span class={`state ${STATE_CLASS[u.state]}`} data-testid="upstream-state">
          {u.state}
        </span>
        <span class="muted">
          {u.tools.length} {u.tools.length === 1 ? 'tool' : 'tools'} listed
          {unlistedHere > 0 && ` (${unlistedHere} unlisted)`} · {u.restarts}{' '}
          {u.restarts === 1 ? 'restart' : 'restarts'}
          {u.pid !== undefined && ` · pid ${u.pid}`}
        </span>
      </header>
      {u.lastError && (
        <p class="error" data-testid="upstream-error">
          last error: {u.lastError}
        </p>
      )}
      {names.length === 0 ? (
        <p class="empty">No tools listed yet.</p>
      ) : (
        <table class="pins">
          <colgroup>
            <col class="c-tool" />
            <col class="c-status" />
            <col class="c-hash" />
            <col class="c-hash" />
          </colgroup>
          <thead>
            <tr>
              <th>tool</th>
              <th>status</th>
              <th>pinned definition</th>
              <th>offered now</th>
            </tr>
          </thead>
          <tbody>
            {names.map((name) => {
              const pin = props.pins.get(name)
              const status = pinStatus(pin, props.unlisted.has(name))
              return (
                <tr key={name} data-tool={name}>
                  <td>
                    <strong>{name}</strong>
                  </td>
                  <td>
                    <span class={`state ${status.cls}`} data-testid="pin-status">
                      {status.label}
                    </span>
                    {!offered.has(name) && <div class="muted">no longer offered</div>}
                  </td>
                  <td>{pin && <Hash value={pin.pinned} />}</td>
                  <td>
                    {pin &&
                      (pin.current === pin.pinned ? (
                        <span class="muted">same</span>
                      ) : (
                        <Hash value={pin.current} />
                      ))}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
    </section>
  )
}

function PendingCard(props: {
  pin: McpPin
  onAccepted: (tool: string) => void
  onStale: () => void
}) {
  const p = props.pin
  const [busy, setBusy] = useState(false)
  const [outcome, setOutcome] = useState<{ text: string; bad: boolean } | null>(null)

  const accept = async () => {
    setBusy(true)
    setOutcome(null)
    try {
      // The hash shown on this card: if the upstream changed the tool again since, the gateway
      // answers 409 and nothing is accepted.
      await api.post<McpAccepted>('/mcp/upstreams/accept', { tool: p.tool, definition: p.current })
      props.onAccepted(p.tool)
    } catch (e) {
      const conflict = e instanceof ApiError && e.status === 409
      setOutcome({
        text: conflict
          ? `Not accepted: ${p.tool} changed again after it was shown (${e.code}). The card now shows the definition offered now; look at it again before accepting.`
          : e instanceof ApiError
            ? `${e.code}: ${e.message}`
            : String(e),
        bad: true,
      })
      if (conflict) props.onStale()
    } finally {
      setBusy(false)
    }
  }

  return (
    <li class="card pin-change" data-tool={p.tool} data-blocked={p.blocked}>
      <div class="row">
        <strong>{p.tool}</strong>
        <span class="state bad">
          {p.blocked === 'changed'
            ? 'definition changed'
            : p.blocked === 'shadowing'
              ? 'shadows other tools'
              : 'poisoned description'}
        </span>
      </div>
      {p.blocked === 'changed' ? (
        <p class="why">
          The upstream now offers another definition than the one pinned; the tool is blocked until
          it is accepted.
        </p>
      ) : p.blocked === 'shadowing' ? (
        <p class="why">
          Its description names tools of another server ({(p.shadows ?? []).join(', ')}), the way a
          malicious server steers how a model uses tools it does not own; the tool is blocked until
          it is accepted.
        </p>
      ) : (
        <p class="why">
          The injection detector scored its description {score(p.score)} at first sight; the tool is
          blocked until it is accepted.
        </p>
      )}
      <dl class="facts hashes">
        <dt>pinned</dt>
        <dd>
          <Hash value={p.pinned} />
        </dd>
        <dt>offered now</dt>
        <dd>
          {p.current === p.pinned ? (
            <span class="muted">the same (blocked at first sight)</span>
          ) : (
            <Hash value={p.current} />
          )}
        </dd>
      </dl>
      <Definitions pin={p} />
      <div class="actions">
        <button class="approve" disabled={busy} onClick={() => void accept()}>
          Accept definition
        </button>
        <span class="muted">accepts {p.current.slice(0, 12)} as the new pin (audited)</span>
      </div>
      {outcome && (
        <p class={outcome.bad ? 'error' : 'outcome'} data-testid="accept-outcome">
          {outcome.text}
        </p>
      )}
    </li>
  )
}

/**
 * What the approver accepts, as text: the definition offered now and, when it differs and this
 * gateway saw it, the pinned one. A hash alone cannot be judged.
 */
function Definitions({ pin }: { pin: McpPin }) {
  const offered = pin.offered
  const pinned = pin.current === pin.pinned ? undefined : pin.pinned_definition
  if (!offered && !pinned)
    return <p class="muted">This gateway has not seen the definition's text (only its hash).</p>
  return (
    <div class="definitions">
      {offered && <DefinitionText title="offered now" def={offered} />}
      {pinned && <DefinitionText title="pinned" def={pinned} />}
    </div>
  )
}

function DefinitionText({ title, def }: { title: string; def: NonNullable<McpPin['offered']> }) {
  return (
    <div class="definition" data-definition={title}>
      <h4>{title}</h4>
      <pre class="description">{def.description ?? '(no description)'}</pre>
      {def.inputSchema !== undefined && (
        <details>
          <summary>input schema</summary>
          <pre>{JSON.stringify(def.inputSchema, null, 2)}</pre>
        </details>
      )}
    </div>
  )
}
