import { z } from 'zod'

/**
 * One recorded agent session, in the format of AgentDojo's ground-truth traces
 * (`traces_v1.jsonl`): the user's message, the assistant's tool calls, the tools' results, and
 * for injected traces the calls the attacker wanted. Unknown fields are kept and ignored.
 */
const toolCall = z.looseObject({
  /** Pairs the call with its result (`tool_call_id`); without one, results pair by tool name. */
  id: z.string().min(1).optional(),
  function: z.string().min(1),
  args: z.record(z.string(), z.unknown()).default({}),
})

const message = z.discriminatedUnion('role', [
  z.looseObject({ role: z.literal('system'), content: z.string().nullable().default('') }),
  z.looseObject({ role: z.literal('user'), content: z.string() }),
  z.looseObject({
    role: z.literal('assistant'),
    content: z.string().nullable().default(''),
    tool_calls: z.array(toolCall).nullable().default([]),
  }),
  z.looseObject({
    role: z.literal('tool'),
    tool: z.string().min(1),
    tool_call_id: z.string().min(1).optional(),
    content: z.unknown(),
    contains_injection: z.boolean().optional(),
  }),
])

export const traceSchema = z.looseObject({
  id: z.string().min(1),
  suite: z.string().default(''),
  label: z.string().default('benign'),
  messages: z.array(message),
  attacker_ground_truth_calls: z.array(toolCall).nullable().default([]),
})

export type Trace = z.infer<typeof traceSchema>
export type TraceCall = z.infer<typeof toolCall>

/** Parse one JSONL line; the error says what is wrong with it. */
export function parseTrace(line: string): { trace: Trace } | { error: string } {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` }
  }
  const parsed = traceSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    return { error: `${issue?.path.join('.') || '(line)'}: ${issue?.message ?? 'invalid trace'}` }
  }
  return { trace: parsed.data }
}
