import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CATALOG, errorBody, type ErrorCode } from '../domain/errors.js'

/** A bucket's shape: `burst` requests at once, refilled at `per_second`. */
export interface BucketSpec {
  burst: number
  per_second: number
}

/**
 * What one HTTP server accepts from a single client address before knowing who it is
 * (docs/limits.md). The gateway reads these from `server.limits`; the agent API and the
 * dashboard take the same defaults.
 */
export interface ServerLimits {
  /** Every request from one address. */
  per_ip: BucketSpec
  /** Requests from one address that failed authentication (401). */
  auth_failures: BucketSpec
  /** Addresses the per-address buckets do not apply to (the local proxy and tools). */
  trusted_ips: readonly string[]
  /** Addresses remembered at once; the least recently seen is forgotten first. */
  max_tracked_ips: number
  /** Time to receive a whole request, headers and body (Node `requestTimeout`). */
  request_timeout_ms: number
  /** Time to receive the request headers (Node `headersTimeout`). */
  headers_timeout_ms: number
  /** An idle kept-alive connection is closed after this (Node `keepAliveTimeout`). */
  keep_alive_timeout_ms: number
}

export const DEFAULT_LIMITS: ServerLimits = {
  per_ip: { burst: 200, per_second: 50 },
  auth_failures: { burst: 10, per_second: 0.1 },
  trusted_ips: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
  max_tracked_ips: 10_000,
  request_timeout_ms: 30_000,
  headers_timeout_ms: 10_000,
  keep_alive_timeout_ms: 5_000,
}

/**
 * Token buckets by key (a client address), in a bounded map: at most `maxKeys` buckets, the
 * least recently used forgotten first. A forgotten key starts again with a full bucket, which is
 * what an idle key would have by then anyway; only a flood of distinct addresses makes one
 * forget early, and each of those addresses is itself limited.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly spec: BucketSpec,
    private readonly maxKeys: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Take `cost` tokens for `key`: 0 when taken, else the seconds until they would be there. */
  take(key: string, cost = 1): number {
    const b = this.current(key)
    if (b.tokens >= cost) {
      b.tokens -= cost
      return 0
    }
    return this.wait(b.tokens, cost)
  }

  /** Seconds until `key` has one token (0 when it has one now); takes nothing. */
  peek(key: string): number {
    const b = this.current(key)
    return b.tokens >= 1 ? 0 : this.wait(b.tokens, 1)
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.buckets.size
  }

  private wait(tokens: number, cost: number): number {
    if (this.spec.per_second <= 0) return 3600
    return Math.max(1, Math.ceil((cost - tokens) / this.spec.per_second))
  }

  private current(key: string) {
    const t = this.now()
    let b = this.buckets.get(key)
    if (b) {
      this.buckets.delete(key)
      b.tokens = Math.min(this.spec.burst, b.tokens + ((t - b.at) / 1000) * this.spec.per_second)
      b.at = t
    } else {
      b = { tokens: this.spec.burst, at: t }
      while (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next()
        if (oldest.done) break
        this.buckets.delete(oldest.value)
      }
    }
    // Re-inserted last: the map's order is least recently used first.
    this.buckets.set(key, b)
    return b
  }
}

/** 429 with a catalog code and `Retry-After` in whole seconds. */
export function replyLimited(
  req: FastifyRequest,
  reply: FastifyReply,
  code: ErrorCode,
  retryAfter: number,
  message: string,
) {
  return reply
    .code(429)
    .header('retry-after', String(retryAfter))
    .send(errorBody(code, message, req.id))
}

/** Whether a request carries a credential of any kind (a failed one counts against its address). */
function presentsCredential(req: FastifyRequest): boolean {
  return (
    req.headers.authorization !== undefined ||
    req.headers['sec-websocket-protocol'] !== undefined ||
    req.headers['webhook-signature'] !== undefined ||
    req.url.includes('/decide')
  )
}

/**
 * Per-address limits on one server, before any route (and so before authentication):
 * every request takes a token from its address's bucket (429 `ip_rate_limited`); a 401 answer
 * takes one from its auth-failure bucket, and an address with none left may not present a
 * credential at all (429 `auth_rate_limited`) until it refills. `onAuthFailure` is told of each
 * counted failure (the gateway audits them).
 */
export function installIpLimits(
  app: FastifyInstance,
  limits: ServerLimits,
  onAuthFailure?: (req: FastifyRequest, code: ErrorCode) => Promise<void> | void,
): void {
  const trusted = new Set(limits.trusted_ips)
  const requests = new TokenBuckets(limits.per_ip, limits.max_tracked_ips)
  const failures = new TokenBuckets(limits.auth_failures, limits.max_tracked_ips)
  app.addHook('onRequest', async (req, reply) => {
    if (trustedClient(trusted, req)) return
    const wait = requests.take(req.ip)
    if (wait > 0)
      return replyLimited(
        req,
        reply,
        'ip_rate_limited',
        wait,
        'too many requests from this address',
      )
    if (presentsCredential(req)) {
      const locked = failures.peek(req.ip)
      if (locked > 0)
        return replyLimited(
          req,
          reply,
          'auth_rate_limited',
          locked,
          'too many failed authentication attempts from this address',
        )
    }
  })
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode !== 401) return payload
    if (!trustedClient(trusted, req)) failures.take(req.ip)
    await onAuthFailure?.(req, codeOf(payload))
    return payload
  })
}

/** The `error.code` of an error body as serialized for sending. */
function codeOf(payload: unknown): ErrorCode {
  if (typeof payload !== 'string') return 'unauthenticated'
  try {
    const code = (JSON.parse(payload) as { error?: { code?: unknown } }).error?.code
    return typeof code === 'string' && code in ERROR_CATALOG
      ? (code as ErrorCode)
      : 'unauthenticated'
  } catch {
    return 'unauthenticated'
  }
}

/**
 * Fastify options for Node's request, header and keep-alive timeouts. Node checks open
 * connections against them every `connectionsCheckingInterval` (30 s by default; 1 s here, so a
 * slow body is cut off close to its limit).
 */
export function timeoutOptions(limits: ServerLimits) {
  return {
    requestTimeout: limits.request_timeout_ms,
    keepAliveTimeout: limits.keep_alive_timeout_ms,
    http: {
      headersTimeout: limits.headers_timeout_ms,
      requestTimeout: limits.request_timeout_ms,
      connectionsCheckingInterval: 1000,
    },
  }
}

/**
 * Whether the per-address limits skip this request: its client address (`req.ip`, which may come
 * from `X-Forwarded-For` behind `server.trust_proxy`) and the connection's own address are both
 * in `trusted_ips`. INVARIANT: a header cannot earn the exemption: a client that writes
 * `X-Forwarded-For: 127.0.0.1` through a trusted proxy is still limited by its connection.
 */
export function trustedClient(trusted: ReadonlySet<string>, req: FastifyRequest): boolean {
  return trusted.has(req.ip) && trusted.has(req.socket?.remoteAddress ?? req.ip)
}
