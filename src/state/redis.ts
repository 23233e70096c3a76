import { createClient, defineScript, type RedisArgument } from 'redis'
import {
  MAX_TAINT_ENTRIES,
  type HistoryEntry,
  type KeptWindowEntry,
  type RateLimit,
  type RateLimitResult,
  type RuleWindow,
  type SessionChanges,
  type SessionScope,
  type SessionSnapshot,
  type StateBackend,
  type TaintEntry,
} from './types.js'

/**
 * State shared by every Warden instance, in Redis (decision 0018). Each operation is one round
 * trip: `hit` and `commit` are one Lua script each (atomic on the server, so instances never
 * race), `load` is one MULTI. Every key lives under the prefix and has a TTL (docs/state.md,
 * "Redis backend"), so nothing grows forever.
 */
export interface RedisStateOptions {
  url: string
  /** Every key starts with it; instances sharing state use the same one. Default `warden:`. */
  prefix?: string
}

export const DEFAULT_PREFIX = 'warden:'
/** No glob characters, so `SCAN MATCH <prefix>*` finds exactly this prefix's keys. */
const PREFIX_FORM = /^[A-Za-z0-9_.:-]{1,64}$/

/** A command without a reply by then rejects (the call answers 503 `state_unavailable`). */
const COMMAND_TIMEOUT_MS = 1000
const HEALTH_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 1000
/** How long `openState` waits for the first connection before it returns regardless. */
const FIRST_CONNECT_WAIT_MS = 2000
/** Reconnect backoff: doubles from 50 ms up to this. */
const MAX_RECONNECT_DELAY_MS = 2000

/** History and learned transitions are refreshed on every write and forgotten after this idle. */
const HISTORY_TTL_MS = 7 * 24 * 3600_000
const TRANSITIONS_TTL_MS = 30 * 24 * 3600_000
/** Session taint without an `idleMs` (the pipeline always gives one). */
const TAINT_TTL_MS = 7 * 24 * 3600_000
/**
 * Keys whose span is measured on the caller's clock (windows, denials, quarantine, idle taint)
 * live this much longer on the server's, so a skew between the two never expires one early.
 * Their stored times, not the TTL, decide what a load reports.
 */
const CLOCK_MARGIN_MS = 60_000
/** Denials kept per agent at most (the newest); more than any threshold needs. */
const MIN_DENIALS_KEPT = 1000

/** Validate a key prefix (also used by the test helpers). */
export function checkPrefix(prefix: string): string {
  if (!PREFIX_FORM.test(prefix))
    throw new Error('the Redis key prefix must be 1-64 characters of A-Z a-z 0-9 _ . : -')
  return prefix
}

// GCRA over every key of one hit, by the server's clock (exact across instances).
// KEYS: the budgets' keys. ARGV: limit and windowMs of each key, in the same order.
// Returns {1} when allowed, else {0, index of the first refusing key, retryAfterMs}.
// INVARIANT: nothing is written unless every key allows: a refused hit spends nothing.
const HIT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local nextTat = {}
local refused, retry = 0, 0
for i, key in ipairs(KEYS) do
  local limit, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local current = nextTat[key] or tonumber(redis.call('GET', key)) or now
  if current < now then current = now end
  local after = current + window / limit
  local wait = after - window - now
  if wait > 0 then
    if refused == 0 then refused = i end
    retry = math.max(retry, math.ceil(wait))
  else
    nextTat[key] = after
  end
end
if refused > 0 then return {0, refused, retry} end
for key, after in pairs(nextTat) do
  -- Once its arrival time has passed a key counts as absent: it may go then.
  redis.call('SET', key, string.format('%.17g', after), 'PX', math.ceil(after - now) + 1)
end
return {1}
`

// One call's changes, applied whole (a script runs alone on the server).
// KEYS: history, taint, window, window dropped, counter, transitions, denials, quarantine.
// ARGV[1]: the changes as JSON (see \`commitArgs\`). Times that are stored arrive as strings and
// are stored as given: cjson would print numbers with 14 digits at most.
const COMMIT_SCRIPT = `
local c = cjson.decode(ARGV[1])
local H, T, W, WD, N, X, D, Q = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

-- The counter numbers window entries and denials; it must outlive both.
local function keepCounter(ms)
  if redis.call('PTTL', N) < ms then redis.call('PEXPIRE', N, ms) end
end

if c.history then
  redis.call('RPUSH', H, c.history.entry)
  if c.history.limit > 0 then redis.call('LTRIM', H, -c.history.limit, -1) else redis.call('DEL', H) end
  redis.call('PEXPIRE', H, c.history.ttl)
end

if c.taint then
  -- Stored as one string: the forget time ('-' for none), then one entry per line:
  -- "<chars>|<i or ->|<JSON with text last>". JSON.stringify never writes a raw newline.
  local t = c.taint
  local list = {}
  local stored = redis.call('GET', T)
  if stored then
    local lines = {}
    for line in string.gmatch(stored, '[^\\n]+') do lines[#lines + 1] = line end
    local forgetAt = tonumber(lines[1])
    if forgetAt == nil or forgetAt >= tonumber(t.at) then
      for i = 2, #lines do list[#list + 1] = lines[i] end
    end
  end
  for _, e in ipairs(t.entries) do list[#list + 1] = e end
  local first = math.max(1, #list - t.max + 1)
  local newest = {}
  -- INVARIANT: the count cap never forgets that the session read an injection: the oldest
  -- injected entry it drops stays as a mark (text emptied), as the character budget does below.
  for i = 1, first - 1 do
    local flag, json = string.match(list[i], '^%d+|(.)|(.*)$')
    if flag == 'i' then
      local cut = string.find(json, ',"text":', 1, true)
      newest[1] = '0|i|' .. string.sub(json, 1, cut - 1) .. ',"text":""}'
      break
    end
  end
  for i = first, #list do newest[#newest + 1] = list[i] end
  list = newest
  -- Within maxChars from the newest back; older injected entries stay as marks, text emptied.
  if t.maxChars >= 0 then
    local chars = 0
    for i = #list, 1, -1 do
      chars = chars + tonumber(string.match(list[i], '^(%d+)|'))
      if chars > t.maxChars then
        local out = {}
        for j = 1, i do
          local flag, json = string.match(list[j], '^%d+|(.)|(.*)$')
          if flag == 'i' then
            local cut = string.find(json, ',"text":', 1, true)
            out[#out + 1] = '0|i|' .. string.sub(json, 1, cut - 1) .. ',"text":""}'
          end
        end
        for j = i + 1, #list do out[#out + 1] = list[j] end
        list = out
        break
      end
    end
  end
  table.insert(list, 1, t.forgetAt)
  redis.call('SET', T, table.concat(list, '\\n'), 'PX', t.ttl)
end

if c.window then
  -- A sorted set scored by time; members "<seq, 16 digits><JSON of at and params>".
  local w = c.window
  redis.call('ZREMRANGEBYSCORE', W, '-inf', string.format('%.17g', tonumber(w.at) - w.keepMs))
  local seq = redis.call('INCR', N)
  redis.call('ZADD', W, w.at, string.format('%016d', seq) .. w.entry)
  local extra = redis.call('ZCARD', W) - w.max
  if extra > 0 then
    local newestGone = redis.call('ZRANGE', W, extra - 1, extra - 1, 'WITHSCORES')[2]
    redis.call('ZREMRANGEBYRANK', W, 0, extra - 1)
    local old = tonumber(redis.call('GET', WD))
    if old == nil or tonumber(newestGone) > old then redis.call('SET', WD, newestGone) end
  end
  redis.call('PEXPIRE', W, w.ttl)
  -- INVARIANT: the dropped mark outlives its window (a window without its mark fails open).
  if redis.call('EXISTS', WD) == 1 then redis.call('PEXPIRE', WD, w.ttl + 1000) end
  keepCounter(w.ttl + 2000)
end

if c.transition then
  redis.call('HINCRBY', X, c.transition.field, 1)
  redis.call('PEXPIRE', X, c.transition.ttl)
end

if c.denial then
  local d = c.denial
  redis.call('ZREMRANGEBYSCORE', D, '-inf', string.format('%.17g', tonumber(d.at) - d.windowMs))
  redis.call('ZADD', D, d.at, redis.call('INCR', N))
  redis.call('ZREMRANGEBYRANK', D, 0, -d.kept - 1)
  redis.call('PEXPIRE', D, d.ttl)
  keepCounter(d.ttl + 1000)
  if redis.call('ZCARD', D) >= d.threshold then
    local old = tonumber(redis.call('GET', Q))
    if old == nil or tonumber(d.quarantineUntil) > old then
      redis.call('SET', Q, d.quarantineUntil, 'PX', d.quarantineTtl)
    end
  end
end
return 1
`

type Reply = unknown
const scripts = {
  gcraHit: defineScript({
    SCRIPT: HIT_SCRIPT,
    parseCommand(parser, keys: readonly string[], args: readonly string[]) {
      parser.pushKeysLength(keys as RedisArgument[])
      parser.push(...args)
    },
    transformReply: undefined as unknown as () => Reply,
  }),
  commitChanges: defineScript({
    SCRIPT: COMMIT_SCRIPT,
    parseCommand(parser, keys: readonly string[], json: string) {
      parser.pushKeysLength(keys as RedisArgument[])
      parser.push(json)
    },
    transformReply: undefined as unknown as () => Reply,
  }),
}

function newClient(url: string, onError: (err: Error) => void) {
  const client = createClient({
    url,
    scripts,
    // INVARIANT: fail fast. A command while disconnected rejects at once instead of waiting in
    // a queue, and one without a reply rejects after COMMAND_TIMEOUT_MS (even once sent).
    disableOfflineQueue: true,
    commandOptions: { timeout: COMMAND_TIMEOUT_MS, rejectInFlight: true },
    socket: {
      connectTimeout: CONNECT_TIMEOUT_MS,
      reconnectStrategy: (retries) =>
        Math.min(50 * 2 ** retries, MAX_RECONNECT_DELAY_MS) + Math.floor(Math.random() * 50),
    },
  })
  // Without a listener an 'error' event (a dropped connection) would crash the process.
  client.on('error', onError)
  return client
}
type Client = ReturnType<typeof newClient>

/** Open the Redis backend. Resolves even when the server is not reachable yet (it retries). */
export async function redisState(options: RedisStateOptions): Promise<StateBackend> {
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX)
  let lastError: string | undefined
  const client = newClient(options.url, (err) => {
    lastError = err.message
  })
  // The first connection failing is reported on 'error' and retried; calls until then reject.
  const connected = client.connect().then(
    () => undefined,
    () => undefined,
  )
  await waitAtMost(connected, FIRST_CONNECT_WAIT_MS)
  const keys = redisKeys(prefix)
  return {
    rateLimiter: { hit: (limits) => hit(client, keys, limits) },
    sessions: {
      load: (scope) => load(client, keys, scope),
      commit: (changes) => commit(client, keys, changes),
    },
    async health() {
      try {
        await client.withCommandOptions({ timeout: HEALTH_TIMEOUT_MS, rejectInFlight: true }).ping()
        return { ok: true, detail: 'redis' }
      } catch (err) {
        // The URL may hold a password: the detail names only what failed.
        return { ok: false, detail: `redis: ${(err as Error).message || lastError || 'down'}` }
      }
    },
    async close() {
      if (client.isReady) {
        await waitAtMost(
          client.close().catch(() => undefined),
          HEALTH_TIMEOUT_MS,
        )
      }
      if (client.isOpen) client.destroy()
    },
  }
}

/** Every key, under the prefix. Agent ids have no `:`, so `<agent>:<rest>` is unambiguous. */
function redisKeys(prefix: string) {
  return {
    rate: (key: string) => `${prefix}rl:${key}`,
    history: (agent: string) => `${prefix}h:${agent}`,
    taint: (agent: string, session: string) => `${prefix}t:${agent}:${session}`,
    window: (agent: string, key: string) => `${prefix}w:${agent}:${key}`,
    dropped: (agent: string, key: string) => `${prefix}wd:${agent}:${key}`,
    counter: (agent: string) => `${prefix}n:${agent}`,
    transitions: (agent: string) => `${prefix}x:${agent}`,
    denials: (agent: string) => `${prefix}d:${agent}`,
    quarantine: (agent: string) => `${prefix}q:${agent}`,
  }
}
type Keys = ReturnType<typeof redisKeys>

async function hit(
  client: Client,
  keys: Keys,
  limits: readonly RateLimit[],
): Promise<RateLimitResult> {
  if (limits.length === 0) return { allowed: true }
  const args = limits.flatMap((l) => [String(l.limit), String(l.windowMs)])
  const reply = (await client.gcraHit(
    limits.map((l) => keys.rate(l.key)),
    args,
  )) as number[]
  if (reply[0] === 1) return { allowed: true }
  return { allowed: false, key: limits[reply[1]! - 1]!.key, retryAfterMs: reply[2]! }
}

const NO_ENTRIES: readonly never[] = Object.freeze([])

async function load(client: Client, keys: Keys, scope: SessionScope): Promise<SessionSnapshot> {
  const { agent, session, delegatorSession: from } = scope
  const members = [agent, ...(scope.chain ?? [])]
  const windowKeys = scope.windows ?? []
  // One MULTI: every read sees the same moment, in one round trip. Optional reads go last.
  const multi = client
    .multi()
    .lRange(keys.history(agent), 0, -1)
    .hGetAll(keys.transitions(agent))
    .mGet(members.map(keys.quarantine))
  for (const w of windowKeys) multi.zRange(keys.window(agent, w), 0, -1).get(keys.dropped(agent, w))
  if (session !== undefined) multi.get(keys.taint(agent, session))
  if (from) multi.get(keys.taint(from.agent, from.session))
  const replies = (await multi.exec()) as unknown[]
  const [history, transitions, quarantines] = replies as [
    string[],
    Record<string, string>,
    (string | null)[],
  ]
  const windows = replies.slice(3, 3 + 2 * windowKeys.length) as (string[] | string | null)[]
  const taints = replies.slice(3 + 2 * windowKeys.length) as (string | null)[]
  return {
    history: history.map((h) => JSON.parse(h) as HistoryEntry),
    taint: session === undefined ? NO_ENTRIES : parseTaint(taints[0]!, scope.now),
    delegatorTaint: from
      ? parseTaint(taints[session === undefined ? 0 : 1]!, scope.now)
      : NO_ENTRIES,
    quarantinedUntil: parseQuarantines(members, quarantines, scope.now),
    transitions: parseTransitions(transitions),
    windows: parseWindows(windowKeys, windows),
  }
}

/** A stored session's entries, unless it was idle past its forget time at `now`. */
function parseTaint(stored: string | null, now: number): readonly TaintEntry[] {
  if (stored === null) return NO_ENTRIES
  const [forgetAt, ...lines] = stored.split('\n')
  if (forgetAt !== '-' && Number(forgetAt) < now) return NO_ENTRIES
  return lines.map((line) => JSON.parse(line.slice(line.indexOf('|', line.indexOf('|') + 1) + 1)))
}

function parseQuarantines(
  members: readonly string[],
  values: readonly (string | null)[],
  now: number,
): ReadonlyMap<string, number> {
  const out = new Map<string, number>()
  members.forEach((id, i) => {
    const until = values[i] == null ? undefined : Number(values[i])
    if (until !== undefined && until > now) out.set(id, until)
  })
  return out
}

/** Hash fields are `from \0 to` (tool names have no NUL). */
function parseTransitions(
  fields: Record<string, string>,
): ReadonlyMap<string, Readonly<Record<string, number>>> {
  const rows = new Map<string, Record<string, number>>()
  for (const [field, count] of Object.entries(fields)) {
    const cut = field.indexOf('\0')
    const from = field.slice(0, cut)
    // Null prototype: a tool named like an Object.prototype member is an ordinary key.
    let row = rows.get(from)
    if (!row) rows.set(from, (row = Object.create(null) as Record<string, number>))
    row[field.slice(cut + 1)] = Number(count)
  }
  return rows
}

function parseWindows(
  windowKeys: readonly string[],
  replies: readonly (string[] | string | null)[],
): ReadonlyMap<string, RuleWindow> {
  const out = new Map<string, RuleWindow>()
  windowKeys.forEach((key, i) => {
    const members = replies[2 * i] as string[]
    const dropped = replies[2 * i + 1] as string | null
    if (members.length === 0 && dropped === null) return
    const entries = members.map((m): KeptWindowEntry => {
      const { at, params } = JSON.parse(m.slice(16)) as KeptWindowEntry
      return { at, params, seq: Number(m.slice(0, 16)) }
    })
    out.set(key, dropped === null ? { entries } : { entries, droppedUntil: Number(dropped) })
  })
  return out
}

async function commit(client: Client, keys: Keys, c: SessionChanges): Promise<void> {
  const args = commitArgs(c)
  if (!args) return
  const { agent } = c
  const w = c.window?.key ?? ''
  await client.commitChanges(
    [
      keys.history(agent),
      keys.taint(agent, c.taint?.session ?? ''),
      keys.window(agent, w),
      keys.dropped(agent, w),
      keys.counter(agent),
      keys.transitions(agent),
      keys.denials(agent),
      keys.quarantine(agent),
    ],
    args,
  )
}

/** The script's JSON argument, or nothing when there is nothing to change. */
function commitArgs(c: SessionChanges): string | undefined {
  const out: Record<string, unknown> = {}
  if (c.history)
    out.history = {
      entry: JSON.stringify(c.history.entry),
      limit: c.history.limit,
      ttl: HISTORY_TTL_MS,
    }
  if (c.taint && c.taint.entries.length > 0) {
    const { entries, maxChars, idleMs } = c.taint
    const at = entries[entries.length - 1]!.at
    const idle = idleMs !== undefined && Number.isFinite(idleMs)
    out.taint = {
      at: String(at),
      entries: entries.map(taintLine),
      max: MAX_TAINT_ENTRIES,
      maxChars: maxChars !== undefined && Number.isFinite(maxChars) ? maxChars : -1,
      forgetAt: idle ? String(at + idleMs) : '-',
      ttl: idle ? idleMs + CLOCK_MARGIN_MS : TAINT_TTL_MS,
    }
  }
  if (c.window) {
    const { entry, keepMs, max } = c.window
    out.window = {
      at: String(entry.at),
      entry: JSON.stringify({ at: entry.at, params: entry.params }),
      keepMs,
      max,
      ttl: keepMs + CLOCK_MARGIN_MS,
    }
  }
  if (c.transition)
    out.transition = {
      field: `${c.transition.from}\0${c.transition.to}`,
      ttl: TRANSITIONS_TTL_MS,
    }
  if (c.denial) {
    const { at, windowMs, threshold, quarantineUntil } = c.denial
    out.denial = {
      at: String(at),
      windowMs,
      threshold,
      kept: Math.max(threshold, MIN_DENIALS_KEPT),
      ttl: windowMs + CLOCK_MARGIN_MS,
      quarantineUntil: String(quarantineUntil),
      // Measured from the denial's own time: the caller's clock and the server's may differ.
      quarantineTtl: Math.max(1, quarantineUntil - at) + CLOCK_MARGIN_MS,
    }
  }
  return Object.keys(out).length > 0 ? JSON.stringify(out) : undefined
}

/**
 * One stored taint entry: its length in characters (as `maxChars` counts them), whether it was
 * an injection, and its JSON with `text` last, so the script can empty the text of a mark
 * without decoding and re-encoding it.
 */
function taintLine(e: TaintEntry): string {
  const json = JSON.stringify({
    source: e.source,
    at: e.at,
    ...(e.injected && { injected: true }),
    ...(e.truncated && { truncated: true }),
    text: e.text,
  })
  return `${e.text.length}|${e.injected ? 'i' : '-'}|${json}`
}

/** Resolve when `p` settles or after `ms`, whichever is first. */
async function waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))])
  clearTimeout(timer)
}
