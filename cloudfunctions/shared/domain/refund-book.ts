/**
 * The order's refund book: every refund of the order has one entry, `refundBook.<refundId>`,
 * holding its amount and where that amount stands. Each step is one conditional update on
 * the order that moves the entry between states and the order's totals with it:
 *
 *   reserve   (none)     → reserved   usedFee +f  reservedFee +f  open +1  count +1
 *   settle    reserved   → settled               reservedFee −f  refundedFee +f  open −1
 *   release   reserved   → released   usedFee −f  reservedFee −f  open −1  count −1
 *   move      reserved   → moved      (a CLOSED refund retried: its successor's entry takes
 *                                      the reservation over; no total changes)
 *   late      released/moved → settled usedFee +f  refundedFee +f
 *
 * Settle, release and move all start from `reserved`, so for one refund the first of them
 * wins and the others find nothing to do: a reservation is settled or released once, never
 * both. "late" is WeChat's word winning: money it returned for a refund we had already let
 * go of (rejected, or closed and retried) is still booked, and the refund is flagged.
 */
import { AppError } from '../errors';
import type { Deps } from './deps';
import { COLLECTIONS, type OrderDoc, type RefundBookEntry } from './model';

const entry = (refundId: string) => `refundBook.${refundId}`;

/**
 * The one conditional update that takes an entry out of `reserved`. Settle and release of one
 * refund both start here, so whichever lands first makes the other's condition fail.
 */
function leaveReserved(
  deps: Deps,
  orderId: string,
  refundId: string,
  state: 'settled' | 'released',
  now: number,
  counters: Record<string, unknown>,
): Promise<boolean> {
  const _ = deps.store.cmd;
  return deps.store.cas(
    COLLECTIONS.orders,
    { _id: orderId, [`${entry(refundId)}.state`]: 'reserved' },
    {
      [`${entry(refundId)}.state`]: state,
      [`${entry(refundId)}.atMs`]: now,
      ...counters,
      refundOpenCount: _.inc(-1),
      updatedAtMs: now,
    },
  );
}

export type SettleResult = 'settled' | 'late' | 'already';

/** Books the refund's money as gone (SUCCESS, or ABNORMAL: it left the merchant). */
export async function settle(
  deps: Deps,
  orderId: string,
  refundId: string,
  fee: number,
): Promise<SettleResult> {
  const { store } = deps;
  const _ = store.cmd;
  const now = deps.now();
  if (
    await leaveReserved(deps, orderId, refundId, 'settled', now, {
      refundReservedFee: _.inc(-fee),
      refundedFee: _.inc(fee),
    })
  ) {
    return 'settled';
  }
  if (
    await store.cas(
      COLLECTIONS.orders,
      { _id: orderId, [`${entry(refundId)}.state`]: _.in(['released', 'moved']) },
      {
        [`${entry(refundId)}.state`]: 'settled',
        [`${entry(refundId)}.late`]: true,
        [`${entry(refundId)}.atMs`]: now,
        refundUsedFee: _.inc(fee),
        refundedFee: _.inc(fee),
        updatedAtMs: now,
      },
    )
  ) {
    deps.log('warn', 'refund.settled_late', { orderId, refundId, fee });
    return 'late';
  }
  const order = await store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (order?.refundBook?.[refundId]?.state === 'settled') return 'already';
  // No entry at all: the refund is not this order's, or its reservation was never made.
  // Answering FAIL (throw) keeps WeChat retrying while a person looks.
  throw new AppError('REFUND_BOOK_MISSING', `order ${orderId} has no refund book entry for ${refundId}`);
}

export type ReleaseResult = 'released' | 'already' | 'settled' | 'moved' | 'missing';

/** Gives the refund's reserved amount back to the order (REJECTED, WITHDRAWN). */
export async function release(
  deps: Deps,
  orderId: string,
  refundId: string,
  fee: number,
): Promise<ReleaseResult> {
  const { store } = deps;
  const _ = store.cmd;
  if (
    await leaveReserved(deps, orderId, refundId, 'released', deps.now(), {
      refundReservedFee: _.inc(-fee),
      refundUsedFee: _.inc(-fee),
      refundCount: _.inc(-1),
    })
  ) {
    return 'released';
  }
  const state = (await store.get<OrderDoc>(COLLECTIONS.orders, orderId))?.refundBook?.[refundId]?.state;
  if (state === 'released') return 'already';
  if (state === 'settled' || state === 'moved') return state;
  return 'missing';
}

export type MoveResult = 'moved' | 'already' | 'settled' | 'released' | 'missing';

/**
 * A CLOSED refund is retried as a new refund (new out_refund_no): the new one takes over the
 * old one's reservation in the same update that retires the old entry.
 */
export async function move(
  deps: Deps,
  orderId: string,
  fromId: string,
  toId: string,
  fee: number,
): Promise<MoveResult> {
  const { store } = deps;
  const _ = store.cmd;
  const now = deps.now();
  const successor: RefundBookEntry = { fee, state: 'reserved', atMs: now };
  if (
    await store.cas(
      COLLECTIONS.orders,
      { _id: orderId, [`${entry(fromId)}.state`]: 'reserved', [entry(toId)]: _.exists(false) },
      {
        [`${entry(fromId)}.state`]: 'moved',
        [`${entry(fromId)}.atMs`]: now,
        [`${entry(fromId)}.to`]: toId,
        [entry(toId)]: successor,
        updatedAtMs: now,
      },
    )
  ) {
    return 'moved';
  }
  const book = (await store.get<OrderDoc>(COLLECTIONS.orders, orderId))?.refundBook;
  const state = book?.[fromId]?.state;
  if (state === 'moved' && book?.[fromId]?.to === toId && book[toId]) return 'already';
  if (state === 'settled' || state === 'released') return state;
  return 'missing';
}

/** Entries still holding a reservation. */
export function reservedEntries(order: OrderDoc): { refundId: string; fee: number }[] {
  return Object.entries(order.refundBook ?? {})
    .filter(([, e]) => e.state === 'reserved')
    .map(([refundId, e]) => ({ refundId, fee: e.fee }));
}
