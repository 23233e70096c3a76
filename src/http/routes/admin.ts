import type { FastifyPluginAsync } from 'fastify'
import type { Runtime } from '../../pipeline/runtime.js'
import { requireApprover } from '../guards.js'
import type { ReloadResponse } from '../schemas.js'

/** What the admin routes drive: the gateway's configuration reload (`Warden.reload`). */
export interface AdminRoutesOptions {
  runtime: Runtime
  /** Reload the configuration files on behalf of `by`; throws a `WardenError` on refusal. */
  reload(by: string): Promise<ReloadReport>
}

/** Which policy version a reload replaced with which (`changed`: false when they are equal). */
export interface ReloadReport {
  file: string
  previous_policy_version: string
  policy_version: string
  changed: boolean
}

/**
 * `POST /admin/reload`: an approver puts the configuration files in force again without a
 * restart (decision 0022). The same as `SIGHUP`, with the approver named in the audit event.
 */
export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (
  app,
  { runtime, reload },
) => {
  app.post('/admin/reload', async (req): Promise<ReloadResponse> => {
    const approver = requireApprover(runtime, req.headers.authorization)
    return { reloaded: true, ...(await reload(approver.id)) }
  })
}
