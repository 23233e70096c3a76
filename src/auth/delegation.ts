import { createHash, hkdfSync, randomBytes } from 'node:crypto'
import { errors, jwtVerify, SignJWT, type JWTPayload } from 'jose'
import type { WardenConfig } from '../domain/config.js'

/**
 * A delegation: agent `to` acts on a message from the agents in `chain` (oldest first), started
 * by `human` if one is known. The gateway signs it when it delivers the message; the receiver
 * presents it with every tool call it makes for that message, and the gateway grants only what
 * every agent of the chain may do (no confused deputy).
 */
export interface Delegation {
  chain: string[]
  to: string
  human?: string
  message_id: string
  /** The sender's session, whose taint (and poisoning) the receiver's calls inherit. */
  session?: string
  /** Epoch milliseconds; the token carries whole seconds (rounded down, never later). */
  exp: number
  /**
   * When the message was accepted (epoch milliseconds), the `iat` the token carries; signing time
   * when absent. Taken from the same clock reading as `exp`, so the lifetime is exact.
   */
  iat?: number
}

export type CheckedDelegation = { ok: true; delegation: Delegation } | { ok: false; why: string }

const ISSUER = 'warden'
const ALGORITHM = 'HS256'
/** HKDF `info`: a key made for delegation tokens signs nothing else. */
const KEY_PURPOSE = 'warden delegation token v1'
/** The demo key's input. Public, like the demo credentials: anyone can mint demo tokens. */
const DEMO_LABEL = 'warden-demo-delegation-key'

interface SigningKey {
  /** First 16 hex characters of SHA-256 of the key: names it in the token header. */
  readonly kid: string
  readonly key: Uint8Array
}

function signingKey(secret: string | Uint8Array, salt = ''): SigningKey {
  const key = new Uint8Array(hkdfSync('sha256', secret, salt, KEY_PURPOSE, 32))
  return { kid: createHash('sha256').update(key).digest('hex').slice(0, 16), key }
}

/** Which key signs delegation tokens, and which older ones are still accepted. */
export interface DelegationKeys {
  /** `messaging.signing_secret`, or key material of the caller's choosing. */
  current: string | Uint8Array
  /** `messaging.previous_signing_secrets`: tokens they signed verify until they expire. */
  previous?: readonly string[]
  /** HKDF salt; the demo key uses the configuration's `version`. */
  salt?: string
}

/**
 * The signer for a configuration. With `messaging.signing_secret`, keys derive from it (and from
 * `previous_signing_secrets` for rotation). A demo configuration without one derives a fixed key
 * from its `version`, so every instance started from it accepts the others' tokens. Otherwise
 * (no messaging edges; the loader refuses edges without a secret outside the demo) no token is
 * ever issued, and a key of this process's own makes every presented token fail.
 */
export function delegationSigner(config: WardenConfig): DelegationSigner {
  const { signing_secret: secret, previous_signing_secrets: previous } = config.messaging
  if (secret) return new DelegationSigner({ current: secret, previous })
  if (config.demo) return new DelegationSigner({ current: DEMO_LABEL, salt: config.version })
  return new DelegationSigner({ current: randomBytes(32) })
}

/**
 * Delegation tokens are JWTs (RFC 7519), HS256 over a key derived with HKDF-SHA256 from the
 * signing secret. `iss` is `warden`, `aud` the receiving agent, `jti` the message id; `chain`,
 * `human` and `session` are private claims. The `kid` header picks the verification key, so a
 * secret can be rotated while tokens it signed are still out.
 */
export class DelegationSigner {
  private readonly current: SigningKey
  private readonly byKid: ReadonlyMap<string, SigningKey>

  constructor({ current, previous = [], salt }: DelegationKeys) {
    this.current = signingKey(current, salt)
    const all = [this.current, ...previous.map((p) => signingKey(p))]
    this.byKid = new Map(all.map((k) => [k.kid, k]))
  }

  /** A compact JWS for `d`, signed with the current key. */
  sign(d: Delegation): Promise<string> {
    return new SignJWT({
      chain: d.chain,
      ...(d.human !== undefined && { human: d.human }),
      ...(d.session !== undefined && { session: d.session }),
    })
      .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT', kid: this.current.kid })
      .setIssuer(ISSUER)
      .setAudience(d.to)
      .setJti(d.message_id)
      .setIssuedAt(d.iat === undefined ? undefined : Math.floor(d.iat / 1000))
      .setExpirationTime(Math.floor(d.exp / 1000))
      .sign(this.current.key)
  }

  /** The delegation a token carries if `audience` (the presenting agent) may use it, or why not. */
  async verify(token: string, audience: string, now: number): Promise<CheckedDelegation> {
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, (header) => this.keyFor(header.kid), {
        algorithms: [ALGORITHM],
        issuer: ISSUER,
        audience,
        clockTolerance: 0,
        currentDate: new Date(now),
        requiredClaims: ['exp', 'jti'],
      }))
    } catch (err) {
      return { ok: false, why: refusal(err, audience) }
    }
    const delegation = toDelegation(payload)
    return delegation ? { ok: true, delegation } : { ok: false, why: 'malformed delegation token' }
  }

  private keyFor(kid: string | undefined): Uint8Array {
    const found = kid === undefined ? undefined : this.byKid.get(kid)
    if (!found) throw new UnknownKey()
    return found.key
  }
}

class UnknownKey extends Error {}

/** Why jose refused a token, in words for the audit log; never echoes unverified input. */
function refusal(err: unknown, audience: string): string {
  if (err instanceof UnknownKey) return 'delegation token is signed with an unknown key'
  if (err instanceof errors.JWTExpired) return 'delegation token expired'
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return 'delegation token signature does not match'
  if (err instanceof errors.JOSEAlgNotAllowed)
    return `delegation token is not signed with ${ALGORITHM}`
  // Claims are checked only after the signature verified, so `aud` here is the gateway's own.
  if (err instanceof errors.JWTClaimValidationFailed && err.reason === 'check_failed') {
    if (err.claim === 'aud' && typeof err.payload.aud === 'string')
      return `the delegation is addressed to \`${err.payload.aud}\`, not \`${audience}\``
    if (err.claim === 'iss') return 'delegation token was not issued by warden'
  }
  return 'malformed delegation token'
}

function toDelegation(p: JWTPayload): Delegation | null {
  const { chain, human, session, aud, jti, exp } = p
  const strings = (v: unknown): v is string[] =>
    Array.isArray(v) && v.every((s) => typeof s === 'string')
  if (!strings(chain) || typeof aud !== 'string' || typeof jti !== 'string') return null
  if (typeof exp !== 'number') return null
  if (human !== undefined && typeof human !== 'string') return null
  if (session !== undefined && typeof session !== 'string') return null
  return {
    chain,
    to: aud,
    message_id: jti,
    exp: exp * 1000,
    ...(human !== undefined && { human }),
    ...(session !== undefined && { session }),
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
