import { FORBIDDEN_KEYS } from '../../domain/types.js'
import type { Layer } from '../layer.js'
import type { Runtime } from '../runtime.js'

/**
 * Layer 5: the parameters must match the tool's JSON Schema exactly: no coercion, no unknown
 * fields, every number finite and within the safe-integer range (no `1e309`, no `2^53+1`), no
 * prototype keys and no nesting past the configured depth. The HTTP parser refuses the last two
 * already; this layer holds the line for every other door into the pipeline.
 */
export function params(rt: Runtime): Layer<'params'> {
  const maxDepth = rt.config.server.max_depth
  return {
    name: 'params',
    check(ctx) {
      const { tool } = ctx
      const unsafe = unsafeValue(ctx.call.params, '', 0, maxDepth)
      if (unsafe !== null)
        return { outcome: 'deny', code: 'param_invalid', reason: unsafe, risk: 10 }
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

/** Why a parameter value is unsafe whatever the schema says, or null. */
function unsafeValue(node: unknown, path: string, depth: number, maxDepth: number): string | null {
  if (typeof node === 'number') {
    const ok = Number.isFinite(node) && Math.abs(node) <= Number.MAX_SAFE_INTEGER
    return ok ? null : `\`params${path}\` is not a finite number in the safe range`
  }
  if (node === null || typeof node !== 'object') return null
  if (depth >= maxDepth) return `\`params${path}\` nests deeper than ${maxDepth} levels`
  for (const [k, v] of Object.entries(node)) {
    if (FORBIDDEN_KEYS.has(k)) return `\`params${path}\` has the forbidden key \`${k}\``
    const bad = unsafeValue(v, `${path}.${k}`, depth + 1, maxDepth)
    if (bad !== null) return bad
  }
  return null
}
