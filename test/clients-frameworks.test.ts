import { createOpenAICompatible } from '@ai-sdk/openai-compatible'
import { AIMessage, HumanMessage, type BaseMessage } from '@langchain/core/messages'
import { ChatOpenAI } from '@langchain/openai'
import { Agent, OpenAIChatCompletionsModel, run, setTracingDisabled } from '@openai/agents'
import { generateText, stepCountIs } from 'ai'
import OpenAI from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { wardenAiTools } from '../clients/typescript/src/ai-sdk.js'
import { createWardenClient, type WardenClient } from '../clients/typescript/src/index.js'
import { wardenLangChainTools } from '../clients/typescript/src/langchain.js'
import { wardenAgentsTools } from '../clients/typescript/src/openai-agents.js'
import type { WrapOptions } from '../clients/typescript/src/wrap.js'
import { keyOf, startWarden } from './helpers.js'
import { approveWhenHeld } from './support/clients.js'
import { openAiTurn, scriptServer, type ScriptServer } from './support/model-servers.js'

/**
 * Each framework's real package runs a real model loop against a scripted OpenAI-protocol
 * server: the model asks for `issue_refund`, the framework calls the wrapped tool, the call goes
 * through a real gateway (demo configuration), and the framework sends what the tool returned
 * back to the model in its next request, which is where the tests look.
 */
interface Framework {
  name: string
  /** Run the loop until the model answers with text; returns that text. */
  run: (client: WardenClient, modelUrl: string, options: WrapOptions) => Promise<string>
}

const TOOLS = ['issue_refund']
const PROMPT = 'Refund the damaged order, please.'

const frameworks: Framework[] = [
  {
    name: 'Vercel AI SDK (ai)',
    async run(client, modelUrl, options) {
      const provider = createOpenAICompatible({
        name: 'script',
        baseURL: `${modelUrl}/v1`,
        apiKey: 'test',
      })
      const result = await generateText({
        model: provider('test-model'),
        tools: await wardenAiTools(client, TOOLS, options),
        stopWhen: stepCountIs(4),
        prompt: PROMPT,
        maxRetries: 0,
      })
      return result.text
    },
  },
  {
    name: 'LangChain.js (@langchain/core)',
    async run(client, modelUrl, options) {
      const tools = await wardenLangChainTools(client, TOOLS, options)
      const model = new ChatOpenAI({
        model: 'test-model',
        apiKey: 'test',
        maxRetries: 0,
        configuration: { baseURL: `${modelUrl}/v1` },
      }).bindTools(tools)
      const messages: BaseMessage[] = [new HumanMessage(PROMPT)]
      for (let turn = 0; turn < 4; turn++) {
        const reply = (await model.invoke(messages)) as AIMessage
        messages.push(reply)
        if (!reply.tool_calls?.length) return String(reply.content)
        for (const call of reply.tool_calls) {
          const tool = tools.find((t) => t.name === call.name)
          if (!tool) throw new Error(`the model asked for an unknown tool ${call.name}`)
          messages.push(await tool.invoke({ ...call, type: 'tool_call' }))
        }
      }
      throw new Error('the loop did not end')
    },
  },
  {
    name: 'OpenAI Agents SDK (@openai/agents)',
    async run(client, modelUrl, options) {
      setTracingDisabled(true)
      const model = new OpenAIChatCompletionsModel(
        new OpenAI({ baseURL: `${modelUrl}/v1`, apiKey: 'test', maxRetries: 0 }),
        'test-model',
      )
      const agent = new Agent({
        name: 'refunds',
        instructions: 'Issue refunds when asked.',
        model,
        tools: await wardenAgentsTools(client, TOOLS, options),
      })
      const result = await run(agent, PROMPT, { maxTurns: 4 })
      return String(result.finalOutput)
    },
  },
]

/** The content of the tool message in the model's second request: what the tool returned. */
function toolResultSent(model: ScriptServer): unknown {
  const second = model.requests[1] as { messages?: { role: string; content: unknown }[] }
  const message = second?.messages?.find((m) => m.role === 'tool')
  if (!message) throw new Error(`no tool message in ${JSON.stringify(second)}`)
  const text =
    typeof message.content === 'string'
      ? message.content
      : (message.content as { text: string }[]).map((p) => p.text).join('')
  return JSON.parse(text)
}

describe.each(frameworks)('$name through Warden', (framework) => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let client: WardenClient
  let model: ScriptServer
  let n = 0
  const session = () => `fw-${framework.name.split(' ')[0]}-${++n}`

  beforeAll(async () => {
    w = await startWarden()
    const baseUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
    client = createWardenClient({
      baseUrl,
      agentId: 'refund-agent',
      agentKey: keyOf('refund-agent'),
    })
  })
  afterAll(() => w.close())
  afterEach(() => model.close())

  async function scripted(args: Record<string, unknown>) {
    model = await scriptServer('/v1/chat/completions')
    model.script.push(openAiTurn([{ name: 'issue_refund', args }]), openAiTurn([], 'All done.'))
    return model
  }

  it('allowed: the refund runs and its result is sent back to the model', async () => {
    await scripted({ order_id: 'ORD-1001', amount: 25, reason: 'damaged' })
    const text = await framework.run(client, model.url, { sessionId: session() })
    expect(text).toBe('All done.')
    expect(model.requests).toHaveLength(2)
    expect(toolResultSent(model)).toMatchObject({ order_id: 'ORD-1001', amount: 25 })
  })

  it('denied: the model is told the code and the reason, and nothing ran', async () => {
    await scripted({ order_id: 'ORD-1003', amount: 900, reason: 'damaged' })
    await framework.run(client, model.url, { sessionId: session() })
    const sent = toolResultSent(model) as { code: string; reason: string }
    expect(sent.code).toBe('guard_denied')
    expect(sent.reason).toMatch(/500/)
    const order = await client.execute('lookup_order', { order_id: 'ORD-1003' })
    expect(order.kind === 'executed' && order.result).toMatchObject({ refunded: 0 })
  })

  it('held, then approved by a person: the tool result arrives after the approval', async () => {
    await scripted({ order_id: 'ORD-1004', amount: 200, reason: 'damaged' })
    const sessionId = session()
    const [text, approvalId] = await Promise.all([
      framework.run(client, model.url, { sessionId, approvalTimeoutMs: 20_000 }),
      approveWhenHeld(w, sessionId),
    ])
    expect(text).toBe('All done.')
    expect(toolResultSent(model)).toMatchObject({ order_id: 'ORD-1004', amount: 200 })
    const approval = await client.getApproval(approvalId)
    expect(approval.approval).toMatchObject({ status: 'approved', outcome: 'ok' })
  })
})
