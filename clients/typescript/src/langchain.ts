import { tool, type DynamicStructuredTool } from '@langchain/core/tools'
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
 * LangChain.js (`@langchain/core`): a structured tool whose calls go through Warden. The tool
 * message the model gets is the result as JSON text, or a denial's `{ error, code, reason }`.
 */
export function wardenLangChainTool(
  client: WardenClient,
  spec: ToolSpec,
  options: WrapOptions = {},
): DynamicStructuredTool {
  return tool(
    async (input: Record<string, unknown>, config) =>
      JSON.stringify(
        forModel(
          await callThroughWarden(client, spec.name, input, {
            ...options,
            ...(config?.signal && { signal: config.signal }),
          }),
        ) ?? null,
      ),
    {
      name: modelToolName(spec.name),
      description: spec.description,
      schema: spec.params,
    },
  ) as DynamicStructuredTool
}

/** The named gateway tools as LangChain tools, declared as `GET /config/tools` describes them. */
export async function wardenLangChainTools(
  client: WardenClient,
  names: readonly string[],
  options: WrapOptions = {},
): Promise<DynamicStructuredTool[]> {
  return (await specsOf(client, names)).map((s) => wardenLangChainTool(client, s, options))
}
