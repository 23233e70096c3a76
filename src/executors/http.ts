import type { ToolConfig } from '../domain/config.js'
import { ToolFailure, type Executor } from './types.js'

/** The environment `headers_env` names are read from (main.ts's; never logged or audited). */
export type Environment = Readonly<Record<string, string | undefined>>

/**
 * Calls a configured upstream: `{name}` placeholders in the URL take the parameter (URL-encoded);
 * other parameters go in the query (GET, DELETE) or as a JSON body. One attempt only: Warden
 * never retries, because a retried refund is a second refund. `headers_env` values come from
 * `env` at each call; one that is not set fails the call rather than send it without.
 */
export function httpExecutor(env: Environment = {}, fetchImpl: typeof fetch = fetch): Executor {
  return {
    async execute(tool, params, requestId) {
      const ex = tool.executor
      if (ex.type !== 'http') throw new Error(`tool \`${tool.name}\` is not an http tool`)
      const secretHeaders: Record<string, string> = {}
      for (const [header, name] of Object.entries(ex.headers_env)) {
        const value = env[name]
        if (value === undefined || value === '')
          throw new ToolFailure(
            'error',
            `\`${tool.name}\`: header ${header} needs the environment variable ${name}, which is not set`,
          )
        secretHeaders[header] = value
      }
      const { url, rest } = fillTemplate(ex.url, params)
      const hasBody = ex.method !== 'GET' && ex.method !== 'DELETE'
      if (!hasBody)
        for (const [k, v] of Object.entries(rest))
          url.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v))
      let res: Response
      try {
        res = await fetchImpl(url, {
          method: ex.method,
          headers: {
            ...ex.headers,
            ...secretHeaders,
            'x-request-id': requestId,
            ...(hasBody && { 'content-type': 'application/json' }),
          },
          body: hasBody ? JSON.stringify(rest) : undefined,
          signal: AbortSignal.timeout(ex.timeout_ms),
          redirect: 'error',
        })
      } catch (err) {
        const e = err as Error
        if (e.name === 'TimeoutError')
          throw new ToolFailure(
            'timeout',
            `\`${tool.name}\` did not answer within ${ex.timeout_ms} ms`,
          )
        throw new ToolFailure('error', `\`${tool.name}\` could not be reached: ${e.message}`)
      }
      const body = await readBody(res, tool)
      if (!res.ok) throw new ToolFailure('error', `\`${tool.name}\` answered ${res.status}`)
      return body
    },
  }
}

/** `headers_env` variables the tools of `tools` name that `env` does not set (for start-up). */
export function missingHeaderVariables(
  tools: readonly ToolConfig[],
  env: Environment,
): { tool: string; header: string; variable: string }[] {
  return tools.flatMap((t) =>
    t.executor.type === 'http'
      ? Object.entries(t.executor.headers_env)
          .filter(([, variable]) => !env[variable])
          .map(([header, variable]) => ({ tool: t.name, header, variable }))
      : [],
  )
}

function fillTemplate(
  template: string,
  params: Readonly<Record<string, unknown>>,
): { url: URL; rest: Record<string, unknown> } {
  const rest: Record<string, unknown> = { ...params }
  const filled = template.replace(/\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    const value = params[name]
    delete rest[name]
    if (value === undefined)
      throw new ToolFailure('error', `URL placeholder \`${name}\` has no parameter`)
    const encoded = encodeURIComponent(String(value))
    // `encodeURIComponent` leaves dots alone, and URL parsing resolves `.` and `..` segments:
    // `/orders/{order_id}/refunds` with `..` would call `/refunds`. Refused before any request.
    if (encoded === '.' || encoded === '..')
      throw new ToolFailure('error', `URL placeholder \`${name}\` may not be \`${encoded}\``)
    return encoded
  })
  return { url: new URL(filled), rest }
}

/** Largest tool response Warden reads; a bigger one is a failure, not a memory spike. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024

async function readBody(res: Response, tool: ToolConfig): Promise<unknown> {
  const text = await readText(res, tool)
  if (!(res.headers.get('content-type') ?? '').includes('json')) return text
  try {
    return JSON.parse(text)
  } catch {
    throw new ToolFailure('error', `\`${tool.name}\` returned invalid JSON`)
  }
}

/** Read the body up to the size limit; the deadline covers the body too (outcome unknown). */
async function readText(res: Response, tool: ToolConfig): Promise<string> {
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for await (const chunk of res.body ?? []) {
      size += chunk.byteLength
      if (size > MAX_RESPONSE_BYTES) {
        // Leaving the loop by throwing cancels the stream.
        throw new ToolFailure(
          'error',
          `\`${tool.name}\` answered with more than ${MAX_RESPONSE_BYTES} bytes`,
        )
      }
      chunks.push(chunk)
    }
  } catch (err) {
    if (err instanceof ToolFailure) throw err
    const timeout = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError'
    throw new ToolFailure(
      timeout ? 'timeout' : 'error',
      `\`${tool.name}\` response could not be read: ${(err as Error).message}`,
    )
  }
  return Buffer.concat(chunks).toString('utf8')
}
