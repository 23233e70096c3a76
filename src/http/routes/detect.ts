import type { FastifyPluginAsync } from 'fastify'
import { scanText } from '../../detect/injection.js'
import type { Runtime } from '../../pipeline/runtime.js'
import { parseDetectBody } from '../schemas.js'

/** `POST /detect/injection`: the prompt-injection detector on any text. */
export const detectRoutes: FastifyPluginAsync<{ runtime: Runtime }> = async (app, { runtime }) => {
  app.post('/detect/injection', async (req) =>
    scanText(parseDetectBody(req.body).text, runtime.config.injection.hold_at),
  )
}
