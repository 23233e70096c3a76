import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { loadScenarioFile, runScenarioFile, scenarioFiles } from '../src/replay/scenario-runner.js'

const DIR = fileURLToPath(new URL('./scenarios/', import.meta.url))

describe.each(scenarioFiles(DIR))('scenario file %s', (file) => {
  const spec = loadScenarioFile(file)
  it(`has cases (${spec.description})`, () => expect(spec.cases.length).toBeGreaterThan(0))

  it.each(spec.cases.map((c, i) => [i, c.name] as const))('case %i: %s', async (index) => {
    // Cases share state in order, so run the file up to and including this case.
    const results = await runScenarioFile(file)
    const r = results[index]!
    expect(r.actual.decision, r.actual.reason).toBe(r.expected.decision)
    if (r.expected.layer !== undefined) expect(r.actual.layer).toBe(r.expected.layer)
    if (r.expected.code !== undefined) expect(r.actual.code).toBe(r.expected.code)
  })
})
