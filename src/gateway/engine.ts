import { Approvals } from '../approvals/service.js'
import { recorder as auditRecorder, type Recorder } from '../audit/recorder.js'
import type { ToolConfig } from '../domain/config.js'
import type { Decision } from '../domain/types.js'
import type { EventBus } from '../events/bus.js'
import { toolRunner, type ToolRunnerDeps } from '../executors/tool-runner.js'
import type { Executor } from '../executors/types.js'
import type { Pipeline } from '../pipeline/runner.js'
import type { Stores } from '../store/types.js'
import { messenger, type Messenger } from '../messaging/service.js'
import { Gateway } from './service.js'

export interface EngineDeps {
  pipeline: Pipeline
  stores: Pick<Stores, 'audit' | 'approvals' | 'nonces' | 'idempotency'>
  bus: EventBus
  executors: Record<ToolConfig['executor']['type'], Executor>
  onError?: (err: unknown, where: string) => void
  onDecision?: (decision: Decision, principal: string | null) => void
  onToolRun?: ToolRunnerDeps['onToolRun']
  /** Prefix of new approval ids (a demo scenario's world uses `apr_scenario_`). */
  approvalIdPrefix?: string
}

/** The engine's parts, wired: what every door calls. */
export interface Engine {
  gateway: Gateway
  approvals: Approvals
  recorder: Recorder
  messenger: Messenger
  /**
   * For shutdown, after the doors stopped taking requests: wait (at most `timeoutMs`) until every
   * tool that started running has its outcome recorded; false if some had not by then.
   */
  drain(timeoutMs: number): Promise<boolean>
}

/** Wire the engine from its capabilities; each part depends only on the small pieces it uses. */
export function createEngine(deps: EngineDeps): Engine {
  const runtime = deps.pipeline.runtime
  const onError = deps.onError ?? (() => {})
  const recorder = auditRecorder(deps.stores.audit, deps.bus)
  const runner = toolRunner({
    runtime,
    recorder,
    executors: deps.executors,
    onError,
    ...(deps.onToolRun && { onToolRun: deps.onToolRun }),
  })
  const approvals = new Approvals({
    runtime,
    approvalStore: deps.stores.approvals,
    nonces: deps.stores.nonces,
    recorder,
    runner,
    bus: deps.bus,
    ...(deps.approvalIdPrefix !== undefined && { idPrefix: deps.approvalIdPrefix }),
    onError,
  })
  const gateway = new Gateway({
    pipeline: deps.pipeline,
    recorder,
    runner,
    approvals,
    idempotency: deps.stores.idempotency,
    onError,
    ...(deps.onDecision && { onDecision: deps.onDecision }),
  })
  const messages = messenger({ runtime, pipeline: deps.pipeline, recorder, onError })
  return {
    gateway,
    approvals,
    recorder,
    messenger: messages,
    drain: (timeoutMs) => runner.settled(timeoutMs),
  }
}
