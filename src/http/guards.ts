import { WardenError } from '../domain/errors.js'
import { bearer, principalOf } from '../auth/credentials.js'

export { bearer } from '../auth/credentials.js'
import type { Runtime } from '../pipeline/runtime.js'

/** Routes that show the audit whole or act need an approver token; agent keys never work. */
export function requireApprover(runtime: Runtime, authorization: string | undefined) {
  const { approver } = principalOf(runtime, bearer(authorization))
  if (!approver)
    throw new WardenError(
      'approver_unauthenticated',
      'send an approver token: Authorization: Bearer <token>',
    )
  return approver
}

/** With `server.read_access: approver`, reading decisions needs an approver token too. */
export function requireReader(runtime: Runtime, authorization: string | undefined): void {
  if (runtime.config.server.read_access === 'approver') requireApprover(runtime, authorization)
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
