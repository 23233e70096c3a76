import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROUTE_DOCS } from '../src/http/openapi.js'
import { startWarden } from './helpers.js'

describe('OpenAPI at /docs', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  // Building the app fails on a route without documentation (registerOpenApi's onRoute hook).
  beforeAll(async () => {
    w = await startWarden()
  })
  afterAll(() => w.close())

  it('documents every route the gateway serves, and nothing it does not', async () => {
    const spec = (await w.app.inject({ url: '/docs/json' })).json() as {
      openapi: string
      paths: Record<string, Record<string, { summary?: string }>>
    }
    expect(spec.openapi).toBe('3.1.0')
    const documented = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
    )
    // The WebSocket route is documented as a GET too.
    expect(documented.sort()).toEqual(Object.keys(ROUTE_DOCS).sort())
    expect(spec.paths['/gateway/execute']?.post?.summary).toMatch(/Decide a tool call/)
  })

  it('serves the interactive page', async () => {
    const page = await w.app.inject({ url: '/docs/' })
    expect(page.statusCode).toBe(200)
    expect(page.body).toMatch(/swagger/i)
  })
})
