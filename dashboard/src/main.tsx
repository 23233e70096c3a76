import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { api, ApiError, auth, EventStream, type StreamStatus, type WardenEvent } from './api'
import { Approvals } from './views/Approvals'
import { Audit } from './views/Audit'
import { Config } from './views/Config'
import { Demo } from './views/Demo'
import { Drawer } from './views/Drawer'
import { Live } from './views/Live'
import { Mcp } from './views/Mcp'
import { Stats } from './views/Stats'
import { Timeline } from './views/Timeline'
import './styles.css'

const TABS = ['live', 'stats', 'timeline', 'audit', 'mcp', 'demo', 'config'] as const
type Tab = (typeof TABS)[number]
const TAB_LABEL: Record<Tab, string> = {
  live: 'Live',
  stats: 'Statistics',
  timeline: 'Timeline',
  audit: 'Audit log',
  mcp: 'MCP upstreams',
  demo: 'Demo',
  config: 'Configuration',
}
/** Events kept in memory for the stream and the per-minute chart. */
const KEEP = 1000

function App() {
  const [tab, setTab] = useState<Tab>(() =>
    (TABS as readonly string[]).includes(location.hash.slice(1))
      ? (location.hash.slice(1) as Tab)
      : 'live',
  )
  const [events, setEvents] = useState<WardenEvent[]>([])
  const [status, setStatus] = useState<StreamStatus>('connecting')
  const [version, setVersion] = useState(0)
  const [approvalVersion, setApprovalVersion] = useState(0)
  const [mcpVersion, setMcpVersion] = useState(0)
  const [open, setOpen] = useState<WardenEvent | null>(null)
  const [approver, setApprover] = useState<string | null>(null)
  const [agents, setAgents] = useState<string[]>([])
  const [tools, setTools] = useState<string[]>([])
  const [focus, setFocus] = useState<{ session_id?: string; agent_id?: string } | null>(null)
  const [loginError, setLoginError] = useState<string | null>(null)

  useEffect(() => {
    location.hash = tab
  }, [tab])

  // Newest events first, then the live stream from where they end. Opened again when an approver
  // logs in or out: what a reader may see (tool results) depends on who reads.
  useEffect(() => {
    let stream: EventStream | null = null
    let stopped = false
    api
      .get<{ events: WardenEvent[] }>(`/events/recent?limit=200`)
      .catch(() => ({ events: [] as WardenEvent[] }))
      .then(({ events: recent }) => {
        if (stopped) return
        setEvents(recent)
        stream = new EventStream((e) => {
          setEvents((list) => [e, ...list].slice(0, KEEP))
          setVersion((v) => v + 1)
          if (e.type.startsWith('approval_')) setApprovalVersion((v) => v + 1)
          // A tool pinned, changed (blocked) or accepted, on this instance or another.
          if (e.type.startsWith('tool_definition_')) setMcpVersion((v) => v + 1)
        }, setStatus)
        stream.start(recent[0]?.seq ?? 0)
      })
    return () => {
      stopped = true
      stream?.stop()
    }
  }, [approver])

  useEffect(() => {
    api
      .get<{ agents: { id: string }[] }>('/config/agents')
      .then((r) => setAgents(r.agents.map((a) => a.id)))
      .catch(() => {})
    api
      .get<{ tools: { name: string }[] }>('/config/tools')
      .then((r) => setTools(r.tools.map((t) => t.name)))
      .catch(() => {})
    if (auth.token) void login()
  }, [])

  /** The token was stored by the caller; the gateway says whose it is (agent keys are refused). */
  const login = () =>
    api
      .get<{ approver: { id: string } }>('/auth/whoami')
      .then((r) => setApprover(r.approver.id))
      .catch((e: unknown) => {
        auth.set(null)
        setApprover(null)
        setLoginError(e instanceof ApiError ? e.message : String(e))
      })

  return (
    <div class="app">
      <header class="top">
        <h1>
          <svg class="logo" viewBox="0 0 32 32" width="20" height="20" aria-hidden="true">
            <path d="M16 2 4 6v9c0 7.5 5.1 13.3 12 15 6.9-1.7 12-7.5 12-15V6z" fill="#2e6bd3" />
            <path d="m10 16 4 4 8-9" stroke="#fff" stroke-width="3" fill="none" />
          </svg>{' '}
          Warden
        </h1>
        <nav>
          {TABS.map((t) => (
            <button
              key={t}
              class={t === tab ? 'active' : ''}
              onClick={() => setTab(t)}
              data-tab={t}
            >
              {TAB_LABEL[t]}
            </button>
          ))}
        </nav>
        <Login
          approver={approver}
          error={loginError}
          onLogin={(t) => {
            auth.set(t)
            setLoginError(null)
            void login()
          }}
          onLogout={() => {
            auth.set(null)
            setApprover(null)
          }}
        />
      </header>
      <main>
        {tab === 'live' && (
          <div class="live-grid">
            <Live events={events} status={status} onOpen={setOpen} />
            <Approvals version={approvalVersion} approver={approver} />
          </div>
        )}
        {tab === 'stats' && <Stats version={version} events={events} />}
        {tab === 'timeline' && (
          <Timeline agents={agents} version={version} focus={focus} onOpen={setOpen} />
        )}
        {tab === 'audit' && (
          <Audit
            agents={agents}
            tools={tools}
            approver={approver}
            onOpen={setOpen}
            onTimeline={(session_id, agent_id) => {
              setFocus({ session_id, ...(agent_id && { agent_id }) })
              setTab('timeline')
            }}
          />
        )}
        {tab === 'mcp' && <Mcp version={mcpVersion} approver={approver} />}
        {tab === 'demo' && <Demo onRan={() => setApprovalVersion((v) => v + 1)} />}
        {tab === 'config' && <Config />}
      </main>
      {open && <Drawer event={open} onClose={() => setOpen(null)} />}
    </div>
  )
}

function Login(props: {
  approver: string | null
  error: string | null
  onLogin: (token: string) => void
  onLogout: () => void
}) {
  const [token, setToken] = useState('')
  if (props.approver)
    return (
      <div class="login">
        signed in as <strong data-testid="approver">{props.approver}</strong>{' '}
        <button onClick={props.onLogout}>Log out</button>
      </div>
    )
  return (
    <form
      class="login"
      onSubmit={(e) => {
        e.preventDefault()
        if (token.trim()) props.onLogin(token.trim())
        setToken('')
      }}
    >
      <input
        type="password"
        name="token"
        placeholder="approver token"
        autocomplete="off"
        value={token}
        onInput={(e) => setToken((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Log in</button>
      {props.error && (
        <span class="error" data-testid="login-error">
          {props.error}
        </span>
      )}
    </form>
  )
}

render(<App />, document.getElementById('app')!)
