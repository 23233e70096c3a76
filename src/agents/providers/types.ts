/** A tool as offered to a model: the gateway's tool definition, as a function schema. */
export interface ToolSpec {
  name: string
  description: string
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>
}

export interface ToolCallRequest {
  id: string
  name: string
  arguments: Record<string, unknown>
}

/** The conversation in a provider-neutral form; each provider maps it to its wire format. */
export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls?: ToolCallRequest[] }
  | { role: 'tool'; toolCallId: string; name: string; content: string }

/** One model turn: text, tool calls, or both. */
export interface ModelTurn {
  content: string
  toolCalls: ToolCallRequest[]
}

export interface ModelProvider {
  readonly name: 'openai' | 'ollama' | 'offline'
  chat(messages: ChatMessage[], tools: ToolSpec[]): Promise<ModelTurn>
}

/** A provider that cannot answer: not configured, unreachable, or an answer that makes no sense. */
export class ProviderError extends Error {
  constructor(
    readonly provider: string,
    readonly kind: 'not_configured' | 'unavailable' | 'bad_response',
    message: string,
  ) {
    super(message)
    this.name = 'ProviderError'
  }

  /** The error code the agent API reports it with (docs/errors.md). */
  get code(): 'provider_not_configured' | 'provider_unavailable' | 'provider_bad_response' {
    return `provider_${this.kind}`
  }
}

/** Arguments arrive as JSON text (OpenAI) or objects (Ollama); both must end as a plain object. */
export function parseArguments(provider: string, raw: unknown): Record<string, unknown> {
  let value = raw
  if (typeof raw === 'string') {
    try {
      value = raw.trim() === '' ? {} : JSON.parse(raw)
    } catch {
      throw new ProviderError(
        provider,
        'bad_response',
        'the model sent tool arguments that are not JSON',
      )
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ProviderError(
      provider,
      'bad_response',
      'the model sent tool arguments that are not an object',
    )
  return value as Record<string, unknown>
}

/**
 * Tool names as a provider may carry them. OpenAI function names must match
 * `^[a-zA-Z0-9_-]{1,64}$` (and Ollama's models are trained on the same), but an MCP tool's Warden
 * name has a dot (`everything.echo`). Each name is given a wire form with the other characters
 * replaced by `_` (made unique with a suffix when two would meet), and the model's answer is
 * mapped back through the same table, so a name the model invents stays unknown to Warden.
 */
export function wireNames(tools: ToolSpec[]): {
  toWire: (name: string) => string
  fromWire: (wire: string) => string
} {
  const out = new Map<string, string>()
  const back = new Map<string, string>()
  for (const { name } of tools) {
    if (out.has(name)) continue
    const base = name.replace(/[^a-zA-Z0-9_-]/g, '_').slice(0, 60) || 'tool'
    let wire = base
    for (let n = 2; back.has(wire); n++) wire = `${base}_${n}`
    out.set(name, wire)
    back.set(wire, name)
  }
  return { toWire: (name) => out.get(name) ?? name, fromWire: (wire) => back.get(wire) ?? wire }
}
