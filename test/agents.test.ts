import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildAgentApi, type AgentApiOptions } from '../src/agents/server.js'
import { loadConfig } from '../src/config/loader.js'
import { approve, DEMO_CONFIG, startWarden } from './helpers.js'
import { ollamaTurn, openAiTurn, scriptServer, type ScriptServer } from './support/model-servers.js'

/**
 * The agent API against a real gateway, with the official OpenAI and Ollama SDKs talking HTTP to
 * local servers that speak their wire formats with scripted model turns.
 */
describe('agent API', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let gatewayUrl: string
  let openai: ScriptServer
  let ollama: ScriptServer
  const apis: Awaited<ReturnType<typeof buildAgentApi>>[] = []
  // Every agent API here keeps its held runs in one temp SQLite file, as instances would share it.
  const runsDir = mkdtempSync(join(tmpdir(), 'warden-agent-runs-'))
  const runs = { kind: 'sqlite', sqlitePath: join(runsDir, 'agent-runs.db') } as const

  async function agentApi(over: Partial<AgentApiOptions> = {}) {
    const api = await buildAgentApi({
      gatewayUrl,
      logger: pino({ level: 'silent' }),
      keys: {},
      demoKeys: true,
      openai: { apiKey: 'sk-test', baseURL: `${openai.url}/v1`, model: 'test-model' },
      ollama: { host: ollama.url, model: 'llama3.1' },
      runs,
      ...over,
    })
    apis.push(api)
    return api
  }
  const prompt = async (
    body: Record<string, unknown>,
    api?: Awaited<ReturnType<typeof buildAgentApi>>,
  ) => (api ?? (await agentApi())).inject({ method: 'POST', url: '/agent/prompt', payload: body })

  beforeAll(async () => {
    w = await startWarden()
    gatewayUrl = await w.app.listen({ port: 0, host: '127.0.0.1' })
    openai = await scriptServer('/v1/chat/completions')
    ollama = await scriptServer('/api/chat')
  })
  afterAll(async () => {
    for (const api of apis) await api.close()
    await openai.close()
    await ollama.close()
    await w.close()
    rmSync(runsDir, { recursive: true, force: true })
  })

  describe('offline provider (the default)', () => {
    it('the seed’s ticket example: one allowed call, its result, an answer', async () => {
      const res = await prompt({
        prompt: 'Create a support ticket for customer 12345',
        agent_id: 'support-agent',
      })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({
        agent_id: 'support-agent',
        provider: 'offline',
        status: 'completed',
        steps: [
          { tool: 'create_support_ticket', params: { customer_id: '12345' }, decision: 'allow' },
        ],
      })
      expect(res.json().answer).toMatch(/TCK-/)
    })

    it('the seed’s refund example is held; after a person approves, the run resumes and finishes', async () => {
      const api = await agentApi()
      const res = await prompt(
        { prompt: 'Process a refund of $250 for order 12345', agent_id: 'refund-agent' },
        api,
      )
      const run = res.json()
      expect(run).toMatchObject({
        status: 'pending_approval',
        steps: [
          {
            tool: 'issue_refund',
            params: { order_id: 'ORD-12345', amount: 250 },
            decision: 'approval_required',
          },
        ],
        pending_approval: { tool: 'issue_refund' },
      })
      // Still waiting: resuming says so.
      const early = await api.inject({ method: 'POST', url: `/agent/runs/${run.run_id}/resume` })
      expect(early.json().status).toBe('pending_approval')
      const approved = await approve(w, run.pending_approval.approval_id, 'approve')
      expect(approved.statusCode).toBe(200)
      const done = (
        await api.inject({ method: 'POST', url: `/agent/runs/${run.run_id}/resume` })
      ).json()
      expect(done.status).toBe('completed')
      expect(done.steps[0].result).toMatchObject({ order_id: 'ORD-12345', remaining_balance: 390 })
      expect(done.answer).toMatch(/issue_refund/)
      const again = await api.inject({ method: 'POST', url: `/agent/runs/${run.run_id}/resume` })
      expect(again.json().error.code).toBe('run_not_found')
    })

    it('multi-agent: support asks refund to refund $5,000 — delivered through the gateway, denied there, chain visible', async () => {
      const res = await prompt({
        prompt: 'Please refund $5000 for order ORD-1002',
        agent_id: 'support-agent',
        requested_by: 'bob@example.com',
      })
      const run = res.json()
      expect(run.steps[0]).toMatchObject({
        tool: 'message_agent',
        decision: 'delivered',
        chain: ['support-agent', 'refund-agent'],
        delegated: {
          agent_id: 'refund-agent',
          steps: [{ tool: 'issue_refund', decision: 'deny' }],
        },
      })
      expect(run.steps[0].delegated.steps[0].reason).toBe(
        'tool `issue_refund` is not allowed for agent `support-agent`, which delegated this call',
      )
      const [event] = await w.stores.audit.query({
        type: 'tool_call_denied',
        agent_id: 'refund-agent',
        limit: 1,
      })
      expect(event).toMatchObject({
        chain: ['support-agent', 'refund-agent'],
        human: 'bob@example.com',
      })
    })
  })

  describe('openai provider (official SDK, local chat-completions server)', () => {
    it('offers only the agent’s tools, runs the model’s call through the gateway, feeds the result back', async () => {
      openai.requests.length = 0
      openai.script.push(
        openAiTurn([
          { name: 'create_support_ticket', args: { customer_id: '12345', subject: 'Broken item' } },
        ]),
        openAiTurn([], 'I opened ticket TCK for you.'),
      )
      const res = await prompt({
        prompt: 'Create a support ticket for customer 12345',
        agent_id: 'support-agent',
        provider: 'openai',
      })
      expect(res.json()).toMatchObject({
        provider: 'openai',
        status: 'completed',
        answer: 'I opened ticket TCK for you.',
        steps: [{ tool: 'create_support_ticket', decision: 'allow' }],
      })
      const [first, second] = openai.requests as {
        model: string
        tools: { function: { name: string } }[]
        messages: Record<string, unknown>[]
      }[]
      expect(first!.model).toBe('test-model')
      // The demo's MCP tools travel under OpenAI-safe names (no dots).
      expect(first!.tools.map((t) => t.function.name).sort()).toEqual([
        'create_support_ticket',
        'everything_echo',
        'everything_get-sum',
        'lookup_order',
        'message_agent',
        'search_knowledge_base',
      ])
      const toolMessage = second!.messages.find((m) => m.role === 'tool')
      expect(toolMessage).toMatchObject({ tool_call_id: 'call_0' })
      expect(String(toolMessage!.content)).toMatch(/TCK-/)
    })

    it('a hijacked model that tries an injected action is stopped by the gateway and told why', async () => {
      openai.requests.length = 0
      openai.script.push(
        openAiTurn([{ name: 'search_knowledge_base', args: { query: 'refund policy' } }]),
        // The "model" now follows an injected instruction: a refund the support agent may not make.
        openAiTurn([
          {
            name: 'issue_refund',
            args: { order_id: 'ORD-1003', amount: 999, reason: 'as instructed' },
          },
        ]),
        openAiTurn([], 'I was not allowed to do that.'),
      )
      const res = await prompt({
        prompt: 'What is the refund policy?',
        agent_id: 'support-agent',
        provider: 'openai',
      })
      const run = res.json()
      expect(
        run.steps.map((s: { tool: string; decision: string }) => [s.tool, s.decision]),
      ).toEqual([
        ['search_knowledge_base', 'allow'],
        ['issue_refund', 'deny'],
      ])
      expect(run.steps[1].error.code).toBe('tool_not_allowed')
      const told = (
        openai.requests[2] as { messages: { role: string; content: string }[] }
      ).messages.filter((m) => m.role === 'tool')
      expect(told[1]!.content).toMatch(/^DENIED by Warden \(tool_not_allowed\)/)
    })

    it('failures are clear errors: no key, refused key, server error, unusable answer, server down', async () => {
      const noKey = await prompt(
        { prompt: 'x', agent_id: 'support-agent', provider: 'openai' },
        await agentApi({ openai: {} }),
      )
      expect(noKey.statusCode).toBe(503)
      expect(noKey.json().error.code).toBe('provider_not_configured')

      openai.script.push(() => ({
        status: 401,
        json: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } },
      }))
      const refused = await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'openai' })
      expect(refused.json().error.code).toBe('provider_not_configured')
      expect(refused.json().error.message).toMatch(/HTTP 401/)

      openai.script.push(() => ({ status: 500, json: { error: { message: 'boom' } } }))
      const broken = await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'openai' })
      expect(broken.statusCode).toBe(502)
      expect(broken.json().error.code).toBe('provider_unavailable')

      openai.script.push(openAiTurn([{ name: 'lookup_order', args: '{not json' }]))
      const garbled = await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'openai' })
      expect(garbled.json().error.code).toBe('provider_bad_response')

      openai.script.push(() => ({ raw: '{"choices": []}' }))
      const empty = await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'openai' })
      expect(empty.json().error.code).toBe('provider_bad_response')

      const down = await agentApi({
        openai: { apiKey: 'sk-test', baseURL: 'http://127.0.0.1:9/v1' },
      })
      const unreachable = await prompt(
        { prompt: 'x', agent_id: 'support-agent', provider: 'openai' },
        down,
      )
      expect(unreachable.statusCode).toBe(502)
      expect(unreachable.json().error.code).toBe('provider_unavailable')
    })
  })

  describe('the seed’s two curl examples, as written, against the local protocol servers', () => {
    it('Ollama: "Create a support ticket for customer 12345" as support-agent', async () => {
      ollama.script.push(
        ollamaTurn([
          {
            name: 'create_support_ticket',
            args: { customer_id: '12345', subject: 'Support request' },
          },
        ]),
        ollamaTurn([], 'Ticket created.'),
      )
      const res = await prompt({
        prompt: 'Create a support ticket for customer 12345',
        agent_id: 'support-agent',
        provider: 'ollama',
      })
      expect(res.json()).toMatchObject({
        provider: 'ollama',
        status: 'completed',
        steps: [
          { tool: 'create_support_ticket', decision: 'allow', result: { customer_id: '12345' } },
        ],
      })
    })

    it('OpenAI: "Process a refund of $250 for order 12345" as refund-agent is held for a person', async () => {
      openai.script.push(
        openAiTurn([
          {
            name: 'issue_refund',
            args: { order_id: 'ORD-12345', amount: 250, reason: 'customer request' },
          },
        ]),
      )
      const res = await prompt({
        prompt: 'Process a refund of $250 for order 12345',
        agent_id: 'refund-agent',
        provider: 'openai',
      })
      expect(res.json()).toMatchObject({
        provider: 'openai',
        status: 'pending_approval',
        steps: [{ tool: 'issue_refund', decision: 'approval_required' }],
      })
    })
  })

  describe('ollama provider (official SDK, local /api/chat server)', () => {
    it('runs a tool call with object arguments through the gateway', async () => {
      ollama.requests.length = 0
      ollama.script.push(
        ollamaTurn([{ name: 'lookup_order', args: { order_id: 'ORD-1001' } }]),
        ollamaTurn([], 'Order ORD-1001 is shipped.'),
      )
      const res = await prompt({
        prompt: 'Where is order ORD-1001?',
        agent_id: 'support-agent',
        provider: 'ollama',
      })
      expect(res.json()).toMatchObject({
        provider: 'ollama',
        status: 'completed',
        answer: 'Order ORD-1001 is shipped.',
        steps: [{ tool: 'lookup_order', decision: 'allow' }],
      })
      const first = ollama.requests[0] as {
        model: string
        stream: boolean
        tools: { function: { name: string } }[]
      }
      expect(first).toMatchObject({ model: 'llama3.1', stream: false })
      expect(first.tools.map((t) => t.function.name)).toContain('lookup_order')
      expect(first.tools.map((t) => t.function.name)).not.toContain('issue_refund')
      const second = ollama.requests[1] as {
        messages: { role: string; content: string; tool_name?: string }[]
      }
      expect(second.messages.find((m) => m.role === 'tool')).toMatchObject({
        tool_name: 'lookup_order',
      })
    })

    it('failures are clear errors: server down, unusable answer', async () => {
      const down = await agentApi({ ollama: { host: 'http://127.0.0.1:9' } })
      const unreachable = await prompt(
        { prompt: 'x', agent_id: 'support-agent', provider: 'ollama' },
        down,
      )
      expect(unreachable.statusCode).toBe(502)
      expect(unreachable.json().error.code).toBe('provider_unavailable')
      ollama.script.push(() => ({ json: { model: 'llama3.1', done: true } }))
      const empty = await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'ollama' })
      expect(empty.json().error.code).toBe('provider_bad_response')
    })
  })

  describe('runs that wait, fail, or are resumed twice', () => {
    it('a delegated agent’s answer becomes the tool result of the asking agent', async () => {
      openai.script.push(
        openAiTurn([
          {
            name: 'message_agent',
            args: { to_agent: 'refund-agent', content: 'look up ORD-1001' },
          },
        ]),
        openAiTurn([{ name: 'lookup_order', args: { order_id: 'ORD-1001' } }]),
        openAiTurn([], 'ORD-1001 is paid'),
        openAiTurn([], 'Refund agent says ORD-1001 is paid.'),
      )
      const run = (
        await prompt({
          prompt: 'Ask refund about ORD-1001',
          agent_id: 'support-agent',
          provider: 'openai',
        })
      ).json()
      expect(run.status).toBe('completed')
      expect(run.steps[0]).toMatchObject({
        tool: 'message_agent',
        decision: 'delivered',
        chain: ['support-agent', 'refund-agent'],
        delegated: {
          status: 'completed',
          steps: [{ tool: 'lookup_order', decision: 'allow' }],
        },
      })
    })

    it('a delegated agent’s hold holds the whole run; resuming it finishes both', async () => {
      // A gateway where support may refund too (and no billing-only rule), so a delegated refund
      // is possible and the $250 guard holds it.
      const loaded = loadConfig(DEMO_CONFIG)
      const agents = loaded.config.agents.map((a) =>
        a.id === 'support-agent' ? { ...a, tools: [...a.tools, 'issue_refund'] } : a,
      )
      const rules = loaded.config.policy.rules.filter((r) => r.id !== 'refunds-by-billing-only')
      const g = await startWarden({
        config: { ...loaded, config: { ...loaded.config, agents, policy: { rules } } },
      })
      try {
        const api = await agentApi({
          gatewayUrl: await g.app.listen({ port: 0, host: '127.0.0.1' }),
        })
        openai.script.push(
          openAiTurn([
            {
              name: 'message_agent',
              args: { to_agent: 'refund-agent', content: 'refund 250 on ORD-1004' },
            },
          ]),
          openAiTurn([
            {
              name: 'issue_refund',
              args: { order_id: 'ORD-1004', amount: 250, reason: 'support asked' },
            },
          ]),
        )
        const run = (
          await prompt(
            { prompt: 'Refund ORD-1004', agent_id: 'support-agent', provider: 'openai' },
            api,
          )
        ).json()
        expect(run).toMatchObject({
          status: 'pending_approval',
          pending_approval: { tool: 'issue_refund' },
          steps: [{ tool: 'message_agent', delegated: { status: 'pending_approval' } }],
        })
        expect(run.pending_approval.run_id).toBe(run.steps[0].delegated.run_id)
        const approved = await approve(g, run.pending_approval.approval_id, 'approve')
        expect(approved.statusCode).toBe(200)
        openai.script.push(
          openAiTurn([], 'Refunded $250.'),
          openAiTurn([], 'The refund agent refunded $250.'),
        )
        const done = (
          await api.inject({ method: 'POST', url: `/agent/runs/${run.run_id}/resume` })
        ).json()
        expect(done).toMatchObject({
          status: 'completed',
          answer: 'The refund agent refunded $250.',
          steps: [
            {
              delegated: {
                status: 'completed',
                steps: [{ tool: 'issue_refund', result: { order_id: 'ORD-1004' } }],
              },
            },
          ],
        })
      } finally {
        await g.close()
      }
    })

    it('a failure after the run acted returns the steps taken, as `failed`', async () => {
      openai.script.push(
        openAiTurn([{ name: 'lookup_order', args: { order_id: 'ORD-1001' } }]),
        () => ({ status: 500, json: { error: { message: 'model crashed' } } }),
      )
      const res = await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'openai' })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({
        status: 'failed',
        error: { code: 'provider_unavailable' },
        steps: [{ tool: 'lookup_order', decision: 'allow' }],
      })
    })

    it('two resumes at once drive the run once', async () => {
      const api = await agentApi()
      const run = (
        await prompt(
          { prompt: 'Process a refund of $300 for order 1003', agent_id: 'refund-agent' },
          api,
        )
      ).json()
      expect(run.status).toBe('pending_approval')
      await approve(w, run.pending_approval.approval_id, 'approve')
      const [a, b] = await Promise.all([
        api.inject({ method: 'POST', url: `/agent/runs/${run.run_id}/resume` }),
        api.inject({ method: 'POST', url: `/agent/runs/${run.run_id}/resume` }),
      ])
      const codes = [
        a.json().status ?? a.json().error.code,
        b.json().status ?? b.json().error.code,
      ].sort()
      expect(codes).toEqual(['completed', 'run_not_found'])
    })

    it('refuses requests naming another host or coming from another site’s page', async () => {
      const api = await agentApi()
      const base = await api.listen({ port: 0, host: '127.0.0.1' })
      const send = (headers: Record<string, string>) =>
        new Promise<number>((resolve) => {
          const r = request(
            `${base}/agent/prompt`,
            { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
            (res) => {
              res.resume()
              resolve(res.statusCode ?? 0)
            },
          )
          r.end(
            JSON.stringify({
              prompt: 'Create a support ticket for customer 12345',
              agent_id: 'support-agent',
            }),
          )
        })
      const port = new URL(base).port
      expect(await send({})).toBe(200)
      expect(await send({ host: `evil.example:${port}` })).toBe(403)
      expect(await send({ origin: 'http://evil.example' })).toBe(403)
    })
  })

  describe('requests and discovery', () => {
    it('refuses bad input, unknown agents and unknown providers with stable codes', async () => {
      expect((await prompt({ agent_id: 'support-agent' })).json().error.code).toBe(
        'invalid_request',
      )
      expect((await prompt({ prompt: 'x', agent_id: 'nobody' })).json().error.code).toBe(
        'unknown_agent',
      )
      expect(
        (await prompt({ prompt: 'x', agent_id: 'support-agent', provider: 'gpt-9' })).json().error
          .code,
      ).toBe('provider_not_configured')
    })

    it('without keys, and against a gateway that is not the demo, an agent cannot run', async () => {
      const api = await agentApi({ demoKeys: false })
      const res = await prompt({ prompt: 'x', agent_id: 'support-agent' }, api)
      expect(res.statusCode).toBe(503)
      expect(res.json().error.code).toBe('agent_key_missing')
    })

    it('GET /agents/available lists agents, tools and which providers are usable now', async () => {
      const res = await (
        await agentApi({ ollama: { host: 'http://127.0.0.1:9' } })
      ).inject({ url: '/agents/available' })
      const body = res.json()
      expect(body.agents.find((a: { id: string }) => a.id === 'support-agent')).toMatchObject({
        tools: [
          'search_knowledge_base',
          'create_support_ticket',
          'lookup_order',
          'everything.echo',
          'everything.get-sum',
        ],
        can_message: ['refund-agent', 'admin-agent'],
        has_key: true,
      })
      expect(body.providers).toMatchObject({
        offline: { usable: true },
        openai: { usable: true },
        ollama: { usable: false },
      })
    })

    it('GET /health reports the gateway', async () => {
      expect((await (await agentApi()).inject({ url: '/health' })).json()).toMatchObject({
        status: 'ok',
        checks: { gateway: { ok: true } },
      })
      const lost = await buildAgentApi({
        gatewayUrl: 'http://127.0.0.1:9',
        logger: pino({ level: 'silent' }),
        keys: {},
        runs,
      })
      apis.push(lost)
      const res = await lost.inject({ url: '/health' })
      expect(res.statusCode).toBe(503)
      const run = await lost.inject({
        method: 'POST',
        url: '/agent/prompt',
        payload: { prompt: 'x', agent_id: 'a' },
      })
      expect(run.json().error.code).toBe('gateway_unavailable')
    })
  })
})
