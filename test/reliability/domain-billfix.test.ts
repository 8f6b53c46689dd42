/**
 * The bill check's fixes (billfix.ts) in one process (world.ts), one kind of work at a time:
 * what the comparison left for WeChat to confirm is handed to `fixAndConfirm` as the
 * comparison would hand it, and WeChat's answers are the simulator's ledger, set to the
 * state each case needs. Asserted: the discrepancy each answer becomes (kind, amounts, the
 * merchant's line), what is booked and what is left untouched, the items left for the next
 * run, and the lines an operator reads. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { BillCheckDeps } from '../../cloudfunctions/shared/domain/billcheck';
import {
  type PayEntry,
  type RefundEntry,
  Run,
  type Work,
} from '../../cloudfunctions/shared/domain/billcompare';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import { fixAndConfirm } from '../../cloudfunctions/shared/domain/billfix';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { ProviderError } from '../../cloudfunctions/shared/providers/errors';
import type { PaymentProvider } from '../../cloudfunctions/shared/providers/port';
import type { Store } from '../../cloudfunctions/shared/store';
import { merchantPlatformRefund } from '../../sandbox/wxpay/bills';
import type { SimRefund } from '../../sandbox/wxpay/ledger';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  eventsOf,
  logged,
  orderAndPay,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
} from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();

const HOUR = 3600_000;
/** WeChat's timeout (8 s) × 3 attempts + 3 s of backoff: what one item may take. */
const CALL_BUDGET_MS = 27_000;
let day = '';
beforeEach(async () => {
  await w.reset();
  day = billDateOf(w.now());
});

/** A run of today's check holding `work`, as the comparison leaves it. */
function runOf(work: Work[], o: { deps?: Deps; deadlineMs?: number } = {}): Run {
  const deps: BillCheckDeps = { ...(o.deps ?? w.deps()), bills: [] };
  const run = new Run(deps, day, o.deadlineMs ?? w.now() + 10 * 60_000);
  run.work.push(...work);
  return run;
}

const wxOrder = (orderId: string) => w.core.ledger.order(MERCHANT.mchId, orderId)!;
const wxRefund = (refundId: string) => w.core.ledger.refund(MERCHANT.mchId, refundId)!;
const setWxRefund = (refundId: string, patch: Partial<SimRefund>) =>
  w.core.ledger.putRefund({ ...wxRefund(refundId), ...patch });

/** The bill's row for an order WeChat was paid for. */
const payEntry = (orderId: string, extra: Partial<PayEntry> = {}): PayEntry => ({
  orderId,
  transactionId: wxOrder(orderId).transactionId ?? '',
  totalFen: wxOrder(orderId).totalFee,
  ...extra,
});
/** The bill's row for a refund, in the bill's words (SUCCESS, REFUNDCLOSE, CHANGE, PROCESSING). */
const refundEntry = (r: SimRefund, status: string, extra: Partial<RefundEntry> = {}): RefundEntry => ({
  orderId: r.outTradeNo,
  refundId: r.outRefundNo,
  transactionId: r.transactionId,
  refundFen: r.refundFee,
  status,
  ...extra,
});

/** A refund the shop asked for and WeChat accepted (PROCESSING on both sides). */
async function submittedRefund(priceFen: number, refundFee: number) {
  const orderId = await paidOrder(w, priceFen);
  const r = await applied(w, orderId, refundFee);
  await approveRefund(w.deps(), { refundId: r.refundId, decision: 'approve' }, ADMIN);
  expect((await refundDoc(w, r.refundId)).status).toBe('PROCESSING');
  return { orderId, refundId: r.refundId };
}

/** A refund made on the merchant platform, ended `outcome` at WeChat, unknown to the shop. */
function platformRefund(orderId: string, refundFee: number, outcome?: 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE') {
  const made = merchantPlatformRefund(
    w.core.ledger,
    { ...MERCHANT, signType: 'HMAC-SHA256' } as never,
    { outTradeNo: orderId, refundFee },
    w.now(),
    w.now() + 365 * 24 * HOUR,
  );
  w.core.engine.acceptRefund(made);
  if (outcome) w.core.engine.settleOne(made.outRefundNo, outcome);
  w.outbox.length = 0;
  return wxRefund(made.outRefundNo);
}

/** Deps whose store moves the clock by `ms` at its first request: a fix that took that long. */
function slowFirstRequest(deps: Deps, ms: number): Deps {
  let done = false;
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (!done && ['get', 'find', 'cas', 'insert'].includes(String(prop))) {
          done = true;
          w.advance(ms);
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Store;
  return { ...deps, store };
}

/** Deps whose v2 provider answers orderquery with `fail` instead of asking WeChat. */
function orderqueryFails(deps: Deps, fail: () => unknown): Deps {
  const v2 = deps.wxpay!.byName.v2!;
  const broken = new Proxy(v2, {
    get(target, prop, receiver) {
      if (prop === 'queryPayment') return async () => Promise.reject(fail());
      return Reflect.get(target, prop, receiver);
    },
  }) as PaymentProvider;
  return { ...deps, wxpay: { current: broken, byName: { v2: broken } } };
}

const fixedLines = () => logged(w, 'billcheck.fixed').map((l) => l.fields);

describe('a payment the bill lists and the books do not have as PAID', () => {
  it('is booked PAID once orderquery says so, logged for the operator, and not asked about again once PAID', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    const run = runOf([{ type: 'pay', entry: payEntry(orderId) }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([{ kind: 'BOOKED_PAID', orderId, fen: 2000, atMs: w.now() }]);
    expect(run.discrepancies).toEqual([]);
    expect(run.pending).toBe(0);
    expect(run.wxCalls).toBe(1);
    expect(fixedLines()).toEqual([{ billDate: day, kind: 'BOOKED_PAID', orderId, fen: 2000 }]);
    expect(await orderDoc(w, orderId)).toMatchObject({
      status: 'PAID',
      transactionId: wxOrder(orderId).transactionId,
    });
    expect((await eventsOf(w, orderId)).filter((e) => e.to === 'PAID')).toMatchObject([
      { from: 'NOTPAY', source: 'orderquery' },
    ]);
    // PAID now: nothing to ask WeChat, nothing to book.
    const again = runOf([{ type: 'pay', entry: payEntry(orderId) }]);
    await fixAndConfirm(again);
    expect(again).toMatchObject({ wxCalls: 0, pending: 0, actions: [], discrepancies: [] });
  });
});

describe('a payment the bill lists, checked with orderquery first', () => {
  it('books an order closed here meanwhile PAID_AFTER_CLOSE', async () => {
    const { orderId } = await orderAndPay(w, 3000);
    w.outbox.length = 0;
    await w.deps().store.cas('orders', { _id: orderId }, { status: 'CLOSED', closeReason: 'expired' });
    const run = runOf([{ type: 'pay', entry: payEntry(orderId) }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([{ kind: 'BOOKED_PAID_AFTER_CLOSE', orderId, fen: 3000, atMs: w.now() }]);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE' });
  });

  it('reports one orderquery says is not paid, with the bill’s and the books’ amounts, and books nothing', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    // WeChat has no payment for it (the bill row was wrong, or a refund of the whole day).
    w.core.ledger.putOrder({ ...wxOrder(orderId), tradeState: 'NOTPAY' });
    const run = runOf([
      { type: 'pay', entry: payEntry(orderId, { transactionId: '4200tx', totalFen: 2100 }) },
    ]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'PAYMENT_UNCONFIRMED',
        orderId,
        transactionId: '4200tx',
        wechatFen: 2100,
        localFen: 2000,
        detail: 'the bill lists it paid, orderquery says NOTPAY',
      },
    ]);
    expect(run.counts).toEqual({ PAYMENT_UNCONFIRMED: 1 });
    expect(logged(w, 'billcheck.discrepancy').map((l) => l.fields)).toMatchObject([
      { billDate: day, kind: 'PAYMENT_UNCONFIRMED', orderId },
    ]);
    expect(run.actions).toEqual([]);
    expect(run.wxCalls).toBe(1);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });

  it('reports one WeChat knows nothing of (ORDERNOTEXIST)', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    const entry = payEntry(orderId);
    w.outbox.length = 0;
    w.core.ledger.clear();
    const run = runOf([{ type: 'pay', entry }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'PAYMENT_UNCONFIRMED',
        orderId,
        transactionId: entry.transactionId,
        wechatFen: 2000,
        localFen: 2000,
        detail: 'the bill lists it paid, orderquery says ORDERNOTEXIST',
      },
    ]);
    expect(run.pending).toBe(0);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });

  it('reports an amount changed here with orderquery’s amount, and books nothing', async () => {
    const { orderId } = await orderAndPay(w, 5000);
    w.outbox.length = 0;
    await w.deps().store.cas('orders', { _id: orderId }, { totalFee: 5001 });
    const run = runOf([{ type: 'pay', entry: payEntry(orderId, { transactionId: 'from-the-bill' }) }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'AMOUNT_MISMATCH',
        orderId,
        transactionId: wxOrder(orderId).transactionId,
        wechatFen: 5000,
        localFen: 5001,
        detail: 'orderquery total_fee 5000',
      },
    ]);
    expect(run.actions).toEqual([]);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'NOTPAY', totalFee: 5001 });
  });

  it('skips an order the books no longer have, asking WeChat nothing', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    const entry = payEntry(orderId);
    const run = runOf([{ type: 'pay', entry: { ...entry, orderId: 'NOSUCHORDER0001' } }]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ wxCalls: 0, pending: 0, actions: [], discrepancies: [] });
    expect(logged(w, 'billcheck.item_failed')).toEqual([]);
  });

  it('leaves a payment booked by its notify meanwhile as it is (the notify booked it, once)', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    const point = pausePoint();
    const run = runOf([{ type: 'pay', entry: payEntry(orderId) }], {
      deps: pauseBefore(w.deps(), casOn('orders'), point),
    });
    const fixing = fixAndConfirm(run);
    await point.arrived;
    expect(await deliver(w)).toEqual(['PAID']);
    point.release();
    await fixing;
    expect(run).toMatchObject({ actions: [], discrepancies: [], pending: 0 });
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID' });
    expect((await eventsOf(w, orderId)).filter((e) => e.to === 'PAID')).toHaveLength(1);
  });
});

describe('one of the shop’s refunds the bill has a final word on', () => {
  it('settles one WeChat says SUCCESS: SETTLED_REFUND with its amount, counted on its order', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 800);
    w.core.engine.settleOne(refundId, 'SUCCESS');
    w.outbox.length = 0;
    const run = runOf([{ type: 'refund', entry: refundEntry(wxRefund(refundId), 'SUCCESS') }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([{ kind: 'SETTLED_REFUND', orderId, refundId, fen: 800, atMs: w.now() }]);
    expect(run.discrepancies).toEqual([]);
    expect(run.wxCalls).toBe(1);
    expect((await refundDoc(w, refundId)).status).toBe('SUCCESS');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 800, refundReservedFee: 0 });
    expect((await eventsOf(w, refundId)).filter((e) => e.to === 'SUCCESS')).toMatchObject([
      { from: 'PROCESSING', source: 'refundquery' },
    ]);
    // Settled: the same row again changes nothing and reports nothing.
    const again = runOf([{ type: 'refund', entry: refundEntry(wxRefund(refundId), 'SUCCESS') }]);
    await fixAndConfirm(again);
    expect(again).toMatchObject({ actions: [], discrepancies: [], pending: 0, wxCalls: 1 });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 800 });
  });

  it('settles one that ended CHANGE (money left the merchant, not reaching the shopper) the same way', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 700);
    w.core.engine.settleOne(refundId, 'CHANGE');
    w.outbox.length = 0;
    const run = runOf([{ type: 'refund', entry: refundEntry(wxRefund(refundId), 'CHANGE') }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([{ kind: 'SETTLED_REFUND', orderId, refundId, fen: 700, atMs: w.now() }]);
    expect((await refundDoc(w, refundId)).status).toBe('ABNORMAL');
  });

  it('closes one WeChat closed, moving no money: FINALIZED_REFUND for 0 fen', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 600);
    w.core.engine.settleOne(refundId, 'REFUNDCLOSE');
    w.outbox.length = 0;
    const run = runOf([{ type: 'refund', entry: refundEntry(wxRefund(refundId), 'REFUNDCLOSE') }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([{ kind: 'FINALIZED_REFUND', orderId, refundId, fen: 0, atMs: w.now() }]);
    expect(run.discrepancies).toEqual([]);
    expect((await refundDoc(w, refundId)).status).toBe('CLOSED');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 0 });
  });

  it('takes up one WeChat accepted that the books still have as only approved: FINALIZED_REFUND for 0 fen', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 500);
    await w.deps().store.cas('refunds', { _id: refundId }, { status: 'APPROVED' });
    const run = runOf([{ type: 'refund', entry: refundEntry(wxRefund(refundId), 'PROCESSING') }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([{ kind: 'FINALIZED_REFUND', orderId, refundId, fen: 0, atMs: w.now() }]);
    expect((await refundDoc(w, refundId)).status).toBe('PROCESSING');
  });

  it('reports one the bill says SUCCESS while refundquery still says PROCESSING, and settles nothing', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 800);
    const run = runOf([
      { type: 'refund', entry: refundEntry(wxRefund(refundId), 'SUCCESS', { refundFen: 810 }) },
    ]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_UNCONFIRMED',
        orderId,
        refundId,
        wechatFen: 810,
        detail: 'the bill says SUCCESS, refundquery says PROCESSING',
      },
    ]);
    expect(run).toMatchObject({ actions: [], pending: 0, wxCalls: 1 });
    expect((await refundDoc(w, refundId)).status).toBe('PROCESSING');
    // The bill still processing it too: nothing to say.
    const quiet = runOf([{ type: 'refund', entry: refundEntry(wxRefund(refundId), 'PROCESSING') }]);
    await fixAndConfirm(quiet);
    expect(quiet).toMatchObject({ actions: [], discrepancies: [], pending: 0 });
  });

  it('reports one refundquery gives another amount for, and settles nothing', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 800);
    w.core.engine.settleOne(refundId, 'SUCCESS');
    w.outbox.length = 0;
    setWxRefund(refundId, { refundFee: 900 });
    const run = runOf([
      {
        type: 'refund',
        entry: refundEntry(wxRefund(refundId), 'SUCCESS', { orderId: 'as-the-bill-says', refundFen: 850 }),
      },
    ]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_AMOUNT_MISMATCH',
        orderId: 'as-the-bill-says',
        refundId,
        wechatFen: 900,
        localFen: 800,
        detail: 'refundquery disagrees with the refund here',
      },
    ]);
    expect(run.actions).toEqual([]);
    expect((await refundDoc(w, refundId)).status).toBe('PROCESSING');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 0 });
  });

  it('reports one refundquery does not know, with the bill’s status and amount', async () => {
    const { refundId } = await submittedRefund(5000, 800);
    const entry = refundEntry(wxRefund(refundId), 'SUCCESS', { refundFen: 801 });
    w.core.ledger.clear();
    const run = runOf([{ type: 'refund', entry }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_UNCONFIRMED',
        orderId: entry.orderId,
        refundId,
        wechatFen: 801,
        detail: 'the bill says SUCCESS, refundquery knows no such refund',
      },
    ]);
    expect(run.pending).toBe(0);
    expect((await refundDoc(w, refundId)).status).toBe('PROCESSING');
  });

  it('reports WeChat closing a refund that is SUCCESS here as a conflict, and changes nothing', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 800);
    w.core.engine.settleOne(refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    setWxRefund(refundId, { status: 'REFUNDCLOSE' });
    const run = runOf([
      { type: 'refund', entry: refundEntry(wxRefund(refundId), 'REFUNDCLOSE', { refundFen: 799 }) },
    ]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_STATE_CONFLICT',
        orderId,
        refundId,
        wechatFen: 799,
        localFen: 800,
        detail: 'WeChat says REFUNDCLOSE, the refund is SUCCESS here',
      },
    ]);
    expect(run.actions).toEqual([]);
    expect((await refundDoc(w, refundId)).status).toBe('SUCCESS');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 800 });
  });

  it('skips a refund the books no longer have, asking WeChat nothing', async () => {
    const { refundId } = await submittedRefund(5000, 800);
    const run = runOf([
      { type: 'refund', entry: refundEntry(wxRefund(refundId), 'SUCCESS', { refundId: 'NOSUCHREFUND' }) },
    ]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ wxCalls: 0, pending: 0, actions: [], discrepancies: [] });
    expect(logged(w, 'billcheck.item_failed')).toEqual([]);
  });
});

describe('a refund the bill lists that the shop never made (merchant platform)', () => {
  it('is recorded on its order with refundquery’s order and amount, once, and told to the operator', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 1000, 'SUCCESS');
    // The bill's row is not trusted for the order or the amount: refundquery's word is.
    const entry = refundEntry(made, 'SUCCESS', { orderId: '', refundFen: 999 });
    const run = runOf([{ type: 'external', entry }]);
    await fixAndConfirm(run);
    expect(run.actions).toEqual([
      { kind: 'EXTERNAL_REFUND', orderId, refundId: made.outRefundNo, fen: 1000, atMs: w.now() },
    ]);
    expect(run.discrepancies).toEqual([]);
    expect(fixedLines()).toEqual([
      { billDate: day, kind: 'EXTERNAL_REFUND', orderId, refundId: made.outRefundNo, fen: 1000 },
    ]);
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      externalRefunds: [{ refundId: made.outRefundNo, refundFee: 1000, status: 'SUCCESS', billDate: day }],
    });
    const again = runOf([{ type: 'external', entry }]);
    await fixAndConfirm(again);
    expect(again).toMatchObject({ actions: [], discrepancies: [], pending: 0 });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000 });
  });

  it('is recorded when it ended CHANGE, and flagged for the merchant on every run', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 300, 'CHANGE');
    const entry = refundEntry(made, 'CHANGE', { refundFen: 301 });
    const flagged = {
      kind: 'EXTERNAL_REFUND_ABNORMAL',
      orderId,
      refundId: made.outRefundNo,
      wechatFen: 300,
      detail: 'a refund made on the merchant platform could not reach the shopper (CHANGE)',
    };
    const run = runOf([{ type: 'external', entry }]);
    await fixAndConfirm(run);
    expect(run.actions).toMatchObject([{ kind: 'EXTERNAL_REFUND', orderId, fen: 300 }]);
    expect(run.discrepancies).toEqual([flagged]);
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 300,
      externalRefunds: [{ status: 'CHANGE', refundFee: 300 }],
    });
    // Recorded already: still the merchant's to settle by hand, so reported again.
    const again = runOf([{ type: 'external', entry }]);
    await fixAndConfirm(again);
    expect(again.actions).toEqual([]);
    expect(again.discrepancies).toEqual([flagged]);
  });

  it('is left alone while WeChat still processes it, for the next run (pending)', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 300);
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'PROCESSING') }]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ pending: 1, actions: [], discrepancies: [], wxCalls: 1 });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 0 });
    expect((await orderDoc(w, orderId)).externalRefunds).toBeUndefined();
  });

  it('is dropped when WeChat closed it: no money moved, nothing to report', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 300, 'REFUNDCLOSE');
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ pending: 0, actions: [], discrepancies: [], wxCalls: 1 });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 0 });
  });

  it('is reported when refundquery does not know it, and nothing is recorded', async () => {
    const orderId = await paidOrder(w, 5000);
    const run = runOf([
      {
        type: 'external',
        entry: { orderId, refundId: 'NOTATWECHAT01', transactionId: '42', refundFen: 400, status: 'SUCCESS' },
      },
    ]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_UNCONFIRMED',
        orderId,
        refundId: 'NOTATWECHAT01',
        wechatFen: 400,
        detail: 'a refund not made by this shop; refundquery says REFUNDNOTEXIST',
      },
    ]);
    expect(run).toMatchObject({ pending: 0, actions: [] });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 0 });
  });

  it('is reported when its order is not in the books', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 300, 'SUCCESS');
    // The same refund at WeChat, of an order this shop does not have.
    w.core.ledger.putRefund({ ...made, outTradeNo: 'NOTOURORDER0001' });
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'EXTERNAL_REFUND_NO_ORDER',
        orderId: 'NOTOURORDER0001',
        refundId: made.outRefundNo,
        wechatFen: 300,
        detail: 'no such order here',
      },
    ]);
    expect(run.actions).toEqual([]);
  });

  it('ended CHANGE on an order not in the books: reported as without an order only', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 300, 'CHANGE');
    w.core.ledger.putRefund({ ...made, outTradeNo: 'NOTOURORDER0002' });
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'CHANGE') }]);
    await fixAndConfirm(run);
    expect(run.discrepancies.map((d) => d.kind)).toEqual(['EXTERNAL_REFUND_NO_ORDER']);
  });

  it('books its order PAID first when the books missed the payment, then records the refund', async () => {
    const { orderId } = await orderAndPay(w, 5000);
    w.outbox.length = 0;
    const made = platformRefund(orderId, 300, 'SUCCESS');
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }]);
    await fixAndConfirm(run);
    expect(run.actions).toMatchObject([
      { kind: 'BOOKED_PAID', orderId, fen: 5000 },
      { kind: 'EXTERNAL_REFUND', orderId, refundId: made.outRefundNo, fen: 300 },
    ]);
    expect(run.discrepancies).toEqual([]);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', refundedFee: 300 });
  });

  it('records the refund when its order’s notify books it while the check confirms the payment', async () => {
    const { orderId } = await orderAndPay(w, 5000);
    const payNotify = w.outbox.splice(0);
    const made = platformRefund(orderId, 300, 'SUCCESS');
    const point = pausePoint();
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }], {
      deps: pauseBefore(w.deps(), casOn('orders'), point),
    });
    const fixing = fixAndConfirm(run);
    await point.arrived;
    w.outbox.push(...payNotify);
    expect(await deliver(w)).toEqual(['PAID']);
    point.release();
    await fixing;
    expect(run.actions).toMatchObject([{ kind: 'EXTERNAL_REFUND', orderId, fen: 300 }]);
    expect(run.discrepancies).toEqual([]);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', refundedFee: 300 });
  });

  it('records the refund when the notify books its order between the check’s two reads of it', async () => {
    const { orderId } = await orderAndPay(w, 5000);
    const payNotify = w.outbox.splice(0);
    const made = platformRefund(orderId, 300, 'SUCCESS');
    const point = pausePoint();
    let reads = 0;
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }], {
      // The second read of the order: after the refund found it unpaid, before orderquery.
      deps: pauseBefore(
        w.deps(),
        (c) => c.method === 'get' && c.collection === 'orders' && ++reads === 2,
        point,
      ),
    });
    const fixing = fixAndConfirm(run);
    await point.arrived;
    w.outbox.push(...payNotify);
    expect(await deliver(w)).toEqual(['PAID']);
    point.release();
    await fixing;
    expect(run.actions).toMatchObject([{ kind: 'EXTERNAL_REFUND', orderId, fen: 300 }]);
    // PAID when read: WeChat is not asked about the payment.
    expect(run.wxCalls).toBe(1);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', refundedFee: 300 });
  });

  it('is reported, with the payment, when its order cannot be booked PAID here', async () => {
    const { orderId } = await orderAndPay(w, 5000);
    w.outbox.length = 0;
    const made = platformRefund(orderId, 300, 'SUCCESS');
    await w.deps().store.cas('orders', { _id: orderId }, { totalFee: 4000 });
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toMatchObject([
      { kind: 'AMOUNT_MISMATCH', orderId, wechatFen: 5000, localFen: 4000 },
      {
        kind: 'EXTERNAL_REFUND_NO_ORDER',
        orderId,
        refundId: made.outRefundNo,
        wechatFen: 300,
        detail: 'the order is not paid here',
      },
    ]);
    expect(run.actions).toEqual([]);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'NOTPAY', refundedFee: 0 });
  });

  it('is reported, with the payment, when WeChat says its order is not paid', async () => {
    const { orderId } = await orderAndPay(w, 5000);
    w.outbox.length = 0;
    const made = platformRefund(orderId, 300, 'SUCCESS');
    // WeChat's own records disagree (a refund of an order orderquery calls unpaid).
    w.core.ledger.putOrder({ ...wxOrder(orderId), tradeState: 'NOTPAY' });
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS') }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'PAYMENT_UNCONFIRMED',
        orderId,
        transactionId: undefined,
        wechatFen: undefined,
        localFen: 5000,
        detail: 'the bill lists it paid, orderquery says NOTPAY',
      },
      {
        kind: 'EXTERNAL_REFUND_NO_ORDER',
        orderId,
        refundId: made.outRefundNo,
        wechatFen: 300,
        detail: 'the order is not paid here',
      },
    ]);
    expect(run).toMatchObject({ pending: 0, actions: [] });
  });

  it('is confirmed through the provider whose bill listed it', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = platformRefund(orderId, 300, 'SUCCESS');
    // A bill of cloudPay's account, which this shop does not have configured.
    const run = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS', { provider: 'cloudpay' }) }]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ pending: 1, actions: [], discrepancies: [], wxCalls: 0 });
    expect(logged(w, 'billcheck.item_failed').map((l) => l.fields)).toMatchObject([
      { billDate: day, item: 'external', code: 'CONFIG_INVALID' },
    ]);
    const v2 = runOf([{ type: 'external', entry: refundEntry(made, 'SUCCESS', { provider: 'v2' }) }]);
    await fixAndConfirm(v2);
    expect(v2.actions).toMatchObject([{ kind: 'EXTERNAL_REFUND', orderId, fen: 300 }]);
  });
});

describe('a payment PAID here that the bill does not list', () => {
  it('is reported with orderquery’s time when WeChat was paid that day', async () => {
    const orderId = await paidOrder(w, 1200);
    const paidAt = wxOrder(orderId).paidAtMs!;
    // paidAtMs is in whole seconds (time_end).
    const run = runOf([{ type: 'absent-pay', orderId }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'PAID_NOT_IN_BILL',
        orderId,
        transactionId: wxOrder(orderId).transactionId,
        wechatFen: 1200,
        localFen: 1200,
        detail: `orderquery says paid at ${new Date(paidAt).toISOString()}, the bill does not list it`,
      },
    ]);
    expect(run).toMatchObject({ actions: [], pending: 0, wxCalls: 1 });
  });

  it('is not reported when orderquery says it is paid but not when (no day to hold it to)', async () => {
    const orderId = await paidOrder(w, 1200);
    const deps = w.deps();
    const v2 = deps.wxpay!.byName.v2!;
    const timeless = new Proxy(v2, {
      get(target, prop, receiver) {
        if (prop === 'queryPayment')
          return async (id: string) => ({ ...(await v2.queryPayment(id)), paidAtMs: undefined });
        return Reflect.get(target, prop, receiver);
      },
    }) as PaymentProvider;
    const run = runOf([{ type: 'absent-pay', orderId }], {
      deps: { ...deps, wxpay: { current: timeless, byName: { v2: timeless } } },
    });
    await fixAndConfirm(run);
    expect(run).toMatchObject({ discrepancies: [], pending: 0, wxCalls: 1 });
  });

  it('is not reported here when WeChat was paid on another day (that day’s bill has it)', async () => {
    const orderId = await paidOrder(w, 1200);
    for (const paidAtMs of [dayStartMs(day)! - 1000, dayStartMs(day)! + 24 * HOUR]) {
      w.core.ledger.putOrder({ ...wxOrder(orderId), paidAtMs });
      const run = runOf([{ type: 'absent-pay', orderId }]);
      await fixAndConfirm(run);
      expect(run).toMatchObject({ discrepancies: [], actions: [], pending: 0, wxCalls: 1 });
    }
  });

  it('is reported NOT_PAID_AT_WECHAT when orderquery says it is not paid, and stays PAID', async () => {
    const orderId = await paidOrder(w, 1200);
    w.core.ledger.putOrder({ ...wxOrder(orderId), tradeState: 'CLOSED' });
    const run = runOf([{ type: 'absent-pay', orderId }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      { kind: 'NOT_PAID_AT_WECHAT', orderId, localFen: 1200, detail: 'PAID here, orderquery says CLOSED' },
    ]);
    w.core.ledger.clear();
    const gone = runOf([{ type: 'absent-pay', orderId }]);
    await fixAndConfirm(gone);
    expect(gone.discrepancies).toEqual([
      {
        kind: 'NOT_PAID_AT_WECHAT',
        orderId,
        localFen: 1200,
        detail: 'PAID here, orderquery says ORDERNOTEXIST',
      },
    ]);
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
  });

  it('booked after the day ended and unknown to WeChat, is left to the day it was booked in', async () => {
    const orderId = await paidOrder(w, 1200);
    w.core.ledger.clear();
    const dayEnd = dayStartMs(day)! + 24 * HOUR;
    const flagged = async (paidAtMs: number | undefined) => {
      const _ = w.deps().store.cmd;
      await w
        .deps()
        .store.cas('orders', { _id: orderId }, { paidAtMs: paidAtMs === undefined ? _.remove() : paidAtMs });
      const run = runOf([{ type: 'absent-pay', orderId }]);
      await fixAndConfirm(run);
      return run.discrepancies.map((d) => d.kind);
    };
    expect(await flagged(dayEnd)).toEqual([]);
    expect(await flagged(dayEnd + HOUR)).toEqual([]);
    expect(await flagged(dayEnd - 1)).toEqual(['NOT_PAID_AT_WECHAT']);
    // A PAID order without its time (an old record): reported by the day it is looked for in.
    expect(await flagged(undefined)).toEqual(['NOT_PAID_AT_WECHAT']);
  });

  it('is skipped when the books no longer have the order', async () => {
    const run = runOf([{ type: 'absent-pay', orderId: 'NOSUCHORDER0001' }]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ wxCalls: 0, pending: 0, discrepancies: [] });
  });
});

describe('a refund SUCCESS here that the bill does not list', () => {
  it('is reported with refundquery’s status and amount', async () => {
    const { orderId, refundId } = await submittedRefund(5000, 800);
    w.core.engine.settleOne(refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    setWxRefund(refundId, { refundFee: 801 });
    const run = runOf([{ type: 'absent-refund', refundId }]);
    await fixAndConfirm(run);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_NOT_IN_BILL',
        orderId,
        refundId,
        localFen: 800,
        wechatFen: 801,
        detail: 'SUCCESS here, refundquery says SUCCESS, the bill does not list it',
      },
    ]);
    expect(run).toMatchObject({ actions: [], pending: 0, wxCalls: 1 });
    setWxRefund(refundId, { status: 'CHANGE' });
    const change = runOf([{ type: 'absent-refund', refundId }]);
    await fixAndConfirm(change);
    expect(change.discrepancies[0]?.detail).toBe(
      'SUCCESS here, refundquery says CHANGE, the bill does not list it',
    );
    w.core.ledger.clear();
    const gone = runOf([{ type: 'absent-refund', refundId }]);
    await fixAndConfirm(gone);
    expect(gone.discrepancies).toEqual([
      {
        kind: 'REFUND_NOT_IN_BILL',
        orderId,
        refundId,
        localFen: 800,
        detail: 'SUCCESS here, refundquery says REFUNDNOTEXIST, the bill does not list it',
      },
    ]);
    expect((await refundDoc(w, refundId)).status).toBe('SUCCESS');
  });

  it('is skipped when the books no longer have the refund', async () => {
    const run = runOf([{ type: 'absent-refund', refundId: 'NOSUCHREFUND' }]);
    await fixAndConfirm(run);
    expect(run).toMatchObject({ wxCalls: 0, pending: 0, discrepancies: [] });
  });
});

describe('the run’s time and WeChat’s failures', () => {
  /** Three payments whose notifies never came: each a WeChat call. */
  async function threeUnbooked(): Promise<string[]> {
    const ids: string[] = [];
    for (const fen of [1000, 2000, 3000]) ids.push((await orderAndPay(w, fen)).orderId);
    w.outbox.length = 0;
    return ids;
  }
  const payWork = (ids: string[]): Work[] => ids.map((id) => ({ type: 'pay', entry: payEntry(id) }));

  it('starts no WeChat call that could outlast the run: what is left is pending, and logged', async () => {
    const ids = await threeUnbooked();
    const run = runOf(payWork(ids), { deadlineMs: w.now() + CALL_BUDGET_MS - 1 });
    await fixAndConfirm(run);
    expect(run).toMatchObject({ pending: 3, wxCalls: 0, actions: [] });
    expect(logged(w, 'billcheck.out_of_time')).toEqual([
      { level: 'warn', event: 'billcheck.out_of_time', fields: { billDate: day, left: 3 } },
    ]);
    for (const id of ids) expect((await orderDoc(w, id)).status).toBe('NOTPAY');
  });

  it('makes a call that just fits, and stops when the time left no longer fits one', async () => {
    const ids = await threeUnbooked();
    const exact = runOf(payWork(ids.slice(0, 1)), { deadlineMs: w.now() + CALL_BUDGET_MS });
    await fixAndConfirm(exact);
    expect(exact).toMatchObject({ pending: 0, actions: [{ kind: 'BOOKED_PAID', orderId: ids[0] }] });
    // The first fix takes 1 ms: the second would end after the deadline.
    const run = runOf(payWork(ids.slice(1)).concat(payWork(ids.slice(0, 1))), {
      deps: slowFirstRequest(w.deps(), 1),
      deadlineMs: w.now() + CALL_BUDGET_MS,
    });
    await fixAndConfirm(run);
    expect(run.actions).toMatchObject([{ kind: 'BOOKED_PAID', orderId: ids[1] }]);
    expect(run.pending).toBe(2);
    expect(logged(w, 'billcheck.out_of_time').map((l) => l.fields)).toEqual([{ billDate: day, left: 2 }]);
    expect((await orderDoc(w, ids[2]!)).status).toBe('NOTPAY');
  });

  it('leaves an item pending while WeChat is busy, logs its code, and goes on with the next', async () => {
    const ids = await threeUnbooked();
    const other = await paidOrder(w, 5000);
    const made = platformRefund(other, 300, 'SUCCESS');
    w.faults({ systemErrorRate: { '/pay/orderquery': 1 } });
    const run = runOf([
      ...payWork(ids.slice(0, 1)),
      { type: 'external', entry: refundEntry(made, 'SUCCESS') },
    ]);
    await fixAndConfirm(run);
    expect(run.pending).toBe(1);
    expect(run.discrepancies).toEqual([]);
    expect(run.actions).toMatchObject([{ kind: 'EXTERNAL_REFUND', orderId: other, fen: 300 }]);
    expect(logged(w, 'billcheck.item_failed')).toMatchObject([
      { level: 'warn', fields: { billDate: day, item: 'pay', code: 'SYSTEMERROR' } },
    ]);
    expect((await orderDoc(w, ids[0]!)).status).toBe('NOTPAY');
  });

  it('leaves a refund pending while refundquery is busy or does not answer, with the code an operator can look up', async () => {
    const { refundId } = await submittedRefund(5000, 800);
    w.core.engine.settleOne(refundId, 'SUCCESS');
    w.outbox.length = 0;
    const entry = refundEntry(wxRefund(refundId), 'SUCCESS');
    w.faults({ systemErrorRate: { '/pay/refundquery': 1 } });
    const busy = runOf([{ type: 'refund', entry }]);
    await fixAndConfirm(busy);
    w.faults({ systemErrorRate: 0, timeoutRate: { '/pay/refundquery': 1 } });
    const silent = runOf([{ type: 'external', entry }]);
    await fixAndConfirm(silent);
    for (const run of [busy, silent])
      expect(run).toMatchObject({ pending: 1, discrepancies: [], actions: [] });
    const lines = logged(w, 'billcheck.item_failed');
    expect(lines.map((l) => ({ ...l.fields, error: undefined }))).toEqual([
      { billDate: day, item: 'refund', code: 'SYSTEMERROR', error: undefined },
      { billDate: day, item: 'external', code: 'NETWORK', error: undefined },
    ]);
    expect(lines[0]!.fields['error']).toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
      providerCode: 'SYSTEMERROR',
    });
    expect((await refundDoc(w, refundId)).status).toBe('PROCESSING');
  });

  it('leaves an item pending when the database fails it, logging the database’s code', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    const failing: Deps = w.deps();
    const store = new Proxy(failing.store, {
      get(target, prop, receiver) {
        if (prop === 'get')
          return async () =>
            Promise.reject(Object.assign(new Error('请求超时'), { code: 'DATABASE_TIMEOUT' }));
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Store;
    const run = runOf([{ type: 'pay', entry: payEntry(orderId) }], { deps: { ...failing, store } });
    await fixAndConfirm(run);
    expect(run).toMatchObject({ pending: 1, actions: [], discrepancies: [] });
    expect(logged(w, 'billcheck.item_failed').map((l) => l.fields)).toMatchObject([
      { billDate: day, item: 'pay', code: 'DATABASE_TIMEOUT', error: { message: '请求超时' } },
    ]);
  });

  it('leaves pending an item whose query fails outside WeChat, with that failure’s code', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    // Paid through cloudPay, which this function no longer has configured.
    await w.deps().store.cas('orders', { _id: orderId }, { provider: 'cloudpay' });
    const { refundId } = await submittedRefund(5000, 800);
    const deps = w.deps();
    const v2 = deps.wxpay!.byName.v2!;
    const reset = new Proxy(v2, {
      get(target, prop, receiver) {
        if (prop === 'queryRefund')
          return async () =>
            Promise.reject(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
        return Reflect.get(target, prop, receiver);
      },
    }) as PaymentProvider;
    const run = runOf(
      [
        { type: 'pay', entry: payEntry(orderId) },
        { type: 'refund', entry: refundEntry(wxRefund(refundId), 'SUCCESS') },
      ],
      { deps: { ...deps, wxpay: { current: reset, byName: { v2: reset } } } },
    );
    await fixAndConfirm(run);
    expect(run).toMatchObject({ pending: 2, discrepancies: [], actions: [] });
    expect(logged(w, 'billcheck.item_failed').map((l) => [l.fields['item'], l.fields['code']])).toEqual([
      ['pay', 'CONFIG_INVALID'],
      ['refund', 'ECONNRESET'],
    ]);
  });

  it('leaves pending an item whose failure carries nothing at all', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    const run = runOf([{ type: 'pay', entry: payEntry(orderId) }], {
      deps: orderqueryFails(w.deps(), () => null),
    });
    await fixAndConfirm(run);
    expect(run.pending).toBe(1);
    expect(logged(w, 'billcheck.item_failed').map((l) => l.fields)).toEqual([
      { billDate: day, item: 'pay', code: undefined, error: null },
    ]);
  });

  it('stops the run on a WeChat refusal that retrying cannot change (it is the bill check’s failure)', async () => {
    const { orderId } = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    const refusal = () =>
      new ProviderError({
        provider: 'v2',
        failure: 'definitive',
        reason: 'OTHER',
        providerCode: 'SIGNERROR',
        description: '签名错误',
        operation: 'orderquery',
      });
    const run = runOf(
      [
        { type: 'pay', entry: payEntry(orderId) },
        { type: 'absent-pay', orderId },
      ],
      {
        deps: orderqueryFails(w.deps(), refusal),
      },
    );
    await expect(fixAndConfirm(run)).rejects.toMatchObject({ providerCode: 'SIGNERROR' });
    expect(run).toMatchObject({ pending: 0, wxCalls: 1, discrepancies: [] });
    expect(logged(w, 'billcheck.item_failed')).toEqual([]);
    // The same without a code of WeChat's own (no answer at all) is retried by the next run.
    const unanswered = () =>
      new ProviderError({
        provider: 'v2',
        failure: 'transient',
        reason: 'OTHER',
        providerCode: '',
        description: '',
        operation: 'orderquery',
      });
    const later = runOf([{ type: 'pay', entry: payEntry(orderId) }], {
      deps: orderqueryFails(w.deps(), unanswered),
    });
    await fixAndConfirm(later);
    expect(later.pending).toBe(1);
    expect(logged(w, 'billcheck.item_failed').map((l) => l.fields['code'])).toEqual(['WXPAY_UNAVAILABLE']);
  });
});
