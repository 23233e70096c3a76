import pg from 'pg'

/** The channel every append transaction notifies on commit (its payload: the last `seq`). */
export const AUDIT_CHANNEL = 'warden_audit'

/** Reconnect delays after the listening connection drops: doubling from 100 ms up to 5 s. */
const MIN_BACKOFF_MS = 100
const MAX_BACKOFF_MS = 5000

/**
 * Listen for audit commits by any instance (`LISTEN warden_audit`) on a connection of its own,
 * outside the pool. PostgreSQL sends a notification only when the appending transaction
 * commits, so a notice never comes before its events are readable. The connection reconnects
 * by itself; after every (re)connect `onCommit` is called once, since notices sent while it was
 * down are lost. Resolves once the first `LISTEN` is in place; the result stops listening.
 */
export async function listenForCommits(
  url: string,
  onCommit: () => void,
  onError: (err: unknown) => void,
): Promise<() => Promise<void>> {
  let client: pg.Client | undefined
  let stopped = false
  let backoff = MIN_BACKOFF_MS
  let retry: NodeJS.Timeout | undefined

  let started = false
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
    c.on('notification', (n) => {
      if (n.channel === AUDIT_CHANNEL) onCommit()
    })
    c.on('error', (err) => {
      onError(err)
      drop(c)
    })
    c.on('end', () => drop(c))
    try {
      await c.connect()
      await c.query(`LISTEN ${AUDIT_CHANNEL}`)
    } catch (err) {
      // A connection that opened but could not LISTEN is of no use: never leave it open.
      await c.end().catch(() => {})
      throw err
    }
    if (stopped) {
      // Stopped while this (re)connect was under way.
      await c.end().catch(() => {})
      return
    }
    client = c
    started = true
    backoff = MIN_BACKOFF_MS
    onCommit()
  }
  const drop = (c: pg.Client) => {
    if (client !== c && client !== undefined) return
    client = undefined
    c.end().catch(() => {})
    // Before the first LISTEN succeeded the caller gets the error instead: no retries behind it.
    if (started) schedule()
  }
  const schedule = () => {
    if (stopped || retry) return
    retry = setTimeout(() => {
      retry = undefined
      connect().catch((err: unknown) => {
        onError(err)
        schedule()
      })
    }, backoff)
    retry.unref()
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)
  }

  await connect()
  return async () => {
    stopped = true
    if (retry) clearTimeout(retry)
    const c = client
    client = undefined
    await c?.end().catch(() => {})
  }
}
