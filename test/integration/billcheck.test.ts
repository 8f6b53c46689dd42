/**
 * The daily bill check through the whole stack: the built billCheck/runBillCheck bundles on
 * the real wx-server-sdk, the CloudBase emulator, and the simulator's bills (gzip, streamed).
 * Every trade here happens today; the simulator's clock is then moved to 10:30 tomorrow,
 * when WeChat has today's bill, and today is checked as an admin would.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BillCheckView, RunBillCheckResult } from '../../cloudfunctions/shared/contract';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, buyAndPay, newRequestId, order, refund, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

const HOUR = 3600_000;
const today = () => billDateOf(Date.now());

/** Puts the simulator at `hour` o'clock (Beijing) of the day after today. */
function simulatorAt(dayOffset: number, hour: number): void {
  const target = dayStartMs(today())! + dayOffset * 24 * HOUR + hour * HOUR;
  stack.simulator.setClockOffset(target - Date.now());
}

async function runCheck(date = today()): Promise<RunBillCheckResult> {
  return unwrap(await stack.call('runBillCheck', { date }, ADMIN));
}

async function books() {
  const byId = <T extends { _id: string }>(rows: T[]) => rows.sort((a, b) => (a._id < b._id ? -1 : 1));
  return {
    orders: byId(await stack.db.all<OrderDoc>('orders')),
    refunds: byId(await stack.db.all<RefundDoc>('refunds')),
    events: byId(await stack.db.all<PaymentEventDoc>('payment_events')),
  };
}

const discrepanciesOf = (c: BillCheckView, id: string) =>
  c.discrepancies.filter((d) => d.orderId === id || d.refundId === id);

async function createOrder(productId = 'chopsticks') {
  return unwrap(await stack.call('createOrder', { items: [{ productId, quantity: 1 }] }, SHOPPER));
}

beforeEach(() => {
  stack.simulator.setFaults({ dropPayNotifies: false, dropRefundNotifies: false });
  simulatorAt(1, 10.5);
});

describe('bill check (对账)', () => {
  it('books a payment whose notify never came, on an order closed meanwhile, PAID_AFTER_CLOSE once', async () => {
    stack.simulator.setClockOffset(0);
    stack.simulator.setFaults({ dropPayNotifies: true });
    const created = await createOrder();
    expect(stack.simulator.pay(created.payment as unknown as Record<string, unknown>).errMsg).toBe(
      'requestPayment:ok',
    );
    await stack.simulator.flushNotifies();
    // Every attempt of WeChat's schedule dropped: the shop never heard of the money.
    const notifies = stack.simulator.notifies().filter((n) => n.body.includes(created.orderId));
    expect(notifies.length).toBeGreaterThan(0);
    expect(notifies.every((n) => n.dropped)).toBe(true);
    // Meanwhile the order expired and was closed here. The shop's own close paths ask WeChat
    // first (closeorder answers ORDERPAID), so this state comes from outside them: an older
    // build, a manual close, a database restore. The bill check is what still catches it.
    await stack.db.raw
      .collection('orders')
      .doc(created.orderId)
      .update({
        status: 'CLOSED',
        closedAtMs: Date.now(),
        closeReason: 'expired',
        expiresAtMs: Date.now() - 1,
      });

    simulatorAt(1, 10.5);
    const first = await runCheck();
    expect(first.ran).toBe(true);
    expect(first.check).toMatchObject({ billDate: today(), status: 'DONE', noBill: false, pending: 0 });
    const booked = first.check.actions.filter((a) => a.orderId === created.orderId);
    expect(booked).toMatchObject([{ kind: 'BOOKED_PAID_AFTER_CLOSE', fen: created.totalFee }]);
    expect(discrepanciesOf(first.check, created.orderId)).toEqual([]);
    const o = await order(stack, created.orderId);
    expect(o).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE', totalFee: created.totalFee });
    expect(o.transactionId).toMatch(/^4200/);
    const paidEvents = (
      await stack.db.all<PaymentEventDoc>('payment_events', { orderId: created.orderId })
    ).filter((e) => e.to === 'PAID');
    expect(paidEvents).toHaveLength(1);
    expect(paidEvents[0]).toMatchObject({ from: 'CLOSED', source: 'orderquery' });

    const before = await books();
    const second = await runCheck();
    expect(second.check.actions.filter((a) => a.orderId === created.orderId)).toEqual(booked);
    expect(second.check.runs).toBe(first.check.runs + 1);
    expect(await books()).toEqual(before);
  });

  it('books a payment and a refund that WeChat finished but whose notifies never came', async () => {
    stack.simulator.setClockOffset(0);
    stack.simulator.setFaults({ dropPayNotifies: true, dropRefundNotifies: true });
    const unpaid = await createOrder('sticker');
    stack.simulator.pay(unpaid.payment as unknown as Record<string, unknown>);
    stack.simulator.setFaults({ dropPayNotifies: false });
    const paidId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId: paidId, refundFee: 800, reason: 'bill test', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    const approved = unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    expect(approved.refund.status).toBe('PROCESSING');
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    expect((await order(stack, unpaid.orderId)).status).toBe('NOTPAY');
    expect((await refund(stack, applied.refund.refundId)).status).toBe('PROCESSING');

    simulatorAt(1, 10.5);
    const check = (await runCheck()).check;
    expect(check.actions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'BOOKED_PAID', orderId: unpaid.orderId, fen: unpaid.totalFee }),
        expect.objectContaining({ kind: 'SETTLED_REFUND', refundId: applied.refund.refundId, fen: 800 }),
      ]),
    );
    expect((await order(stack, unpaid.orderId)).status).toBe('PAID');
    expect(await refund(stack, applied.refund.refundId)).toMatchObject({ status: 'SUCCESS' });
    expect(await order(stack, paidId)).toMatchObject({ refundedFee: 800, refundReservedFee: 0 });
  });

  it('records a refund made on the merchant platform on its order, counted as refunded, once', async () => {
    stack.simulator.setClockOffset(0);
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const made = stack.simulator.merchantPlatformRefund({ outTradeNo: orderId, refundFee: 1000 });
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    // The shop hears nothing: no notify, no refund document.
    expect(
      stack.simulator.notifies().some((n) => n.kind === 'refund' && n.body.includes(made.outRefundNo)),
    ).toBe(false);
    expect(await stack.db.get('refunds', made.outRefundNo)).toBeNull();
    expect(await order(stack, orderId)).toMatchObject({ refundedFee: 0 });

    simulatorAt(1, 10.5);
    const check = (await runCheck()).check;
    expect(check.actions.filter((a) => a.orderId === orderId)).toMatchObject([
      { kind: 'EXTERNAL_REFUND', refundId: made.outRefundNo, fen: 1000 },
    ]);
    const o = await order(stack, orderId);
    expect(o).toMatchObject({
      status: 'PAID',
      refundedFee: 1000,
      refundUsedFee: 1000,
      externalRefunds: [
        { refundId: made.outRefundNo, refundFee: 1000, status: 'SUCCESS', billDate: today() },
      ],
    });
    // The shopper and the merchant see it on the order, and cannot refund that money again.
    const view = unwrap(await stack.call('queryOrder', { orderId }, SHOPPER)).order;
    expect(view).toMatchObject({ refundedFee: 1000, refundableFee: o.totalFee - 1000 });
    expect(view.externalRefunds).toHaveLength(1);
    const tooMuch = await stack.call(
      'applyRefund',
      { orderId, refundFee: o.totalFee - 999, reason: 'more than is left', requestId: newRequestId() },
      SHOPPER,
    );
    expect(tooMuch).toMatchObject({ ok: false, error: { code: 'REFUND_EXCEEDS_PAID' } });
    expect(await stack.db.get('payment_events', `${made.outRefundNo}:SUCCESS`)).toMatchObject({
      orderId,
      source: 'refundquery',
    });

    await runCheck();
    expect(await order(stack, orderId)).toMatchObject({ refundedFee: 1000, refundUsedFee: 1000 });
    expect((await order(stack, orderId)).externalRefunds).toHaveLength(1);
  });

  it('reports an amount changed here as a discrepancy and changes nothing', async () => {
    stack.simulator.setClockOffset(0);
    const orderId = await buyAndPay(stack, SHOPPER, 'chopsticks');
    const paid = await order(stack, orderId);
    await stack.db.raw
      .collection('orders')
      .doc(orderId)
      .update({ totalFee: paid.totalFee + 1 });
    const tampered = await order(stack, orderId);

    simulatorAt(1, 10.5);
    const check = (await runCheck()).check;
    expect(discrepanciesOf(check, orderId)).toEqual([
      expect.objectContaining({
        kind: 'AMOUNT_MISMATCH',
        orderId,
        wechatFen: paid.totalFee,
        localFen: paid.totalFee + 1,
      }),
    ]);
    expect(check.discrepancyCounts.AMOUNT_MISMATCH).toBeGreaterThanOrEqual(1);
    expect(check.actions.filter((a) => a.orderId === orderId)).toEqual([]);
    expect(await order(stack, orderId)).toEqual(tampered);
  });

  it('reports PAID here but unknown to WeChat, and paid at WeChat but unknown here', async () => {
    stack.simulator.setClockOffset(0);
    const fake = await createOrder('sticker');
    await stack.db.raw
      .collection('orders')
      .doc(fake.orderId)
      .update({ status: 'PAID', paidAtMs: Date.now(), transactionId: '4200000000000000000000000000' });
    const lostId = await buyAndPay(stack, SHOPPER, 'sticker');
    await stack.db.raw.collection('orders').doc(lostId).remove();

    simulatorAt(1, 10.5);
    const check = (await runCheck()).check;
    expect(discrepanciesOf(check, fake.orderId)).toEqual([
      expect.objectContaining({ kind: 'NOT_PAID_AT_WECHAT', localFen: fake.totalFee }),
    ]);
    expect(discrepanciesOf(check, lostId)).toEqual([
      expect.objectContaining({ kind: 'UNKNOWN_ORDER', wechatFen: 1 }),
    ]);
  });

  it('a second run of the same date changes nothing in the books and finds the same', async () => {
    const first = (await runCheck()).check;
    const before = await books();
    const second = await runCheck();
    expect(second.ran).toBe(true);
    expect(await books()).toEqual(before);
    expect(second.check.discrepancies).toEqual(first.discrepancies);
    expect(second.check.actions).toEqual(first.actions);
    expect(second.check.totals).toEqual(first.totals);
    expect(second.check.runs).toBe(first.runs + 1);
    // The day's totals are WeChat's rows: every payment today, every refund applied today.
    const ledger = stack.simulator.ledger();
    const paidToday = ledger.orders.filter((o) => o.paidAtMs !== undefined);
    expect(second.check.totals).toMatchObject({
      payments: paidToday.length,
      paymentFen: paidToday.reduce((s, o) => s + o.totalFee, 0),
      refunds: ledger.refunds.length,
    });
  });

  it('lists checks newest first for the admin only', async () => {
    const list = unwrap(await stack.call('listBillChecks', {}, ADMIN));
    expect(list.items[0]).toMatchObject({ billDate: today(), status: 'DONE' });
    expect(await stack.call('listBillChecks', {}, SHOPPER)).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(await stack.call('runBillCheck', { date: today() }, SHOPPER)).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
  });

  it('refuses a date in the future or that does not exist', async () => {
    for (const date of [billDateOf(Date.now() + 24 * HOUR), '20260230', '2026-01-01', '']) {
      expect(await stack.call('runBillCheck', { date }, ADMIN)).toMatchObject({
        ok: false,
        error: { code: 'INVALID_INPUT' },
      });
    }
  });

  it('a day without trades is a clean empty check; a bill not generated yet is retried', async () => {
    const yesterday = billDateOf(Date.now() - 24 * HOUR);
    simulatorAt(0, 9.5);
    const early = (await runCheck(yesterday)).check;
    expect(early).toMatchObject({ billDate: yesterday, status: 'NOT_READY', message: 'Bill Creating' });
    simulatorAt(0, 10.5);
    const ready = (await runCheck(yesterday)).check;
    expect(ready).toMatchObject({
      status: 'DONE',
      noBill: true,
      discrepancyCount: 0,
      pending: 0,
      totals: { rows: 0, payments: 0, refunds: 0 },
    });
  });

  it('the timer function refuses to run for a mini-program caller', async () => {
    const r = await stack.runtime.invoke('billCheck', {}, { OPENID: SHOPPER, SOURCE: 'wx_client' });
    expect(JSON.stringify(r.result)).toContain('FORBIDDEN');
  });
});
