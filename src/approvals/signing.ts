import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * HMAC-SHA256 signatures for what leaves and re-enters Warden outside an approver's token:
 * outbound webhooks, approve/deny links, and incoming decision callbacks. One secret
 * (`approvals.notify.signing_secret`) signs all three; each signs a different string.
 */
export function hmac(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('hex')
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Headers for a signed request body: `X-Warden-Timestamp` and `X-Warden-Signature: v1=<hex>`. */
export function signBody(secret: string, body: string, nowSeconds: number): Record<string, string> {
  return {
    'x-warden-timestamp': String(nowSeconds),
    'x-warden-signature': `v1=${hmac(secret, `${nowSeconds}.${body}`)}`,
  }
}

export type Verdict = 'ok' | 'bad_signature' | 'expired'

/** Check a signed request: the signature over `timestamp.body`, and a timestamp at most `maxAge` old. */
export function verifyBody(
  secret: string,
  body: string,
  timestamp: string | undefined,
  signature: string | undefined,
  nowSeconds: number,
  maxAgeSeconds: number,
): Verdict {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return 'bad_signature'
  if (!same(signature, `v1=${hmac(secret, `${timestamp}.${body}`)}`)) return 'bad_signature'
  const age = nowSeconds - Number(timestamp)
  return age > maxAgeSeconds || age < -60 ? 'expired' : 'ok'
}

/** The fields of an approve/deny link; `sig` covers all the others. */
export interface LinkFields {
  approval: string
  decision: 'approve' | 'deny'
  approver: string
  exp: number
  nonce: string
}

const linkMessage = (f: LinkFields) =>
  `link.${f.approval}.${f.decision}.${f.approver}.${f.exp}.${f.nonce}`

export function signLink(secret: string, f: LinkFields): string {
  return hmac(secret, linkMessage(f))
}

/** Check a link's signature and expiry (single use is the caller's nonce check). */
export function verifyLink(
  secret: string,
  f: LinkFields,
  sig: string,
  nowSeconds: number,
): Verdict {
  if (!same(sig, signLink(secret, f))) return 'bad_signature'
  return f.exp < nowSeconds ? 'expired' : 'ok'
}
