/**
 * The daily bill check in one process (world.ts): the simulator's bill of the day (its real
 * downloadbill answer, as CSV) against the books, with the fixes WeChat's own answers
 * confirm and the differences reported untouched. Every trade happens on the world's first
 * day; the clock then moves to 10:30 the next day, when WeChat has that day's bill. Runs
 * under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  checkBillDate,
  listBillChecks,
  runBillCheck,
  scheduledBillCheck,
} from '../../cloudfunctions/shared/domain/billcheck';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { merchantPlatformRefund } from '../../sandbox/wxpay/bills';
import {
  ADMIN,
  applied,
  eventsOf,
  orderAndPay,
  orderDoc,
  paidOrder,
  refundDoc,
  refused,
  SHOPPER,
  simulatorBill,
} from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();

const HOUR = 3600_000;
let day = '';
beforeEach(async () => {
  await w.reset();
  day = billDateOf(w.now());
});

/** Moves the clock to `hour` o'clock Beijing time, `days` after the trading day. */
function at(days: number, hour: number): void {
  const target = dayStartMs(day)! + days * 24 * HOUR + hour * HOUR;
  w.advance(target - w.now());
}

const billDeps = () => ({ ...w.deps(), bills: simulatorBill(w) });
const check = async (date = day) => (await runBillCheck(billDeps(), { date }, ADMIN)).check;

describe('the bill check', () => {
  it('books a payment whose notify never came, on an order closed here meanwhile, PAID_AFTER_CLOSE once', async () => {
    const { orderId } = await orderAndPay(w, 3000);
    w.outbox.length = 0;
    await w
      .deps()
      .store.cas(
        'orders',
        { _id: orderId },
        { status: 'CLOSED', closedAtMs: w.now(), closeReason: 'expired' },
      );
    at(1, 10.5);
    const first = await check();
    expect(first).toMatchObject({ billDate: day, status: 'DONE', noBill: false, pending: 0, runs: 1 });
    expect(first.actions.filter((a) => a.orderId === orderId)).toMatchObject([
      { kind: 'BOOKED_PAID_AFTER_CLOSE', fen: 3000 },
    ]);
    expect(first.discrepancyCount).toBe(0);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE' });
    expect((await eventsOf(w, orderId)).filter((e) => e.to === 'PAID')).toMatchObject([
      { from: 'CLOSED', source: 'orderquery' },
    ]);
    expect(first.totals).toMatchObject({ rows: 1, payments: 1, paymentFen: 3000, refunds: 0 });
    const second = await check();
    expect(second.runs).toBe(2);
    expect(second.actions.filter((a) => a.orderId === orderId)).toHaveLength(1);
    expect((await eventsOf(w, orderId)).filter((e) => e.to === 'PAID')).toHaveLength(1);
  });

  it('books a payment and a refund that WeChat finished but whose notifies never came', async () => {
    const unpaid = await orderAndPay(w, 2000);
    w.outbox.length = 0;
    const paid = await paidOrder(w, 5000);
    const r = await applied(w, paid, 800);
    await approveRefund(w.deps(), { refundId: r.refundId, decision: 'approve' }, ADMIN);
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    w.outbox.length = 0;
    at(1, 10.5);
    const c = await check();
    expect(c.actions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'BOOKED_PAID', orderId: unpaid.orderId, fen: 2000 }),
        expect.objectContaining({ kind: 'SETTLED_REFUND', refundId: r.refundId, fen: 800 }),
      ]),
    );
    expect(c.totals).toMatchObject({
      rows: 3,
      payments: 2,
      paymentFen: 7000,
      refunds: 1,
      refundFen: 800,
      refundSuccessFen: 800,
    });
    expect((await orderDoc(w, unpaid.orderId)).status).toBe('PAID');
    expect((await refundDoc(w, r.refundId)).status).toBe('SUCCESS');
    expect(await orderDoc(w, paid)).toMatchObject({ refundedFee: 800, refundReservedFee: 0 });
  });

  it('records a refund made on the merchant platform on its order, counted as refunded, once', async () => {
    const orderId = await paidOrder(w, 5000);
    const made = merchantPlatformRefund(
      w.core.ledger,
      { ...MERCHANT, signType: 'HMAC-SHA256' } as never,
      { outTradeNo: orderId, refundFee: 1000 },
      w.now(),
      w.now(),
    );
    w.core.engine.acceptRefund(made);
    w.core.engine.settleOne(made.outRefundNo, 'SUCCESS');
    w.outbox.length = 0;
    at(1, 10.5);
    const c = await check();
    expect(c.actions.filter((a) => a.orderId === orderId)).toMatchObject([
      { kind: 'EXTERNAL_REFUND', refundId: made.outRefundNo, fen: 1000 },
    ]);
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundUsedFee: 1000,
      externalRefunds: [{ refundId: made.outRefundNo, refundFee: 1000, status: 'SUCCESS', billDate: day }],
    });
    await check();
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundUsedFee: 1000 });
    expect((await orderDoc(w, orderId)).externalRefunds).toHaveLength(1);
  });

  it('reports an amount changed here, and a payment only one side knows, and changes nothing', async () => {
    // PAID here, unknown to WeChat: a database restore, a hand edit.
    const ghost = await paidOrder(w, 1200);
    w.core.ledger.clear();
    const tampered = await paidOrder(w, 5000);
    await w.deps().store.cas('orders', { _id: tampered }, { totalFee: 5001 });
    const again = await paidOrder(w, 4000);
    at(1, 10.5);
    const c = await check();
    const kinds = (id: string) => c.discrepancies.filter((d) => d.orderId === id).map((d) => d.kind);
    expect(kinds(tampered)).toEqual(['AMOUNT_MISMATCH']);
    expect(kinds(ghost)).toEqual(['NOT_PAID_AT_WECHAT']);
    expect(kinds(again)).toEqual([]);
    expect(c.discrepancyCount).toBeGreaterThan(0);
    expect(c.status).toBe('DONE');
    expect((await orderDoc(w, tampered)).totalFee).toBe(5001);
    expect((await orderDoc(w, ghost)).status).toBe('PAID');
  });

  it('reports a payment only this side knows, booked just after midnight, in its own day only', async () => {
    // Orders booked up to two hours into the next day are looked for in this day's bill too (a
    // notify retried past midnight); one WeChat never took is the next day's to report.
    at(1, 0.5);
    const ghost = await paidOrder(w, 1200);
    w.core.ledger.clear();
    at(2, 10.5);
    const before = await check(day);
    expect(before.discrepancies.filter((d) => d.orderId === ghost)).toEqual([]);
    expect(before).toMatchObject({ status: 'DONE', discrepancyCount: 0 });
    const own = await check(billDateOf(dayStartMs(day)! + 24 * HOUR));
    expect(own.discrepancies.filter((d) => d.orderId === ghost).map((d) => d.kind)).toEqual([
      'NOT_PAID_AT_WECHAT',
    ]);
  });

  it('is for the merchant’s admins only, refuses a future or impossible date, and lists checks newest first', async () => {
    at(1, 10.5);
    await refused(
      runBillCheck(billDeps(), { date: day }, SHOPPER),
      'FORBIDDEN',
      'only the merchant may do this',
    );
    await refused(listBillChecks(w.deps(), {}, SHOPPER), 'FORBIDDEN', 'only the merchant may do this');
    await refused(
      runBillCheck(billDeps(), { date: billDateOf(w.now() + 24 * HOUR) }, ADMIN),
      'INVALID_INPUT',
      'date must not be in the future (Beijing time)',
    );
    await refused(
      runBillCheck(billDeps(), { date: '20261131' }, ADMIN),
      'INVALID_INPUT',
      'date must be a day as yyyyMMdd (Beijing time)',
    );
    const empty = await check();
    expect(empty).toMatchObject({ status: 'DONE', noBill: true, discrepancyCount: 0 });
    const earlier = billDateOf(dayStartMs(day)! - 24 * HOUR);
    await check(earlier);
    const list = await listBillChecks(w.deps(), {}, ADMIN);
    expect(list.items.map((i) => i.billDate)).toEqual([day, earlier]);
    expect(list.nextCursor).toBeNull();
    await refused(listBillChecks(w.deps(), { cursor: 'x' }, ADMIN), 'INVALID_INPUT', 'cursor is invalid');
    expect((await listBillChecks(w.deps(), { cursor: day }, ADMIN)).items.map((i) => i.billDate)).toEqual([
      earlier,
    ]);
  });

  it('a bill not generated yet is retried; the timer runs from 10:30 and not again once a day is done', async () => {
    await paidOrder(w, 5000);
    at(1, 8);
    const early = await check();
    expect(early.status).not.toBe('DONE');
    at(1, 10);
    expect(await scheduledBillCheck(billDeps())).toMatchObject({ checked: [] });
    at(1, 10.5);
    const timer = await scheduledBillCheck(billDeps());
    expect(timer.checked[0]).toMatchObject({ billDate: day, status: 'DONE', ran: true });
    const later = await scheduledBillCheck(billDeps());
    expect(later.checked.map((c) => c.billDate)).not.toContain(day);
    const c = await checkBillDate(billDeps(), day, {
      trigger: 'admin',
      by: ADMIN.openid,
      budgetMs: 50_000,
      leaseMs: 70_000,
    });
    expect(c.doc.status).toBe('DONE');
  });
});
