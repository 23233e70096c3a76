import type {
  ApprovalRuleConfig,
  ApproverConfig,
  RiskLevel,
  WardenConfig,
} from '../domain/config.js'

/** What the approval rules look at: the held call, as stored. */
export interface HeldCall {
  tool: string
  params: Readonly<Record<string, unknown>>
  risk: { level: string }
}

/** How long a held call waits: a per-tool TTL beats a per-risk-level TTL beats the default. */
export function ttlSeconds(config: WardenConfig, tool: string, level: RiskLevel): number {
  const a = config.approvals
  return a.ttl_by_tool[tool] ?? a.ttl_by_risk[level] ?? a.ttl_seconds
}

/** The rules that apply to a held call. */
export function matchingRules(
  rules: readonly ApprovalRuleConfig[],
  call: HeldCall,
): ApprovalRuleConfig[] {
  return rules.filter((r) => {
    if (r.tools && !r.tools.includes(call.tool)) return false
    if (r.risk_levels && !r.risk_levels.includes(call.risk.level as RiskLevel)) return false
    if (r.param_above) {
      const value = call.params[r.param_above.param]
      // A value that is not a number cannot be shown to be under the line: the rule applies.
      if (typeof value === 'number' && value <= r.param_above.value) return false
    }
    return true
  })
}

/** Why `approver` may not decide this call, or null when every matching rule is met. */
export function approverProblem(
  rules: readonly ApprovalRuleConfig[],
  approver: ApproverConfig,
  call: HeldCall,
): string | null {
  for (const rule of matchingRules(rules, call)) {
    if (!rule.roles.some((role) => approver.roles.includes(role))) {
      return `rule \`${rule.id}\` needs one of the roles ${rule.roles.map((r) => `\`${r}\``).join(', ')}`
    }
  }
  return null
}
