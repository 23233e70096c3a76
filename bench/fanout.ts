/**
 * Events across instances (issue 12, decision 0019): how quickly another instance learns that
 * events were committed, by PostgreSQL `NOTIFY` sent inside the committing transaction versus
 * Redis `PUBLISH` sent after the commit. Each round commits one row in a transaction on
 * PostgreSQL; the notice variant notifies inside it, the pub/sub variant publishes after COMMIT
 * returns. Latency is from the start of the round to the listener's wake-up.
 *
 *   node --import tsx bench/fanout.ts      (FANOUT_ROUNDS=2000; the shared servers at
 *                                            127.0.0.1:5432 database test, 127.0.0.1:6379)
 */
import pg from 'pg'
import { createClient } from 'redis'

const ROUNDS = Number(process.env.FANOUT_ROUNDS ?? 2000)
const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const CHANNEL = 'warden_bench_fanout'

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

async function measure(
  name: string,
  round: () => Promise<void>,
  arm: (wake: () => void) => void,
): Promise<{ name: string; p50: number; p99: number }> {
  let waiting: (() => void) | undefined
  arm(() => waiting?.())
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const woke = new Promise<void>((resolve) => (waiting = resolve))
    const t = performance.now()
    await round()
    await woke
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  return { name, p50: percentile(times, 50), p99: percentile(times, 99) }
}

async function main(): Promise<void> {
  const writer = new pg.Client({ connectionString: PG_URL })
  const listener = new pg.Client({ connectionString: PG_URL })
  await writer.connect()
  await listener.connect()
  await writer.query('CREATE TEMP TABLE fanout_rows (n int)')
  await listener.query(`LISTEN ${CHANNEL}`)
  const pub = createClient({ url: REDIS_URL })
  const sub = pub.duplicate()
  await pub.connect()
  await sub.connect()
  try {
    const commit = async (notify: boolean) => {
      await writer.query('BEGIN')
      await writer.query('INSERT INTO fanout_rows VALUES (1)')
      if (notify) await writer.query(`SELECT pg_notify('${CHANNEL}', '1')`)
      await writer.query('COMMIT')
    }
    // Baseline: the commit alone, nobody told.
    const bare: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now()
      await commit(false)
      bare.push(performance.now() - t)
    }
    bare.sort((a, b) => a - b)
    const notice = await measure(
      'PostgreSQL NOTIFY in the transaction',
      () => commit(true),
      (wake) => listener.on('notification', wake),
    )
    let onMessage: () => void = () => {}
    await sub.subscribe(CHANNEL, () => onMessage())
    const pubsub = await measure(
      'Redis PUBLISH after COMMIT',
      async () => {
        await commit(false)
        await pub.publish(CHANNEL, '1')
      },
      (wake) => (onMessage = wake),
    )
    const b50 = percentile(bare, 50)
    console.log(`rounds: ${ROUNDS}`)
    console.log(
      `commit only (baseline): p50 ${b50.toFixed(3)} ms, p99 ${percentile(bare, 99).toFixed(3)} ms`,
    )
    for (const r of [notice, pubsub])
      console.log(
        `${r.name}: p50 ${r.p50.toFixed(3)} ms (${(r.p50 / b50).toFixed(2)}× baseline), p99 ${r.p99.toFixed(3)} ms`,
      )
  } finally {
    await writer.end()
    await listener.end()
    await sub.quit()
    await pub.quit()
  }
}

await main()
