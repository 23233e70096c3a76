import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * A delegation: agent `to` acts on a message from the agents in `chain` (oldest first), started
 * by `human` if one is known. The gateway signs it when it delivers the message; the receiver
 * presents it with every tool call it makes for that message, and the gateway grants only what
 * every agent of the chain may do (no confused deputy). Tokens are HMAC-SHA256 signed and expire.
 */
export interface Delegation {
  chain: string[]
  to: string
  human?: string
  message_id: string
  /** The sender's session, whose taint (and poisoning) the receiver's calls inherit. */
  session?: string
  /** Epoch milliseconds. */
  exp: number
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64url')

export class DelegationSigner {
  private readonly key: Buffer

  /** `secret` from `messaging.signing_secret`; without one, a random key for this process only. */
  constructor(secret: string | undefined) {
    this.key = secret ? Buffer.from(secret, 'utf8') : randomBytes(32)
  }

  sign(d: Delegation): string {
    const body = b64(JSON.stringify(d))
    return `${body}.${b64(this.mac(body))}`
  }

  /** The delegation a token carries, or why it is not acceptable. */
  verify(
    token: string,
    now: number,
  ): { ok: true; delegation: Delegation } | { ok: false; why: string } {
    const [body, sig, extra] = token.split('.')
    if (!body || !sig || extra !== undefined)
      return { ok: false, why: 'malformed delegation token' }
    const expected = this.mac(body)
    const given = Buffer.from(sig, 'base64url')
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return { ok: false, why: 'delegation token signature does not match' }
    let d: Delegation
    try {
      d = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Delegation
    } catch {
      return { ok: false, why: 'malformed delegation token' }
    }
    if (!Array.isArray(d.chain) || typeof d.to !== 'string' || typeof d.exp !== 'number')
      return { ok: false, why: 'malformed delegation token' }
    if (d.exp <= now) return { ok: false, why: 'delegation token expired' }
    return { ok: true, delegation: d }
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.key).update(`warden-delegation-v1.${body}`).digest()
  }
}

/**
 * Message text as the receiver gets it: NFKC, without invisible format characters (zero-width,
 * bidi controls, tag characters) and control characters other than line breaks and tabs, which
 * can hide instructions from a person reading the audit log.
 */
export function sanitizeMessage(text: string): string {
  return text
    .normalize('NFKC')
    .replace(/\p{Cf}/gu, '')
    .replace(/(?![\n\t])\p{Cc}/gu, '')
}
