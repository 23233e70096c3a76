import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  DoughnutController,
  Legend,
  LinearScale,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js'
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, type Stats as StatsBody, type WardenEvent } from '../api'
import { RISK_COLOR } from '../format'

Chart.register(
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  DoughnutController,
  Legend,
  LinearScale,
  Tooltip,
)
Chart.defaults.color = '#c9d1d9'
Chart.defaults.borderColor = '#30363d'
// A live view redraws often; animations would only delay what the numbers say.
Chart.defaults.animation = false

const COLORS = { allowed: '#2e9d5b', denied: '#d33a3a', approval_required: '#d3a21a' }

/** Totals, decisions over time, risk distribution, per-agent and per-tool, top block reasons. */
export function Stats(props: { version: number; events: WardenEvent[] }) {
  const [stats, setStats] = useState<StatsBody | null>(null)
  useEffect(() => {
    api
      .get<StatsBody>('/stats')
      .then(setStats)
      .catch(() => setStats(null))
  }, [props.version])
  if (!stats) return <p class="empty">Loading statistics…</p>

  const stacked = (rows: StatsBody['by_agent']): ChartConfiguration<'bar'> => {
    const names = Object.keys(rows).sort()
    return {
      type: 'bar',
      data: {
        labels: names,
        datasets: (['allowed', 'denied', 'approval_required'] as const).map((k) => ({
          label: k === 'approval_required' ? 'held' : k,
          data: names.map((n) => rows[n]?.[k] ?? 0),
          backgroundColor: COLORS[k],
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
      },
    }
  }

  return (
    <section class="stats">
      <div class="tiles" data-testid="tiles">
        <Tile label="decisions" value={stats.total_requests} />
        <Tile label="allowed" value={stats.allowed} tone="ok" />
        <Tile label="denied" value={stats.denied} tone="bad" />
        <Tile label="held for a person" value={stats.approval_required} tone="warn" />
        <Tile label="block rate" value={`${(stats.block_rate * 100).toFixed(1)}%`} />
      </div>
      <div class="charts">
        <ChartBox
          title="Decisions over time (per minute, last hour)"
          config={overTime(props.events)}
        />
        <ChartBox
          title="Risk distribution"
          config={{
            type: 'doughnut',
            data: {
              labels: Object.keys(RISK_COLOR),
              datasets: [
                {
                  data: Object.keys(RISK_COLOR).map((l) => stats.by_risk_level[l] ?? 0),
                  backgroundColor: Object.values(RISK_COLOR),
                },
              ],
            },
            options: { responsive: true, maintainAspectRatio: false },
          }}
        />
        <ChartBox title="By agent" config={stacked(stats.by_agent)} />
        <ChartBox title="By tool" config={stacked(stats.by_tool)} />
        <ChartBox
          title="Top block reasons"
          wide
          config={{
            type: 'bar',
            data: {
              labels: stats.top_block_reasons.map((r) => r.reason.slice(0, 70)),
              datasets: [
                {
                  label: 'denials',
                  data: stats.top_block_reasons.map((r) => r.count),
                  backgroundColor: COLORS.denied,
                },
              ],
            },
            options: {
              indexAxis: 'y',
              responsive: true,
              maintainAspectRatio: false,
              plugins: { legend: { display: false } },
            },
          }}
        />
      </div>
    </section>
  )
}

function Tile(props: { label: string; value: number | string; tone?: 'ok' | 'bad' | 'warn' }) {
  return (
    <div class={`tile ${props.tone ?? ''}`}>
      <div class="value">{props.value}</div>
      <div class="label">{props.label}</div>
    </div>
  )
}

/** Decisions per minute over the last hour, from the events the dashboard holds. */
function overTime(events: WardenEvent[]): ChartConfiguration<'bar'> {
  const now = Date.now()
  const minutes = 60
  const labels: string[] = []
  const series = {
    allowed: new Array(minutes).fill(0),
    denied: new Array(minutes).fill(0),
    approval_required: new Array(minutes).fill(0),
  }
  for (let i = 0; i < minutes; i++) {
    const t = new Date(now - (minutes - 1 - i) * 60_000)
    labels.push(t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false }))
  }
  for (const e of events) {
    const key =
      e.decision === 'allow'
        ? 'allowed'
        : e.decision === 'deny'
          ? 'denied'
          : e.decision === 'approval_required'
            ? 'approval_required'
            : null
    if (!key) continue
    const age = Math.floor((now - Date.parse(e.timestamp)) / 60_000)
    if (age >= 0 && age < minutes) series[key][minutes - 1 - age]++
  }
  return {
    type: 'bar',
    data: {
      labels,
      datasets: (['allowed', 'denied', 'approval_required'] as const).map((k) => ({
        label: k === 'approval_required' ? 'held' : k,
        data: series[k],
        backgroundColor: COLORS[k],
      })),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
    },
  }
}

/** One Chart.js chart on a canvas; rebuilt when its configuration changes. */
function ChartBox(props: { title: string; config: ChartConfiguration; wide?: boolean }) {
  const canvas = useRef<HTMLCanvasElement>(null)
  useEffect(() => {
    if (!canvas.current) return
    const chart = new Chart(canvas.current, props.config)
    return () => chart.destroy()
  }, [JSON.stringify(props.config.data)])
  return (
    <figure class={`chart ${props.wide ? 'wide' : ''}`} data-testid="chart">
      <figcaption>{props.title}</figcaption>
      <div class="canvas">
        <canvas ref={canvas} role="img" aria-label={props.title} />
      </div>
    </figure>
  )
}
