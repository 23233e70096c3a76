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
  type Plugin,
} from 'chart.js'
import type { ComponentChildren } from 'preact'
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
/** Counts are whole: no 0.5 decisions on an axis. */
const COUNT_TICKS = { precision: 0 }
/** Block reasons are wrapped at this many characters a line, never cut. */
const WRAP = 60

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
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: COUNT_TICKS },
        },
      },
    }
  }
  const levels = Object.keys(RISK_COLOR) as (keyof typeof RISK_COLOR)[]
  const riskCounts = levels.map((l) => stats.by_risk_level[l] ?? 0)
  const riskTotal = riskCounts.reduce((a, b) => a + b, 0)
  const reasons = stats.top_block_reasons
  const reasonLines = reasons.map((r) => wrap(r.reason, WRAP))
  const time = overTime(props.events)

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
        <ChartBox title={time.title} config={time.config} />
        <ChartBox
          title="Risk distribution"
          config={{
            type: 'doughnut',
            data: {
              labels: levels,
              datasets: [{ data: riskCounts, backgroundColor: levels.map((l) => RISK_COLOR[l]) }],
            },
            options: {
              responsive: true,
              maintainAspectRatio: false,
              plugins: { legend: { display: false } },
            },
            plugins: [arcNumbers],
          }}
        >
          <table class="legend" data-testid="risk-legend">
            <thead>
              <tr>
                <th>risk</th>
                <th>decisions</th>
                <th>share</th>
              </tr>
            </thead>
            <tbody>
              {levels.map((l, i) => (
                <tr key={l} data-level={l}>
                  <td>
                    <span class="swatch" style={{ background: RISK_COLOR[l] }} /> {l}
                  </td>
                  <td class="n">{riskCounts[i]}</td>
                  <td class="n">
                    {riskTotal ? `${Math.round((riskCounts[i]! / riskTotal) * 100)}%` : '—'}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ChartBox>
        <ChartBox title="By agent" config={stacked(stats.by_agent)} />
        <ChartBox title="By tool" config={stacked(stats.by_tool)} />
        <ChartBox
          title="Top block reasons"
          wide
          height={Math.max(240, reasonLines.flat().length * 16 + reasons.length * 12 + 40)}
          config={{
            type: 'bar',
            data: {
              labels: reasonLines,
              datasets: [
                {
                  label: 'denials',
                  data: reasons.map((r) => r.count),
                  backgroundColor: COLORS.denied,
                },
              ],
            },
            options: {
              indexAxis: 'y',
              responsive: true,
              maintainAspectRatio: false,
              scales: { x: { beginAtZero: true, ticks: COUNT_TICKS } },
              plugins: {
                legend: { display: false },
                tooltip: {
                  callbacks: { title: (items) => reasons[items[0]?.dataIndex ?? 0]?.reason ?? '' },
                },
              },
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

/** Bucket sizes for the time chart, in minutes: the smallest that fits the data in 60 bars. */
const STEPS = [1, 5, 15, 60]

/**
 * Decisions over time from the events the dashboard holds, over the range they cover (from the
 * oldest to now, at least five bars), in the smallest buckets that fit that range in 60 bars.
 */
function overTime(events: WardenEvent[]): { title: string; config: ChartConfiguration<'bar'> } {
  const now = Date.now()
  const keyOf = (e: WardenEvent) =>
    e.decision === 'allow'
      ? 'allowed'
      : e.decision === 'deny'
        ? 'denied'
        : e.decision === 'approval_required'
          ? 'approval_required'
          : null
  const counted = events.filter((e) => keyOf(e) !== null)
  const oldest = Math.min(now, ...counted.map((e) => Date.parse(e.timestamp)))
  const step = STEPS.find((m) => (now - oldest) / 60_000 / m < 60) ?? STEPS.at(-1)!
  const size = step * 60_000
  const last = Math.floor(now / size)
  const first = Math.max(last - 59, Math.min(Math.floor(oldest / size), last - 4))
  const n = last - first + 1
  const series = {
    allowed: new Array<number>(n).fill(0),
    denied: new Array<number>(n).fill(0),
    approval_required: new Array<number>(n).fill(0),
  }
  const clock = (ms: number) =>
    new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false })
  const labels = Array.from({ length: n }, (_, i) => clock((first + i) * size))
  for (const e of counted) {
    const i = Math.floor(Date.parse(e.timestamp) / size) - first
    if (i >= 0 && i < n) series[keyOf(e)!][i]!++
  }
  return {
    title: `Decisions over time (per ${step === 60 ? 'hour' : `${step} min`}, from ${labels[0]})`,
    config: {
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
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, ticks: COUNT_TICKS },
        },
      },
    },
  }
}

/** Words into lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(line)
  return lines.length > 0 ? lines : ['']
}

/** The count of each slice, written on the slice. */
const arcNumbers: Plugin<'doughnut'> = {
  id: 'warden-arc-numbers',
  afterDatasetsDraw(chart) {
    const { ctx } = chart
    const data = chart.data.datasets[0]?.data ?? []
    ctx.save()
    ctx.font = 'bold 13px sans-serif'
    ctx.fillStyle = '#fff'
    ctx.textAlign = 'center'
    ctx.textBaseline = 'middle'
    chart.getDatasetMeta(0).data.forEach((arc, i) => {
      const v = data[i]
      if (typeof v !== 'number' || v === 0) return
      const at = arc.tooltipPosition(true)
      ctx.fillText(String(v), at.x ?? 0, at.y ?? 0)
    })
    ctx.restore()
  },
}

/**
 * What a chart shows, on its figure (`data-ticks`: each numeric axis's ticks; `data-labels`: the
 * category labels, whole): for assistive tools and for the browser tests.
 */
const describe: Plugin = {
  id: 'warden-describe',
  afterUpdate(chart) {
    const figure = chart.canvas.closest('figure')
    if (!figure) return
    const ticks: Record<string, number[]> = {}
    for (const [id, scale] of Object.entries(chart.scales))
      if (scale.type === 'linear') ticks[id] = scale.ticks.map((t) => t.value)
    figure.dataset.ticks = JSON.stringify(ticks)
    figure.dataset.labels = JSON.stringify(
      (chart.data.labels ?? []).map((l) => (Array.isArray(l) ? l.join(' ') : String(l))),
    )
  },
}

/** One Chart.js chart on a canvas; rebuilt when its configuration changes. */
function ChartBox(props: {
  title: string
  config: ChartConfiguration<'bar'> | ChartConfiguration<'doughnut'>
  wide?: boolean
  height?: number
  children?: ComponentChildren
}) {
  const canvas = useRef<HTMLCanvasElement>(null)
  useEffect(() => {
    if (!canvas.current) return
    const config = props.config as ChartConfiguration
    const chart = new Chart(canvas.current, {
      ...config,
      plugins: [...(config.plugins ?? []), describe],
    })
    return () => chart.destroy()
  }, [JSON.stringify(props.config.data)])
  return (
    <figure class={`chart ${props.wide ? 'wide' : ''}`} data-testid="chart">
      <figcaption>{props.title}</figcaption>
      <div class="body">
        <div class="canvas" style={props.height ? { height: `${props.height}px` } : undefined}>
          <canvas ref={canvas} role="img" aria-label={props.title} />
        </div>
        {props.children}
      </div>
    </figure>
  )
}
