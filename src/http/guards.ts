import { WardenError } from '../domain/errors.js'
import { bearer, principalOf, sha256Hex } from '../auth/credentials.js'

export { bearer } from '../auth/credentials.js'
import type { Runtime } from '../pipeline/runtime.js'

/** Routes that show the audit whole or act need an approver token; agent keys never work. */
export function requireApprover(runtime: Runtime, authorization: string | undefined) {
  const { approver } = principalOf(runtime, bearer(authorization))
  if (!approver) throw noApprover()
  return approver
}

const noApprover = () =>
  new WardenError(
    'approver_unauthenticated',
    'send an approver token: Authorization: Bearer <token>',
  )

/**
 * Reading decisions needs an approver token (`server.read_access: approver`, the default) unless
 * the deployment opted in to open reads. True when the reader is an approver, and so entitled to
 * tool results; open readers see `result_withheld` instead.
 */
export function requireReader(runtime: Runtime, authorization: string | undefined): boolean {
  const access = readerCheck(runtime, authorization)()
  if (access === null) throw noApprover()
  return access === 'full'
}

/**
 * What one credential may read, worked out again on each call against the configuration in
 * force (a reload may change it): `full` (an approver), `withheld` (open reads, not an approver:
 * results withheld) or `null` (may not read). The secret is hashed once.
 */
export function readerCheck(
  runtime: Runtime,
  authorization: string | undefined,
): () => 'full' | 'withheld' | null {
  const secret = bearer(authorization)
  const hash = secret === undefined ? undefined : sha256Hex(secret)
  return () => {
    if (hash !== undefined && runtime.approversByTokenHash.has(hash)) return 'full'
    return runtime.config.server.read_access === 'open' ? 'withheld' : null
  }
}

/** WebSocket subprotocol prefix that carries an approver token from a browser. */
export const TOKEN_PROTOCOL = 'warden.token.'

/** The approver token a browser sent as a WebSocket subprotocol, as an Authorization value. */
export function subprotocolToken(header: string | string[] | undefined): string | undefined {
  const token = String(header ?? '')
    .split(',')
    .map((p) => p.trim())
    .find((p) => p.startsWith(TOKEN_PROTOCOL))
    ?.slice(TOKEN_PROTOCOL.length)
  return token ? `Bearer ${token}` : undefined
}
