import type { RiskLevel } from '../domain/config.js'

/**
 * Risk score 0–100: the tool's inherent risk plus the signals layers add (injection score,
 * taint, guard holds, sequence hits, denials), capped at 100. Levels are fixed bands so a score
 * means the same thing in every deployment. See docs/risk.md.
 */
export const TOOL_RISK_BASE: Record<RiskLevel, number> = {
  low: 5,
  medium: 20,
  high: 45,
  critical: 75,
}

export function riskLevel(score: number): RiskLevel {
  if (score >= 75) return 'critical'
  if (score >= 50) return 'high'
  if (score >= 25) return 'medium'
  return 'low'
}

export function riskOf(score: number): { score: number; level: RiskLevel } {
  const s = Math.max(0, Math.min(100, Math.round(score)))
  return { score: s, level: riskLevel(s) }
}
