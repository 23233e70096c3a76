import type { ChatMessage, ModelProvider, ModelTurn, ToolCallRequest, ToolSpec } from './types.js'

/**
 * A deterministic planner for the demo prompts, with no model at all: it reads the user's
 * prompt, picks the tool calls a reasonable model would, and once the results are back it
 * summarizes them. It only proposes calls; the gateway decides them like any model's. When the
 * agent may not make a call itself but may message an agent that can, it asks that agent.
 */
export function offlineProvider(): ModelProvider {
  return {
    name: 'offline',
    async chat(messages: ChatMessage[], tools: ToolSpec[]): Promise<ModelTurn> {
      const last = messages[messages.length - 1]
      if (last?.role === 'tool') return { content: summarize(messages), toolCalls: [] }
      const prompt = [...messages].reverse().find((m) => m.role === 'user')?.content ?? ''
      const message = tools.find((t) => t.name === 'message_agent')
      const to = (message?.parameters.properties as { to_agent?: { enum?: string[] } } | undefined)
        ?.to_agent?.enum
      const calls = plan(prompt, new Set(tools.map((t) => t.name)), to ?? [])
      return calls.length > 0
        ? { content: '', toolCalls: calls }
        : {
            content:
              'I could not map this request to one of my tools. I can open tickets, look up orders, refund, search the knowledge base, check health, restart services and export data.',
            toolCalls: [],
          }
    },
  }
}

let seq = 0
const call = (name: string, args: Record<string, unknown>): ToolCallRequest => ({
  id: `offline_${++seq}`,
  name,
  arguments: args,
})

/** The tool calls for a prompt; only tools the agent is offered, except to show a refusal. */
export function plan(
  prompt: string,
  offered: ReadonlySet<string>,
  messageTargets: readonly string[] = [],
): ToolCallRequest[] {
  const p = prompt.toLowerCase()
  const order =
    /\bord-(\d{1,10})\b/i.exec(prompt)?.[1] ?? /\border\s+#?(\d{1,10})\b/i.exec(prompt)?.[1]
  const orderId = order ? `ORD-${order}` : undefined
  const amount =
    /\$\s?(\d+(?:,\d{3})*(?:\.\d{1,2})?)|(\d+(?:\.\d{1,2})?)\s*(?:usd|dollars)\b/i.exec(prompt)
  const value = amount ? Number((amount[1] ?? amount[2] ?? '').replace(/,/g, '')) : undefined
  const env = /\b(prod|production|staging|dev|development)\b/.exec(p)?.[1]
  const environment = env === 'production' ? 'prod' : env === 'development' ? 'dev' : env

  if (/\brefund/.test(p) && orderId && value !== undefined) {
    const args = { order_id: orderId, amount: value, reason: excerpt(prompt) }
    // Not allowed to refund, but allowed to ask the refund agent: delegate through the gateway.
    if (!offered.has('issue_refund') && messageTargets.includes('refund-agent'))
      return [call('message_agent', { to_agent: 'refund-agent', content: prompt })]
    return [call('issue_refund', args)]
  }
  if (/\bticket\b/.test(p)) {
    const customer = /\bcustomer\s+(?:id\s+)?#?((?:cust-)?\d{3,10})\b/i.exec(prompt)?.[1] ?? '00000'
    return [
      call('create_support_ticket', {
        customer_id: customer.toUpperCase(),
        subject: excerpt(prompt, 200),
      }),
    ]
  }
  if (/\brestart\b/.test(p)) {
    const service = /\brestart\s+(?:the\s+)?([a-z][a-z0-9-]{1,40})/.exec(p)?.[1] ?? 'api'
    return [
      call('restart_service', {
        service,
        environment: environment ?? 'dev',
        reason: excerpt(prompt),
      }),
    ]
  }
  if (/\bhealth\b|\bstatus of (the )?(system|services)\b/.test(p))
    return [call('get_system_health', environment ? { environment } : {})]
  if (/\bexport\b/.test(p)) {
    const segment = /\b(all|active|churned|vip)\b/.exec(p)?.[1] ?? 'all'
    const destination =
      /\bto\s+(\S+@\S+|s3:\/\/\S+|https?:\/\/\S+)/i.exec(prompt)?.[1] ?? 's3://exports/customers'
    return [call('export_customer_data', { segment, destination })]
  }
  if (orderId && /\b(look ?up|status|check|where|find)\b/.test(p))
    return [call('lookup_order', { order_id: orderId })]
  if (offered.has('search_knowledge_base'))
    return [call('search_knowledge_base', { query: excerpt(prompt, 200) })]
  return []
}

function excerpt(text: string, max = 120): string {
  const t = text.replace(/\s+/g, ' ').trim()
  return t.length > max ? `${t.slice(0, max - 1)}…` : t
}

/** The final answer: one line per tool result the run got back. */
function summarize(messages: ChatMessage[]): string {
  const lines = messages
    .filter((m): m is Extract<ChatMessage, { role: 'tool' }> => m.role === 'tool')
    .map(
      (m) => `- ${m.name}: ${m.content.length > 300 ? `${m.content.slice(0, 299)}…` : m.content}`,
    )
  return `Here is what happened:\n${lines.join('\n')}`
}
