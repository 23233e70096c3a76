import type { ValidateFunction } from 'ajv'
import { ConfigError, type LoadedConfig } from '../config/loader.js'
import type {
  AgentConfig,
  ApproverConfig,
  Classification,
  ToolConfig,
  WardenConfig,
  PiiKind,
} from '../domain/config.js'
import { delegationSigner, type DelegationSigner } from '../auth/delegation.js'
import { compilePolicy, type CompiledPolicy } from '../policy/cel-policy.js'
import { compileToolSchemas } from '../policy/param-schemas.js'
import type { PinBlock } from '../domain/tool-pins.js'
import type { StateBackend } from '../state/types.js'
import { createJudge, type Judge } from '../judge/index.js'

/** Everything compiled once from a configuration that the layers read on every call. */
export interface Runtime {
  readonly config: WardenConfig
  readonly policyVersion: string
  readonly agentsByKeyHash: ReadonlyMap<string, AgentConfig>
  readonly approversByTokenHash: ReadonlyMap<string, ApproverConfig>
  readonly tools: ReadonlyMap<string, ToolConfig>
  readonly schemas: ReadonlyMap<string, ValidateFunction>
  readonly policy: CompiledPolicy
  /** Rate limits and the agents' and sessions' state (history, taint, quarantine). */
  readonly state: StateBackend
  /** PII kinds masked in results delivered to agents, by the tool's data classification. */
  readonly maskInResults: Readonly<Record<Classification, ReadonlySet<PiiKind>>>
  /** Signs and checks delegation tokens (agent-to-agent messages). */
  readonly delegation: DelegationSigner
  /**
   * Why an upstream (MCP) tool's definition may not be used now, if it may not: while its pin is
   * blocked (decision 0021). Absent where there are no upstreams.
   */
  readonly definitionBlock?: (tool: string) => PinBlock | undefined
  /** The second opinion on grey-zone injection scores, when `injection.judge` is configured. */
  readonly judge?: Judge
}

/** What the runtime reads that is not configuration: live facts owned by other parts. */
export interface RuntimeSources {
  definitionBlock?: Runtime['definitionBlock']
  /** Where the configuration's `*_env` names are read (the judge's API key); main.ts's env. */
  env?: Readonly<Record<string, string | undefined>>
}

/** Compile a loaded configuration against a state backend. */
export function buildRuntime(
  loaded: LoadedConfig,
  state: StateBackend,
  sources: RuntimeSources = {},
): Runtime {
  const { config } = loaded
  return {
    config,
    policyVersion: loaded.policyVersion,
    agentsByKeyHash: new Map(config.agents.map((a) => [a.key_sha256, a])),
    approversByTokenHash: new Map(config.approvals.approvers.map((a) => [a.token_sha256, a])),
    tools: new Map(config.tools.map((t) => [t.name, t])),
    schemas: compileToolSchemas(config.tools),
    policy: compilePolicy(config),
    state,
    delegation: delegationSigner(config),
    maskInResults: {
      public: new Set(config.pii.mask_in_results.public),
      internal: new Set(config.pii.mask_in_results.internal),
      confidential: new Set(config.pii.mask_in_results.confidential),
      restricted: new Set(config.pii.mask_in_results.restricted),
    },
    ...(sources.definitionBlock && { definitionBlock: sources.definitionBlock }),
    ...(config.injection.judge && { judge: judgeOf(loaded, sources) }),
  }
}

/** The configured judge; a configuration it cannot use is refused like any bad configuration. */
function judgeOf(loaded: LoadedConfig, sources: RuntimeSources): Judge {
  try {
    return createJudge(loaded.config.injection.judge!, sources.env ?? {})
  } catch (err) {
    const file = loaded.sources.injection ?? loaded.file
    throw new ConfigError(`${file}: injection.judge: ${(err as Error).message}`)
  }
}

/**
 * The runtime a configuration reload can replace. `current` is one immutable `Runtime`; a reload
 * swaps the reference in one assignment, so a call that took `current` when it started is decided
 * (and its result inspected) under that version to the end, and a call that starts after the swap
 * sees the new one. Reading a field of the `LiveRuntime` itself reads the newest runtime: that is
 * what the parts outside a call use (who is an approver, the health page's policy version).
 */
export class LiveRuntime implements Runtime {
  #current: Runtime

  constructor(initial: Runtime) {
    this.#current = initial
  }

  get current(): Runtime {
    return this.#current
  }

  /** Make `next` the runtime of every call that starts from now on. */
  swap(next: Runtime): void {
    this.#current = next
  }

  get config() {
    return this.#current.config
  }
  get policyVersion() {
    return this.#current.policyVersion
  }
  get agentsByKeyHash() {
    return this.#current.agentsByKeyHash
  }
  get approversByTokenHash() {
    return this.#current.approversByTokenHash
  }
  get tools() {
    return this.#current.tools
  }
  get schemas() {
    return this.#current.schemas
  }
  get policy() {
    return this.#current.policy
  }
  get state() {
    return this.#current.state
  }
  get maskInResults() {
    return this.#current.maskInResults
  }
  get delegation() {
    return this.#current.delegation
  }
  get definitionBlock() {
    return this.#current.definitionBlock
  }
  get judge() {
    return this.#current.judge
  }
}

/** The runtime a call started under: a live runtime's current one, or `rt` itself. */
export function snapshotOf(rt: Runtime): Runtime {
  return rt instanceof LiveRuntime ? rt.current : rt
}
