import type { ApplyRefundResult, ApproveRefundResult, ListRefundsResult, RefundStatus } from '../contract';
import { AppError } from '../errors';
import { parseFen } from '../money';
import type { Caller } from '../runtime/callable';
import type { WxParams } from '../wxpay/types';
import { type Deps, requireWxpay, wxFailure } from './deps';
import { keptFields, recordEvent } from './events';
import {
  COLLECTIONS,
  MAX_REFUNDS_PER_ORDER,
  type OrderDoc,
  orderView,
  type RefundDoc,
  refundView,
} from './model';
import { ownOrder, PAGE_SIZE } from './orders';
import {
  beijingTime,
  ID_PATTERN,
  integer,
  newestFirstPage,
  oneOf,
  onlyFields,
  optionalString,
  requireAdmin,
  requiredString,
  requireOpenid,
} from './validate';

export const REFUND_STATUSES: readonly RefundStatus[] = [
  'PENDING_REVIEW',
  'REJECTED',
  'APPROVED',
  'PROCESSING',
  'SUCCESS',
  'FAILED',
];
/** Long enough for one refund call with its retries (3 × 8 s + backoff), short enough to recover from a crash. */
export const SUBMIT_LEASE_MS = 60_000;
/** "交易时间超过一年的订单无法提交退款" (TRADE_OVERDUE). */
const REFUND_WINDOW_MS = 365 * 24 * 3600_000;

export async function applyRefund(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ApplyRefundResult> {
  const openid = requireOpenid(caller);
  onlyFields(event, ['orderId', 'refundFee', 'reason', 'contact']);
  const orderId = requiredString(event, 'orderId', { max: 32, pattern: ID_PATTERN });
  const refundFee = integer(event, 'refundFee', 1, 100_000_000);
  const reason = requiredString(event, 'reason', { max: 200 });
  const contact = optionalString(event, 'contact', { max: 64 });
  const { store } = deps;
  const _ = store.cmd;

  const order = await ownOrder(deps, orderId, openid);
  if (order.status !== 'PAID') throw new AppError('REFUND_NOT_ALLOWED', 'only a paid order can be refunded');
  const now = deps.now();
  if (order.paidAtMs !== undefined && now - order.paidAtMs > REFUND_WINDOW_MS) {
    throw new AppError(
      'REFUND_NOT_ALLOWED',
      'orders paid more than a year ago cannot be refunded through WeChat Pay',
    );
  }
  const exceeds = () =>
    new AppError(
      'REFUND_EXCEEDS_PAID',
      `at most ${order.totalFee - order.refundUsedFee} fen of this order can still be refunded`,
    );
  if (refundFee > order.totalFee - order.refundUsedFee) throw exceeds();
  if (order.refundCount >= MAX_REFUNDS_PER_ORDER) {
    throw new AppError(
      'REFUND_NOT_ALLOWED',
      `WeChat Pay allows at most ${MAX_REFUNDS_PER_ORDER} refunds per order`,
    );
  }

  const refundId = `R${beijingTime(now)}${deps.random(12)}`;
  // One conditional update reserves the amount: concurrent applications each re-check
  // `refundUsedFee <= totalFee - fee` against the latest document, so they can never
  // reserve more than was paid together.
  const reserved = await store.cas(
    COLLECTIONS.orders,
    {
      _id: orderId,
      openid,
      status: 'PAID',
      refundUsedFee: _.lte(order.totalFee - refundFee),
      refundCount: _.lt(MAX_REFUNDS_PER_ORDER),
    },
    {
      refundUsedFee: _.inc(refundFee),
      refundReservedFee: _.inc(refundFee),
      refundCount: _.inc(1),
      // The amount rides along so a stranded reservation can be released (reconcile).
      refundOps: _.push(`reserve:${refundId}:${refundFee}`),
      updatedAtMs: now,
    },
  );
  if (!reserved) {
    // Lost to a concurrent application: say which limit it hit, from the latest document.
    const latest = await store.get<OrderDoc>(COLLECTIONS.orders, orderId);
    if (latest && latest.refundCount >= MAX_REFUNDS_PER_ORDER) {
      throw new AppError(
        'REFUND_NOT_ALLOWED',
        `WeChat Pay allows at most ${MAX_REFUNDS_PER_ORDER} refunds per order`,
      );
    }
    const left = latest ? latest.totalFee - latest.refundUsedFee : 0;
    throw new AppError(
      'REFUND_EXCEEDS_PAID',
      `at most ${Math.max(0, left)} fen of this order can still be refunded`,
    );
  }
  // Reserve first, then create: a crash in between strands a reservation (money held back,
  // visible in refundOps) rather than a refund with no reservation behind it.
  const refund: RefundDoc = {
    _id: refundId,
    orderId,
    openid,
    refundFee,
    totalFee: order.totalFee,
    reason,
    status: 'PENDING_REVIEW',
    createdAtMs: now,
    updatedAtMs: now,
    leaseUntilMs: 0,
    submitAttempts: 0,
  };
  if (contact) refund.contact = contact;
  await store.insert(COLLECTIONS.refunds, refund);
  deps.log('info', 'refund.applied', {
    refundId,
    orderId,
    refundFee,
    to: 'PENDING_REVIEW',
    dbRequests: store.requests,
  });
  return { refund: refundView(refund) };
}

async function releaseReservation(
  deps: Deps,
  orderId: string,
  refundId: string,
  fee: number,
): Promise<boolean> {
  const _ = deps.store.cmd;
  const op = `release:${refundId}`;
  // refundOps makes the release idempotent: a retried rejection cannot release twice.
  return deps.store.cas(
    COLLECTIONS.orders,
    { _id: orderId, refundOps: _.nin([op]) },
    {
      refundReservedFee: _.inc(-fee),
      refundUsedFee: _.inc(-fee),
      refundOps: _.push(op),
      updatedAtMs: deps.now(),
    },
  );
}

/**
 * applyRefund reserves first and creates the refund second, so a crash between the two
 * leaves `reserve:R:fee` on the order with no refund R: money held back that nobody can
 * refund or review. Releases such reservations; the caller only passes orders untouched for
 * longer than any applyRefund call can take.
 */
export async function releaseStrandedReservations(deps: Deps, order: OrderDoc): Promise<number> {
  const settledOrReleased = new Set(
    order.refundOps
      .filter((op) => op.startsWith('release:') || op.startsWith('settle:'))
      .map((op) => op.split(':')[1]),
  );
  const open = order.refundOps
    .filter((op) => op.startsWith('reserve:'))
    .map((op) => {
      const [, refundId = '', fee = ''] = op.split(':');
      return { refundId, fee: Number(fee) };
    })
    .filter((r) => !settledOrReleased.has(r.refundId) && Number.isSafeInteger(r.fee) && r.fee > 0);
  if (open.length === 0) return 0;
  const refunds = await deps.store.find<RefundDoc>(
    COLLECTIONS.refunds,
    { orderId: order._id },
    { limit: 100 },
  );
  const known = new Set(refunds.map((r) => r._id));
  let released = 0;
  for (const r of open) {
    if (known.has(r.refundId)) continue;
    if (await releaseReservation(deps, order._id, r.refundId, r.fee)) {
      released++;
      deps.log('warn', 'refund.stranded_reservation_released', {
        orderId: order._id,
        refundId: r.refundId,
        fee: r.fee,
      });
    }
  }
  return released;
}

export async function approveRefund(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ApproveRefundResult> {
  const admin = requireAdmin(deps, caller);
  onlyFields(event, ['refundId', 'decision', 'comment']);
  const refundId = requiredString(event, 'refundId', { max: 64, pattern: ID_PATTERN });
  const decision = oneOf(event, 'decision', ['approve', 'reject'] as const);
  if (!decision) throw new AppError('INVALID_INPUT', 'decision is required (approve or reject)');
  const comment = optionalString(event, 'comment', { max: 200 });
  const { store } = deps;
  const refund = await store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
  if (!refund) throw new AppError('NOT_FOUND', 'refund not found');
  const now = deps.now();
  const review = { reviewer: admin, reviewedAtMs: now, updatedAtMs: now, ...(comment ? { comment } : {}) };

  if (decision === 'reject') {
    if (refund.status === 'REJECTED') return { refund: refundView(refund, true) };
    if (refund.status !== 'PENDING_REVIEW' && refund.status !== 'FAILED') {
      throw new AppError('INVALID_STATE', `a refund that is ${refund.status} cannot be rejected`);
    }
    const patch = { ...review, status: 'REJECTED' as const, finishedAtMs: now };
    if (await store.cas(COLLECTIONS.refunds, { _id: refundId, status: refund.status }, patch)) {
      await releaseReservation(deps, refund.orderId, refund._id, refund.refundFee);
      await recordEvent(deps, {
        kind: 'refund',
        orderId: refund.orderId,
        refundId,
        from: refund.status,
        to: 'REJECTED',
        source: 'review',
        fields: {},
      });
      deps.log('info', 'refund.rejected', {
        refundId,
        from: refund.status,
        to: 'REJECTED',
        dbRequests: store.requests,
      });
      return { refund: refundView({ ...refund, ...patch }, true) };
    }
    return {
      refund: refundView((await store.get<RefundDoc>(COLLECTIONS.refunds, refundId)) ?? refund, true),
    };
  }

  if (refund.status === 'REJECTED')
    throw new AppError('INVALID_STATE', 'a rejected refund cannot be approved');
  if (refund.status === 'PROCESSING' || refund.status === 'SUCCESS')
    return { refund: refundView(refund, true) };
  const claimed = await claimSubmitLease(deps, refund, review);
  if (!claimed) {
    const current = (await store.get<RefundDoc>(COLLECTIONS.refunds, refundId)) ?? refund;
    return { refund: refundView(current, true) };
  }
  if (refund.status !== 'APPROVED') {
    deps.log('info', 'refund.approved', {
      refundId,
      from: refund.status,
      to: 'APPROVED',
      dbRequests: store.requests,
    });
  }
  return { refund: refundView(await submitRefund(deps, claimed), true) };
}

/**
 * Takes the right to send `refund` to WeChat. Only the caller that wins this CAS may call:
 * double clicks, two admins and reconcile all race here, and the lease keeps the losers from
 * a second refund request. An APPROVED refund is claimable once its last lease ran out;
 * PENDING_REVIEW and FAILED become APPROVED with the reviewer's `review` fields.
 */
export async function claimSubmitLease(
  deps: Deps,
  refund: RefundDoc,
  review: Partial<RefundDoc> = {},
): Promise<RefundDoc | null> {
  const { store } = deps;
  const now = deps.now();
  const where =
    refund.status === 'APPROVED'
      ? { _id: refund._id, status: 'APPROVED', leaseUntilMs: store.cmd.lt(now) }
      : { _id: refund._id, status: refund.status };
  const patch = refund.status === 'APPROVED' ? {} : { ...review, status: 'APPROVED' as const };
  const leaseUntilMs = now + SUBMIT_LEASE_MS;
  const won = await store.cas(COLLECTIONS.refunds, where, {
    ...patch,
    leaseUntilMs,
    submitAttempts: store.cmd.inc(1),
    updatedAtMs: now,
  });
  if (!won) return null;
  return {
    ...refund,
    ...patch,
    status: 'APPROVED',
    leaseUntilMs,
    submitAttempts: refund.submitAttempts + 1,
    updatedAtMs: now,
  };
}

/**
 * refund_desc from the shopper's free text. XML cannot carry control characters (toXml
 * refuses them) nor CR intact (WeChat's parser reads it as LF, so the sign would not match:
 * 签名错误), and the 80-character cut must not split a surrogate pair.
 */
function refundDesc(reason: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced.
  const clean = reason.replace(/[\u0000-\u001f\u007f\uFFFE\uFFFF]+/g, ' ');
  return Array.from(clean).slice(0, 80).join('').trim();
}

/**
 * Sends an APPROVED refund to WeChat. The caller holds the submit lease. The out_refund_no is
 * the refund's id, fixed at creation: "一笔退款失败后重新提交，请不要更换退款单号".
 * Acceptance only means PROCESSING; the result comes from the refund notify or refundquery.
 */
export async function submitRefund(deps: Deps, refund: RefundDoc): Promise<RefundDoc> {
  const { store } = deps;
  let res: WxParams;
  try {
    res = await requireWxpay(deps).refund({
      out_trade_no: refund.orderId,
      out_refund_no: refund._id,
      total_fee: refund.totalFee,
      refund_fee: refund.refundFee,
      refund_desc: refundDesc(refund.reason),
      notify_url: deps.config.wxpay.refundNotifyUrl,
    });
  } catch (e) {
    const f = wxFailure(e);
    if (!f) throw e;
    if (f.transient) {
      // Outcome unknown: stay APPROVED and give up our lease, so the next reconcile run (or
      // the admin) resubmits at once with the same out_refund_no, which WeChat refunds once.
      await store.cas(
        COLLECTIONS.refunds,
        { _id: refund._id, status: 'APPROVED', leaseUntilMs: refund.leaseUntilMs },
        { leaseUntilMs: 0, updatedAtMs: deps.now() },
      );
      deps.log('warn', 'refund.submit_transient', {
        refundId: refund._id,
        errCode: f.errCode,
        code: f.code,
        attempt: refund.submitAttempts,
      });
      return { ...refund, leaseUntilMs: 0 };
    }
    const now = deps.now();
    const failReason = `${f.errCode ?? f.code}: ${f.errCodeDes ?? f.message}`.slice(0, 200);
    const patch = { status: 'FAILED' as const, failReason, updatedAtMs: now, leaseUntilMs: 0 };
    if (await store.cas(COLLECTIONS.refunds, { _id: refund._id, status: 'APPROVED' }, patch)) {
      await recordEvent(deps, {
        kind: 'refund',
        orderId: refund.orderId,
        refundId: refund._id,
        from: 'APPROVED',
        to: 'FAILED',
        source: 'refund',
        fields: { err_code: f.errCode ?? f.code, err_code_des: f.errCodeDes ?? '' },
      });
      deps.log('warn', 'refund.failed', {
        refundId: refund._id,
        from: 'APPROVED',
        to: 'FAILED',
        errCode: f.errCode,
        dbRequests: store.requests,
      });
    }
    return { ...refund, ...patch };
  }
  const now = deps.now();
  const patch = {
    status: 'PROCESSING' as const,
    wxRefundId: res['refund_id'] ?? '',
    submittedAtMs: now,
    updatedAtMs: now,
  };
  if (await store.cas(COLLECTIONS.refunds, { _id: refund._id, status: 'APPROVED' }, patch)) {
    await recordEvent(deps, {
      kind: 'refund',
      orderId: refund.orderId,
      refundId: refund._id,
      from: 'APPROVED',
      to: 'PROCESSING',
      source: 'refund',
      fields: keptFields(res),
    });
    deps.log('info', 'refund.processing', {
      refundId: refund._id,
      from: 'APPROVED',
      to: 'PROCESSING',
      dbRequests: store.requests,
    });
    return { ...refund, ...patch };
  }
  // The refund notify beat us to it (it may arrive before this answer).
  return (await store.get<RefundDoc>(COLLECTIONS.refunds, refund._id)) ?? refund;
}

export type FinalOutcome = 'SUCCESS' | 'FAILED' | 'ALREADY' | 'STILL_PROCESSING' | 'MISMATCH' | 'CONFLICT';

/**
 * Applies WeChat's final word on a refund, from the refund notify or refundquery.
 * SUCCESS moves money in our books: the event goes first (deterministic id), then the order
 * settles (idempotent through refundOps), then the refund's CAS — so a crash at any point is
 * finished by WeChat's next retry or the next reconcile, and nothing is counted twice.
 */
export async function finalizeRefund(
  deps: Deps,
  refund: RefundDoc,
  info: WxParams,
  source: 'refundnotify' | 'refundquery',
): Promise<FinalOutcome> {
  const wxStatus = info['refund_status'];
  if (wxStatus !== 'SUCCESS' && wxStatus !== 'REFUNDCLOSE' && wxStatus !== 'CHANGE') {
    // PROCESSING, or a status this code does not know: never guess a final state from it.
    if (wxStatus !== 'PROCESSING')
      deps.log('warn', 'refund.unknown_status', { refundId: refund._id, wxStatus, source });
    return 'STILL_PROCESSING';
  }
  const target = wxStatus === 'SUCCESS' ? 'SUCCESS' : 'FAILED';
  if (
    info['out_trade_no'] !== refund.orderId ||
    parseFen(info['refund_fee']) !== refund.refundFee ||
    (info['total_fee'] !== undefined && parseFen(info['total_fee']) !== refund.totalFee)
  ) {
    deps.log('error', 'refund.mismatch', { refundId: refund._id, source, got: keptFields(info) });
    return 'MISMATCH';
  }
  if (refund.status === target) return 'ALREADY';
  const allowedFrom: RefundStatus[] =
    target === 'SUCCESS' ? ['APPROVED', 'PROCESSING', 'FAILED'] : ['APPROVED', 'PROCESSING'];
  if (!allowedFrom.includes(refund.status)) {
    deps.log('error', 'refund.unexpected_final', {
      refundId: refund._id,
      status: refund.status,
      wxStatus,
      source,
    });
    return 'CONFLICT';
  }
  const { store } = deps;
  const _ = store.cmd;
  const now = deps.now();
  if (target === 'SUCCESS') {
    await recordEvent(deps, {
      kind: 'refund',
      orderId: refund.orderId,
      refundId: refund._id,
      from: refund.status,
      to: 'SUCCESS',
      source,
      fields: keptFields(info),
    });
    const op = `settle:${refund._id}`;
    await store.cas(
      COLLECTIONS.orders,
      { _id: refund.orderId, refundOps: _.nin([op]) },
      {
        refundReservedFee: _.inc(-refund.refundFee),
        refundedFee: _.inc(refund.refundFee),
        refundOps: _.push(op),
        updatedAtMs: now,
      },
    );
  }
  const patch =
    target === 'SUCCESS'
      ? {
          status: 'SUCCESS',
          finishedAtMs: now,
          updatedAtMs: now,
          wxRefundId: info['refund_id'] ?? refund.wxRefundId ?? '',
        }
      : {
          status: 'FAILED',
          updatedAtMs: now,
          leaseUntilMs: 0,
          failReason: `${wxStatus}: ${wxStatus === 'CHANGE' ? '退款异常，需到商户平台手动处理' : '退款关闭'}`,
        };
  const won = await store.cas(COLLECTIONS.refunds, { _id: refund._id, status: _.in(allowedFrom) }, patch);
  if (!won) {
    const current = await store.get<RefundDoc>(COLLECTIONS.refunds, refund._id);
    return current?.status === target ? 'ALREADY' : 'CONFLICT';
  }
  if (target === 'FAILED') {
    await recordEvent(deps, {
      kind: 'refund',
      orderId: refund.orderId,
      refundId: refund._id,
      from: refund.status,
      to: 'FAILED',
      source,
      fields: keptFields(info),
    });
  }
  deps.log(target === 'SUCCESS' ? 'info' : 'warn', `refund.${target.toLowerCase()}`, {
    refundId: refund._id,
    orderId: refund.orderId,
    from: refund.status,
    to: target,
    wxStatus,
    source,
    dbRequests: store.requests,
  });
  return target;
}

export async function listRefunds(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ListRefundsResult> {
  requireAdmin(deps, caller);
  onlyFields(event, ['status', 'cursor']);
  const status = oneOf(event, 'status', REFUND_STATUSES);
  const { store } = deps;
  const base: Record<string, unknown> = status ? { status } : {};
  const page = await newestFirstPage<RefundDoc>(store, COLLECTIONS.refunds, base, event['cursor'], PAGE_SIZE);
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
  };
}
