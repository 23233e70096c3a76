// The image's HEALTHCHECK: asks the Warden process in this container whether it is ready. Which
// endpoint depends on the command the container runs (PID 1's arguments): the gateway's
// `/health/ready` (store and state answer), the agent API's `/health` (it reaches its gateway) or
// the dashboard's own config (it serves). One-shot commands (migrate, audit verify) have nothing
// to check. WARDEN_HEALTH_URL overrides the choice.
import { readFileSync } from 'node:fs'

const env = process.env
const args = readFileSync('/proc/1/cmdline', 'utf8').split('\0')
const command = args.slice(args.findIndex((a) => a.endsWith('warden.js')) + 1)[0] ?? 'gateway'

const urls = {
  start: `http://127.0.0.1:${env.PORT || 8004}/health/ready`,
  gateway: `http://127.0.0.1:${env.PORT || 8004}/health/ready`,
  agents: `http://127.0.0.1:${env.AGENTS_PORT || 8005}/health`,
  dashboard: `http://127.0.0.1:${env.DASHBOARD_PORT || 8006}/dashboard/config.json`,
}
const url = env.WARDEN_HEALTH_URL || urls[command]
if (url === undefined) process.exit(0)
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) })
  process.exit(res.ok ? 0 : 1)
} catch {
  process.exit(1)
}
