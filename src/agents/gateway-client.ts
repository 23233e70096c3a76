import type {
  AgentInfo,
  ApprovalResponse,
  ErrorResponse,
  ExecuteRequest,
  ExecuteResponse,
  MessageRequest,
  MessageResponse,
  ToolInfo,
} from '../http/schemas.js'

export type { AgentInfo, ToolInfo } from '../http/schemas.js'

/**
 * A gateway answer: the status and the body typed as the gateway documents it (src/http/schemas.ts).
 * The types are not checked at run time: a newer gateway may add fields.
 */
export interface GatewayReply<T = Record<string, unknown>> {
  status: number
  body: T
}

/** The agent API's way to the gateway: its public HTTP API, at any URL (`GATEWAY_URL`). */
export class GatewayClient {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 30_000,
  ) {}

  execute(key: string, body: ExecuteRequest): Promise<GatewayReply<ExecuteResponse>> {
    return this.request('POST', '/gateway/execute', key, body)
  }

  message(
    key: string,
    body: MessageRequest,
  ): Promise<GatewayReply<MessageResponse | ErrorResponse>> {
    return this.request('POST', '/gateway/message', key, body)
  }

  approval(
    key: string,
    id: string,
    waitSeconds = 0,
  ): Promise<GatewayReply<ApprovalResponse | ErrorResponse>> {
    return this.request(
      'GET',
      `/gateway/approvals/${encodeURIComponent(id)}?wait=${waitSeconds}`,
      key,
    )
  }

  async agents(): Promise<AgentInfo[]> {
    return (await this.json<{ agents: AgentInfo[] }>('/config/agents')).agents
  }

  async tools(): Promise<ToolInfo[]> {
    return (await this.json<{ tools: ToolInfo[] }>('/config/tools')).tools
  }

  async health(): Promise<GatewayReply> {
    return this.request('GET', '/health')
  }

  private async json<T>(path: string): Promise<T> {
    const r = await this.request<T>('GET', path)
    if (r.status !== 200) throw new Error(`gateway ${path} answered ${r.status}`)
    return r.body
  }

  private async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    key?: string,
    body?: unknown,
  ): Promise<GatewayReply<T>> {
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
      // Not JSON: something between us and the gateway answered (a proxy's error page).
      const error = { code: 'gateway_unavailable' as const, message: text.slice(0, 200) }
      parsed = { error } satisfies ErrorResponse
    }
    return { status: res.status, body: (parsed ?? {}) as T }
  }
}
