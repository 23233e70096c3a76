/** The agent API's way to the gateway: its public HTTP API, at any URL (`GATEWAY_URL`). */
export interface GatewayReply {
  status: number
  body: Record<string, unknown>
}

export interface AgentInfo {
  id: string
  role: string
  description: string
  tools: string[]
  can_message: string[]
}

export interface ToolInfo {
  name: string
  description: string
  params: Record<string, unknown>
}

export class GatewayClient {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 30_000,
  ) {}

  execute(key: string, body: Record<string, unknown>): Promise<GatewayReply> {
    return this.request('POST', '/gateway/execute', key, body)
  }

  message(key: string, body: Record<string, unknown>): Promise<GatewayReply> {
    return this.request('POST', '/gateway/message', key, body)
  }

  approval(key: string, id: string, waitSeconds = 0): Promise<GatewayReply> {
    return this.request(
      'GET',
      `/gateway/approvals/${encodeURIComponent(id)}?wait=${waitSeconds}`,
      key,
    )
  }

  async agents(): Promise<AgentInfo[]> {
    return (await this.json('/config/agents')).agents as AgentInfo[]
  }

  async tools(): Promise<ToolInfo[]> {
    return (await this.json('/config/tools')).tools as ToolInfo[]
  }

  async health(): Promise<GatewayReply> {
    return this.request('GET', '/health')
  }

  private async json(path: string): Promise<Record<string, unknown>> {
    const r = await this.request('GET', path)
    if (r.status !== 200) throw new Error(`gateway ${path} answered ${r.status}`)
    return r.body
  }

  private async request(
    method: string,
    path: string,
    key?: string,
    body?: unknown,
  ): Promise<GatewayReply> {
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers: {
        ...(key && { authorization: `Bearer ${key}` }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs + 65_000),
    })
    const text = await res.text()
    let parsed: unknown
    try {
      parsed = text ? JSON.parse(text) : {}
    } catch {
      parsed = { error: { code: 'bad_gateway_reply', message: text.slice(0, 200) } }
    }
    return { status: res.status, body: (parsed ?? {}) as Record<string, unknown> }
  }
}
