import OpenAI from 'openai'
import {
  parseArguments,
  ProviderError,
  wireNames,
  type ChatMessage,
  type ModelProvider,
  type ModelTurn,
  type ToolSpec,
} from './types.js'

export interface OpenAiOptions {
  apiKey: string | undefined
  /** Any OpenAI-compatible server (vLLM, LM Studio, a gateway); default api.openai.com. */
  baseURL?: string
  model: string
  timeoutMs?: number
}

/** Chat completions with function tools, through the official SDK. No retries: Warden reports. */
export function openAiProvider(opts: OpenAiOptions): ModelProvider {
  const client = opts.apiKey
    ? new OpenAI({
        apiKey: opts.apiKey,
        ...(opts.baseURL && { baseURL: opts.baseURL }),
        maxRetries: 0,
        timeout: opts.timeoutMs ?? 60_000,
      })
    : null
  return {
    name: 'openai',
    async chat(messages: ChatMessage[], tools: ToolSpec[]): Promise<ModelTurn> {
      if (!client) throw new ProviderError('openai', 'not_configured', 'OPENAI_API_KEY is not set')
      const names = wireNames(tools)
      let completion
      try {
        completion = await client.chat.completions.create({
          model: opts.model,
          messages: messages.map((m) => toOpenAi(m, names.toWire)),
          ...(tools.length > 0 && {
            tools: tools.map((t) => ({
              type: 'function' as const,
              function: {
                name: names.toWire(t.name),
                description: t.description,
                parameters: t.parameters,
              },
            })),
          }),
        })
      } catch (err) {
        const status = err instanceof OpenAI.APIError ? err.status : undefined
        throw new ProviderError(
          'openai',
          status === 401 || status === 403 ? 'not_configured' : 'unavailable',
          `OpenAI request failed${status ? ` (HTTP ${status})` : ''}: ${(err as Error).message}`,
        )
      }
      const message = completion?.choices?.[0]?.message
      if (!message) throw new ProviderError('openai', 'bad_response', 'the response has no message')
      return {
        content: message.content ?? '',
        toolCalls: (message.tool_calls ?? []).map((c, i) => {
          if (c.type !== 'function')
            throw new ProviderError(
              'openai',
              'bad_response',
              `unsupported tool call type \`${c.type}\``,
            )
          return {
            id: c.id || `call_${i}`,
            name: names.fromWire(c.function.name),
            arguments: parseArguments('openai', c.function.arguments),
          }
        }),
      }
    },
  }
}

function toOpenAi(
  m: ChatMessage,
  toWire: (name: string) => string,
): OpenAI.Chat.Completions.ChatCompletionMessageParam {
  if (m.role === 'tool') return { role: 'tool', tool_call_id: m.toolCallId, content: m.content }
  if (m.role === 'assistant')
    return {
      role: 'assistant',
      content: m.content,
      ...(m.toolCalls?.length && {
        tool_calls: m.toolCalls.map((c) => ({
          id: c.id,
          type: 'function' as const,
          function: { name: toWire(c.name), arguments: JSON.stringify(c.arguments) },
        })),
      }),
    }
  return { role: m.role, content: m.content }
}
