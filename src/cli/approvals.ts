import type { Io } from './commands.js'

/** Where the CLI finds the gateway and who it acts as. */
export interface ApprovalsClient {
  gatewayUrl: string
  token: string | undefined
}

interface Pending {
  id: string
  agent_id: string
  tool: string
  params: unknown
  reason: string
  risk: { score: number; level: string }
  expires_at: string
}

/** `warden approvals list`: the held calls waiting for a person. */
export async function approvalsList(
  client: ApprovalsClient,
  json: boolean,
  io: Io,
): Promise<number> {
  const res = await call(client, 'GET', '/gateway/pending-approvals')
  if (!res.ok) return failed(res, io)
  const { approvals } = res.body as { approvals: Pending[] }
  if (json) io.out(JSON.stringify(approvals))
  else if (approvals.length === 0) io.out('no pending approvals')
  else {
    for (const a of approvals) {
      const left = Math.max(0, Math.round((Date.parse(a.expires_at) - Date.now()) / 1000))
      io.out(
        `${a.id}  ${a.agent_id} → ${a.tool}  risk ${a.risk.level} (${a.risk.score})  ${left}s left`,
      )
      io.out(`    ${JSON.stringify(a.params)}\n    held: ${a.reason}`)
    }
  }
  return 0
}

/** `warden approvals approve|deny ID`: decide one held call as the approver whose token is given. */
export async function approvalsDecide(
  client: ApprovalsClient,
  id: string,
  decision: 'approve' | 'deny',
  comment: string | undefined,
  json: boolean,
  io: Io,
): Promise<number> {
  if (!client.token) {
    io.err('an approver token is needed: --token or WARDEN_APPROVER_TOKEN')
    return 2
  }
  const res = await call(client, 'POST', '/gateway/approve', {
    approval_id: id,
    decision,
    ...(comment && { comment }),
  })
  if (!res.ok) return failed(res, io)
  const body = res.body as { approval: { status: string; outcome?: string }; result?: unknown }
  if (json) io.out(JSON.stringify(body))
  else
    io.out(
      `${id}: ${body.approval.status}${body.approval.outcome ? `, executed (${body.approval.outcome})` : ''}`,
    )
  return 0
}

async function call(client: ApprovalsClient, method: string, path: string, payload?: unknown) {
  const headers: Record<string, string> = {}
  if (client.token) headers.authorization = `Bearer ${client.token}`
  if (payload !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(new URL(path, client.gatewayUrl), {
    method,
    headers,
    body: payload === undefined ? undefined : JSON.stringify(payload),
    signal: AbortSignal.timeout(30_000),
  })
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = { error: { code: 'invalid_response', message: text.slice(0, 200) } }
  }
  return { ok: res.ok, status: res.status, body }
}

function failed(res: { status: number; body: unknown }, io: Io): number {
  const error = (res.body as { error?: { code?: string; message?: string } }).error
  io.err(`gateway answered ${res.status}: ${error?.code ?? 'error'}: ${error?.message ?? ''}`)
  return 1
}
