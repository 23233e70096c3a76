/**
 * `npm run cluster`: two gateways sharing PostgreSQL and Redis behind a local load balancer on
 * the gateway's port (8004), with the agent API (8005) and the dashboard (8006) in front of the
 * balancer, so the dashboard shows both instances' world as one.
 *
 *   DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
 *   REDIS_URL    (default redis://127.0.0.1:6379)
 *   INSTANCES    (default 2; gateways on 8101, 8102, ...)
 *   WARDEN_CONFIG (default: the demo configuration)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startBalancer, type Backend } from './balancer.js'

const BIN = fileURLToPath(new URL('../bin/warden.js', import.meta.url))
const env = {
  ...process.env,
  DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
}
const instances = Number(process.env.INSTANCES ?? 2)
const children: ChildProcess[] = []

function run(args: string[], extra: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...env, ...extra },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  children.push(child)
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`warden ${args.join(' ')} exited (${code ?? signal})`)
  })
  return child
}

async function waitReady(b: Backend): Promise<void> {
  const end = Date.now() + 30_000
  for (;;) {
    try {
      const res = await fetch(`http://${b.host}:${b.port}/health/ready`)
      if (res.ok) return
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`gateway on ${b.port} did not become ready`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

let stopping = false
const backends: Backend[] = Array.from({ length: instances }, (_, i) => ({
  host: '127.0.0.1',
  port: 8101 + i,
}))
// The first instance applies the migrations before the others start (they would wait on the
// migration lock anyway).
for (const b of backends) {
  run(['gateway'], { PORT: String(b.port) })
  await waitReady(b)
}
const balancer = await startBalancer(backends, { port: 8004 })
console.log(`load balancer on 8004 → gateways on ${backends.map((b) => b.port).join(', ')}`)
const gatewayUrl = `http://127.0.0.1:${balancer.port}`
run(['agents'], { GATEWAY_URL: gatewayUrl })
run(['dashboard'], { GATEWAY_URL: gatewayUrl })
console.log('agent API on 8005, dashboard on http://127.0.0.1:8006 (Ctrl-C stops everything)')

const stop = async () => {
  if (stopping) return
  stopping = true
  for (const c of children) c.kill('SIGTERM')
  await balancer.close()
  process.exit(0)
}
process.once('SIGINT', () => void stop())
process.once('SIGTERM', () => void stop())
