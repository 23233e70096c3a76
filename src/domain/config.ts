import { z } from 'zod'

/** Identifiers used for agents, roles, approvers, rules: plain and stable. */
const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a plain identifier')
/** Tool names follow the MCP naming rule (SEP-986): letters, digits, `_ . - /`, no `..`. */
export const TOOL_NAME = /^(?!.*\.\.)[A-Za-z0-9_.\-/]{1,64}$/
const toolName = z.string().regex(TOOL_NAME, 'must match ^[A-Za-z0-9_.-/]{1,64}$ without ..')
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters')
const seconds = z.number().int().positive()

/** Kinds of personal data Warden recognises and can mask. */
export const PII_KINDS = ['email', 'phone', 'card', 'national_id', 'iban', 'secret'] as const
export type PiiKind = (typeof PII_KINDS)[number]

export const RISK_LEVELS = ['low', 'medium', 'high', 'critical'] as const
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const

/** The longest an approve/deny link or a decision callback can stay valid (`approvals.notify`). */
export const MAX_SIGNED_AGE_SECONDS = 3600
/**
 * How long a used link or callback nonce is kept past the moment its signature stops verifying.
 * Signatures are checked in whole seconds (a link expiring at second `exp` still verifies until
 * `exp + 1`), and the instance that checks a replay may run ahead of or behind the one that took
 * the first use: without this margin a replay just after the nonce is forgotten could verify.
 */
export const NONCE_MARGIN_SECONDS = 60

/** A host name as sent in `Host`, without a port: letters, digits, `.-`, or an IPv6 literal. */
const hostName = z
  .string()
  .regex(/^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])$/, 'must be a host name without a port')
  .transform((h) => h.toLowerCase())
/** A token bucket: `burst` at once, refilled at `per_second`. */
const bucket = z.strictObject({
  burst: z.number().int().positive(),
  per_second: z.number().positive(),
})

const rateLimit = z.strictObject({ limit: z.number().int().positive(), window_seconds: seconds })

const agent = z.strictObject({
  id,
  role: id,
  description: z.string().default(''),
  clearance: z.enum(CLASSIFICATIONS),
  key_sha256: sha256Hex,
  tools: z.array(toolName),
  rate_limit: rateLimit,
  tool_rate_limits: z.record(toolName, rateLimit).default({}),
})

const approver = z.strictObject({
  id,
  name: z.string().default(''),
  token_sha256: sha256Hex,
  roles: z.array(id).min(1),
})

/** Who may approve which held calls: every rule that matches a call must be met by the approver. */
const approvalRule = z.strictObject({
  id,
  description: z.string().default(''),
  tools: z.array(toolName).min(1).optional(),
  risk_levels: z.array(z.enum(RISK_LEVELS)).min(1).optional(),
  /** The rule applies only when this numeric parameter is above `value` (e.g. refunds over $300). */
  param_above: z.strictObject({ param: z.string(), value: z.number() }).optional(),
  /** The approver needs at least one of these roles. */
  roles: z.array(id).min(1),
})

/** An MCP upstream's name: the namespace its tools are known by in Warden (`<name>.<tool>`). */
export const UPSTREAM_NAME = /^[a-z0-9_-]{1,32}$/
const upstreamName = z.string().regex(UPSTREAM_NAME, 'must match ^[a-z0-9_-]{1,32}$')

/**
 * An MCP server Warden is a client of (decision 0021). Its tools are called only when `tools:`
 * configures them (`<name>.<tool>`, executor `mcp`); the others are reported, never callable.
 */
const mcpUpstream = z
  .strictObject({
    name: upstreamName,
    /** Started by Warden; relative paths in `cwd` are taken from the configuration file's folder. */
    stdio: z
      .strictObject({
        command: z.string().min(1),
        args: z.array(z.string()).default([]),
        /** Added to the small default environment (PATH, HOME, …), never Warden's whole one. */
        env: z.record(z.string(), z.string()).default({}),
        cwd: z.string().min(1).optional(),
      })
      .optional(),
    /** Streamable HTTP; `headers` hold Warden's own credentials, never an agent's. */
    http: z
      .strictObject({
        url: z.url({ protocol: /^https?$/ }),
        headers: z.record(z.string(), z.string()).default({}),
      })
      .optional(),
    /** Past it the call is `upstream_timeout` (outcome unknown: the upstream may have acted). */
    call_timeout_ms: z.number().int().positive().max(600_000).default(30_000),
    /**
     * Tools the upstream offers that `tools:` does not configure: `deny` (they are in no
     * allowlist, so the pipeline refuses them; reported by the manager). The only choice for now.
     */
    unlisted_tools: z.enum(['deny']).default('deny'),
  })
  .refine((u) => (u.stdio === undefined) !== (u.http === undefined), {
    message: 'an upstream has exactly one of `stdio` and `http`',
  })

const executor = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('demo') }),
  z.strictObject({ type: z.literal('mcp'), upstream: upstreamName }),
  z
    .strictObject({
      type: z.literal('http'),
      method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
      url: z.url({ protocol: /^https?$/ }),
      timeout_ms: z.number().int().positive().max(120_000).default(10_000),
      /** Fixed headers sent with every call (not secret: `/config/tools` shows them). */
      headers: z.record(z.string(), z.string()).default({}),
      /**
       * Headers whose values come from the environment Warden was started with (secrets: a token,
       * an API key), by variable name; the value is never in the configuration, the audit or
       * `/config/tools`. A variable that is not set refuses the start.
       */
      headers_env: z
        .record(
          z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an HTTP header name'),
          z
            .string()
            .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name'),
        )
        .default({}),
    })
    .refine(
      (ex) => {
        // One header, one source: `Authorization` in both maps (in any case), or a header Warden
        // sets itself, would send two values or silently drop the secret.
        const fixed = new Set(
          [...Object.keys(ex.headers), 'x-request-id', 'content-type'].map((h) => h.toLowerCase()),
        )
        return Object.keys(ex.headers_env).every((h) => !fixed.has(h.toLowerCase()))
      },
      {
        message:
          'a header in `headers_env` is also in `headers` or is one Warden sets (x-request-id, content-type)',
        path: ['headers_env'],
      },
    ),
])

/**
 * The optional second opinion on the injection detector (decision 0023): texts whose score falls
 * in `grey_zone` ([from, to)) are sent to a model that answers whether they carry instructions for
 * the agent. A model that fails, times out or answers anything else counts as "injection".
 */
export const injectionJudge = z.strictObject({
  /** `openai`: any OpenAI-compatible chat-completions server; `ollama`: Ollama's /api/chat. */
  provider: z.enum(['openai', 'ollama']),
  /** e.g. `https://api.openai.com/v1`, or the Ollama host `http://127.0.0.1:11434`. */
  base_url: z.url({ protocol: /^https?$/ }),
  model: z.string().min(1),
  /** The environment variable holding the API key (OpenAI-compatible servers); none for Ollama. */
  api_key_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional(),
  /** The deadline of one verdict, queueing included; past it the text is held. */
  timeout_ms: z.number().int().positive().max(60_000).default(3_000),
  /** Scores in [from, to) are judged; below, the text passes; at or above, the detector decides. */
  grey_zone: z
    .tuple([z.number().min(0).max(1), z.number().min(0).max(1)])
    .default([0.3, 0.8])
    .refine(([from, to]) => from < to, { message: 'the grey zone is [from, to) with from < to' }),
  /**
   * Whether a "benign" verdict may clear a text the detector alone would hold (a score in the
   * zone at or above `hold_at`). Off by default: the judge reads the very text it judges, so an
   * injection that talks it into "benign" would otherwise clear itself; the judge then only adds
   * (an "injection" verdict flags what the detector let through). A named fail-open option.
   */
  may_clear: z.boolean().default(false),
  /** The text sent is cut to this many characters (a cut text is never judged benign). */
  max_chars: z.number().int().positive().max(100_000).default(4_000),
  /** Verdicts in flight at once in this process; the others wait within their deadline. */
  concurrency: z.number().int().positive().max(64).default(4),
  /** Verdicts remembered by the text's hash (failures are not). */
  cache_size: z.number().int().min(0).max(100_000).default(1_000),
})

const tool = z
  .strictObject({
    name: toolName,
    description: z.string().min(1),
    risk: z.enum(RISK_LEVELS),
    classification: z.enum(CLASSIFICATIONS),
    /** Default: `untrusted` for `mcp` tools (a third party's server), `trusted` for the others. */
    output_trust: z.enum(['trusted', 'untrusted']).optional(),
    executor,
    // JSON Schema of the parameters; compiled (and checked for strictness) by the params layer.
    params: z.record(z.string(), z.unknown()),
    approval: z.enum(['never', 'always']).default('never'),
    taint: z
      .strictObject({ params: z.array(z.string()).min(1), action: z.enum(['hold', 'deny']) })
      .optional(),
  })
  .transform((t) => ({
    ...t,
    output_trust: t.output_trust ?? (t.executor.type === 'mcp' ? 'untrusted' : 'trusted'),
  }))

const policyRule = z.strictObject({
  id,
  /**
   * `release` (data-flow rules): a call it matches is let out of the session quarantine
   * (`injection.after_injected_output`); it permits nothing by itself.
   */
  effect: z.enum(['permit', 'forbid', 'release']),
  tools: z.array(toolName).optional(),
  roles: z.array(id).optional(),
  agents: z.array(id).optional(),
  when: z.string().min(1).max(4096),
  reason: z.string().min(1),
})

const guard = z.discriminatedUnion('kind', [
  z.strictObject({
    id,
    kind: z.literal('amount_threshold'),
    tool: toolName,
    param: z.string(),
    allow_up_to: z.number().nonnegative(),
    hold_up_to: z.number().nonnegative(),
  }),
  z.strictObject({
    id,
    kind: z.literal('value_allowlist'),
    tool: toolName,
    param: z.string(),
    optional: z.boolean().default(false),
    values: z.record(z.string(), z.enum(['allow', 'hold'])),
  }),
])

const sequenceRule = z
  .strictObject({
    id,
    description: z.string().default(''),
    tool: toolName,
    /**
     * "Happened before": the call needs an earlier allowed call of `requires.tool` within the
     * window, with the same value of `same_param` (refund only an order looked up in the last hour).
     */
    requires: z
      .strictObject({ tool: toolName, same_param: z.string(), within_seconds: seconds })
      .optional(),
    /** Earlier allowed calls of `after.tool` within the window; a count, a sum, or both (either triggers). */
    after: z
      .strictObject({
        tool: toolName,
        within_seconds: seconds,
        /** Triggers at this many earlier calls (distinct values of `distinct_param`, if set). */
        at_least: z.number().int().positive().optional(),
        distinct_param: z.string().optional(),
        /** Triggers when the earlier calls' `sum_param` plus this call's exceeds `sum_over`. */
        sum_param: z.string().optional(),
        sum_over: z.number().nonnegative().optional(),
      })
      .refine(
        (a) => a.at_least !== undefined || (a.sum_param !== undefined && a.sum_over !== undefined),
        {
          message: 'needs `at_least`, or `sum_param` with `sum_over`',
        },
      )
      .optional(),
    /**
     * A sequence: the call completes the chain when the agent's allowed calls include these tools
     * in this order (other calls between them are fine) within the window (list customers →
     * export → this external email).
     */
    follows: z
      .strictObject({ tools: z.array(toolName).min(1).max(16), within_seconds: seconds })
      .optional(),
    action: z.enum(['hold', 'deny']),
  })
  .refine((r) => [r.after, r.requires, r.follows].filter((k) => k !== undefined).length === 1, {
    message: 'a sequence rule has exactly one of `after`, `requires` and `follows`',
  })

/** The whole configuration, after includes are merged. One schema, validated once at start. */
export const configSchema = z.strictObject({
  version: z.string().min(1).max(64),
  demo: z.boolean().default(false),
  include: z.array(z.string()).default([]),
  server: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(8004),
      body_limit_bytes: z.number().int().positive().default(1_048_576),
      max_depth: z.number().int().positive().max(256).default(32),
      max_items: z.number().int().positive().default(10_000),
      /**
       * Browser origins allowed to open `WS /ws/events` (the dashboard's). Requests without an
       * Origin header (scripts, the dashboard server's proxy) are not affected.
       */
      allowed_origins: z.array(z.url()).default([]),
      /**
       * Who may read decisions: `open` (anyone who reaches the gateway; parameters are masked) or
       * `approver` (an approver token on /events/*, /stats, /gateway/pending-approvals and the
       * WebSocket, which takes it as an `Authorization` header or a `warden.token.<token>`
       * subprotocol, the only way a browser can send one).
       */
      read_access: z.enum(['open', 'approver']).default('approver'),
      /**
       * Host names (no port) requests may name in `Host` besides localhost, 127.0.0.1, ::1, the
       * listen `host` and the host of `approvals.notify.public_url`; any other is refused with
       * 403 `host_not_allowed` (DNS rebinding). Agents that reach the gateway by another name
       * need it here.
       */
      allowed_hosts: z.array(hostName).default([]),
      /**
       * Proxies in front of the gateway whose `X-Forwarded-For` is believed (addresses, CIDR
       * ranges, or `loopback`, `linklocal`, `uniquelocal`): the client address the per-address
       * limits count is then the one the nearest untrusted hop reports. Empty (the default): the
       * connection's own address, and the header is ignored. Name only proxies that overwrite
       * the header (a client inside a trusted range could otherwise write its own).
       */
      trust_proxy: z
        .array(
          z.union([
            z.enum(['loopback', 'linklocal', 'uniquelocal']),
            z.ipv4(),
            z.ipv6(),
            z.cidrv4(),
            z.cidrv6(),
          ]),
        )
        .max(64)
        .default([]),
      /** What one client address may cost before it is known (docs/limits.md). */
      limits: z
        .strictObject({
          per_ip: bucket.default({ burst: 200, per_second: 50 }),
          auth_failures: bucket.default({ burst: 10, per_second: 0.1 }),
          /** `POST /detect/injection` takes no credential; its own smaller bucket per address. */
          detect: bucket.default({ burst: 10, per_second: 2 }),
          detect_body_limit_bytes: z.number().int().positive().max(1_048_576).default(65_536),
          /** Addresses the per-address buckets skip: loopback (the dashboard's proxy, local tools). */
          trusted_ips: z.array(z.string()).default(['127.0.0.1', '::1', '::ffff:127.0.0.1']),
          max_tracked_ips: z.number().int().positive().max(1_000_000).default(10_000),
          request_timeout_ms: z.number().int().positive().default(30_000),
          headers_timeout_ms: z.number().int().positive().default(10_000),
          keep_alive_timeout_ms: z.number().int().positive().default(5_000),
          websocket: z
            .strictObject({
              max_connections: z.number().int().positive().default(100),
              max_per_ip: z.number().int().positive().default(10),
            })
            .prefault({}),
        })
        .refine((l) => l.headers_timeout_ms <= l.request_timeout_ms, {
          message: '`headers_timeout_ms` must not exceed `request_timeout_ms`',
        })
        .prefault({}),
    })
    .prefault({}),
  store: z
    .strictObject({
      /** `memory` keeps everything in process memory: for tests and demos, never for real traffic. */
      kind: z.enum(['sqlite', 'memory']).default('sqlite'),
      sqlite_path: z.string().default('data/warden.db'),
    })
    .prefault({}),
  /**
   * Where rate limits, taint, history and quarantine live: `memory` (one process) or `redis`
   * (shared by every instance; the server comes from `REDIS_URL`).
   */
  state: z.strictObject({ kind: z.enum(['memory', 'redis']).default('memory') }).prefault({}),
  agents: z.array(agent).min(1),
  tools: z.array(tool).min(1),
  mcp_upstreams: z.array(mcpUpstream).default([]),
  policy: z.strictObject({ rules: z.array(policyRule).min(1) }),
  guards: z.array(guard).default([]),
  injection: z
    .strictObject({
      hold_at: z.number().min(0).max(1).default(0.5),
      deny_at: z.number().min(0).max(1).default(0.8),
      /**
       * Once an untrusted tool's output in a session scored at or above `hold_at`, later calls in
       * that session to tools of these risk levels are held or denied.
       */
      after_injected_output: z
        .partialRecord(z.enum(RISK_LEVELS), z.enum(['hold', 'deny']))
        .default({}),
      /** A model asked for a second opinion on grey-zone scores (decision 0023). Off when absent. */
      judge: injectionJudge.optional(),
    })
    .prefault({})
    .refine((i) => !i.judge || i.judge.grey_zone[1] <= i.deny_at, {
      message: "the judge's grey zone must end at or below `deny_at`: a judge never lowers a deny",
      path: ['judge', 'grey_zone'],
    }),
  pii: z
    .strictObject({
      /**
       * Which PII kinds are masked in results the agent receives, by the tool's data
       * classification. The audit log always masks every kind.
       */
      mask_in_results: z
        .strictObject({
          public: z.array(z.enum(PII_KINDS)).default([]),
          internal: z.array(z.enum(PII_KINDS)).default([]),
          confidential: z.array(z.enum(PII_KINDS)).default([...PII_KINDS]),
          restricted: z.array(z.enum(PII_KINDS)).default([...PII_KINDS]),
        })
        .prefault({}),
    })
    .prefault({}),
  taint: z.strictObject({ min_match_length: z.number().int().min(1).default(4) }).prefault({}),
  /**
   * Who writes `context.user_input`. Untrusted (the default) suits agents whose user is an
   * outsider (a customer writing to support): it is scanned for injection and a sensitive value
   * found in it is held like one read in a tool output. `trusted: true` suits assistants acting
   * for their owner, whose request is the instruction itself: it is neither scanned nor taint,
   * and data-flow rules still see which values came from it (`provenance.<param>.user`).
   */
  user_input: z.strictObject({ trusted: z.boolean().default(false) }).prefault({}),
  risk: z
    .strictObject({
      /**
       * What the final risk level (after every layer, see docs/risk.md) does to a call no layer
       * refused: `allow` adds nothing (layers may still hold), `hold` needs a person, `deny` refuses.
       */
      actions: z
        .strictObject({
          low: z.enum(['allow', 'hold', 'deny']).default('allow'),
          medium: z.enum(['allow', 'hold', 'deny']).default('allow'),
          high: z.enum(['allow', 'hold', 'deny']).default('allow'),
          critical: z.enum(['allow', 'hold', 'deny']).default('allow'),
        })
        .prefault({}),
      /** Recent calls of the agent looked at for its record (denied and held ones add risk). */
      history_window: z.number().int().positive().max(1000).default(20),
    })
    .prefault({}),
  approval: z.strictObject({ hold_at_risk: z.number().min(0).max(100).default(85) }).prefault({}),
  approvals: z
    .strictObject({
      /** Time a held call waits for a person before it expires (a deny); per tool beats per risk level. */
      ttl_seconds: seconds.default(900),
      ttl_by_risk: z.partialRecord(z.enum(RISK_LEVELS), seconds).default({}),
      ttl_by_tool: z.record(toolName, seconds).default({}),
      /** More pending approvals than this for one agent are refused (approval flooding). */
      max_pending_per_agent: z.number().int().positive().default(20),
      approvers: z.array(approver).default([]),
      rules: z.array(approvalRule).default([]),
      notify: z
        .strictObject({
          /** Base URL of this gateway as approvers reach it (for approve/deny links). */
          public_url: z.url({ protocol: /^https?$/ }),
          /**
           * Key for webhooks and callbacks (Standard Webhooks) and links (HMAC). A `whsec_<base64>`
           * value is decoded as Standard Webhooks does; any other is used as its UTF-8 bytes.
           * Keep the file that holds it private.
           */
          signing_secret: z
            .string()
            .min(32, 'must be at least 32 characters')
            .refine(
              (s) => !s.startsWith('whsec_') || /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/.test(s),
              'a `whsec_` secret must be base64 of at least 24 bytes',
            ),
          link_ttl_seconds: seconds.max(MAX_SIGNED_AGE_SECONDS).default(600),
          callback_max_age_seconds: seconds.max(MAX_SIGNED_AGE_SECONDS).default(300),
          webhooks: z
            .array(
              z.strictObject({
                url: z.url({ protocol: /^https?$/ }),
                format: z.enum(['json', 'slack']).default('json'),
                /** The approver the message's approve/deny links act as. */
                approver: id,
              }),
            )
            .default([]),
        })
        .optional(),
    })
    .prefault({}),
  /** `Idempotency-Key` on `POST /gateway/execute` (docs/approvals.md, "Idempotency"). */
  idempotency: z
    .strictObject({
      /** How long a key and its first response are kept. */
      ttl_seconds: seconds.max(7 * 86_400).default(86_400),
      /** Unexpired keys one agent may hold; more are `429 too_many_idempotency_keys`. */
      max_keys_per_agent: z.number().int().positive().max(1_000_000).default(1000),
    })
    .prefault({}),
  anomaly: z
    .strictObject({
      /**
       * Learn each agent's tool transitions (previous tool in the session → this tool) from its
       * allowed calls, and treat an improbable transition as a risk signal.
       */
      enabled: z.boolean().default(false),
      /** Transitions seen out of the previous tool before the model judges a call. */
      min_observations: z.number().int().positive().default(30),
      /** A transition less probable than this holds the call. */
      hold_below: z.number().min(0).max(1).default(0.02),
      /** Additive (Laplace) smoothing over the agent's tools. */
      smoothing: z.number().positive().default(1),
    })
    .prefault({}),
  messaging: z
    .strictObject({
      /** Who may message whom through `POST /gateway/message` (and so delegate work). */
      edges: z.array(z.strictObject({ from: id, to: id })).default([]),
      /** The longest delegation chain, counting the receiving agent. */
      max_chain: z.number().int().min(2).max(8).default(3),
      /**
       * Key material for delegation tokens (HS256 JWTs). Required outside the demo when there are
       * edges: every gateway instance that shares the work must use the same one.
       */
      signing_secret: z.string().min(32, 'must be at least 32 characters').optional(),
      /** Earlier signing secrets: tokens they signed are accepted until they expire (rotation). */
      previous_signing_secrets: z
        .array(z.string().min(32, 'must be at least 32 characters'))
        .max(4)
        .default([]),
      token_ttl_seconds: seconds.max(86_400).default(900),
      /**
       * A delegated call must be made in the session its token carries (the sender's), else
       * `403 delegation_session_mismatch`: the receiver cannot leave the inherited taint behind.
       */
      bind_session: z.boolean().default(false),
      max_message_chars: z.number().int().positive().max(100_000).default(8000),
    })
    .prefault({}),
  /** Per-session state: what a session keeps, for how long, and whether calls must name one. */
  sessions: z
    .strictObject({
      /** Calls without `session_id` are refused with 400 `session_required`. */
      required: z.boolean().default(false),
      /** One untrusted text (e.g. `context.user_input`) is kept up to this many characters. */
      max_entry_chars: z.number().int().positive().max(1_000_000).default(8192),
      /** A session's untrusted texts together; past it the oldest go (an injection's mark stays). */
      max_session_chars: z.number().int().positive().max(10_000_000).default(32_768),
      /** A session nobody used for this long is forgotten (its injection mark too). */
      idle_ttl_seconds: seconds.default(3600),
      /** Sessions kept at once per process; past it the least recently used go. */
      max_sessions: z.number().int().positive().max(1_000_000).default(10_000),
      /**
       * Scan this call's text together with the session's recent user input (the last
       * `recent_chars` characters from the last `recent_seconds`), so that an injection split
       * across calls is seen whole (flagged `across_calls`).
       */
      scan_across_calls: z.boolean().default(false),
      recent_chars: z.number().int().positive().max(100_000).default(2000),
      recent_seconds: seconds.default(600),
    })
    .prefault({}),
  sequence: z
    .strictObject({
      history_limit: z.number().int().positive().max(10_000).default(200),
      /**
       * Calls kept per agent and watched tool for sequence rules, over each rule's whole time
       * window; past it the oldest go and the rules that would need them fire (fail closed).
       */
      window_limit: z.number().int().positive().max(100_000).default(1000),
      rules: z.array(sequenceRule).default([]),
      quarantine: z
        .strictObject({
          denials: z.number().int().positive(),
          within_seconds: seconds,
          duration_seconds: seconds,
        })
        .optional(),
    })
    .prefault({}),
})

export type WardenConfig = z.infer<typeof configSchema>
export type StateConfig = WardenConfig['state']
export type AgentConfig = WardenConfig['agents'][number]
export type ToolConfig = WardenConfig['tools'][number]
export type McpUpstreamConfig = WardenConfig['mcp_upstreams'][number]
export type PolicyRuleConfig = WardenConfig['policy']['rules'][number]
export type GuardConfig = WardenConfig['guards'][number]
export type JudgeConfig = z.output<typeof injectionJudge>
export type SequenceRuleConfig = WardenConfig['sequence']['rules'][number]
export type ApproverConfig = WardenConfig['approvals']['approvers'][number]
export type ApprovalRuleConfig = WardenConfig['approvals']['rules'][number]
export type RiskLevel = (typeof RISK_LEVELS)[number]
export type Classification = (typeof CLASSIFICATIONS)[number]

/** A configuration problem found after the schema passed: a dangling reference, a bad rule. */
export interface Problem {
  path: PropertyKey[]
  message: string
}
