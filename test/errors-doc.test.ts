import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ERROR_CATALOG } from '../src/domain/errors.js'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
const documented = new Map(
  [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]),
)

describe('docs/errors.md', () => {
  it.each(Object.entries(ERROR_CATALOG))('documents `%s` with its status', (code, { status }) => {
    expect(documented.get(code)).toBe(status)
  })

  it('documents no code the catalog lacks', () => {
    expect([...documented.keys()].filter((c) => !(c in ERROR_CATALOG))).toEqual([])
  })
})
