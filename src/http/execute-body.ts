import { z } from 'zod'
import { TOOL_NAME } from '../domain/config.js'
import { WardenError } from '../domain/errors.js'

const executeBody = z.strictObject({
  agent_id: z.string().min(1).max(128),
  tool: z.string(),
  params: z.record(z.string(), z.unknown()).default({}),
  session_id: z.string().min(1).max(128).optional(),
  context: z.record(z.string(), z.unknown()).optional(),
  /** A delegation token from `POST /gateway/message`: the call is made for the agents in it. */
  delegation: z.string().min(1).max(4096).optional(),
})
export type ExecuteBody = z.infer<typeof executeBody>

const approveBody = z.strictObject({
  approval_id: z.string().min(1).max(128),
  decision: z.enum(['approve', 'deny']),
  comment: z.string().max(2000).optional(),
})
export type ApproveBody = z.infer<typeof approveBody>

/** Validate a `/gateway/execute` body; the tool name gets its own code (it is an attack surface). */
export function parseExecuteBody(body: unknown): ExecuteBody {
  if (
    body !== null &&
    typeof body === 'object' &&
    'tool' in body &&
    typeof body.tool === 'string' &&
    !TOOL_NAME.test(body.tool)
  ) {
    throw new WardenError(
      'invalid_tool_name',
      'tool names are 1-64 characters of letters, digits and _ . - / (no ..)',
    )
  }
  return parseWith(executeBody, body)
}

const messageBody = z.strictObject({
  agent_id: z.string().min(1).max(128),
  to_agent: z.string().min(1).max(128),
  content: z.string().min(1),
  session_id: z.string().min(1).max(128).optional(),
  /** The sender's own delegation, when it is itself acting for someone: the chain grows. */
  delegation: z.string().min(1).max(4096).optional(),
  /** The person who started the work, if this is the first agent of the chain. */
  requested_by: z.string().min(1).max(128).optional(),
})
export type MessageBody = z.infer<typeof messageBody>

export function parseMessageBody(body: unknown): MessageBody {
  return parseWith(messageBody, body)
}

export function parseApproveBody(body: unknown): ApproveBody {
  return parseWith(approveBody, body)
}

function parseWith<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const where = issue?.path.length ? issue.path.join('.') : 'body'
  throw new WardenError('invalid_request', `\`${where}\`: ${issue?.message ?? 'invalid'}`)
}
