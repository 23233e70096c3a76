import { createHash, hkdfSync } from 'node:crypto'
import { decodeProtectedHeader, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DelegationSigner, type Delegation } from '../src/auth/delegation.js'
import { loadConfig } from '../src/config/loader.js'
import type { Warden } from '../src/warden.js'
import { DEMO_CONFIG, execute, keyOf, startWarden } from './helpers.js'

type Started = Awaited<ReturnType<typeof startWarden>>

/** support-agent messages `to`; the reply's delegation token. */
async function tokenFor(w: Warden, to: string): Promise<string> {
  const res = await w.app.inject({
    method: 'POST',
    url: '/gateway/message',
    headers: { authorization: `Bearer ${keyOf('support-agent')}` },
    payload: { agent_id: 'support-agent', to_agent: to, content: 'look up ORD-1001' },
  })
  expect(res.statusCode).toBe(200)
  return res.json().delegation as string
}

/** admin-agent looks up an order (support-agent may too), presenting `delegation`. */
const lookup = (w: Warden, delegation: string) =>
  execute(w, 'admin-agent', 'lookup_order', { order_id: 'ORD-1001' }, { delegation })

const forAdmin = (): Delegation => ({
  chain: ['support-agent'],
  to: 'admin-agent',
  message_id: 'msg_test',
  exp: Date.now() + 60_000,
})

/** The demo with its own messaging secrets, as a production gateway would be configured. */
function withSecrets(current: string, previous: string[] = []) {
  const loaded = loadConfig(DEMO_CONFIG)
  const messaging = {
    ...loaded.config.messaging,
    signing_secret: current,
    previous_signing_secrets: previous,
  }
  return startWarden({
    config: { ...loaded, config: { ...loaded.config, demo: false, messaging } },
  })
}

const OLD_SECRET = 'old-messaging-secret-0123456789abcdef'
const NEW_SECRET = 'new-messaging-secret-0123456789abcdef'

describe('delegation tokens are HS256 JWTs', () => {
  let w: Started
  let token: string
  beforeAll(async () => {
    w = await startWarden()
    token = await tokenFor(w, 'admin-agent')
  })
  afterAll(() => w.close())

  it('carry iss, aud, jti, iat, exp, the chain and a kid naming the key', async () => {
    const header = decodeProtectedHeader(token)
    expect(header).toMatchObject({ alg: 'HS256', typ: 'JWT' })
    expect(header.kid).toMatch(/^[0-9a-f]{16}$/)
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
    expect(claims).toMatchObject({ iss: 'warden', aud: 'admin-agent', chain: ['support-agent'] })
    expect(claims.jti).toMatch(/^msg_/)
    expect(claims.exp - claims.iat).toBe(900)
    expect((await lookup(w, token)).statusCode).toBe(200)
  })

  it('a token for another agent is refused, naming its audience', async () => {
    const res = await execute(
      w,
      'refund-agent',
      'lookup_order',
      { order_id: 'ORD-1001' },
      {
        delegation: token,
      },
    )
    expect(res.statusCode).toBe(401)
    expect(res.json().error).toEqual({
      code: 'unauthenticated',
      message: 'the delegation is addressed to `admin-agent`, not `refund-agent`',
    })
  })

  it('an unknown kid is refused, and so is a known kid over a signature of another key', async () => {
    const { kid } = decodeProtectedHeader(token)
    const stranger = await new DelegationSigner({ current: 'y'.repeat(32) }).sign(forAdmin())
    expect(decodeProtectedHeader(stranger).kid).not.toBe(kid)
    const unknown = await lookup(w, stranger)
    expect(unknown.statusCode).toBe(401)
    expect(unknown.json().error.message).toBe('delegation token is signed with an unknown key')

    const key = new TextEncoder().encode('y'.repeat(32))
    const borrowed = await new SignJWT({ chain: ['support-agent'] })
      .setProtectedHeader({ alg: 'HS256', kid: kid! })
      .setIssuer('warden')
      .setAudience('admin-agent')
      .setJti('msg_x')
      .setExpirationTime('1m')
      .sign(key)
    const res = await lookup(w, borrowed)
    expect(res.statusCode).toBe(401)
    expect(res.json().error.message).toBe('delegation token signature does not match')
  })

  it('alg none and RS256 are refused, whatever the claims say', async () => {
    const { kid } = decodeProtectedHeader(token)
    const claims = { chain: ['support-agent'] }
    const unsecured = new UnsecuredJWT(claims)
      .setIssuer('warden')
      .setAudience('admin-agent')
      .setJti('msg_x')
      .setExpirationTime('1m')
      .encode()
    const none = await lookup(w, unsecured)
    expect(none.statusCode).toBe(401)
    expect(none.json().error.message).toBe('delegation token is not signed with HS256')

    const { privateKey } = await generateKeyPair('RS256')
    const rs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: kid! })
      .setIssuer('warden')
      .setAudience('admin-agent')
      .setJti('msg_x')
      .setExpirationTime('1m')
      .sign(privateKey)
    const res = await lookup(w, rs256)
    expect(res.statusCode).toBe(401)
    expect(res.json().error.message).toBe('delegation token is not signed with HS256')
  })

  it('the demo key is public (HKDF of a fixed label and the version); other issuers are refused', async () => {
    const { kid } = decodeProtectedHeader(token)
    const version = w.loaded.config.version
    const key = new Uint8Array(
      hkdfSync('sha256', 'warden-demo-delegation-key', version, 'warden delegation token v1', 32),
    )
    expect(createHash('sha256').update(key).digest('hex').slice(0, 16)).toBe(kid)
    const mint = (issuer: string) =>
      new SignJWT({ chain: ['support-agent'] })
        .setProtectedHeader({ alg: 'HS256', kid: kid! })
        .setIssuer(issuer)
        .setAudience('admin-agent')
        .setJti('msg_x')
        .setExpirationTime('1m')
        .sign(key)
    expect((await lookup(w, await mint('warden'))).statusCode).toBe(200)
    const other = await lookup(w, await mint('someone-else'))
    expect(other.statusCode).toBe(401)
    expect(other.json().error.message).toBe('delegation token was not issued by warden')
    expect((await lookup(w, 'not.a.jwt')).json().error.message).toBe('malformed delegation token')
    expect((await lookup(w, 'garbage')).json().error.message).toBe('malformed delegation token')
  })

  it('stays within the 4096 characters the request schemas allow, at the longest chain', async () => {
    const id = 'a'.repeat(64)
    // Lone surrogates are the longest JSON escape (6 bytes) per character of a 128-char field.
    const worst = '\ud800'.repeat(128)
    const longest = await w.gateway.runtime.delegation.sign({
      chain: Array.from({ length: 7 }, (_, i) => `${i}${id.slice(1)}`),
      to: id,
      human: worst,
      session: worst,
      message_id: `msg_${crypto.randomUUID()}`,
      exp: Date.now() + 86_400_000,
    })
    expect(longest.length).toBeLessThanOrEqual(4096)
  })
})

describe('delegation keys across instances and rotations', () => {
  it('two gateways built from the same demo configuration accept each other’s tokens', async () => {
    const [a, b] = [await startWarden(), await startWarden()]
    try {
      expect(a.gateway.runtime).not.toBe(b.gateway.runtime)
      const res = await lookup(b, await tokenFor(a, 'admin-agent'))
      expect(res.statusCode).toBe(200)
      expect(res.json().checks[0].reason).toBe(
        'authenticated as `admin-agent`, acting for `support-agent`',
      )
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  it('a token signed with a previous secret is accepted; without that secret listed it is not', async () => {
    const before = await withSecrets(OLD_SECRET)
    const rotated = await withSecrets(NEW_SECRET, [OLD_SECRET])
    const forgotten = await withSecrets(NEW_SECRET)
    try {
      const old = await tokenFor(before, 'admin-agent')
      expect((await lookup(rotated, old)).statusCode).toBe(200)
      const refused = await lookup(forgotten, old)
      expect(refused.statusCode).toBe(401)
      expect(refused.json().error.message).toBe('delegation token is signed with an unknown key')
      // New tokens are signed with the new secret only.
      const fresh = await tokenFor(rotated, 'admin-agent')
      expect(decodeProtectedHeader(fresh).kid).not.toBe(decodeProtectedHeader(old).kid)
      expect((await lookup(forgotten, fresh)).statusCode).toBe(200)
      expect((await lookup(before, fresh)).statusCode).toBe(401)
    } finally {
      await Promise.all([before.close(), rotated.close(), forgotten.close()])
    }
  })

  it('a configured secret replaces the public demo key', async () => {
    const demo = await startWarden()
    const own = await withSecrets(NEW_SECRET)
    try {
      const res = await lookup(own, await tokenFor(demo, 'admin-agent'))
      expect(res.json().error.message).toBe('delegation token is signed with an unknown key')
    } finally {
      await Promise.all([demo.close(), own.close()])
    }
  })
})
