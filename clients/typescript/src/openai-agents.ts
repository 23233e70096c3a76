import { tool, type FunctionTool } from '@openai/agents'
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
 * OpenAI Agents SDK (`@openai/agents`): a function tool whose calls go through Warden. Declared
 * non-strict (the gateway's parameter schemas may have optional fields); Warden validates the
 * parameters against the same schema and refuses what does not fit, which the model is told.
 */
export function wardenAgentsTool(
  client: WardenClient,
  spec: ToolSpec,
  options: WrapOptions = {},
): FunctionTool {
  return tool({
    name: modelToolName(spec.name),
    description: spec.description,
    parameters: spec.params as never,
    strict: false,
    execute: async (input, _context, details) =>
      JSON.stringify(
        forModel(
          await callThroughWarden(client, spec.name, input as Record<string, unknown>, {
            ...options,
            ...(details?.signal && { signal: details.signal }),
          }),
        ) ?? null,
      ),
  }) as FunctionTool
}

/** The named gateway tools as Agents SDK tools, declared as `GET /config/tools` describes them. */
export async function wardenAgentsTools(
  client: WardenClient,
  names: readonly string[],
  options: WrapOptions = {},
): Promise<FunctionTool[]> {
  return (await specsOf(client, names)).map((s) => wardenAgentsTool(client, s, options))
}
