import type { Deps } from './deps';
import { COLLECTIONS, type PaymentEventDoc } from './model';

/**
 * Appends a transition to payment_events. The id is `<subject>:<STATUS>`, so however many
 * notifies, queries and reconcile runs race to record the same transition, one entry exists.
 * A state a refund can enter more than once (FAILED, then retried and FAILED again) passes
 * the attempt as `occurrence`, so each attempt keeps its own entry and its own reason.
 */
export async function recordEvent(
  deps: Deps,
  e: Omit<PaymentEventDoc, '_id' | 'atMs'>,
  occurrence = 1,
): Promise<void> {
  const subject = e.kind === 'order' ? e.orderId : e.refundId;
  const id = occurrence > 1 ? `${subject}:${e.to}:${occurrence}` : `${subject}:${e.to}`;
  const doc: PaymentEventDoc = { _id: id, ...e, atMs: deps.now() };
  await deps.store.insert(COLLECTIONS.events, doc);
}
