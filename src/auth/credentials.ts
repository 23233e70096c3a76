import { createHash } from 'node:crypto'
import type { AgentConfig, ApproverConfig } from '../domain/config.js'

/** Hash of a presented secret; configuration stores only this. */
export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}

/** The configured credentials, by the hash of their secret. */
export interface Credentials {
  readonly agentsByKeyHash: ReadonlyMap<string, AgentConfig>
  readonly approversByTokenHash: ReadonlyMap<string, ApproverConfig>
}

/** What a bearer secret proves: an agent, an approver, or nothing (hashes never overlap). */
export interface Principal {
  agent?: AgentConfig
  approver?: ApproverConfig
}

/** Who a bearer secret belongs to. Keys are high-entropy, so a plain SHA-256 lookup is safe. */
export function principalOf(creds: Credentials, secret: string | undefined): Principal {
  if (!secret) return {}
  const hash = sha256Hex(secret)
  return { agent: creds.agentsByKeyHash.get(hash), approver: creds.approversByTokenHash.get(hash) }
}

/** The secret of an `Authorization: Bearer <secret>` header. */
export function bearer(header: string | undefined): string | undefined {
  const m = header?.match(/^Bearer\s+(\S+)\s*$/i)
  return m?.[1]
}
