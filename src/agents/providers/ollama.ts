import { Ollama, type Message } from 'ollama'
import {
  parseArguments,
  ProviderError,
  wireNames,
  type ChatMessage,
  type ModelProvider,
  type ModelTurn,
  type ToolSpec,
} from './types.js'

export interface OllamaOptions {
  /** OLLAMA_HOST, e.g. http://127.0.0.1:11434. */
  host: string
  model: string
}

/** Ollama's chat API with tools, through the official SDK. */
export function ollamaProvider(opts: OllamaOptions): ModelProvider {
  const client = new Ollama({ host: opts.host })
  return {
    name: 'ollama',
    async chat(messages: ChatMessage[], tools: ToolSpec[]): Promise<ModelTurn> {
      const names = wireNames(tools)
      let response
      try {
        response = await client.chat({
          model: opts.model,
          stream: false,
          messages: messages.map((m) => toOllama(m, names.toWire)),
          ...(tools.length > 0 && {
            tools: tools.map((t) => ({
              type: 'function',
              function: {
                name: names.toWire(t.name),
                description: t.description,
                parameters: t.parameters as never,
              },
            })),
          }),
        })
      } catch (err) {
        throw new ProviderError(
          'ollama',
          'unavailable',
          `Ollama at ${opts.host} failed: ${(err as Error).message}`,
        )
      }
      const message = response?.message
      if (!message || typeof message !== 'object')
        throw new ProviderError('ollama', 'bad_response', 'the response has no message')
      return {
        content: typeof message.content === 'string' ? message.content : '',
        toolCalls: (message.tool_calls ?? []).map((c, i) => {
          if (!c?.function?.name)
            throw new ProviderError('ollama', 'bad_response', 'a tool call has no function name')
          return {
            id: `call_${i}`,
            name: names.fromWire(c.function.name),
            arguments: parseArguments('ollama', c.function.arguments),
          }
        }),
      }
    },
  }
}

function toOllama(m: ChatMessage, toWire: (name: string) => string): Message {
  if (m.role === 'tool')
    return { role: 'tool', content: m.content, tool_name: toWire(m.name) } as Message
  if (m.role === 'assistant')
    return {
      role: 'assistant',
      content: m.content,
      ...(m.toolCalls?.length && {
        tool_calls: m.toolCalls.map((c) => ({
          function: { name: toWire(c.name), arguments: c.arguments },
        })),
      }),
    }
  return { role: m.role, content: m.content }
}
