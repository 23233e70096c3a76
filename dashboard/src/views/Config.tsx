import { useEffect, useState } from 'preact/hooks'
import { api, type RiskLevel } from '../api'
import { RISK_COLOR } from '../format'

interface Agent {
  id: string
  role: string
  description: string
  clearance: string
  tools: string[]
  rate_limit: { limit: number; window_seconds: number }
  tool_rate_limits: Record<string, { limit: number; window_seconds: number }>
}
interface Tool {
  name: string
  description: string
  risk: RiskLevel
  classification: string
  output_trust: string
  approval: string
  executor: { type: string }
}

/** Agents, their tools and limits; tools with risk and classification. Read only. */
export function Config() {
  const [agents, setAgents] = useState<Agent[]>([])
  const [tools, setTools] = useState<Tool[]>([])
  useEffect(() => {
    api
      .get<{ agents: Agent[] }>('/config/agents')
      .then((r) => setAgents(r.agents))
      .catch(() => {})
    api
      .get<{ tools: Tool[] }>('/config/tools')
      .then((r) => setTools(r.tools))
      .catch(() => {})
  }, [])
  return (
    <section class="panel config">
      <h2>Agents</h2>
      <table data-testid="agents">
        <thead>
          <tr>
            <th>agent</th>
            <th>role</th>
            <th>clearance</th>
            <th>tools</th>
            <th>rate limit</th>
          </tr>
        </thead>
        <tbody>
          {agents.map((a) => (
            <tr key={a.id}>
              <td>
                <strong>{a.id}</strong>
                <div class="muted">{a.description}</div>
              </td>
              <td>{a.role}</td>
              <td>{a.clearance}</td>
              <td>{a.tools.length ? a.tools.join(', ') : <em>none</em>}</td>
              <td>
                {a.rate_limit.limit} / {a.rate_limit.window_seconds}s
                {Object.entries(a.tool_rate_limits).map(([t, l]) => (
                  <div class="muted" key={t}>
                    {t}: {l.limit} / {l.window_seconds}s
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Tools</h2>
      <table data-testid="tools">
        <thead>
          <tr>
            <th>tool</th>
            <th>risk</th>
            <th>data</th>
            <th>output</th>
            <th>approval</th>
            <th>executor</th>
          </tr>
        </thead>
        <tbody>
          {tools.map((t) => (
            <tr key={t.name}>
              <td>
                <strong>{t.name}</strong>
                <div class="muted">{t.description}</div>
              </td>
              <td>
                <span class="risk" style={{ background: RISK_COLOR[t.risk] }}>
                  {t.risk}
                </span>
              </td>
              <td>{t.classification}</td>
              <td>{t.output_trust}</td>
              <td>{t.approval}</td>
              <td>{t.executor.type}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}
