/**
 * The shopper's cancel and the notify checks, in one process (world.ts): a cancel is one
 * compare-and-set that a racing payment wins or loses cleanly, WeChat's five minutes before a
 * close are respected, and a notify is held against the order or refund it names (provider,
 * sign type, existence) before anything is booked. Runs under `npm test` and
 * `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { cancelOrder } from '../../cloudfunctions/shared/domain/cancel';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { handlePayNotify, handleRefundNotify } from '../../cloudfunctions/shared/domain/notify';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { encryptRefundNotifyForTest, signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  eventsOf,
  OTHER,
  orderAndPay,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refused,
  SHOPPER,
  stock,
} from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 1200);
});

const MINUTE = 60_000;
const cancel = (orderId: string, caller = SHOPPER, deps = w.deps()) => cancelOrder(deps, { orderId }, caller);
const place = () => createOrder(w.deps(), { items: [{ productId: 'tea', quantity: 1 }] }, SHOPPER);

describe('cancelling an unpaid order', () => {
  it('is the shopper’s own order only', async () => {
    const { orderId } = await place();
    await refused(cancel(orderId, OTHER), 'FORBIDDEN', 'this order belongs to someone else');
    await refused(cancel(orderId, ADMIN), 'FORBIDDEN', 'this order belongs to someone else');
    await refused(
      cancel(orderId, { ...SHOPPER, appid: 'wxanotherapp000001' }),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    await refused(cancel('20261130100000nothing000'), 'NOT_FOUND', 'order not found');
    const o = await orderDoc(w, orderId);
    expect(o.status).toBe('NOTPAY');
    expect(o.cancelledAtMs).toBeUndefined();
  });

  it('makes the order unpayable at once and closes it when WeChat allows, five minutes after it was made', async () => {
    const created = await place();
    w.advance(MINUTE);
    const first = await cancel(created.orderId);
    expect(first.outcome).toBe('CLOSING');
    expect(first.order.payable).toBe(false);
    const o = await orderDoc(w, created.orderId);
    expect(o.cancelledAtMs).toBe(w.now());
    expect(o.nextCheckAtMs).toBe(o.createdAtMs + 5 * MINUTE);
    await refused(
      createOrder(w.deps(), { orderId: created.orderId }, SHOPPER),
      'ORDER_NOT_PAYABLE',
      'the order was cancelled; place a new order',
    );
    w.advance(4 * MINUTE + 1000);
    const again = await cancel(created.orderId);
    expect(again.outcome).toBe('CLOSED');
    expect(await orderDoc(w, created.orderId)).toMatchObject({ status: 'CLOSED', closeReason: 'cancelled' });
    // The cancel's own time is kept: the repeat did not move it.
    expect((await orderDoc(w, created.orderId)).cancelledAtMs).toBe(o.cancelledAtMs);
    expect(w.core.engine.pay(created.payment as never).errMsg).not.toBe('requestPayment:ok');
  });

  it('an order past WeChat’s five minutes is closed there and here in the one call; later cancels say CLOSED', async () => {
    const created = await place();
    w.advance(6 * MINUTE);
    expect((await cancel(created.orderId)).outcome).toBe('CLOSED');
    expect((await cancel(created.orderId)).outcome).toBe('CLOSED');
    expect((await eventsOf(w, created.orderId)).map((e) => [e.to, e.source])).toEqual([
      ['CLOSED', 'closeorder'],
    ]);
  });

  it('a payment WeChat took before the cancel wins: closeorder says ORDERPAID and the order is PAID', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    w.advance(6 * MINUTE);
    const r = await cancel(orderId);
    expect(r.outcome).toBe('PAID');
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID' });
    expect((await orderDoc(w, orderId)).flag).toBeUndefined();
    // A paid order is not cancelled.
    expect((await cancel(orderId)).outcome).toBe('PAID');
  });

  it('a pay notify processed while the cancel is held before its write wins; the cancel answers PAID', async () => {
    const { orderId } = await orderAndPay(w);
    const point = pausePoint();
    const cancelling = cancel(orderId, SHOPPER, pauseBefore(w.deps(), casOn('orders'), point));
    await point.arrived;
    expect(await deliver(w)).toEqual(['PAID']);
    point.release();
    expect((await cancelling).outcome).toBe('PAID');
    const o = await orderDoc(w, orderId);
    expect(o.status).toBe('PAID');
    expect(o.cancelledAtMs).toBeUndefined();
  });

  it('WeChat unreachable: the order stays cancelled and unpayable, and the close is owed', async () => {
    const created = await place();
    w.advance(6 * MINUTE);
    w.faults({ systemErrorRate: 1 });
    const r = await cancel(created.orderId);
    w.faults({ systemErrorRate: 0 });
    expect(r.outcome).toBe('CLOSING');
    expect(await orderDoc(w, created.orderId)).toMatchObject({ status: 'NOTPAY', cancelledAtMs: w.now() });
  });
});

describe('a notify held against what it names', () => {
  const keys = { appid: MERCHANT.appid, mchId: MERCHANT.mchId, apiKey: MERCHANT.apiKey };
  const payBody = (orderId: string, fee: number, extra = {}) =>
    signPayNotifyForTest(
      { ...keys, signType: 'HMAC-SHA256' },
      { out_trade_no: orderId, total_fee: fee, openid: SHOPPER.openid, ...extra },
    );
  const pay = (body: string) => handlePayNotify(w.deps(), w.delivery({ kind: 'pay', body }));

  it('refuses an unknown order, another provider’s order and another sign type, booking nothing', async () => {
    expect(await pay(payBody('20261130100000nothing000', 1200))).toMatchObject({
      ok: false,
      outcome: 'UNKNOWN_ORDER',
    });
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    await w.deps().store.cas('orders', { _id: orderId }, { signType: 'MD5' });
    expect(await pay(payBody(orderId, 5000))).toMatchObject({ ok: false, outcome: 'SIGN_TYPE_MISMATCH' });
    await w.deps().store.cas('orders', { _id: orderId }, { signType: 'HMAC-SHA256', provider: 'v3' });
    expect(await pay(payBody(orderId, 5000))).toMatchObject({ ok: false, outcome: 'PROVIDER_MISMATCH' });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    await w.deps().store.cas('orders', { _id: orderId }, { provider: 'v2' });
    expect(await pay(payBody(orderId, 5000))).toMatchObject({ ok: true, outcome: 'PAID' });
  });

  it('a forged signature costs no database request; a FAIL result is acknowledged and changes nothing', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const deps = w.deps();
    const forged = payBody(orderId, 5000).replace(
      /<sign><!\[CDATA\[[0-9A-F]{64}/,
      `<sign><![CDATA[${'0'.repeat(64)}`,
    );
    expect(forged).toContain('0'.repeat(64));
    const before = deps.store.requests;
    expect((await handlePayNotify(deps, w.delivery({ kind: 'pay', body: forged }))).ok).toBe(false);
    expect(deps.store.requests).toBe(before);
    const failed = await pay(
      payBody(orderId, 5000, { result_code: 'FAIL', err_code: 'X', err_code_des: 'x' }),
    );
    expect(failed).toMatchObject({ ok: true, outcome: 'RESULT_FAIL' });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });

  it('refuses a refund notify for an unknown refund or one made through another provider', async () => {
    const orderId = await paidOrder(w, 1200);
    const r = await applied(w, orderId, 200);
    const body = (refundId: string) =>
      encryptRefundNotifyForTest(keys, {
        out_refund_no: refundId,
        out_trade_no: orderId,
        refund_fee: 200,
        total_fee: 1200,
        refund_status: 'SUCCESS',
      });
    const notify = (b: string) => handleRefundNotify(w.deps(), w.delivery({ kind: 'refund', body: b }));
    expect(await notify(body('Rnothing'))).toMatchObject({ ok: false, outcome: 'UNKNOWN_REFUND' });
    await w.deps().store.cas('refunds', { _id: r.refundId }, { provider: 'v3' });
    expect(await notify(body(r.refundId))).toMatchObject({ ok: false, outcome: 'PROVIDER_MISMATCH' });
    expect((await w.deps().store.get<OrderDoc>('orders', orderId))?.refundedFee).toBe(0);
  });
});
