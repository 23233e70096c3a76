import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { loadScenarioFile, runScenarioFile, scenarioFiles } from '../src/replay/scenario-runner.js'

const DIR = fileURLToPath(new URL('./scenarios/', import.meta.url))

describe('the scenario loader', () => {
  it('refuses a file with no cases, naming the file and the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-scenarios-'))
    try {
      const file = join(dir, 'empty.yaml')
      writeFileSync(file, 'description: nothing to check\nconfig: ../warden.yaml\ncases: []\n')
      expect(() => loadScenarioFile(file)).toThrow(/empty\.yaml: cases: .*1/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

// Each file loads (so it has at least one case: the loader refuses empty files, above).
describe.each(scenarioFiles(DIR))('scenario file %s', (file) => {
  const spec = loadScenarioFile(file)

  it.each(spec.cases.map((c, i) => [i, c.name] as const))('case %i: %s', async (index) => {
    // Cases share state in order, so run the file up to and including this case.
    const results = await runScenarioFile(file)
    const r = results[index]!
    expect(r.actual.decision, r.actual.reason).toBe(r.expected.decision)
    if (r.expected.layer !== undefined) expect(r.actual.layer).toBe(r.expected.layer)
    if (r.expected.code !== undefined) expect(r.actual.code).toBe(r.expected.code)
  })
})
