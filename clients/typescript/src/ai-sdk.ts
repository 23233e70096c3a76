import { jsonSchema, tool, type Tool } from 'ai'
import type { WardenClient } from './client.js'
import {
  callThroughWarden,
  forModel,
  modelToolName,
  specsOf,
  type ToolSpec,
  type WrapOptions,
} from './wrap.js'

/**
 * Vercel AI SDK (`ai`, v6): a tool whose `execute` sends each call through Warden. A denial
 * (and a person's "no") comes back to the model as `{ error, code, reason }`; a held call waits
 * for the decision, then the result is the tool's.
 */
export function wardenAiTool(
  client: WardenClient,
  spec: ToolSpec,
  options: WrapOptions = {},
): Tool {
  return tool({
    description: spec.description,
    inputSchema: jsonSchema<Record<string, unknown>>(spec.params),
    execute: async (input, { abortSignal }) =>
      forModel(
        await callThroughWarden(client, spec.name, input, {
          ...options,
          ...(abortSignal && { signal: abortSignal }),
        }),
      ),
  })
}

/** The named gateway tools as an AI SDK tool set, declared as `GET /config/tools` describes them. */
export async function wardenAiTools(
  client: WardenClient,
  names: readonly string[],
  options: WrapOptions = {},
): Promise<Record<string, Tool>> {
  const specs = await specsOf(client, names)
  return Object.fromEntries(
    specs.map((s) => [modelToolName(s.name), wardenAiTool(client, s, options)]),
  )
}
