/**
 * An agent run stopped on a hold, as stored. `state` is the agent runtime's own JSON (the store
 * never looks inside); it holds no secret: the agent's key is looked up again on resume.
 */
export interface HeldRun {
  id: string
  agentId: string
  state: unknown
}

/** The right to drive one run; valid until it expires, is renewed away, or is given back. */
export interface RunLease {
  runId: string
  token: string
}

export type RunClaim =
  | { ok: true; run: HeldRun; lease: RunLease }
  /** `missing`: no such run (never held, finished, expired or evicted); `busy`: leased now. */
  | { ok: false; reason: 'missing' | 'busy' }

/**
 * Held agent runs, shared by every agent API instance over the same backend. A run is driven by
 * whoever holds its lease; a crashed driver's lease runs out and the run can be claimed again.
 *
 * INVARIANT: a run is kept at most `ttlMs` after its latest save, or until its lease ends if
 * that is later (a run being driven never expires under its driver), and at most `maxRuns`
 * runs are kept: a save beyond the cap evicts the runs touched least recently.
 */
export interface RunStore {
  /** How long a claim or renewal lasts: a driver renews well within it while it works. */
  readonly leaseMs: number
  /** Store a new hold (replacing a run of the same id), unleased. */
  save(run: HeldRun): Promise<void>
  /** Read a run without claiming it; null when missing or expired. */
  load(id: string): Promise<HeldRun | null>
  /** Take the lease, atomically: of two concurrent claims at most one succeeds. */
  claim(id: string): Promise<RunClaim>
  /** Extend a lease that is still held; false when it was lost (taken over, or the run is gone). */
  renew(lease: RunLease): Promise<boolean>
  /**
   * Give the lease back. With `state` the run is held again on a new hold (its TTL starts over);
   * without, it is left as it was. False when the lease was lost (nothing is written).
   */
  release(lease: RunLease, state?: unknown): Promise<boolean>
  /** Delete a finished run, if the lease is still held; false when it was lost. */
  delete(lease: RunLease): Promise<boolean>
  close(): Promise<void>
}

export interface RunStoreOptions {
  /** How long a held run is kept after its latest save (default one hour). */
  ttlMs?: number
  /** How many held runs are kept at most (default 1,000). */
  maxRuns?: number
  /** How long a claim lasts unless renewed (default five minutes). */
  leaseMs?: number
  /** Milliseconds since the epoch (default `Date.now`); tests inject a clock. */
  now?: () => number
}

/** The settings every backend applies, with their defaults filled in. */
export function runStoreSettings(opts: RunStoreOptions): Required<RunStoreOptions> {
  return {
    ttlMs: opts.ttlMs ?? 3_600_000,
    maxRuns: opts.maxRuns ?? 1000,
    leaseMs: opts.leaseMs ?? 300_000,
    now: opts.now ?? Date.now,
  }
}
