import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { canonicalHash } from '../domain/canonical.js'
import { configSchema, type WardenConfig } from '../domain/config.js'
import { checkReferences } from './references.js'

/** A configuration that cannot be used; the message names the file and the field. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** A validated, frozen configuration plus where each part came from. */
export interface LoadedConfig {
  readonly config: WardenConfig
  /** `<version>+<12 hex of the canonical config hash>`: stamped on every decision. */
  readonly policyVersion: string
  readonly file: string
  /** Which file each top-level key came from, for error messages. */
  readonly sources: Readonly<Record<string, string>>
}

/** Read, merge, validate and freeze the configuration rooted at `file`. */
export function loadConfig(file: string): LoadedConfig {
  const mainFile = resolve(file)
  const sources: Record<string, string> = {}
  const merged = readYaml(mainFile)
  for (const key of Object.keys(merged)) sources[key] = mainFile
  for (const inc of asIncludes(merged.include, mainFile)) {
    const incFile = resolve(dirname(mainFile), inc)
    const part = readYaml(incFile)
    for (const [key, value] of Object.entries(part)) {
      if (key in merged)
        throw new ConfigError(`${incFile}: \`${key}\` is already set in ${sources[key]}`)
      merged[key] = value
      sources[key] = incFile
    }
  }
  const parsed = configSchema.safeParse(merged)
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error.issues, sources, mainFile))
  const config = parsed.data
  const problems = checkReferences(config)
  if (problems.length > 0) {
    const lines = problems.map(
      (p) => `${sources[String(p.path[0] ?? '')] ?? mainFile}: ${formatPath(p.path)}: ${p.message}`,
    )
    throw new ConfigError(lines.join('\n'))
  }
  const digest = canonicalHash(config)
  return deepFreeze({
    config,
    policyVersion: `${config.version}+${digest.slice(0, 12)}`,
    file: mainFile,
    sources,
  })
}

function readYaml(file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    // `uniqueKeys` (on by default) makes a repeated key an error instead of last-wins.
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 })
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`${file}: the top level must be a mapping`)
  }
  return doc as Record<string, unknown>
}

function asIncludes(value: unknown, file: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new ConfigError(`${file}: include: must be a list of file names`)
  }
  return value
}

function describeIssues(
  issues: z.core.$ZodIssue[],
  sources: Record<string, string>,
  mainFile: string,
): string {
  return issues
    .slice(0, 10)
    .map((issue) => {
      const top = String(issue.path[0] ?? '')
      return `${sources[top] ?? mainFile}: ${formatPath(issue.path)}: ${issue.message}`
    })
    .join('\n')
}

/** `agents[1].rate_limit.limit` style path. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)'
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('')
}

/** Freeze an object graph so nothing can change the configuration after load. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
