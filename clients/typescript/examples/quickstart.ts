/**
 * The guide's first program (docs/integrate.md): two tool calls of the demo's refund agent
 * through a running gateway. Run from the repository: `node --import tsx
 * clients/typescript/examples/quickstart.ts` (after `npm start`); WARDEN_URL overrides the address.
 */
import { createWardenClient, isWardenDenied } from '../src/index.js'

const warden = createWardenClient({
  baseUrl: process.env.WARDEN_URL ?? 'http://localhost:8004',
  agentId: 'refund-agent',
  agentKey: process.env.WARDEN_AGENT_KEY ?? 'demo-refund-agent-key',
})

// Every call of `refund` goes through Warden, which decides and then runs the tool.
const refund = warden.wrapTool('issue_refund', undefined, { sessionId: `quickstart-${Date.now()}` })

const small = await refund({ order_id: 'ORD-1005', amount: 10, reason: 'damaged in transit' })
console.log('allowed:', JSON.stringify(small))

const large = await refund({ order_id: 'ORD-1006', amount: 900, reason: 'damaged in transit' })
if (isWardenDenied(large)) console.log(`denied: ${large.code}: ${large.reason}`)
