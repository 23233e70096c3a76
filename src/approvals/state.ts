import type { ApprovalStatus } from '../store/types.js'

/**
 * The approval lifecycle. A held call starts `pending` and is resolved exactly once: by a person
 * (`approved`, `denied`) or by its TTL (`expired`, a deny). Nothing leaves a resolved state. An
 * approved call's execution is recorded once more, separately (`executed_at`), not as a state.
 *
 *   pending ──approve──▶ approved ──(runs once)──▶ executed_at set
 *      │────deny──────▶ denied
 *      └────TTL───────▶ expired
 */
export const TRANSITIONS: Readonly<Record<ApprovalStatus, readonly ApprovalStatus[]>> = {
  pending: ['approved', 'denied', 'expired'],
  approved: [],
  denied: [],
  expired: [],
}

// ROLLBACK, the one way back: a decision whose audit record could not be written is returned to
// `pending` (`ApprovalStore.reopen`: same decider, nothing ran yet), because a decision the log
// does not have must not take effect. It is not a transition anyone can ask for.

export function canTransition(from: ApprovalStatus, to: ApprovalStatus): boolean {
  return TRANSITIONS[from].includes(to)
}
