import {
  Client as NewClient,
  StreamableHTTPClientTransport as NewTransport,
} from '@modelcontextprotocol/client'
import { Client as OldClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as OldTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyChain } from '../src/audit/verify.js'
import { APPROVER, keyOf, startWarden } from './helpers.js'

type Warden = Awaited<ReturnType<typeof startWarden>>
/** What both clients' `callTool` answers, as far as these tests read it. */
interface ToolResult {
  content: { type: string; text?: string }[]
  isError?: boolean
  structuredContent?: Record<string, unknown>
  _meta?: Record<string, unknown>
}
interface McpClient {
  listTools(): Promise<{ tools: { name: string; inputSchema: unknown; description?: string }[] }>
  callTool(
    p: { name: string; arguments?: Record<string, unknown> },
    o?: unknown,
    opts?: { onprogress?: (p: unknown) => void; timeout?: number },
  ): Promise<unknown>
  close(): Promise<void>
  newApi?: boolean
}

let warden: Warden
let url: URL

beforeAll(async () => {
  warden = await startWarden()
  const address = await warden.app.listen({ port: 0, host: '127.0.0.1' })
  url = new URL('/mcp', address)
})
afterAll(async () => {
  await warden.close()
})

const auth = (agent: string) => ({ headers: { authorization: `Bearer ${keyOf(agent)}` } })

const CLIENTS: [string, (agent: string) => Promise<McpClient>][] = [
  [
    'new client (2026-07-28)',
    async (agent) => {
      const client = new NewClient(
        { name: 'test', version: '1' },
        { versionNegotiation: { mode: { pin: '2026-07-28' } } },
      )
      await client.connect(new NewTransport(url, { requestInit: auth(agent) }))
      return Object.assign(client as unknown as McpClient, { newApi: true })
    },
  ],
  [
    'old client (2025-11-25, v1 SDK)',
    async (agent) => {
      const client = new OldClient({ name: 'test', version: '1' })
      await client.connect(new OldTransport(url, { requestInit: auth(agent) }))
      return client as unknown as McpClient
    },
  ],
]

const textOf = (r: unknown) => (r as ToolResult).content.map((c) => c.text ?? '').join('\n')

async function approve(approvalId: string) {
  const res = await fetch(new URL('/gateway/approve', url), {
    method: 'POST',
    headers: { authorization: `Bearer ${APPROVER}`, 'content-type': 'application/json' },
    body: JSON.stringify({ approval_id: approvalId, decision: 'approve' }),
  })
  expect(res.status, await res.clone().text()).toBe(200)
}

describe.each(CLIENTS)('MCP front door: %s', (_name, connect) => {
  it('lists exactly the agent allowlist, with schemas', async () => {
    const support = await connect('support-agent')
    const admin = await connect('admin-agent')
    try {
      const s = (await support.listTools()).tools
      expect(s.map((t) => t.name).sort()).toEqual(
        [
          'create_support_ticket',
          'everything.echo',
          'everything.get-sum',
          'lookup_order',
          'search_knowledge_base',
        ].sort(),
      )
      expect(s.find((t) => t.name === 'lookup_order')?.inputSchema).toMatchObject({
        type: 'object',
        required: ['order_id'],
      })
      const a = (await admin.listTools()).tools
      expect(a.map((t) => t.name).sort()).toEqual(
        ['export_customer_data', 'get_system_health', 'lookup_order', 'restart_service'].sort(),
      )
    } finally {
      await support.close()
      await admin.close()
    }
  })

  it('runs an allowed call and returns its result', async () => {
    const client = await connect('support-agent')
    try {
      const r = (await client.callTool({
        name: 'lookup_order',
        arguments: { order_id: 'ORD-1001' },
      })) as ToolResult
      expect(r.isError).toBeFalsy()
      expect(textOf(r)).toContain('ORD-1001')
      expect(r.structuredContent).toMatchObject({ order_id: 'ORD-1001' })
    } finally {
      await client.close()
    }
  })

  it('answers a denied call as a tool error the model can read', async () => {
    const client = await connect('support-agent')
    try {
      const r = (await client.callTool({
        name: 'issue_refund',
        arguments: { order_id: 'ORD-1001', amount: 10, reason: 'x' },
      })) as ToolResult
      expect(r.isError).toBe(true)
      expect(textOf(r)).toMatch(/^denied \(tool_not_allowed\): /)
    } finally {
      await client.close()
    }
  })

  it('answers an unknown tool as a tool error, not a crash', async () => {
    const client = await connect('support-agent')
    try {
      const r = (await client.callTool({ name: 'no_such_tool', arguments: {} })) as ToolResult
      expect(r.isError).toBe(true)
      expect(textOf(r)).toContain('tool_not_allowed')
      const odd = (await client.callTool({ name: '../etc', arguments: {} })) as ToolResult
      expect(textOf(odd)).toContain('invalid_tool_name')
    } finally {
      await client.close()
    }
  })

  it('holds a risky call with an approval id; approved, it runs', async () => {
    const client = await connect('refund-agent')
    try {
      const r = (await client.callTool({
        name: 'issue_refund',
        arguments: { order_id: 'ORD-1003', amount: 200, reason: 'damaged' },
      })) as ToolResult
      expect(r.isError).toBeFalsy()
      expect(textOf(r)).toMatch(/held for approval \(approval id (\S+),/)
      const id = (r._meta?.warden as { approval_id: string }).approval_id
      await approve(id)
      const polled = await fetch(
        new URL(`/gateway/approvals/${id}?wait=5`, url),
        auth('refund-agent'),
      )
      const { approval } = (await polled.json()) as {
        approval: { status: string; executed_at: string | null }
      }
      expect(approval.status).toBe('approved')
      expect(approval.executed_at).toBeTruthy()
    } finally {
      await client.close()
    }
  })

  it('with a progress token, waits for the decision and returns the result', async () => {
    const client = await connect('refund-agent')
    try {
      const progress: unknown[] = []
      const opts = { onprogress: (p: unknown) => progress.push(p), timeout: 30_000 }
      const args = { order_id: 'ORD-1006', amount: 150, reason: 'late' }
      // The v2 client takes the request options second; v1 takes a result schema first.
      const call = client.newApi
        ? client.callTool({ name: 'issue_refund', arguments: args }, opts)
        : client.callTool({ name: 'issue_refund', arguments: args }, undefined, opts)
      const id = await pendingApprovalOf('ORD-1006')
      await approve(id)
      const r = (await call) as ToolResult
      expect(r.isError).toBeFalsy()
      expect(textOf(r)).not.toContain('held for approval')
      expect(progress.length).toBeGreaterThan(0)
    } finally {
      await client.close()
    }
  })
})

/** The pending approval of a refund for `orderId`, once it exists. */
async function pendingApprovalOf(orderId: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(new URL('/gateway/pending-approvals', url))
    const body = (await res.json()) as {
      approvals: { id: string; params: { order_id?: string } }[]
    }
    const found = body.approvals.find((a) => a.params.order_id === orderId)
    if (found) return found.id
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`no pending approval for ${orderId}`)
}

/** A raw POST to /mcp. */
function post(body: string, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...auth('support-agent').headers,
      ...headers,
    },
    body,
  })
}

const initialize = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-11-25',
    capabilities: {},
    clientInfo: { name: 'raw', version: '1' },
  },
})

describe('MCP front door: authentication', () => {
  it('refuses a request without a key, or with a wrong one, with 401 and a Bearer challenge', async () => {
    for (const authorization of [undefined, 'Bearer nope', `Bearer ${APPROVER}`]) {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(authorization && { authorization }),
        },
        body: initialize,
      })
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthenticated')
    }
  })

  it('the SDK client reports the 401', async () => {
    const client = new OldClient({ name: 'test', version: '1' })
    const transport = new OldTransport(url, {
      requestInit: { headers: { authorization: 'Bearer x' } },
    })
    await expect(client.connect(transport)).rejects.toThrow()
  })
})

describe('MCP front door: bad input', () => {
  const good = async () => {
    const res = await post(initialize)
    expect(res.status).toBe(200)
  }

  it('malformed JSON → 400 invalid_json', async () => {
    const res = await post('{"jsonrpc":"2.0",')
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_json')
    await good()
  })

  it('an unknown method → a JSON-RPC error', async () => {
    const res = await post(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/explode' }))
    const text = await res.text()
    expect(text).toMatch(/-32601|-32600/)
    await good()
  })

  it('a JSON-RPC batch of calls → 400 invalid_request, and none of them is decided', async () => {
    const before = (await warden.stores.audit.query({ limit: 10_000 })).length
    const call = (id: number) => ({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'lookup_order', arguments: { order_id: 'ORD-1001' } },
    })
    const res = await post(JSON.stringify([call(1), call(2), call(3)]), {
      'mcp-protocol-version': '2025-11-25',
    })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_request')
    expect((await warden.stores.audit.query({ limit: 10_000 })).length).toBe(before)
    await good()
  })

  it('Mcp-Method disagreeing with the body → 400 mcp_method_mismatch', async () => {
    const res = await post(
      JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'x' } }),
      { 'mcp-method': 'tools/list' },
    )
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      'mcp_method_mismatch',
    )
    await good()
  })

  it('a 2 MiB arguments body → 400 payload_too_large, and Warden stays up', async () => {
    const res = await post(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method: 'tools/call',
        params: { name: 'lookup_order', arguments: { order_id: 'x'.repeat(2 * 1024 * 1024) } },
      }),
    )
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large')
    await good()
  })

  it('GET and DELETE (2025 session operations) → 405: the door keeps no sessions', async () => {
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(url, {
        method,
        headers: { accept: 'text/event-stream', ...auth('support-agent').headers },
      })
      expect(res.status).toBe(405)
    }
  })
})

describe('MCP front door: audit', () => {
  it('records MCP calls with door: mcp, and the chain verifies', async () => {
    const events = await warden.stores.audit.query({ limit: 1000 })
    const mcp = events.filter((e) => e.door === 'mcp')
    expect(mcp.length).toBeGreaterThan(0)
    expect(mcp.some((e) => e.tool === 'lookup_order' && e.decision === 'allow')).toBe(true)
    expect(mcp.some((e) => e.code === 'tool_not_allowed')).toBe(true)
    const verdict = await verifyChain(warden.stores.audit)
    expect(verdict).toMatchObject({ ok: true })
  })
})
