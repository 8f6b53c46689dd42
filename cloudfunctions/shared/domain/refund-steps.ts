/**
 * One step of a refund: a compare-and-set of its status that writes the step's history entry
 * (with its own reason) in the same update, so a reason always belongs to the attempt that
 * produced it and the current view never shows a stale one.
 */
import type { RefundHistoryEntry, RefundStatus } from '../contract';
import type { Query } from '../store';
import type { Deps } from './deps';
import { COLLECTIONS, type RefundDoc } from './model';

export interface Step {
  to: RefundStatus;
  source: RefundHistoryEntry['source'];
  /** WeChat's err_code and description, or the merchant's comment. */
  reason?: string;
}

export interface StepOptions {
  /** Fields removed by the step (a reason that no longer applies, a finished schedule). */
  unset?: readonly (keyof RefundDoc)[];
  /** Extra conditions: the caller's lease, no successor yet. */
  where?: Query;
  /** Counts a new submission attempt. */
  countAttempt?: boolean;
}

/**
 * Moves `refund` from `from` to `step.to` if it is still in `from`; resolves the refund as it
 * now is, or null when another writer moved it first.
 */
export async function stepRefund(
  deps: Deps,
  refund: RefundDoc,
  from: RefundStatus,
  step: Step,
  set: Partial<RefundDoc> = {},
  options: StepOptions = {},
): Promise<RefundDoc | null> {
  const { store } = deps;
  const _ = store.cmd;
  const now = deps.now();
  const entry: RefundHistoryEntry = { atMs: now, status: step.to, source: step.source };
  // Stryker disable next-line MethodExpression: every caller's reason is 200 characters at most already (comments are validated to 200, WeChat's reasons cut by failureReason); the cut keeps it so.
  if (step.reason) entry.reason = step.reason.slice(0, 200);
  const data: Record<string, unknown> = {
    ...set,
    status: step.to,
    updatedAtMs: now,
    // An array, so the SDK never reads the entry as push modifiers (each/slice/sort).
    history: _.push([entry]),
  };
  // Stryker disable next-line ArrayDeclaration: removing a field the document does not have changes nothing.
  for (const k of options.unset ?? []) data[k] = _.remove();
  if (options.countAttempt) data['submitAttempts'] = _.inc(1);
  const won = await store.cas(
    COLLECTIONS.refunds,
    {
      _id: refund._id,
      status: from,
      ...options.where,
    },
    data,
  );
  if (!won) return null;
  const next: RefundDoc = {
    ...refund,
    ...set,
    status: step.to,
    updatedAtMs: now,
    history: [...(refund.history ?? []), entry],
    submitAttempts: refund.submitAttempts + (options.countAttempt ? 1 : 0),
  };
  // Stryker disable next-line ArrayDeclaration: deleting a field the copy does not have changes nothing.
  for (const k of options.unset ?? []) delete next[k];
  return next;
}

export function getRefund(deps: Deps, refundId: string): Promise<RefundDoc | null> {
  return deps.store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
}
