import type { WardenConfig } from '../domain/config.js'
import { timeOrderedId } from '../domain/ids.js'
import type { ApprovalRecord } from '../store/types.js'
import { approverProblem } from './rules.js'
import { signLink, signWebhook, type LinkFields } from './signing.js'

type NotifyConfig = NonNullable<WardenConfig['approvals']['notify']>
type Webhook = NotifyConfig['webhooks'][number]

/** The approve and deny links for one approver: signed, expiring, single use. */
export function decisionLinks(
  notify: NotifyConfig,
  approval: ApprovalRecord,
  approver: string,
  nowSeconds: number,
) {
  const link = (decision: LinkFields['decision']) => {
    const fields: LinkFields = {
      approval: approval.id,
      decision,
      approver,
      exp: nowSeconds + notify.link_ttl_seconds,
      nonce: timeOrderedId(),
    }
    const url = new URL(
      `/gateway/approvals/${encodeURIComponent(approval.id)}/decide`,
      notify.public_url,
    )
    for (const [k, v] of Object.entries({
      decision,
      approver,
      exp: String(fields.exp),
      nonce: fields.nonce,
      sig: signLink(notify.signing_secret, fields),
    })) {
      url.searchParams.set(k, v)
    }
    return url.toString()
  }
  return {
    approve: link('approve'),
    deny: link('deny'),
    expires_in_seconds: notify.link_ttl_seconds,
  }
}

/**
 * Agent text as Slack mrkdwn shows it literally: `&`, `<` and `>` escaped as Slack asks, so
 * `<https://evil.example|Open Warden>` stays text and never becomes a disguised link (or a
 * `<!channel>` mention).
 */
export function mrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Agent text in a code span it cannot leave (mrkdwn has no escape for a backtick). */
function code(text: string): string {
  return `\`${mrkdwn(text).replace(/`/g, 'ˋ')}\``
}

/** The message for one webhook: Warden's JSON, or a Slack-compatible message with link buttons. */
export function webhookPayload(
  hook: Webhook,
  approval: Record<string, unknown> & {
    id: string
    agent_id: string
    tool: string
    reason: string
    risk: { level: string; score: number }
  },
  links: ReturnType<typeof decisionLinks> | null,
) {
  if (hook.format === 'json') return { type: 'approval_required', approval, links }
  const text = `Approval needed: ${code(approval.agent_id)} wants to call ${code(approval.tool)} (risk ${mrkdwn(approval.risk.level)}, ${approval.risk.score}). Held because: ${mrkdwn(approval.reason)}`
  const blocks: unknown[] = [
    { type: 'section', text: { type: 'mrkdwn', text } },
    {
      type: 'section',
      text: { type: 'mrkdwn', text: `Parameters: ${code(JSON.stringify(approval.params) ?? '')}` },
    },
  ]
  if (links) {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          text: { type: 'plain_text', text: 'Approve' },
          style: 'primary',
          url: links.approve,
        },
        {
          type: 'button',
          text: { type: 'plain_text', text: 'Deny' },
          style: 'danger',
          url: links.deny,
        },
      ],
    })
  }
  return { text, blocks }
}

/**
 * Tell the configured webhooks about a new held call. Delivery is best effort (one attempt,
 * 5 s); a failure is reported to `onError` and never affects the held call, which stays in the
 * queue for the dashboard and the CLI.
 */
export function sendApprovalRequired(
  notify: NotifyConfig,
  config: WardenConfig,
  approval: ApprovalRecord,
  shown: Record<string, unknown>,
  onError: (err: unknown, where: string) => void,
  fetchImpl: typeof fetch = fetch,
): void {
  const now = Math.floor(Date.now() / 1000)
  for (const hook of notify.webhooks) {
    const approver = config.approvals.approvers.find((a) => a.id === hook.approver)
    // Links only for an approver who may decide this call; the message goes out either way.
    const eligible =
      approver &&
      approval.requested_by !== approver.id &&
      approverProblem(config.approvals.rules, approver, approval) === null
    const links = eligible ? decisionLinks(notify, approval, hook.approver, now) : null
    const body = JSON.stringify(
      webhookPayload(hook, shown as Parameters<typeof webhookPayload>[1], links),
    )
    fetchImpl(hook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        // Standard Webhooks: the id names this message (a receiver drops a repeat of it).
        ...signWebhook(notify.signing_secret, `msg_${timeOrderedId()}`, body, now),
      },
      body,
      signal: AbortSignal.timeout(5000),
    })
      .then((res) => {
        if (!res.ok) throw new Error(`webhook ${hook.url} answered ${res.status}`)
      })
      .catch((err: unknown) => onError(err, 'notify:webhook'))
  }
}
