import type { FastifyPluginAsync } from 'fastify'
import type { Runtime } from '../../pipeline/runtime.js'
import { requireApprover } from '../guards.js'

/** `GET /auth/whoami`: who an approver token belongs to (the dashboard's sign-in check). */
export const authRoutes: FastifyPluginAsync<{ runtime: Runtime }> = async (app, { runtime }) => {
  app.get('/auth/whoami', async (req) => {
    const a = requireApprover(runtime, req.headers.authorization)
    return { approver: { id: a.id, name: a.name, roles: a.roles } }
  })
}
