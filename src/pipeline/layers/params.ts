import { resolved, type Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 5: the parameters must match the tool's JSON Schema exactly: no coercion, no unknown
 * fields, and every number finite and within the safe-integer range (no `1e309`, no `2^53+1`).
 */
export function params(rt: Runtime): Layer {
  return {
    name: 'params',
    check(ctx) {
      const { tool } = resolved(ctx)
      const bad = unsafeNumber(ctx.call.params, '')
      if (bad !== null) {
        return {
          outcome: 'deny',
          code: 'param_invalid',
          reason: `\`params${bad}\` is not a finite number in the safe range`,
        }
      }
      const validate = rt.schemas.get(tool.name)
      if (!validate) throw new Error(`no compiled schema for tool \`${tool.name}\``)
      if (validate(ctx.call.params)) return { outcome: 'pass' }
      const err = validate.errors?.[0]
      const where = err?.instancePath ? `params${err.instancePath.replace(/\//g, '.')}` : 'params'
      const extra =
        err?.keyword === 'additionalProperties'
          ? ` \`${String(err.params.additionalProperty)}\``
          : ''
      return {
        outcome: 'deny',
        code: 'param_invalid',
        reason: `\`${where}\` ${err?.message ?? 'is invalid'}${extra}`,
        risk: 10,
      }
    },
  }
}

function unsafeNumber(node: unknown, path: string): string | null {
  if (typeof node === 'number') {
    return Number.isFinite(node) && Math.abs(node) <= Number.MAX_SAFE_INTEGER ? null : path
  }
  if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      const bad = unsafeNumber(v, `${path}.${k}`)
      if (bad !== null) return bad
    }
  }
  return null
}
