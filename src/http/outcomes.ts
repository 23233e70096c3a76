import type { ApprovalOutcome } from '../approvals/service.js'
import { errorBody, statusOf } from '../domain/errors.js'
import { deniedCode, type CallOutcome, type Failure } from '../domain/outcome.js'
import type { Decision } from '../domain/types.js'
import type { MessageOutcome } from '../messaging/service.js'
import type { Reply } from './reply.js'

/** How the HTTP door says what the engine decided: status codes and wire bodies live here only. */

/** The fields every decision reply carries. */
function decisionFields(d: Decision) {
  return {
    request_id: d.requestId,
    risk: d.risk,
    checks: d.checks,
    policy_version: d.policyVersion,
  }
}

/** A refusal or an outage: the catalog's status (503 for an outage), the standard error body. */
export function failureReply(f: Failure): Reply {
  return {
    status: f.kind === 'unavailable' ? 503 : statusOf(f.code),
    body: errorBody(f.code, f.message, f.requestId),
  }
}

/** `POST /gateway/execute` (and a demo scenario's call); a replay says so in a header. */
export function callReply(o: CallOutcome): Reply {
  const reply = callReplyOf(o)
  if (o.replayed) reply.headers = { ...reply.headers, 'idempotent-replayed': 'true' }
  return reply
}

function callReplyOf(o: CallOutcome): Reply {
  switch (o.kind) {
    case 'executed':
      return {
        status: 200,
        body: {
          decision: 'allow',
          ...decisionFields(o.decision),
          result: o.result,
          ...(o.warnings && { warnings: o.warnings }),
        },
      }
    case 'tool_failed':
      return {
        status: statusOf(o.code),
        body: { decision: 'allow', ...errorBody(o.code, o.message, o.decision.requestId) },
      }
    case 'denied': {
      const d = o.decision
      const code = deniedCode(d)
      const reply: Reply = {
        status: statusOf(code),
        body: {
          decision: 'deny',
          ...decisionFields(d),
          layer: d.layer,
          error: { code, message: d.reason },
        },
      }
      if (d.retryAfterSeconds !== undefined)
        reply.headers = { 'retry-after': String(d.retryAfterSeconds) }
      return reply
    }
    case 'held':
      return {
        status: 202,
        body: {
          decision: 'approval_required',
          ...decisionFields(o.decision),
          approval_id: o.approval.id,
          expires_at: o.approval.expiresAt,
          args_hash: o.approval.argsHash,
          layer: o.decision.layer,
          reason: o.decision.reason,
          ...(o.duplicateOf !== undefined && { duplicate_of: o.duplicateOf }),
        },
      }
    case 'unavailable':
    case 'refused':
      return failureReply(o)
  }
}

/** Deciding or reading an approval. */
export function approvalReply(o: ApprovalOutcome): Reply {
  switch (o.kind) {
    case 'decided':
      return { status: 200, body: { approval: o.approval } }
    case 'executed':
      return {
        status: o.failure ? statusOf(o.failure.code) : 200,
        body: {
          approval: o.approval,
          result: o.result,
          ...(o.failure && {
            decision: 'allow',
            ...errorBody(o.failure.code, o.failure.message, o.requestId),
          }),
        },
      }
    default:
      return failureReply(o)
  }
}

/** `POST /gateway/message`. */
export function messageReply(o: MessageOutcome): Reply {
  return o.kind === 'delivered' ? { status: 200, body: { ...o.message } } : failureReply(o)
}
