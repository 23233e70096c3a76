import { EventEmitter } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { Webhook } from 'standardwebhooks'
import { signLink, signWebhook, verifyWebhook } from '../src/approvals/signing.js'
import { execute, startWarden } from './helpers.js'

const SECRET = 'test-signing-secret-0123456789abcdef'
/** The same key as a Standard Webhooks library expects it (docs/approvals.md). */
const WHSEC = `whsec_${Buffer.from(SECRET).toString('base64')}`
const ROOT = fileURLToPath(new URL('..', import.meta.url))

interface Received {
  body: string
  headers: Record<string, string>
}

describe('approval notifications, signed links and callbacks', () => {
  let hooks: Server
  let received: Record<string, Received[]>
  /** Emits `received` each time a webhook arrives. */
  const arrivals = new EventEmitter()
  /** Resolves once each named webhook endpoint has received at least one message. */
  const webhooksArrived = (names: string[]) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (names.some((n) => received[n]!.length === 0)) return
        arrivals.off('received', check)
        resolve()
      }
      arrivals.on('received', check)
      check()
    })
  let w: Awaited<ReturnType<typeof startWarden>>
  let dir: string

  beforeAll(async () => {
    received = { json: [], slack: [], alice: [] }
    hooks = createServer(async (req, res) => {
      let body = ''
      for await (const chunk of req) body += chunk
      const headers: Record<string, string> = {}
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'])
        headers[name] = String(req.headers[name])
      received[req.url!.slice(1)]!.push({ body, headers })
      arrivals.emit('received')
      res.end('ok')
    })
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r))
    const base = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}`
    dir = mkdtempSync(join(tmpdir(), 'warden-notify-'))
    const config =
      readFileSync(new URL('./fixtures/approvals/warden.yaml', import.meta.url), 'utf8').replaceAll(
        '../../../config/',
        join(ROOT, 'config/'),
      ) +
      `  notify:
    public_url: http://warden.test
    signing_secret: ${SECRET}
    link_ttl_seconds: 600
    webhooks:
      - { url: ${base}/json, format: json, approver: demo-approver }
      - { url: ${base}/slack, format: slack, approver: bob }
      - { url: ${base}/alice, format: json, approver: alice }
`
    writeFileSync(join(dir, 'warden.yaml'), config)
    w = await startWarden({ config: join(dir, 'warden.yaml') })
  })
  afterAll(async () => {
    await w.close()
    hooks.close()
    rmSync(dir, { recursive: true, force: true })
  })
  beforeEach(() => {
    for (const k of Object.keys(received)) received[k] = []
  })

  /** Hold a $400 refund (it needs a billing lead) and wait for the three webhooks. */
  async function holdAndNotify(): Promise<string> {
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1006',
      amount: 400,
      reason: 'late',
    })
    expect(res.statusCode).toBe(202)
    await webhooksArrived(Object.keys(received))
    return res.json().approval_id
  }
  const open = (link: string) => {
    const url = new URL(link)
    // A link decides on POST (the button of the page its GET shows).
    return w.app.inject({ method: 'POST', url: url.pathname + url.search })
  }

  it('webhooks are signed per Standard Webhooks and carry approve/deny links', async () => {
    const id = await holdAndNotify()
    const hook = received.json![0]!
    expect(hook.headers['webhook-id']).toMatch(/^msg_[0-9a-f-]{36}$/)
    expect(hook.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/)
    // The scheme's own library verifies it (signature over `id.timestamp.body`, fresh).
    expect(new Webhook(WHSEC).verify(hook.body, hook.headers)).toMatchObject({
      type: 'approval_required',
    })
    // Tampered: another body, or the signature of another message id.
    const wh = new Webhook(WHSEC)
    expect(() =>
      wh.verify(hook.body.replace('issue_refund', 'lookup_order'), hook.headers),
    ).toThrow('No matching signature found')
    const other = received.slack![0]!.headers['webhook-id']!
    expect(() => wh.verify(hook.body, { ...hook.headers, 'webhook-id': other })).toThrow(
      'No matching signature found',
    )
    const payload = JSON.parse(hook.body)
    expect(payload).toMatchObject({
      type: 'approval_required',
      approval: { id, tool: 'issue_refund' },
      links: { expires_in_seconds: 600 },
    })
    expect(payload.links.approve).toMatch(
      /^http:\/\/warden\.test\/gateway\/approvals\/.+\/decide\?decision=approve&approver=demo-approver&exp=\d+&nonce=.+&sig=[0-9a-f]{64}$/,
    )
  })

  it('a Slack-compatible message has Approve and Deny buttons', async () => {
    await holdAndNotify()
    const slack = JSON.parse(received.slack![0]!.body)
    expect(slack.text).toContain('`refund-agent` wants to call `issue_refund`')
    const buttons = slack.blocks.at(-1).elements
    expect(buttons.map((b: { text: { text: string } }) => b.text.text)).toEqual(['Approve', 'Deny'])
    expect(buttons[0].url).toContain('approver=bob')
  })

  it('an approver whose roles do not fit gets the message without links', async () => {
    await holdAndNotify()
    expect(JSON.parse(received.alice![0]!.body).links).toBeNull()
  })

  it('an altered, forged or expired link is refused', async () => {
    await holdAndNotify()
    const deny = JSON.parse(received.slack![0]!.body).blocks.at(-1).elements[1].url as string
    expect((await open(deny.replace('decision=deny', 'decision=approve'))).json().error.code).toBe(
      'signature_invalid',
    )
    expect(
      (await open(deny.replace(/sig=[0-9a-f]+/, `sig=${'0'.repeat(64)}`))).json().error.code,
    ).toBe('signature_invalid')
    const url = new URL(deny)
    const fields = {
      approval: decodeURIComponent(url.pathname.split('/')[3]!),
      decision: 'deny' as const,
      approver: 'bob',
      exp: Math.floor(Date.now() / 1000) - 1,
      nonce: 'n-old',
    }
    const expired = `${url.origin}${url.pathname}?decision=deny&approver=bob&exp=${fields.exp}&nonce=n-old&sig=${signLink(SECRET, fields)}`
    const res = await open(expired)
    expect(res.statusCode).toBe(401)
    expect(res.json().error.code).toBe('signature_expired')
    expect((await open(deny)).json().approval.status).toBe('denied')
  })

  it('a signed callback decides; a replay, an old timestamp or a bad signature is refused', async () => {
    const id = await holdAndNotify()
    const callback = (body: string, headers: Record<string, string>) =>
      w.app.inject({
        method: 'POST',
        url: '/gateway/callbacks/approvals',
        headers: { 'content-type': 'application/json', ...headers },
        payload: body,
      })
    const code = async (body: string, headers: Record<string, string>) =>
      (await callback(body, headers)).json().error.code
    const now = Math.floor(Date.now() / 1000)
    const body = JSON.stringify({
      approval_id: id,
      decision: 'deny',
      approver: 'bob',
      comment: 'not this one',
    })
    expect(await code(body, signWebhook(SECRET, 'cb-old', body, now - 301))).toBe(
      'signature_expired',
    )
    const wrongKey = 'wrong-secret-wrong-secret-wrong-secret'
    expect(await code(body, signWebhook(wrongKey, 'cb-1', body, now))).toBe('signature_invalid')
    const signed = signWebhook(SECRET, 'cb-1', body, now)
    expect(await code(body.replace('"deny"', '"approve"'), signed)).toBe('signature_invalid')
    expect(await code(body, { ...signed, 'webhook-id': 'cb-2' })).toBe('signature_invalid')
    // An unsigned request is refused as unsigned, however old it says it is.
    const { 'webhook-signature': _, ...unsigned } = signWebhook(SECRET, 'cb-1', body, now - 999)
    expect(await code(body, unsigned)).toBe('signature_invalid')
    // Signed by the scheme's own library, as a chat integration would.
    const ok = await callback(body, {
      'webhook-id': 'cb-1',
      'webhook-timestamp': String(now),
      'webhook-signature': new Webhook(WHSEC).sign('cb-1', new Date(now * 1000), body),
    })
    expect(ok.statusCode).toBe(200)
    expect(ok.json().approval).toMatchObject({
      status: 'denied',
      decided_by: 'bob',
      comment: 'not this one',
    })
    // The webhook-id is the nonce: the same request again is a replay.
    const replay = await callback(body, signed)
    expect(replay.statusCode).toBe(409)
    expect(replay.json().error.code).toBe('replayed')
  })

  it('a link or callback replayed just past its window, while it still verifies, is a replay', async () => {
    const id = await holdAndNotify()
    // Half a second into second `edge`: a link expiring at `edge`, and a callback sent
    // `callback_max_age_seconds` (300) before it, still verify (whole seconds), though their
    // window ended at `edge.000`.
    const edge = Math.floor(Date.now() / 1000) + 2
    vi.useFakeTimers({ toFake: ['Date'], now: edge * 1000 + 500 })
    try {
      const fields = { approval: id, decision: 'deny', approver: 'bob', exp: edge, nonce: 'n-edge' }
      const link = `/gateway/approvals/${id}/decide?decision=deny&approver=bob&exp=${edge}&nonce=n-edge&sig=${signLink(SECRET, fields as Parameters<typeof signLink>[1])}`
      expect((await w.app.inject({ method: 'POST', url: link })).json().approval.status).toBe(
        'denied',
      )
      expect((await w.app.inject({ method: 'POST', url: link })).json().error.code).toBe('replayed')

      const body = JSON.stringify({ approval_id: id, decision: 'deny', approver: 'bob' })
      const headers = {
        'content-type': 'application/json',
        ...signWebhook(SECRET, 'cb-edge', body, edge - 300),
      }
      const callback = () =>
        w.app.inject({
          method: 'POST',
          url: '/gateway/callbacks/approvals',
          headers,
          payload: body,
        })
      // The first use takes the nonce (the approval was decided by the link meanwhile).
      expect((await callback()).json().error.code).toBe('approval_already_decided')
      expect((await callback()).json().error.code).toBe('replayed')
    } finally {
      vi.useRealTimers()
    }
  })

  it('opening a link (GET, as a link previewer does) only shows a page; its button (POST) decides', async () => {
    const id = await holdAndNotify()
    const deny = JSON.parse(received.slack![0]!.body).blocks.at(-1).elements[1].url as string
    const url = new URL(deny)
    for (let i = 0; i < 3; i++) {
      const page = await w.app.inject({ url: url.pathname + url.search })
      expect(page.statusCode).toBe(200)
      expect(page.headers['content-type']).toMatch(/^text\/html/)
      expect(page.body).toContain('<form method="post"')
      expect(page.body).toContain(
        `action="${url.pathname}?${url.search.slice(1).replaceAll('&', '&amp;')}"`,
      )
    }
    const pending = await w.app.inject({
      url: `/gateway/approvals/${id}`,
      headers: { authorization: 'Bearer demo-approver-token' },
    })
    expect(pending.json().approval.status).toBe('pending')
    // A plain HTML form posts `application/x-www-form-urlencoded`; the link still decides.
    const posted = await w.app.inject({
      method: 'POST',
      url: url.pathname + url.search,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: '',
    })
    expect(posted.json().approval).toMatchObject({ id, status: 'denied', decided_by: 'bob' })
    expect((await open(deny)).json().error.code).toBe('replayed')
  })

  it('the page of a link escapes what the link carries', async () => {
    const page = await w.app.inject({
      url: '/gateway/approvals/%3Cscript%3Ex/decide?decision=approve&approver=%22%3E%3Cimg%20src%3Dx%3E',
    })
    expect(page.statusCode).toBe(200)
    expect(page.body).not.toContain('<script>')
    expect(page.body).not.toContain('<img')
    expect(page.headers['content-security-policy']).toContain("default-src 'none'")
  })

  it('a signed callback whose body is `null` (or a list, or a string) is 400, not 500', async () => {
    const now = Math.floor(Date.now() / 1000)
    for (const [i, body] of ['null', '[]', '"deny"', '42'].entries()) {
      const res = await w.app.inject({
        method: 'POST',
        url: '/gateway/callbacks/approvals',
        headers: {
          'content-type': 'application/json',
          ...signWebhook(SECRET, `cb-null-${i}`, body, now),
        },
        payload: body,
      })
      expect(res.statusCode).toBe(400)
      expect(res.json().error.code).toBe('invalid_request')
    }
  })

  it('agent text in a Slack message cannot become a link or a mention', async () => {
    const res = await execute(w, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1006',
      amount: 400,
      reason: 'late <https://evil.example/login|Open Warden> <!channel> `x` & more',
    })
    expect(res.statusCode).toBe(202)
    await webhooksArrived(['slack'])
    const slack = JSON.parse(received.slack![0]!.body)
    const texts = [
      slack.text,
      ...slack.blocks.map((b: { text?: { text: string } }) => b.text?.text ?? ''),
    ]
    for (const text of texts) {
      expect(text).not.toMatch(/<https?:/)
      expect(text).not.toContain('<!channel>')
      expect(text).not.toContain('|Open Warden>')
    }
    const params = slack.blocks[1].text.text as string
    expect(params).toContain('&lt;https://evil.example/login|Open Warden&gt;')
    expect(params).toContain('&amp; more')
    // One code span from start to end: the agent's backticks cannot close it.
    expect(params.match(/`/g)).toHaveLength(2)
  })

  it('a `whsec_` secret is decoded as Standard Webhooks does; a rotating sender may list two signatures', () => {
    const body = '{"approval_id":"a","decision":"deny","approver":"bob"}'
    const now = Math.floor(Date.now() / 1000)
    const headers = signWebhook(WHSEC, 'msg_1', body, now)
    // The same key written two ways signs alike.
    expect(headers).toEqual(signWebhook(SECRET, 'msg_1', body, now))
    const stale = signWebhook('old-secret-old-secret-old-secret-0', 'msg_1', body, now)
    const both = `${stale['webhook-signature']} ${headers['webhook-signature']}`
    expect(verifyWebhook(SECRET, body, { ...headers, 'webhook-signature': both }, now, 300)).toBe(
      'ok',
    )
    expect(verifyWebhook(SECRET, body, stale, now, 300)).toBe('bad_signature')
  })

  // Last: it runs a refund, which counts towards the agent's hourly refund total (a sequence rule).
  it('a link works once: the call runs, and the same link again is a replay', async () => {
    const id = await holdAndNotify()
    const links = JSON.parse(received.json![0]!.body).links
    const first = await open(links.approve)
    expect(first.statusCode).toBe(200)
    expect(first.json().approval).toMatchObject({
      id,
      status: 'approved',
      decided_by: 'demo-approver',
      outcome: 'ok',
    })
    expect((await open(links.approve)).json().error.code).toBe('replayed')
    // The other link of the pair cannot undo it.
    expect((await open(links.deny)).json().error.code).toBe('approval_already_decided')
  })
})
