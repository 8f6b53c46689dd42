/**
 * The bill check's fixes, each confirmed by WeChat before it is made: orderquery before a
 * payment is booked, refundquery before a refund is settled or an external refund recorded.
 * They go through the same exactly-once transitions as notifies (markPaid, applyWeChatRefund,
 * recordExternalRefund), so a re-run finds them done. Anything WeChat does not confirm, or
 * that the books cannot take without a person deciding, becomes a discrepancy.
 */
import type { PaymentProvider, PaymentStatus, RefundStatusResult } from '../providers/port';
import type { PayEntry, RefundEntry, Run, Work } from './billcompare';
import { billDateOf } from './billdates';
import { type Deps, providerNamed, providerOf, requireWxpay, wxFailure } from './deps';
import { recordExternalRefund } from './externalrefund';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';
import { markPaid, paidFacts } from './orders';
import { applyWeChatRefund } from './refund-outcome';

/** Longest a WeChat call can take with its retries (3 × the configured timeout, plus backoff). */
function callBudgetMs(deps: Deps): number {
  return deps.config.wxpay.timeoutMs * 3 + 3000;
}

export async function fixAndConfirm(run: Run): Promise<void> {
  const { deps } = run;
  for (let i = 0; i < run.work.length; i++) {
    const item = run.work[i]!;
    if (deps.now() + callBudgetMs(deps) > run.deadlineMs) {
      // Out of time: what is left is done by the next run, which compares afresh.
      run.pending += run.work.length - i;
      deps.log('warn', 'billcheck.out_of_time', { billDate: run.billDate, left: run.work.length - i });
      return;
    }
    try {
      await fix(run, item);
    } catch (e) {
      const f = wxFailure(e);
      if (f && !f.transient) throw e;
      // WeChat or the database was busy for this one item: the next run tries it again.
      run.pending++;
      deps.log('warn', 'billcheck.item_failed', {
        billDate: run.billDate,
        item: item.type,
        // WeChat's own err_code, else the error's code (a WeChat failure's or the database's).
        code: f?.errCode ?? (e as { code?: string })?.code,
        error: e,
      });
    }
  }
}

async function fix(run: Run, w: Work): Promise<void> {
  switch (w.type) {
    case 'pay':
      return confirmPayment(run, w.entry.orderId, w.entry);
    case 'refund':
      return confirmRefund(run, w.entry);
    case 'external':
      return externalRefund(run, w.entry);
    case 'absent-pay':
      return absentPayment(run, w.orderId);
    case 'absent-refund':
      return absentRefund(run, w.refundId);
  }
}

/** orderquery through the order's own provider; undefined when WeChat has no such order. */
async function orderQuery(run: Run, order: OrderDoc): Promise<PaymentStatus | undefined> {
  run.wxCalls++;
  try {
    return await providerOf(run.deps, order).queryPayment(order._id);
  } catch (e) {
    if (wxFailure(e)?.reason === 'ORDER_NOT_FOUND') return undefined;
    throw e;
  }
}

/** refundquery through `provider`: the refund's own, or the bill's for a refund made elsewhere. */
async function refundQuery(
  run: Run,
  provider: PaymentProvider,
  refundId: string,
): Promise<RefundStatusResult | undefined> {
  run.wxCalls++;
  try {
    return await provider.queryRefund(refundId);
  } catch (e) {
    if (wxFailure(e)?.reason === 'REFUND_NOT_FOUND') return undefined;
    throw e;
  }
}

/** The provider whose bill listed a trade this shop has no document for. */
function billProvider(run: Run, entry: RefundEntry): PaymentProvider {
  return entry.provider ? providerNamed(run.deps, entry.provider) : requireWxpay(run.deps).current;
}

/** APIv2's word for a refund status, as bills and the merchant platform say it. */
const BILL_WORD = { SUCCESS: 'SUCCESS', CLOSED: 'REFUNDCLOSE', ABNORMAL: 'CHANGE', PROCESSING: 'PROCESSING' };

/**
 * Paid at WeChat, not PAID here: orderquery must say so too, then the order takes the same
 * exactly-once transition as from a notify (CLOSED → PAID flagged PAID_AFTER_CLOSE).
 */
async function confirmPayment(run: Run, orderId: string, entry?: PayEntry): Promise<void> {
  const { deps } = run;
  const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (!order || order.status === 'PAID') return;
  const res = await orderQuery(run, order);
  if (!res?.paid) {
    run.flag({
      kind: 'PAYMENT_UNCONFIRMED',
      orderId,
      transactionId: entry?.transactionId,
      wechatFen: entry?.totalFen,
      localFen: order.totalFee,
      detail: `the bill lists it paid, orderquery says ${res?.state ?? 'ORDERNOTEXIST'}`,
    });
    return;
  }
  const outcome = await markPaid(deps, order, paidFacts(res), 'orderquery');
  switch (outcome) {
    case 'PAID':
    case 'PAID_AFTER_CLOSE':
      run.act({
        kind: outcome === 'PAID' ? 'BOOKED_PAID' : 'BOOKED_PAID_AFTER_CLOSE',
        orderId,
        fen: order.totalFee,
      });
      return;
    case 'ALREADY_PAID':
      // A notify booked it meanwhile.
      return;
    case 'AMOUNT_MISMATCH':
      run.flag({
        kind: 'AMOUNT_MISMATCH',
        orderId,
        transactionId: res.transactionId,
        wechatFen: res.totalFen,
        localFen: order.totalFee,
        detail: `orderquery total_fee ${res.totalFen}`,
      });
      return;
  }
}

/** The bill has WeChat's final word on one of our refunds that the books lack: refundquery, then settle. */
async function confirmRefund(run: Run, entry: RefundEntry): Promise<void> {
  const { deps } = run;
  const refund = await deps.store.get<RefundDoc>(COLLECTIONS.refunds, entry.refundId);
  if (!refund) return;
  const info = await refundQuery(run, providerOf(deps, refund), entry.refundId);
  if (!info) {
    run.flag({
      kind: 'REFUND_UNCONFIRMED',
      orderId: entry.orderId,
      refundId: entry.refundId,
      wechatFen: entry.refundFen,
      detail: `the bill says ${entry.status}, refundquery knows no such refund`,
    });
    return;
  }
  const outcome = await applyWeChatRefund(deps, refund, info, 'refundquery');
  switch (outcome) {
    case 'SUCCESS':
    case 'ABNORMAL':
      run.act({
        kind: 'SETTLED_REFUND',
        orderId: refund.orderId,
        refundId: refund._id,
        fen: refund.refundFee,
      });
      return;
    case 'ALREADY':
      // The bill says SUCCESS and refundquery still PROCESSING (the books agree with the
      // latter): WeChat's two records disagree, which the merchant must hear of.
      if (entry.status === 'SUCCESS' && info.status === 'PROCESSING') {
        run.flag({
          kind: 'REFUND_UNCONFIRMED',
          orderId: entry.orderId,
          refundId: entry.refundId,
          wechatFen: entry.refundFen,
          detail: 'the bill says SUCCESS, refundquery says PROCESSING',
        });
      }
      return;
    // (STILL_PROCESSING is an answer to a notify only, never to refundquery.)
    case 'MISMATCH':
      run.flag({
        kind: 'REFUND_AMOUNT_MISMATCH',
        orderId: entry.orderId,
        refundId: entry.refundId,
        wechatFen: info.refundFen,
        localFen: refund.refundFee,
        detail: 'refundquery disagrees with the refund here',
      });
      return;
    case 'CLOSED':
    case 'PROCESSING':
      run.act({ kind: 'FINALIZED_REFUND', orderId: refund.orderId, refundId: refund._id, fen: 0 });
      return;
    case 'IGNORED':
      run.flag({
        kind: 'REFUND_STATE_CONFLICT',
        orderId: entry.orderId,
        refundId: entry.refundId,
        wechatFen: entry.refundFen,
        localFen: refund.refundFee,
        detail: `WeChat says ${BILL_WORD[info.status]}, the refund is ${refund.status} here`,
      });
      return;
  }
}

/** A refund this shop never made: confirmed by refundquery, then recorded on its order. */
async function externalRefund(run: Run, entry: RefundEntry): Promise<void> {
  const info = await refundQuery(run, billProvider(run, entry), entry.refundId);
  if (!info) {
    run.flag({
      kind: 'REFUND_UNCONFIRMED',
      orderId: entry.orderId,
      refundId: entry.refundId,
      wechatFen: entry.refundFen,
      detail: 'a refund not made by this shop; refundquery says REFUNDNOTEXIST',
    });
    return;
  }
  // Closed: it moved no money.
  if (info.status === 'CLOSED') return;
  if (info.status === 'PROCESSING') {
    // Not money moved yet; the next run asks again.
    run.pending++;
    return;
  }
  const status: 'SUCCESS' | 'CHANGE' = info.status === 'ABNORMAL' ? 'CHANGE' : 'SUCCESS';
  const orderId = info.outTradeNo || entry.orderId;
  const refundFee = info.refundFen;
  const input = {
    refundId: entry.refundId,
    orderId,
    refundFee,
    status,
    billDate: run.billDate,
    fields: info.record,
  };
  let outcome = await recordExternalRefund(run.deps, input);
  if (outcome === 'ORDER_NOT_PAID') {
    // The books may have missed the payment: booked first if orderquery confirms it, then
    // the refund again (still ORDER_NOT_PAID if it was not).
    await confirmPayment(run, orderId);
    outcome = await recordExternalRefund(run.deps, input);
  }
  if (outcome === 'RECORDED')
    run.act({ kind: 'EXTERNAL_REFUND', orderId, refundId: entry.refundId, fen: refundFee });
  if (outcome === 'ORDER_MISSING' || outcome === 'ORDER_NOT_PAID') {
    run.flag({
      kind: 'EXTERNAL_REFUND_NO_ORDER',
      orderId,
      refundId: entry.refundId,
      wechatFen: refundFee,
      detail: outcome === 'ORDER_MISSING' ? 'no such order here' : 'the order is not paid here',
    });
  }
  if (status === 'CHANGE' && (outcome === 'RECORDED' || outcome === 'ALREADY')) {
    run.flag({
      kind: 'EXTERNAL_REFUND_ABNORMAL',
      orderId,
      refundId: entry.refundId,
      wechatFen: refundFee,
      detail: 'a refund made on the merchant platform could not reach the shopper (CHANGE)',
    });
  }
}

/** PAID here, not in the bill: orderquery tells whether WeChat has it, and on which day. */
async function absentPayment(run: Run, orderId: string): Promise<void> {
  const order = await run.deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (!order) return;
  const res = await orderQuery(run, order);
  if (!res?.paid) {
    // Booked after this day ended, it was looked for here only in case WeChat took the money
    // before midnight; it did not, so the day it was booked in reports it, once.
    if ((order.paidAtMs ?? 0) >= run.dayEnd) return;
    run.flag({
      kind: 'NOT_PAID_AT_WECHAT',
      orderId,
      localFen: order.totalFee,
      detail: `PAID here, orderquery says ${res?.state ?? 'ORDERNOTEXIST'}`,
    });
    return;
  }
  // Paid another day (a notify booked late, or early the next morning): that day's bill has it.
  // An answer without a time is held to no day (NaN is no date).
  if (billDateOf(res.paidAtMs ?? Number.NaN) !== run.billDate) return;
  run.flag({
    kind: 'PAID_NOT_IN_BILL',
    orderId,
    transactionId: res.transactionId,
    wechatFen: res.totalFen,
    localFen: order.totalFee,
    detail: `orderquery says paid at ${new Date(res.paidAtMs ?? 0).toISOString()}, the bill does not list it`,
  });
}

async function absentRefund(run: Run, refundId: string): Promise<void> {
  const refund = await run.deps.store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
  if (!refund) return;
  const info = await refundQuery(run, providerOf(run.deps, refund), refundId);
  run.flag({
    kind: 'REFUND_NOT_IN_BILL',
    orderId: refund.orderId,
    refundId,
    localFen: refund.refundFee,
    wechatFen: info?.refundFen,
    detail: `SUCCESS here, refundquery says ${info ? BILL_WORD[info.status] : 'REFUNDNOTEXIST'}, the bill does not list it`,
  });
}
