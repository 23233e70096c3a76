import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { loadConfig } from '../config/loader.js'
import type { Decision } from '../domain/types.js'
import { buildRuntime } from '../pipeline/runtime.js'
import { pipeline } from '../pipeline/runner.js'
import { openState } from '../state/index.js'

const caseSchema = z.strictObject({
  name: z.string(),
  call: z.strictObject({
    agent_id: z.string(),
    tool: z.string(),
    params: z.record(z.string(), z.unknown()).default({}),
    session_id: z.string().optional(),
    context: z.record(z.string(), z.unknown()).default({}),
    /** Bearer key; defaults to the demo key `demo-<agent_id>-key`; `null` sends none. */
    credential: z.string().nullable().optional(),
  }),
  /** Run the call this many times; the expectation applies to the last run. */
  repeat: z.number().int().positive().max(10_000).default(1),
  expect: z.strictObject({
    decision: z.enum(['allow', 'deny', 'approval_required']),
    layer: z.string().nullable().optional(),
    code: z.string().nullable().optional(),
  }),
})

const fileSchema = z.strictObject({
  description: z.string().default(''),
  /** Configuration to test against, relative to this file. */
  config: z.string(),
  cases: z.array(caseSchema).min(1),
})

export type ScenarioCase = z.infer<typeof caseSchema>

export interface CaseResult {
  file: string
  name: string
  passed: boolean
  expected: ScenarioCase['expect']
  actual: { decision: string; layer: string | null; code: string | null; reason: string }
}

/** Scenario files: `path` itself, or the `*.yaml` files of the folder `path`, sorted. */
export function scenarioFiles(path: string): string[] {
  if (!existsSync(path)) throw new Error(`${path}: no such scenario file or folder`)
  if (!statSync(path).isDirectory()) return [path]
  return readdirSync(path)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => join(path, f))
}

/** Load one scenario file; a malformed file throws with the file name. */
export function loadScenarioFile(file: string) {
  const parsed = fileSchema.safeParse(parseYaml(readFileSync(file, 'utf8')))
  if (!parsed.success)
    throw new Error(
      `${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    )
  return { ...parsed.data, configFile: resolve(dirname(file), parsed.data.config) }
}

/**
 * Run a scenario file through the real pipeline (decisions only; nothing executes). Cases run
 * in order against one fresh state, so earlier cases can set up history for later ones.
 */
export async function runScenarioFile(
  file: string,
  configOverride?: string,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<CaseResult[]> {
  const spec = loadScenarioFile(file)
  const state = await openState({ kind: 'memory' })
  const loaded = loadConfig(configOverride ?? spec.configFile)
  // The configuration's `*_env` names (the judge's API key) are read as the gateway reads them.
  const decide = pipeline(buildRuntime(loaded, state, { env }))
  try {
    const results: CaseResult[] = []
    let n = 0
    for (const c of spec.cases) {
      let decision: Decision | undefined
      for (let i = 0; i < c.repeat; i++) {
        decision = await decide.decide({
          requestId: `scenario-${++n}`,
          agentId: c.call.agent_id,
          tool: c.call.tool,
          params: c.call.params,
          sessionId: c.call.session_id,
          context: c.call.context,
          credential:
            c.call.credential === null
              ? undefined
              : (c.call.credential ?? `demo-${c.call.agent_id}-key`),
          receivedAt: Date.now(),
        })
      }
      results.push(judge(file, c, decision!))
    }
    return results
  } finally {
    await state.close()
  }
}

function judge(file: string, c: ScenarioCase, d: Decision): CaseResult {
  const e = c.expect
  const passed =
    d.decision === e.decision &&
    (e.layer === undefined || e.layer === d.layer) &&
    (e.code === undefined || e.code === d.code)
  return {
    file,
    name: c.name,
    passed,
    expected: e,
    actual: { decision: d.decision, layer: d.layer, code: d.code, reason: d.reason },
  }
}
