import { useEffect, useState } from 'preact/hooks'
import { api } from '../api'
import { statusOf, StatusBadge } from '../format'

interface Scenario {
  id: string
  name?: string
  description?: string
  expected: string
}
interface Run {
  scenario: string
  expected: string
  decision: string
  passed: boolean
  status: number
  response: { approval_id?: string; error?: { code: string; message: string }; reason?: string }
}

/** The seed's scenarios, each run through the real pipeline: expected against actual. */
export function Demo(props: { onRan: () => void }) {
  const [scenarios, setScenarios] = useState<Scenario[] | null>(null)
  const [runs, setRuns] = useState<Record<string, Run | 'running'>>({})
  const [error, setError] = useState<string | null>(null)

  useEffect(() => {
    api
      .get<{ scenarios: Scenario[] }>('/demo/scenarios')
      .then((r) => setScenarios(r.scenarios))
      .catch((e: Error) => setError(`demo scenarios are not available: ${e.message}`))
  }, [])

  const run = async (id: string) => {
    setRuns((r) => ({ ...r, [id]: 'running' }))
    try {
      const result = await api.post<Run>(`/demo/run-scenario/${encodeURIComponent(id)}`)
      setRuns((r) => ({ ...r, [id]: result }))
    } catch (e) {
      setError(String(e))
    }
    props.onRan()
  }
  const runAll = async () => {
    for (const s of scenarios ?? []) await run(s.id)
  }

  if (error) return <p class="error">{error}</p>
  if (!scenarios) return <p class="empty">Loading scenarios…</p>
  return (
    <section class="panel demo">
      <header>
        <h2>Demo scenarios</h2>
        <button onClick={runAll}>Run all</button>
      </header>
      <table data-testid="scenarios">
        <thead>
          <tr>
            <th>scenario</th>
            <th>expected</th>
            <th>actual</th>
            <th>run</th>
          </tr>
        </thead>
        <tbody>
          {scenarios.map((s) => {
            const r = runs[s.id]
            return (
              <tr key={s.id} data-scenario={s.id}>
                <td>
                  <strong>{s.id}</strong>
                  <div class="muted">{s.description ?? s.name ?? ''}</div>
                </td>
                <td>
                  <StatusBadge status={statusOf({ decision: s.expected })} />
                </td>
                <td class="actual">
                  {r === 'running' && 'running…'}
                  {r && r !== 'running' && (
                    <>
                      <StatusBadge status={statusOf({ decision: r.decision })} />{' '}
                      <span class={r.passed ? 'pass' : 'fail'}>
                        {r.passed ? 'as expected' : 'NOT as expected'}
                      </span>
                      <div class="muted">
                        {r.response.error
                          ? `${r.response.error.code}: ${r.response.error.message}`
                          : r.response.approval_id
                            ? `approval ${r.response.approval_id}`
                            : ''}
                      </div>
                    </>
                  )}
                </td>
                <td>
                  <button onClick={() => run(s.id)} data-run={s.id}>
                    Run
                  </button>
                </td>
              </tr>
            )
          })}
        </tbody>
      </table>
    </section>
  )
}
