import { DemoBackend, DemoError } from '../demo/backend.js'
import { ToolFailure, type Executor } from './types.js'

type Handler = (params: never) => unknown

/** Executes the seed's seven tools against the in-process demo backend. */
export function demoExecutor(backend: DemoBackend = new DemoBackend()): Executor {
  return {
    async execute(tool, params) {
      const handler = (backend as unknown as Record<string, Handler | undefined>)[tool.name]
      if (typeof handler !== 'function')
        throw new ToolFailure('error', `the demo backend has no tool \`${tool.name}\``)
      try {
        return handler.call(backend, params as never)
      } catch (err) {
        if (err instanceof DemoError) throw new ToolFailure('error', err.message)
        throw err
      }
    },
  }
}
