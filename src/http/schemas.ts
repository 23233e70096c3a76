import { z } from 'zod'
import { RISK_LEVELS, TOOL_NAME } from '../domain/config.js'
import { ERROR_CATALOG, WardenError, type ErrorCode } from '../domain/errors.js'

/**
 * The gateway's wire shapes, written once. Handlers parse requests with these schemas, the
 * OpenAPI document at `/docs` is generated from them (src/http/openapi.ts), and the clients (the
 * agent API's GatewayClient, the dashboard) use the types inferred from them.
 *
 * INVARIANT: nothing here may import Node (directly or through another module): the dashboard
 * imports its types, and type-checks this file in a browser setting without Node's types.
 */

// ─── Requests ────────────────────────────────────────────────────────────────────────────────

const id128 = z.string().min(1).max(128)

/** `POST /gateway/execute`. */
export const executeBody = z.strictObject({
  agent_id: id128,
  tool: z.string().meta({ description: 'letters, digits and `_ . - /`, 1-64 characters, no `..`' }),
  params: z.record(z.string(), z.unknown()).default({}),
  session_id: id128.optional().meta({ description: 'groups calls for taint and history' }),
  context: z
    .record(z.string(), z.unknown())
    // Unsigned, so it only names the person when no signed delegation does (approvals/service.ts);
    // anything but a short string is refused rather than ignored.
    .refine(
      (c) =>
        c.requested_by === undefined ||
        (typeof c.requested_by === 'string' &&
          c.requested_by.length >= 1 &&
          c.requested_by.length <= 128),
      {
        message: 'context.requested_by must be a string of 1-128 characters',
        path: ['requested_by'],
      },
    )
    .optional()
    .meta({ description: 'untrusted text the call came from, e.g. user_input' }),
  delegation: z.string().min(1).max(4096).optional().meta({
    description:
      'a delegation token from `POST /gateway/message`: the call is made for the agents in it',
  }),
})
export type ExecuteBody = z.output<typeof executeBody>
/** What a client sends (`params` may be left out). */
export type ExecuteRequest = z.input<typeof executeBody>

/** The headers `POST /gateway/execute` reads besides `Authorization` (documentation only). */
export const executeHeaders = z.object({
  'idempotency-key': z.string().min(1).max(128).optional().meta({
    description:
      '1-128 visible ASCII characters: a retry with the same key, tool and parameters gets the first answer again, and nothing runs twice (docs/approvals.md, Idempotency)',
  }),
})

/** `POST /gateway/message`. */
export const messageBody = z.strictObject({
  agent_id: id128,
  to_agent: id128,
  content: z.string().min(1),
  session_id: id128.optional(),
  delegation: z.string().min(1).max(4096).optional().meta({
    description: "the sender's own delegation, when it acts for someone: the chain grows",
  }),
  requested_by: id128
    .optional()
    .meta({ description: 'the person who started the work, if this is the first agent' }),
})
export type MessageRequest = z.input<typeof messageBody>

/** `POST /gateway/approve`. */
export const approveBody = z.strictObject({
  approval_id: id128,
  decision: z.enum(['approve', 'deny']),
  comment: z.string().max(2000).optional(),
})
export type ApproveBody = z.output<typeof approveBody>

/** `POST /detect/injection`. */
export const detectBody = z.strictObject({ text: z.string() })

// Query strings arrive as strings (an array when a key repeats). Numbers are read leniently, as
// before the schemas existed: a bad `limit` or `wait` falls back to the default, never a 400.
const lenientNumber = (description: string) =>
  z.string().optional().catch(undefined).meta({ description })

const FILTER_KEYS = [
  'agent_id',
  'tool',
  'decision',
  'type',
  'session_id',
  'risk_level',
  'from',
  'to',
  'text',
] as const

/** Audit filters shared by `/events/*` and `/audit/export`; each may be given once. */
export const auditFilters = z.object(
  Object.fromEntries(
    FILTER_KEYS.map((k) => [
      k,
      z.string({ error: `query parameter \`${k}\` may be given once` }).optional(),
    ]),
  ) as Record<(typeof FILTER_KEYS)[number], z.ZodOptional<z.ZodString>>,
)

export const recentQuery = auditFilters.extend({
  limit: lenientNumber('how many, 1-1000 (default 50)'),
  before_seq: lenientNumber('only events older than this `seq` (the `next_before_seq` of a page)'),
})
export const timelineQuery = auditFilters.extend({
  limit: lenientNumber('how many, 1-1000 (default 500)'),
  before_seq: lenientNumber('only events older than this `seq` (the `next_before_seq` of a page)'),
})
export const exportQuery = auditFilters.extend({
  before_seq: lenientNumber('only events older than this `seq` (`x-warden-next-before-seq`)'),
  format: z
    .enum(['jsonl', 'csv', 'cef'], { error: '`format` must be jsonl, csv or cef' })
    .optional(),
})
export const approvalQuery = z.object({
  wait: lenientNumber('long-poll up to this many seconds (0-60) while the approval is unsettled'),
})
export const streamQuery = z.object({
  last_seq: lenientNumber('the last sequence number seen; missed events are sent first'),
})

// ─── Responses ───────────────────────────────────────────────────────────────────────────────
// Loose objects: the API contract lets fields be added, so clients must accept unknown ones.

const ERROR_CODES = Object.keys(ERROR_CATALOG) as [ErrorCode, ...ErrorCode[]]

export const risk = z.looseObject({ score: z.number(), level: z.enum(RISK_LEVELS) })

export const check = z.looseObject({
  layer: z.string(),
  outcome: z.enum(['pass', 'hold', 'deny']),
  reason: z.string(),
  code: z.enum(ERROR_CODES).optional(),
  risk: z.number().optional(),
  duration_us: z.number(),
  details: z.record(z.string(), z.unknown()).optional(),
})
export type Check = z.output<typeof check>

const errorDetail = z.looseObject({
  code: z.enum(ERROR_CODES).meta({ description: 'a code from docs/errors.md' }),
  message: z.string(),
})

/** Every error: `{ error: { code, message }, request_id }`. */
export const errorResponse = z.looseObject({
  error: errorDetail,
  request_id: z.string().optional(),
})
export type ErrorResponse = z.output<typeof errorResponse>

const decided = {
  request_id: z.string(),
  risk,
  checks: z.array(check),
  policy_version: z.string(),
}

/** 200: allowed and executed. */
export const executeAllowed = z.looseObject({
  decision: z.literal('allow'),
  ...decided,
  result: z.unknown().optional(),
  warnings: z
    .array(
      z.looseObject({
        code: z.string(),
        score: z.number(),
        categories: z.array(z.string()),
        judge: z.enum(['injection', 'failed']).optional(),
      }),
    )
    .optional(),
})
/** 202: held for a person. */
export const executeHeld = z.looseObject({
  decision: z.literal('approval_required'),
  ...decided,
  approval_id: z.string(),
  expires_at: z.string(),
  args_hash: z.string(),
  layer: z.string().nullable(),
  reason: z.string(),
  duplicate_of: z.string().optional(),
})
/** 4xx: denied by a layer (429 adds `Retry-After`). */
export const executeDenied = z.looseObject({
  decision: z.literal('deny'),
  ...decided,
  layer: z.string().nullable(),
  error: errorDetail,
})
/** 502/504: allowed, but the tool failed or timed out. */
export const executeToolFailed = errorResponse.extend({ decision: z.literal('allow') })
export type ExecuteAllowed = z.output<typeof executeAllowed>
export type ExecuteHeld = z.output<typeof executeHeld>
export type ExecuteDenied = z.output<typeof executeDenied>
/** Any body `POST /gateway/execute` answers with. */
export type ExecuteResponse = ExecuteAllowed | ExecuteHeld | ExecuteDenied | ErrorResponse

export const messageResponse = z.looseObject({
  message_id: z.string(),
  request_id: z.string(),
  from_agent: z.string(),
  to_agent: z.string(),
  content: z.string().meta({ description: 'sanitized' }),
  chain: z.array(z.string()),
  requested_by: z.string().optional(),
  delegation: z.string(),
  expires_at: z.string(),
  scan: z.looseObject({ score: z.number(), categories: z.array(z.string()) }),
})
export type MessageResponse = z.output<typeof messageResponse>

/** An approval as shown outside: parameters masked, no context or idempotency key. */
export const approval = z.looseObject({
  id: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'expired']),
  request_id: z.string(),
  agent_id: z.string(),
  tool: z.string(),
  session_id: z.string().nullable(),
  params: z.unknown().meta({ description: 'PII masked' }),
  args_hash: z.string(),
  policy_version: z.string(),
  requested_by: z.string().nullable(),
  reason: z.string(),
  layer: z.string().nullable(),
  risk,
  created_at: z.string(),
  expires_at: z.string(),
  decided_by: z.string().nullable(),
  decided_at: z.string().nullable(),
  comment: z.string().nullable(),
  executed_at: z.string().nullable(),
  outcome: z.enum(['ok', 'error', 'unknown']).nullable(),
  result: z.unknown().optional(),
  chain: z.array(z.string()).optional(),
})
export type Approval = z.output<typeof approval>
export const approvalResponse = z.looseObject({ approval })
export type ApprovalResponse = z.output<typeof approvalResponse>
export const pendingApprovals = z.looseObject({ approvals: z.array(approval), count: z.number() })
export type PendingApprovals = z.output<typeof pendingApprovals>

const tally = z.looseObject({
  allowed: z.number(),
  denied: z.number(),
  approval_required: z.number(),
})
export const stats = z.looseObject({
  total_requests: z.number(),
  allowed: z.number(),
  denied: z.number(),
  approval_required: z.number(),
  block_rate: z.number(),
  by_agent: z.record(z.string(), tally),
  by_tool: z.record(z.string(), tally),
  by_risk_level: z.record(z.string(), z.number()),
  by_event_type: z.record(z.string(), z.number()),
  top_block_reasons: z.array(z.looseObject({ reason: z.string(), count: z.number() })),
})
export type Stats = z.output<typeof stats>

/** An audit event as stored and streamed (`version: 1`). */
export const auditEvent = z.looseObject({
  version: z.literal(1),
  id: z.string(),
  seq: z.number(),
  // A string, not the enum: domain/audit-event.ts needs Node, and this file must not (above).
  type: z.string().meta({ description: 'e.g. `tool_call_allowed`; see docs/audit.md' }),
  timestamp: z.string(),
  request_id: z.string(),
  agent_id: z.string(),
  principal: z.string(),
  tool: z.string(),
  session_id: z.string().nullable(),
  decision: z.string(),
  layer: z.string().nullable(),
  code: z.string().nullable(),
  reason: z.string(),
  risk,
  policy_version: z.string(),
  args_hash: z.string(),
  params: z.unknown().optional(),
  masked: z.array(z.string()),
  checks: z.array(check),
  approval_id: z.string().optional(),
  approver: z.string().optional(),
  comment: z.string().optional(),
  outcome: z.enum(['ok', 'error', 'unknown']).optional(),
  result: z.unknown().optional(),
  latency_ms: z.number().optional(),
  output_scan: z.looseObject({ score: z.number(), categories: z.array(z.string()) }).optional(),
  output_judge: z
    .looseObject({
      verdict: z.enum(['injection', 'benign', 'failed']),
      reason: z.string(),
      provider: z.string(),
      model: z.string(),
      latency_ms: z.number(),
      score: z.number(),
    })
    .optional(),
  chain: z.array(z.string()).optional(),
  human: z.string().optional(),
  prev_hash: z.string(),
  hash: z.string(),
})
export type AuditEvent = z.output<typeof auditEvent>
export const recentEvents = z.looseObject({ events: z.array(auditEvent), count: z.number() })
export type RecentEvents = z.output<typeof recentEvents>
export const timeline = z.looseObject({
  agents: z.array(z.looseObject({ agent_id: z.string(), events: z.array(auditEvent) })),
  sessions: z.array(
    z.looseObject({
      session_id: z.string(),
      agent_id: z.string().optional(),
      events: z.array(auditEvent),
    }),
  ),
  count: z.number(),
})
export type Timeline = z.output<typeof timeline>

/** `GET /config/agents`: an agent as configured (never its key) and whom it may message. */
export const agentInfo = z.looseObject({
  id: z.string(),
  role: z.string(),
  description: z.string(),
  clearance: z.string(),
  tools: z.array(z.string()),
  can_message: z.array(z.string()),
})
export type AgentInfo = z.output<typeof agentInfo>
export const configAgents = z.looseObject({ agents: z.array(agentInfo) })

/** `GET /config/tools`: a tool as configured; of its executor only the type. */
export const toolInfo = z.looseObject({
  name: z.string(),
  description: z.string(),
  risk: z.enum(RISK_LEVELS),
  classification: z.string(),
  params: z.record(z.string(), z.unknown()).meta({ description: 'JSON Schema of the parameters' }),
  executor: z.looseObject({ type: z.string() }),
})
export type ToolInfo = z.output<typeof toolInfo>
export const configTools = z.looseObject({ tools: z.array(toolInfo) })

/** A SHA-256 in hex: how tool definitions are pinned. */
const sha256 = z.string().regex(/^[0-9a-f]{64}$/)

/** `POST /mcp/upstreams/accept`: the approver names the definition they saw (`current`). */
export const mcpAcceptBody = z.strictObject({
  tool: z.string().min(1).max(200),
  definition: sha256.meta({ description: 'the `current` hash shown by `GET /mcp/upstreams`' }),
})

/** An MCP upstream as Warden sees it (src/executors/mcp-upstreams.ts `UpstreamStatus`). */
export const mcpUpstream = z.looseObject({
  name: z.string(),
  state: z.enum(['connecting', 'connected', 'down', 'closed']),
  restarts: z.number(),
  lastError: z.string().optional(),
  tools: z.array(z.string()).meta({ description: 'Warden names, as last listed' }),
  pid: z.number().optional(),
})
export type McpUpstream = z.output<typeof mcpUpstream>

/** An upstream's tool definition as shown to a person (description cut to 16 KiB). */
const mcpDefinition = z.looseObject({
  name: z.string(),
  description: z.string().optional(),
  inputSchema: z.unknown().optional(),
  outputSchema: z.unknown().optional(),
  annotations: z.unknown().optional(),
})

/** A pinned tool definition (src/executors/mcp-pins.ts `Pin`). */
export const mcpPin = z.looseObject({
  tool: z.string(),
  pinned: sha256.meta({ description: 'the definition first seen, or last accepted' }),
  current: sha256.meta({ description: 'the definition the upstream offers now' }),
  blocked: z.enum(['changed', 'poisoned', 'shadowing']).optional(),
  score: z.number().optional(),
  shadows: z
    .array(z.string())
    .optional()
    .meta({ description: 'other tools its description names (blocked: shadowing)' }),
  recorded: z.boolean().meta({ description: 'false until the pin is in the audit log' }),
  offered: mcpDefinition
    .optional()
    .meta({ description: 'the definition offered now, as text (when this instance listed it)' }),
  pinned_definition: mcpDefinition
    .optional()
    .meta({ description: 'the pinned definition, as text (when this instance saw it)' }),
})
export type McpPin = z.output<typeof mcpPin>

/** `GET /mcp/upstreams`. */
export const mcpUpstreams = z.looseObject({
  upstreams: z.array(mcpUpstream),
  pins: z.array(mcpPin),
  unlisted: z.array(z.string()).meta({ description: 'offered but not configured: not callable' }),
})
export type McpUpstreams = z.output<typeof mcpUpstreams>
export const mcpAccepted = z.looseObject({ accepted: z.literal(true), pin: mcpPin })
export type McpAccepted = z.output<typeof mcpAccepted>

// ─── Parsing ─────────────────────────────────────────────────────────────────────────────────

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
  return parseBody(executeBody, body)
}

/** Validate a `/detect/injection` body; one message for every way to get it wrong. */
export function parseDetectBody(body: unknown): z.output<typeof detectBody> {
  const result = detectBody.safeParse(body)
  if (result.success) return result.data
  throw new WardenError('invalid_request', 'send `{ "text": "…" }`')
}

/** Validate a request body: `invalid_request` naming the first bad field. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const where = issue?.path.length ? issue.path.join('.') : 'body'
  throw new WardenError('invalid_request', `\`${where}\`: ${issue?.message ?? 'invalid'}`)
}

/**
 * Validate a query string: `invalid_request` with the schema's own message (query messages
 * name their parameter). Unknown parameters are ignored.
 */
export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.output<T> {
  const result = schema.safeParse(query)
  if (result.success) return result.data
  throw new WardenError('invalid_request', result.error.issues[0]?.message ?? 'invalid query')
}

/** `POST /admin/reload`: which policy version replaced which. */
export const reloadResponse = z.looseObject({
  reloaded: z.literal(true),
  file: z.string(),
  previous_policy_version: z.string(),
  policy_version: z.string(),
  changed: z.boolean(),
})
export type ReloadResponse = z.output<typeof reloadResponse>
