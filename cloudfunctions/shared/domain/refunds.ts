import { createHash } from 'node:crypto';
import type { ApplyRefundResult, ApproveRefundResult, ListRefundsResult, RefundStatus } from '../contract';
import { AppError } from '../errors';
import { productOf, tellRefund } from '../notices/transitions';
import type { Caller } from '../runtime/callable';
import { type Deps, providerOf } from './deps';
import { recordEvent } from './events';
import {
  COLLECTIONS,
  MAX_REFUNDS_PER_ORDER,
  type OrderDoc,
  orderView,
  type RefundBookEntry,
  type RefundDoc,
  refundView,
} from './model';
import { ownOrder, PAGE_SIZE, requireOwnApp } from './orders';
import { applicationReason } from './reasons';
import { release } from './refund-book';
import { getRefund, stepRefund } from './refund-steps';
import { askWeChat, claimSubmitLease, type Review, retryClosed, submitRefund } from './refund-submit';
import { FOLLOW_UP_MS } from './schedule';
import {
  createdOrderPage,
  ID_PATTERN,
  integer,
  invalid,
  oneOf,
  onlyFields,
  optionalString,
  requireAdmin,
  requiredString,
  requireOpenid,
} from './validate';

export const REFUND_STATUSES: readonly RefundStatus[] = [
  'PENDING_REVIEW',
  'WITHDRAWN',
  'REJECTED',
  'APPROVED',
  'PROCESSING',
  'SUCCESS',
  'FAILED',
  'CLOSED',
  'ABNORMAL',
];
/** "交易时间超过一年的订单无法提交退款" (TRADE_OVERDUE); WeChat counts from the payment's time. */
const REFUND_WINDOW_MS = 365 * 24 * 3600_000;
const REQUEST_ID = /^[A-Za-z0-9_-]{8,64}$/;

/**
 * The refund's id (= out_refund_no) for one shopper's form submission: the same shopper and
 * requestId always give the same id, so a double tap or a client retry after a timeout finds
 * the refund the first call made (or is stopped by its reservation) instead of making a second.
 */
export function refundIdFor(openid: string, requestId: string): string {
  return `R${createHash('sha256').update(`${openid}\n${requestId}`).digest('hex').slice(0, 30)}`;
}

const tooMany = (max: number) =>
  new AppError(
    'TOO_MANY_OPEN_REFUNDS',
    `this order already has ${max} refund applications in progress; wait for them to finish`,
  );
const fiftyLimit = () =>
  new AppError('REFUND_NOT_ALLOWED', `WeChat Pay allows at most ${MAX_REFUNDS_PER_ORDER} refunds per order`);
const exceeds = (left: number) =>
  new AppError('REFUND_EXCEEDS_PAID', `at most ${Math.max(0, left)} fen of this order can still be refunded`);

function sameApplication(existing: RefundDoc, orderId: string, refundFee: number): RefundDoc {
  if (existing.orderId !== orderId || existing.refundFee !== refundFee) {
    throw invalid('requestId was already used for a different application; make a new one per submission');
  }
  return existing;
}

export async function applyRefund(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ApplyRefundResult> {
  const openid = requireOpenid(caller);
  requireOwnApp(deps, caller);
  onlyFields(event, ['orderId', 'refundFee', 'reasonCode', 'reason', 'contact', 'requestId']);
  const orderId = requiredString(event, 'orderId', { max: 32, pattern: ID_PATTERN });
  const refundFee = integer(event, 'refundFee', 1, 100_000_000);
  const { reasonCode, reason } = applicationReason(deps, event);
  const contact = optionalString(event, 'contact', { max: 64 });
  const requestId = requiredString(event, 'requestId', { max: 64, pattern: REQUEST_ID });
  const { store } = deps;
  const _ = store.cmd;
  const refundId = refundIdFor(openid, requestId);

  const existing = await store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
  if (existing) return { refund: refundView(sameApplication(existing, orderId, refundFee)) };

  const order = await ownOrder(deps, orderId, openid);
  if (order.status !== 'PAID') throw new AppError('REFUND_NOT_ALLOWED', 'only a paid order can be refunded');
  const now = deps.now();
  if (order.paidAtMs !== undefined && now - order.paidAtMs > REFUND_WINDOW_MS) {
    throw new AppError(
      'REFUND_NOT_ALLOWED',
      'orders paid more than a year ago cannot be refunded through WeChat Pay',
    );
  }
  const maxOpen = deps.config.refunds.maxOpenPerOrder;
  if (refundFee > order.totalFee - order.refundUsedFee) throw exceeds(order.totalFee - order.refundUsedFee);
  if (order.refundCount >= MAX_REFUNDS_PER_ORDER) throw fiftyLimit();
  if ((order.refundOpenCount ?? 0) >= maxOpen) throw tooMany(maxOpen);

  const entry: RefundBookEntry = { fee: refundFee, state: 'reserved', atMs: now };
  const limits = {
    _id: orderId,
    openid,
    status: 'PAID',
    refundUsedFee: _.lte(order.totalFee - refundFee),
    refundCount: _.lt(MAX_REFUNDS_PER_ORDER),
    refundOpenCount: _.lt(maxOpen),
  };
  const reserve = {
    refundUsedFee: _.inc(refundFee),
    refundReservedFee: _.inc(refundFee),
    refundCount: _.inc(1),
    refundOpenCount: _.inc(1),
    [`refundBook.${refundId}`]: entry,
    // If this call dies before the refund exists, reconcile finds the reservation then.
    reservationCheckAtMs: now + Math.round(FOLLOW_UP_MS * deps.config.timeScale),
    updatedAtMs: now,
  };
  // One conditional update reserves the amount: concurrent applications each re-check
  // `refundUsedFee <= totalFee - fee` against the latest document, so together they can
  // never reserve more than was paid; the entry's absence stops a twin of this submission.
  let reserved = await store.cas(
    COLLECTIONS.orders,
    { ...limits, [`refundBook.${refundId}`]: _.exists(false) },
    reserve,
  );
  if (!reserved) {
    // Lost: to a twin of this very submission, or to a limit; say which, from the latest order.
    const latest = await store.get<OrderDoc>(COLLECTIONS.orders, orderId);
    const twin = latest?.refundBook?.[refundId];
    if (twin && twin.fee !== refundFee)
      throw invalid('requestId was already used for a different application');
    if (twin?.state === 'released') {
      // An earlier try of this submission died before creating its refund, and reconcile
      // released what it had reserved: reserve again, under the same limits.
      reserved = await store.cas(
        COLLECTIONS.orders,
        { ...limits, [`refundBook.${refundId}.state`]: 'released' },
        reserve,
      );
    } else if (twin?.state === 'reserved') reserved = true;
    if (!reserved) {
      const current = twin ? ((await store.get<OrderDoc>(COLLECTIONS.orders, orderId)) ?? latest) : latest;
      if (current?.refundBook?.[refundId]?.state === 'reserved') reserved = true;
      else if (current && current.refundCount >= MAX_REFUNDS_PER_ORDER) throw fiftyLimit();
      else if (current && (current.refundOpenCount ?? 0) >= maxOpen) throw tooMany(maxOpen);
      else throw exceeds(current ? current.totalFee - current.refundUsedFee : 0);
    }
  }
  // Reserve first, then create: a crash in between strands a reservation (money held back,
  // found and released by reconcile) rather than a refund with no reservation behind it.
  const refund: RefundDoc = {
    _id: refundId,
    orderId,
    openid,
    requestId,
    // Refunded, queried and notified through its order's provider, whatever new orders use.
    ...(order.provider ? { provider: order.provider } : {}),
    refundFee,
    totalFee: order.totalFee,
    reason,
    reasonCode,
    status: 'PENDING_REVIEW',
    createdAtMs: now,
    updatedAtMs: now,
    leaseUntilMs: 0,
    submitAttempts: 0,
    history: [{ atMs: now, status: 'PENDING_REVIEW', source: 'apply' }],
  };
  if (contact) refund.contact = contact;
  if ((await store.insert(COLLECTIONS.refunds, refund)) === 'duplicate') {
    const twin = await store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
    if (twin) return { refund: refundView(sameApplication(twin, orderId, refundFee)) };
  }
  deps.log('info', 'refund.applied', {
    refundId,
    orderId,
    refundFee,
    to: 'PENDING_REVIEW',
    dbRequests: store.requests,
  });
  await tellRefund(deps, refund, 'applied', { product: productOf(order.items) });
  return { refund: refundView(refund) };
}

/**
 * A rejected (or withdrawn) refund's reservation goes back to the order. Safe to repeat: a
 * rejection whose release failed half-way is finished by the next click or by reconcile.
 */
export async function releaseEnded(deps: Deps, refund: RefundDoc): Promise<void> {
  const result = await release(deps, refund.orderId, refund._id, refund.refundFee);
  if (result === 'released') {
    deps.log('info', 'refund.reservation_released', {
      refundId: refund._id,
      orderId: refund.orderId,
      fee: refund.refundFee,
      dbRequests: deps.store.requests,
    });
  } else if (result === 'settled' || result === 'missing') {
    // Settled: WeChat paid it, and applyWeChatRefund books and flags it.
    deps.log('warn', 'refund.release_skipped', { refundId: refund._id, orderId: refund.orderId, result });
  }
}

async function reject(deps: Deps, refund: RefundDoc, review: Review): Promise<RefundDoc> {
  if (refund.status === 'REJECTED') {
    await releaseEnded(deps, refund);
    return refund;
  }
  if (refund.status === 'FAILED' && (refund.outcomeUnknown || refund.hadUnknownOutcome)) {
    // An earlier attempt may have been accepted after all: a refund WeChat paid must never
    // end REJECTED (its amount released and applied for again).
    const known = await askWeChat(deps, refund);
    if (known === 'unreachable') {
      throw new AppError(
        'WXPAY_UNAVAILABLE',
        'WeChat Pay could not confirm this refund was never accepted; try again',
      );
    }
    if (known !== 'absent') {
      throw new AppError(
        'INVALID_STATE',
        `WeChat Pay has this refund (${known.status}); it cannot be rejected`,
      );
    }
  }
  if (refund.status !== 'PENDING_REVIEW' && refund.status !== 'FAILED' && refund.status !== 'CLOSED') {
    throw new AppError('INVALID_STATE', `a refund that is ${refund.status} cannot be rejected`);
  }
  const now = deps.now();
  const rejected = await stepRefund(
    deps,
    refund,
    refund.status,
    { to: 'REJECTED', source: 'review', ...(review.comment ? { reason: review.comment } : {}) },
    {
      reviewer: review.reviewer,
      reviewedAtMs: now,
      finishedAtMs: now,
      leaseUntilMs: 0,
      ...(review.comment ? { comment: review.comment } : {}),
      // Reconcile makes sure the release below happened, even if this call dies now.
      nextCheckAtMs: now + Math.round(FOLLOW_UP_MS * deps.config.timeScale),
    },
    // A CLOSED refund already retried as a new one is no longer the merchant's to reject.
    refund.status === 'CLOSED'
      ? { where: { successorId: deps.store.cmd.exists(false) }, unset: ['failReason'] }
      : { unset: ['failReason'] },
  );
  if (!rejected) return (await getRefund(deps, refund._id)) ?? refund;
  await releaseEnded(deps, rejected);
  await recordEvent(deps, {
    kind: 'refund',
    orderId: refund.orderId,
    refundId: refund._id,
    from: refund.status,
    to: 'REJECTED',
    source: 'review',
    fields: {},
  });
  deps.log('info', 'refund.rejected', {
    refundId: refund._id,
    from: refund.status,
    to: 'REJECTED',
    dbRequests: deps.store.requests,
  });
  await tellRefund(deps, rejected, 'rejected');
  return rejected;
}

async function resolve(deps: Deps, refund: RefundDoc, review: Review): Promise<RefundDoc> {
  if (refund.status === 'SUCCESS') return refund;
  if (refund.status !== 'ABNORMAL') {
    throw new AppError(
      'INVALID_STATE',
      `only an ABNORMAL refund can be marked resolved, this one is ${refund.status}`,
    );
  }
  const now = deps.now();
  const resolved = await stepRefund(
    deps,
    refund,
    'ABNORMAL',
    { to: 'SUCCESS', source: 'resolve', reason: review.comment ?? 'resolved on the merchant platform' },
    {
      reviewer: review.reviewer,
      finishedAtMs: now,
      ...(review.comment ? { comment: review.comment } : {}),
    },
    { unset: ['failReason', 'nextCheckAtMs'] },
  );
  if (!resolved) return (await getRefund(deps, refund._id)) ?? refund;
  // The money was booked when WeChat reported CHANGE; this only records the merchant's word.
  await recordEvent(deps, {
    kind: 'refund',
    orderId: refund.orderId,
    refundId: refund._id,
    from: 'ABNORMAL',
    to: 'SUCCESS',
    source: 'resolve',
    fields: {},
  });
  deps.log('info', 'refund.resolved', { refundId: refund._id, from: 'ABNORMAL', to: 'SUCCESS' });
  await tellRefund(deps, resolved, 'resolved');
  return resolved;
}

async function approve(deps: Deps, refund: RefundDoc, review: Review): Promise<RefundDoc> {
  switch (refund.status) {
    case 'REJECTED':
    case 'WITHDRAWN':
      throw new AppError('INVALID_STATE', `a ${refund.status.toLowerCase()} refund cannot be approved`);
    case 'PROCESSING':
    case 'SUCCESS':
    case 'ABNORMAL':
      return refund;
    case 'CLOSED':
      return retryClosed(deps, refund, review);
    default: {
      // Its provider must be reachable before anything is written (a switch without
      // WXPAY_KEEP_PROVIDERS is a configuration error, not a failed refund).
      providerOf(deps, refund);
      const claimed = await claimSubmitLease(deps, refund, refund.status === 'APPROVED' ? undefined : review);
      if (!claimed) return (await getRefund(deps, refund._id)) ?? refund;
      if (refund.status === 'APPROVED') return submitRefund(deps, claimed);
      deps.log('info', 'refund.approved', {
        refundId: refund._id,
        from: refund.status,
        to: 'APPROVED',
        dbRequests: deps.store.requests,
      });
      // The shopper hears of the approval after WeChat has had the refund call: money first.
      try {
        return await submitRefund(deps, claimed);
      } finally {
        await tellRefund(deps, claimed, 'approved');
      }
    }
  }
}

export async function approveRefund(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ApproveRefundResult> {
  const reviewer = requireAdmin(deps, caller);
  onlyFields(event, ['refundId', 'decision', 'comment']);
  const refundId = requiredString(event, 'refundId', { max: 64, pattern: ID_PATTERN });
  const decision = oneOf(event, 'decision', ['approve', 'reject', 'resolve'] as const);
  if (!decision) throw invalid('decision is required (approve, reject or resolve)');
  const comment = optionalString(event, 'comment', { max: 200 });
  const refund = await getRefund(deps, refundId);
  if (!refund) throw new AppError('NOT_FOUND', 'refund not found');
  const review: Review = comment ? { reviewer, comment } : { reviewer };
  const after =
    decision === 'reject'
      ? await reject(deps, refund, review)
      : decision === 'resolve'
        ? await resolve(deps, refund, review)
        : await approve(deps, refund, review);
  return { refund: refundView(after, true) };
}

export async function listRefunds(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ListRefundsResult> {
  requireAdmin(deps, caller);
  onlyFields(event, ['status', 'cursor', 'order', 'orderId']);
  const status = oneOf(event, 'status', REFUND_STATUSES);
  const oldestFirst = oneOf(event, 'order', ['newest', 'oldest'] as const) === 'oldest';
  const orderId = optionalString(event, 'orderId', { max: 32, pattern: ID_PATTERN });
  const { store } = deps;
  const base: Record<string, unknown> = {
    ...(status ? { status } : {}),
    ...(orderId ? { orderId } : {}),
  };
  const [page, pendingCount] = await Promise.all([
    createdOrderPage<RefundDoc>(store, COLLECTIONS.refunds, base, event['cursor'], PAGE_SIZE, oldestFirst),
    store.countWhere(COLLECTIONS.refunds, { status: 'PENDING_REVIEW' }),
  ]);
  const orderIds = [...new Set(page.rows.map((r) => r.orderId))];
  const orders =
    orderIds.length === 0
      ? []
      : await store.find<OrderDoc>(COLLECTIONS.orders, { _id: store.cmd.in(orderIds) }, { limit: PAGE_SIZE });
  const byId = new Map(orders.map((o) => [o._id, o]));
  const now = deps.now();
  return {
    items: page.rows.map((r) => {
      const o = byId.get(r.orderId);
      return o ? { ...refundView(r, true), order: orderView(o, now) } : refundView(r, true);
    }),
    nextCursor: page.nextCursor,
    pendingCount,
  };
}
