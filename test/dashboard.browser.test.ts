/// <reference lib="dom" />
/**
 * The real dashboard in Debian's Chromium (playwright-core, /usr/bin/chromium), against a real
 * gateway and the dashboard server, both in process. Chromium missing is a failure, not a skip.
 * WARDEN_SCREENSHOTS=docs/screenshots writes the screenshots the README links to.
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDashboard } from '../src/dashboard/server.js'
import { loadConfig } from '../src/config/loader.js'
import { APPROVER, DEMO_CONFIG, execute, startWarden } from './helpers.js'

const CHROMIUM = '/usr/bin/chromium'
const SHOTS = process.env.WARDEN_SCREENSHOTS

let warden: Awaited<ReturnType<typeof startWarden>>
let dashboard: Awaited<ReturnType<typeof buildDashboard>>
let browser: Browser
let page: Page
let base: string
let gatewayUrl: string

async function shot(name: string) {
  if (!SHOTS) return
  mkdirSync(SHOTS, { recursive: true })
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false })
}

async function tab(name: string) {
  await page.click(`button[data-tab="${name}"]`)
}

describe('dashboard in Chromium', () => {
  beforeAll(async () => {
    warden = await startWarden()
    gatewayUrl = await warden.app.listen({ port: 0, host: '127.0.0.1' })
    dashboard = await buildDashboard({ gatewayUrl, logger: pino({ level: 'silent' }) })
    base = await dashboard.listen({ port: 0, host: '127.0.0.1' })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    page = await browser.newPage({ viewport: { width: 1440, height: 900 }, acceptDownloads: true })
    await page.goto(`${base}/enterprise_dashboard.html`)
    await page.waitForSelector('[data-testid="stream-status"]:has-text("live")')
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await dashboard?.close()
    await warden?.close()
  })

  it('a scenario run from the page appears live in the decision stream', async () => {
    await tab('demo')
    await page.click('button[data-run="support_normal"]')
    await page.waitForSelector('tr[data-scenario="support_normal"] .pass')
    await page.click('button[data-run="support_refund_attempt"]')
    await page.waitForSelector('tr[data-scenario="support_refund_attempt"] .pass')
    await shot('demo')
    await tab('live')
    const allowed = page.locator('li.event[data-type="tool_call_allowed"]', {
      hasText: 'create_support_ticket',
    })
    await allowed.first().waitFor()
    const denied = page.locator('li.event.d-deny', { hasText: 'issue_refund' })
    await denied.first().waitFor()
    expect(await denied.first().textContent()).toMatch(/not allowed|allowlist/i)
    // The drawer shows the full trace: every layer that ran, with its verdict.
    await denied.first().click()
    await page.waitForSelector('.drawer .trace')
    expect(await page.locator('.drawer .trace tbody tr').count()).toBeGreaterThanOrEqual(2)
    expect(await page.locator('.drawer').textContent()).toContain('tool_not_allowed')
    await shot('drawer')
    await page.click('.drawer button.close')
  })

  it('an approver approves a held refund and sees it execute; other dashboards follow', async () => {
    // A second dashboard, not logged in, watching the same queue.
    const other = await browser.newPage({ viewport: { width: 1280, height: 800 } })
    await other.goto(`${base}/`)
    await other.waitForSelector('[data-testid="stream-status"]:has-text("live")')
    await tab('demo')
    await page.click('button[data-run="refund_large"]')
    await page.waitForSelector('tr[data-scenario="refund_large"] .pass')
    // Scenario holds live in a world of their own and can never be approved (issue #11,
    // finding 3): the real agent makes the same call, and that hold reaches the queue.
    const held = await execute(warden, 'refund-agent', 'issue_refund', {
      order_id: 'ORD-1006',
      amount: 500,
      reason: 'order never arrived',
    })
    expect(held.statusCode).toBe(202)
    await tab('live')
    const card = page.locator('li.card[data-tool="issue_refund"]').first()
    await card.waitFor()
    // Without a login the buttons are disabled: acting needs an approver token.
    expect(await card.locator('button.approve').isDisabled()).toBe(true)
    await page.fill('input[name="token"]', 'demo-refund-agent-key')
    await page.click('form.login button[type="submit"]')
    await page.waitForSelector('[data-testid="login-error"]')
    await page.fill('input[name="token"]', APPROVER)
    await page.click('form.login button[type="submit"]')
    await page.waitForSelector('[data-testid="approver"]:has-text("demo-approver")')
    await shot('live')
    await card.locator('input').fill('verified with the customer')
    await card.locator('button.approve').click()
    await page
      .locator('li.event[data-type="tool_call_executed"]', { hasText: 'issue_refund' })
      .first()
      .waitFor()
    await page.locator('li.event[data-type="approval_granted"]').first().waitFor()
    await page.waitForSelector('[data-testid="pending-count"]:has-text("0 pending")')
    // The other dashboard saw the card come and go without a reload.
    await other.waitForSelector('[data-testid="pending-count"]:has-text("0 pending")')
    expect(
      await other
        .locator('li.event[data-type="approval_granted"]', { hasText: 'issue_refund' })
        .count(),
    ).toBe(1)
    await other.close()
  })

  it('filters the audit log, verifies the chain and exports the filtered set', async () => {
    await tab('audit')
    await page.waitForSelector('[data-testid="chain"]:has-text("hash chain verified")')
    await page.selectOption('select[name="decision"]', 'deny')
    await page.click('form.filters button[type="submit"]')
    await page.waitForFunction(() => {
      const cells = [
        ...document.querySelectorAll('[data-testid="audit-rows"] tbody tr td:nth-child(5)'),
      ]
      return cells.length > 0 && cells.every((c) => c.textContent?.includes('deny'))
    })
    const rows = await page.locator('[data-testid="audit-rows"] tbody tr').count()
    await shot('audit')
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('.exports button:has-text("CSV")'),
    ])
    const csv = readFileSync((await download.path())!, 'utf8')
      .trim()
      .split('\n')
    expect(csv[0]).toMatch(/^seq,id,timestamp,type/)
    expect(csv.length - 1).toBe(rows)
    expect(csv.slice(1).every((l) => l.includes(',deny,'))).toBe(true)
    await page.waitForSelector('[data-testid="audit-note"]:has-text("exported")')
    // Replay one session under the current policy: same policy, so nothing changes.
    await page.selectOption('select[name="decision"]', '')
    await page.click('form.filters button[type="submit"]')
    await page.locator('.session-actions button:has-text("replay")').first().click()
    await page.waitForSelector('[data-testid="replay"] tbody tr')
    expect(await page.locator('[data-testid="replay"] tr.changed').count()).toBe(0)
  })

  it('renders the statistics as charts', async () => {
    await tab('stats')
    await page.waitForSelector('[data-testid="tiles"]')
    const charts = page.locator('[data-testid="chart"] canvas')
    await charts.first().waitFor()
    expect(await charts.count()).toBe(5)
    // Chart.js drew something: each canvas has a size and non-transparent pixels.
    const painted = await page.evaluate(() =>
      [...document.querySelectorAll<HTMLCanvasElement>('[data-testid="chart"] canvas')].map((c) => {
        const ctx = c.getContext('2d')
        if (!ctx || c.width === 0 || c.height === 0) return 0
        const data = ctx.getImageData(0, 0, c.width, c.height).data
        let n = 0
        for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++
        return n
      }),
    )
    expect(painted.every((n) => n > 100)).toBe(true)
    expect(await page.locator('[data-testid="tiles"]').textContent()).toMatch(/decisions/)
    await shot('stats')
  })

  it('reconnects by itself after the connection drops and catches up on what it missed', async () => {
    await tab('live')
    // Drop every connection: stop the dashboard server, and start it again on the same port.
    const port = Number(new URL(base).port)
    await dashboard.close()
    await page.waitForSelector('[data-testid="stream-status"]:has-text("reconnecting")')
    // While this dashboard is cut off, a call is decided.
    const missed = await warden.app.inject({
      method: 'POST',
      url: '/demo/run-scenario/admin_restart_prod',
    })
    expect(missed.json().decision).toBe('deny')
    dashboard = await buildDashboard({ gatewayUrl, logger: pino({ level: 'silent' }) })
    await dashboard.listen({ port, host: '127.0.0.1' })
    await page.waitForSelector('[data-testid="stream-status"]:has-text("live")', {
      timeout: 20_000,
    })
    await page.locator('li.event', { hasText: 'restart_service' }).first().waitFor()
  })

  it('follows one agent on the timeline, and shows the configuration', async () => {
    await tab('timeline')
    await page.selectOption('.timeline select', 'refund-agent')
    await page.locator('[data-testid="timeline"] li', { hasText: 'issue_refund' }).first().waitFor()
    await shot('timeline')
    await tab('config')
    await page.locator('[data-testid="agents"] tr', { hasText: 'hacker-bot' }).waitFor()
    expect(await page.locator('[data-testid="tools"] tbody tr').count()).toBe(7)
    await shot('config')
  })
})

describe('dashboard against a gateway that requires a token to read', () => {
  it('the stream opens once an approver logs in, with the token sent as a subprotocol', async () => {
    const loaded = loadConfig(DEMO_CONFIG)
    const server = { ...loaded.config.server, read_access: 'approver' as const }
    const g = await startWarden({ config: { ...loaded, config: { ...loaded.config, server } } })
    const url = await g.app.listen({ port: 0, host: '127.0.0.1' })
    const d = await buildDashboard({ gatewayUrl: url, logger: pino({ level: 'silent' }) })
    const dashUrl = await d.listen({ port: 0, host: '127.0.0.1' })
    const b = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    })
    try {
      const p = await b.newPage()
      await p.goto(`${dashUrl}/`)
      await p.waitForSelector('[data-testid="stream-status"]:has-text("reconnecting")')
      await p.fill('input[name="token"]', APPROVER)
      await p.click('form.login button[type="submit"]')
      await p.waitForSelector('[data-testid="stream-status"]:has-text("live")', { timeout: 20_000 })
      await g.app.inject({ method: 'POST', url: '/demo/run-scenario/hacker_bot' })
      await p.locator('li.event', { hasText: 'hacker-bot' }).first().waitFor()
    } finally {
      await b.close()
      await d.close()
      await g.close()
    }
  }, 60_000)
})
