import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
} from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * Local servers that speak the OpenAI chat-completions and Ollama /api/chat wire formats with
 * scripted model turns, so the official SDKs run unchanged against them in tests.
 */
export interface TurnAnswer {
  status?: number
  json?: unknown
  raw?: string
}
/** One scripted answer; a promise that settles late (or never) is a slow (or hung) model. */
export type Turn = (req: { body: Record<string, unknown> }) => TurnAnswer | Promise<TurnAnswer>

export interface ScriptServer {
  url: string
  requests: Record<string, unknown>[]
  /** The headers of each request, in the same order. */
  headers: IncomingHttpHeaders[]
  script: Turn[]
  close: () => Promise<void>
}

export async function scriptServer(path: string): Promise<ScriptServer> {
  const state: ScriptServer = {
    url: '',
    requests: [],
    headers: [],
    script: [],
    close: async () => {},
  }
  const server: Server = createServer(async (req: IncomingMessage, res) => {
    let text = ''
    for await (const chunk of req) text += chunk
    if (req.url !== path) {
      res.writeHead(404).end()
      return
    }
    const body = JSON.parse(text || '{}') as Record<string, unknown>
    state.requests.push(body)
    state.headers.push(req.headers)
    const turn = state.script.shift()
    const out = turn
      ? await turn({ body })
      : { status: 500, json: { error: { message: 'script exhausted' } } }
    res.writeHead(out.status ?? 200, { 'content-type': 'application/json' })
    res.end(out.raw ?? JSON.stringify(out.json))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  state.close = () =>
    new Promise((r) => {
      server.close(() => r())
      // A hung turn's connection would keep the server open.
      server.closeAllConnections()
    })
  return state
}

/** An OpenAI chat-completions answer: text, or tool calls with JSON-text arguments. */
export const openAiTurn =
  (calls: { name: string; args: unknown }[], content: string | null = null): Turn =>
  () => ({
    json: {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: 'test-model',
      choices: [
        {
          index: 0,
          finish_reason: calls.length ? 'tool_calls' : 'stop',
          message: {
            role: 'assistant',
            content,
            ...(calls.length && {
              tool_calls: calls.map((c, i) => ({
                id: `call_${i}`,
                type: 'function',
                function: {
                  name: c.name,
                  arguments: typeof c.args === 'string' ? c.args : JSON.stringify(c.args),
                },
              })),
            }),
          },
        },
      ],
    },
  })

/** An Ollama /api/chat answer (non-streaming), tool arguments as objects. */
export const ollamaTurn =
  (calls: { name: string; args: Record<string, unknown> }[], content = ''): Turn =>
  () => ({
    json: {
      model: 'llama3.1',
      created_at: new Date().toISOString(),
      message: {
        role: 'assistant',
        content,
        ...(calls.length && {
          tool_calls: calls.map((c) => ({ function: { name: c.name, arguments: c.args } })),
        }),
      },
      done: true,
      done_reason: 'stop',
    },
  })
