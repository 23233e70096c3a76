import { createHmac, timingSafeEqual } from 'node:crypto'
import { Webhook } from 'standardwebhooks'

/**
 * Signatures for what leaves and re-enters Warden outside an approver's token: outbound
 * webhooks and incoming decision callbacks (Standard Webhooks), and approve/deny links (an
 * HMAC-SHA256 query parameter). One secret (`approvals.notify.signing_secret`) signs all three;
 * each signs a differently shaped string.
 */
export function hmac(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('hex')
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

const WHSEC = 'whsec_'

/**
 * The Standard Webhooks key for `signing_secret`: a `whsec_<base64>` secret is decoded as the
 * scheme's libraries do; any other string is used as its UTF-8 bytes (a receiver using those
 * libraries passes `whsec_` + base64 of the secret, or the raw bytes with `format: 'raw'`).
 */
export function webhookSigner(secret: string): Webhook {
  return secret.startsWith(WHSEC)
    ? new Webhook(secret)
    : new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' })
}

/** The Standard Webhooks headers of one request. */
export type WebhookHeaders = {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

/** Headers for a webhook: `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. */
export function signWebhook(
  secret: string,
  id: string,
  body: string,
  nowSeconds: number,
): WebhookHeaders {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(nowSeconds),
    'webhook-signature': webhookSigner(secret).sign(id, new Date(nowSeconds * 1000), body),
  }
}

/** The same headers as a request brought them: any may be missing. */
export type ReceivedWebhookHeaders = { [K in keyof WebhookHeaders]?: string | undefined }

export type Verdict = 'ok' | 'bad_signature' | 'expired'

/** Message ids become single-use nonces in the store: printable ASCII, bounded. */
const WEBHOOK_ID = /^[\x21-\x7e]{1,128}$/
/** A sender rotating its secret lists a few signatures; more is not a real sender. */
const MAX_SIGNATURES = 4

/**
 * Check a Standard Webhooks request: one of the listed `v1` signatures over `id.timestamp.body`,
 * then a timestamp at most `maxAge` old (and at most a minute ahead). The signature is checked
 * first, so an unsigned request is `bad_signature` however old it claims to be. Single use of
 * the id is the caller's nonce check.
 */
export function verifyWebhook(
  secret: string,
  body: string,
  headers: ReceivedWebhookHeaders,
  nowSeconds: number,
  maxAgeSeconds: number,
): Verdict {
  const {
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': signature,
  } = headers
  if (!id || !WEBHOOK_ID.test(id) || !signature || !timestamp || !/^\d{1,12}$/.test(timestamp))
    return 'bad_signature'
  const expected = webhookSigner(secret).sign(id, new Date(Number(timestamp) * 1000), body)
  const given = signature.split(' ').slice(0, MAX_SIGNATURES)
  if (!given.some((s) => same(s, expected))) return 'bad_signature'
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
