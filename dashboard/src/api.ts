/**
 * The dashboard's only way to Warden: the gateway's public HTTP API and WebSocket, reached through
 * the dashboard server's `/api` proxy (so the gateway can live on another host, `GATEWAY_URL`).
 */

import type * as wire from '../../src/http/schemas'

// The gateway's wire types, inferred from the zod schemas it parses and documents with. A
// type-only import: nothing of the server reaches the browser bundle.
export type RiskLevel = wire.AuditEvent['risk']['level']
export type Check = wire.Check
export type WardenEvent = wire.AuditEvent
export type Approval = wire.Approval
export type Stats = wire.Stats
export type TimelineBody = wire.Timeline
export type PendingApprovals = wire.PendingApprovals
export type McpUpstreams = wire.McpUpstreams
export type McpUpstream = wire.McpUpstream
export type McpPin = wire.McpPin
export type McpAccepted = wire.McpAccepted

const TOKEN_KEY = 'warden.approver_token'

export const auth = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY)
  },
  set(token: string | null) {
    if (token) sessionStorage.setItem(TOKEN_KEY, token)
    else sessionStorage.removeItem(TOKEN_KEY)
  },
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The whole error body (a failed approved call also carries the resolved approval). */
    readonly body: unknown = null,
  ) {
    super(message)
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {}
  if (auth.token) headers.authorization = `Bearer ${auth.token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`/api${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  let data: unknown
  try {
    data = text ? JSON.parse(text) : null
  } catch {
    data = text
  }
  if (!res.ok && res.status !== 202) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error
    throw new ApiError(
      res.status,
      err?.code ?? 'http_error',
      err?.message ?? `HTTP ${res.status}`,
      data,
    )
  }
  return data as T
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body),
  /** Fetch a text export with the approver token and hand it to the browser as a download. */
  async download(
    path: string,
    filename: string,
  ): Promise<{ count: number; nextBeforeSeq: string | null }> {
    const res = await fetch(`/api${path}`, {
      headers: auth.token ? { authorization: `Bearer ${auth.token}` } : {},
    })
    if (!res.ok)
      throw new ApiError(res.status, 'export_failed', `export failed: HTTP ${res.status}`)
    const blob = await res.blob()
    const a = document.createElement('a')
    a.href = URL.createObjectURL(blob)
    a.download = filename
    a.click()
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
    // An export holds the newest 10,000 matches; the header says where the older ones start.
    const truncated = res.headers.get('x-warden-truncated') === 'true'
    return {
      count: Number(res.headers.get('x-warden-count') ?? 0),
      nextBeforeSeq: truncated ? (res.headers.get('x-warden-next-before-seq') ?? '') : null,
    }
  },
}

/** Query string from a filter object, leaving out empty values. */
export function qs(filters: Record<string, string | number | undefined>): string {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(filters)) if (v !== undefined && v !== '') p.set(k, String(v))
  const s = p.toString()
  return s ? `?${s}` : ''
}

export type StreamStatus = 'connecting' | 'live' | 'reconnecting'

/**
 * `WS /ws/events`, kept open: reconnects with backoff and resumes from the last sequence number
 * seen (`?last_seq=`), so nothing is missed across a drop.
 */
export class EventStream {
  private socket: WebSocket | null = null
  private lastSeq: number | null = null
  private retry = 0
  private closed = false
  private timer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly onEvent: (e: WardenEvent) => void,
    private readonly onStatus: (s: StreamStatus) => void,
  ) {}

  start(fromSeq: number | null) {
    this.lastSeq = fromSeq
    this.connect()
  }

  stop() {
    this.closed = true
    clearTimeout(this.timer)
    this.socket?.close()
  }

  private connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws'
    const since = this.lastSeq === null ? '' : `?last_seq=${this.lastSeq}`
    const url = `${proto}://${location.host}/api/ws/events${since}`
    // A browser cannot set headers on a WebSocket: the approver token travels as a subprotocol
    // (needed when the gateway runs with `server.read_access: approver`).
    let socket: WebSocket
    try {
      socket = new WebSocket(url, auth.token ? [`warden.token.${auth.token}`] : [])
    } catch {
      socket = new WebSocket(url)
    }
    this.socket = socket
    this.onStatus(this.retry === 0 ? 'connecting' : 'reconnecting')
    socket.onopen = () => {
      this.retry = 0
      this.onStatus('live')
    }
    socket.onmessage = (msg) => {
      const e = JSON.parse(String(msg.data)) as WardenEvent
      if (this.lastSeq !== null && e.seq <= this.lastSeq) return
      this.lastSeq = e.seq
      this.onEvent(e)
    }
    socket.onclose = () => {
      if (this.closed) return
      this.onStatus('reconnecting')
      const delay = Math.min(10_000, 500 * 2 ** this.retry++)
      this.timer = setTimeout(() => this.connect(), delay)
    }
  }
}
