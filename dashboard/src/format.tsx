import type { RiskLevel, WardenEvent } from './api'

/** How a status reads: good, bad, waiting on something, or neutral. */
export type Tone = 'ok' | 'bad' | 'warn' | 'info'

export interface Status {
  /** Stable name, also a CSS class (`s-<key>`) and `data-status`. */
  key: string
  label: string
  tone: Tone
}

const STATUS: Record<string, Omit<Status, 'key'>> = {
  allow: { label: 'allowed', tone: 'ok' },
  executed: { label: 'executed', tone: 'ok' },
  failed: { label: 'execution failed', tone: 'bad' },
  unknown: { label: 'outcome unknown', tone: 'warn' },
  deny: { label: 'denied', tone: 'bad' },
  approval_required: { label: 'held for approval', tone: 'warn' },
  approved: { label: 'approved', tone: 'ok' },
  denied: { label: 'denied by a person', tone: 'bad' },
  expired: { label: 'expired', tone: 'warn' },
  rejected: { label: 'rejected', tone: 'bad' },
  delivered: { label: 'message delivered', tone: 'ok' },
  pinned: { label: 'definition pinned', tone: 'info' },
  blocked: { label: 'definition blocked', tone: 'bad' },
  reloaded: { label: 'configuration reloaded', tone: 'info' },
}

/**
 * What an event's status is, for people: an execution that failed is a failure (`decision` says
 * only `executed`; `outcome` says how it went), a timed-out one is unknown.
 */
export function statusOf(e: Pick<WardenEvent, 'decision' | 'outcome'>): Status {
  const key =
    e.decision === 'executed' && e.outcome === 'error'
      ? 'failed'
      : e.decision === 'executed' && e.outcome === 'unknown'
        ? 'unknown'
        : e.decision
  return { key, ...(STATUS[key] ?? { label: key, tone: 'info' }) }
}

// Drawn, not typed: an emoji needs a font the machine may not have (blank boxes otherwise).
const ICON_PATH: Record<Tone, string> = {
  ok: 'M3.5 8.5 6.5 11.5 12.5 4.5',
  bad: 'M4 4 12 12M12 4 4 12',
  warn: 'M6 4v8M10 4v8',
  info: 'M8 4.5v.5M8 7v5',
}

/** A status as an icon and its words, coloured by tone. */
export function StatusBadge({ status }: { status: Status }) {
  return (
    <span class={`badge t-${status.tone}`} data-status={status.key}>
      <svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true">
        <path d={ICON_PATH[status.tone]} />
      </svg>
      {status.label}
    </span>
  )
}

/**
 * Who an event is between: a message goes from its sender (`agent_id`) to `params.to_agent`; a
 * delegated call is made by `agent_id` for the first agent of its chain.
 */
export function partiesOf(e: Pick<WardenEvent, 'type' | 'agent_id' | 'params' | 'chain'>): {
  text: string
  title?: string
} {
  const title = e.chain && e.chain.length > 0 ? e.chain.join(' → ') : undefined
  if (e.type.startsWith('agent_message_')) {
    const to =
      (e.params as { to_agent?: unknown } | null | undefined)?.to_agent ?? e.chain?.at(-1) ?? '?'
    return { text: `${e.agent_id} → ${String(to)}`, ...(title && { title }) }
  }
  if (e.chain && e.chain.length > 1)
    return { text: `${e.chain[0]} → ${e.agent_id}`, ...(title && { title }) }
  return { text: e.agent_id || '—' }
}

/** A short line of what a tool returned (the first few fields), for a person to read. */
export function summarize(result: unknown, max = 240): string {
  if (result === undefined || result === null) return 'no result'
  let text: string
  if (typeof result === 'object' && !Array.isArray(result))
    text = Object.entries(result as Record<string, unknown>)
      .filter(([, v]) => v === null || typeof v !== 'object')
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ')
  else text = JSON.stringify(result)
  if (!text) text = JSON.stringify(result)
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** An event's reason, with the error a failed execution recorded (when the reader may see it). */
export function reasonOf(
  e: Pick<WardenEvent, 'decision' | 'outcome' | 'reason' | 'result'>,
): string {
  const error = statusOf(e).tone === 'bad' ? errorOf(e.result) : undefined
  return error ? `${e.reason}: ${error}` : e.reason
}

/** The error text a failed execution recorded (`result.error`), if any. */
export function errorOf(result: unknown): string | undefined {
  const err = (result as { error?: unknown } | null | undefined)?.error
  return typeof err === 'string' ? err : undefined
}

export const RISK_COLOR: Record<RiskLevel, string> = {
  low: '#2e9d5b',
  medium: '#d3a21a',
  high: '#e06c1f',
  critical: '#d33a3a',
}

export const time = (iso: string) => new Date(iso).toLocaleTimeString([], { hour12: false })
export const dateTime = (iso: string) => new Date(iso).toLocaleString([], { hour12: false })

export function secondsLeft(iso: string, now: number): number {
  return Math.max(0, Math.round((Date.parse(iso) - now) / 1000))
}

export function duration(seconds: number): string {
  const m = Math.floor(seconds / 60)
  const s = seconds % 60
  return m > 0 ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`
}

export function RiskBadge({ risk }: { risk: WardenEvent['risk'] }) {
  return (
    <span class="risk" style={{ background: RISK_COLOR[risk.level] }} title={`risk ${risk.score}`}>
      {risk.level} {risk.score}
    </span>
  )
}

export function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>
}
