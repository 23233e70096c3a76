import { Ajv, type ValidateFunction } from 'ajv'

/**
 * One Ajv instance for tool parameter schemas, configured to never change the input: no type
 * coercion, no defaults, no removal of extra fields, no `$data` references (user-controlled
 * schema parts), and strict mode so a misspelled keyword is a load error.
 */
function newAjv(): Ajv {
  return new Ajv({
    strict: true,
    allErrors: false,
    coerceTypes: false,
    useDefaults: false,
    removeAdditional: false,
    $data: false,
    allowUnionTypes: true,
  })
}

/** Names of the top-level parameters a tool schema declares. */
export function paramNames(schema: Record<string, unknown>): Set<string> {
  const props = schema.properties
  return new Set(props && typeof props === 'object' ? Object.keys(props) : [])
}

/**
 * Why a tool schema is unusable: it must compile, describe an object, and close every object
 * (`additionalProperties: false`) so unknown fields are rejected rather than passed through.
 */
export function schemaProblems(schema: Record<string, unknown>): string[] {
  const problems: string[] = []
  if (schema.type !== 'object') problems.push('the parameter schema must have `type: object`')
  closedObjects(schema, 'params', problems)
  try {
    newAjv().compile(schema)
  } catch (err) {
    problems.push(`invalid JSON Schema: ${(err as Error).message}`)
  }
  return problems
}

function closedObjects(node: unknown, where: string, problems: string[]): void {
  if (node === null || typeof node !== 'object') return
  const schema = node as Record<string, unknown>
  if (schema.type === 'object' && schema.additionalProperties !== false) {
    problems.push(`${where} must set \`additionalProperties: false\``)
  }
  for (const [key, child] of Object.entries(schema)) {
    if (key === 'properties' && child && typeof child === 'object') {
      for (const [name, sub] of Object.entries(child))
        closedObjects(sub, `${where}.${name}`, problems)
    } else if (key === 'items') closedObjects(child, `${where}[]`, problems)
  }
}

/** Compile every tool's schema once; the map is read by the params layer. */
export function compileToolSchemas(
  tools: readonly { name: string; params: Record<string, unknown> }[],
): Map<string, ValidateFunction> {
  const ajv = newAjv()
  // Ajv keeps references to the schema objects; give it copies since the config is frozen.
  return new Map(tools.map((t) => [t.name, ajv.compile(structuredClone(t.params))]))
}
