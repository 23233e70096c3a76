import type { RiskLevel, WardenEvent } from './api'

export const DECISION_ICON: Record<string, string> = {
  allow: '✅',
  executed: '▶️',
  deny: '❌',
  approval_required: '⏸️',
  approved: '👍',
  denied: '👎',
  expired: '⌛',
  rejected: '🚫',
  pinned: '📌',
  blocked: '🔒',
  reloaded: '🔄',
}

export const DECISION_LABEL: Record<string, string> = {
  allow: 'allowed',
  executed: 'executed',
  deny: 'denied',
  approval_required: 'pending',
  approved: 'approved',
  denied: 'denied by a person',
  expired: 'expired',
  rejected: 'rejected',
  pinned: 'tool definition pinned',
  blocked: 'tool definition blocked',
  reloaded: 'configuration reloaded',
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
