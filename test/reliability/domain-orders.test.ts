/**
 * Orders and payments in one process (world.ts), with the interleavings and crashes forced:
 * what a shopper and the merchant rely on from createOrder, paying again, the notify's
 * exactly-once booking (event first, then the compare-and-set on the status), closing, and
 * the views. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { handlePayNotify } from '../../cloudfunctions/shared/domain/notify';
import {
  closeLocally,
  confirmWithQuery,
  createOrder,
  expireOrder,
  listOrders,
  markPaid,
  queryOrder,
} from '../../cloudfunctions/shared/domain/orders';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import {
  applied,
  casOn,
  deliver,
  dieAfter,
  dieBefore,
  eventsOf,
  insertInto,
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
import { Killed, MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 1200);
  await stock(w, 'cup', 3000);
});

const MINUTE = 60_000;
const order = (items: unknown, caller = SHOPPER) => createOrder(w.deps(), { items }, caller);

describe('placing an order', () => {
  it('prices the cart from the catalogue only, and refuses a client-sent price by name', async () => {
    await refused(
      order([{ productId: 'tea', quantity: 2, priceFen: 1200 }]),
      'INVALID_INPUT',
      'unexpected field "priceFen"',
    );
    await refused(
      order([{ productId: 'tea', quantity: 2, priceFen: 1 }]),
      'INVALID_INPUT',
      'unexpected field "priceFen"',
    );
    const created = await order([
      { productId: 'tea', quantity: 2 },
      { productId: 'cup', quantity: 1 },
    ]);
    expect(created.totalFee).toBe(2 * 1200 + 3000);
    const o = await orderDoc(w, created.orderId);
    expect(o).toMatchObject({ status: 'NOTPAY', totalFee: 5400, openid: SHOPPER.openid });
    expect(o.items.map((i) => [i.productId, i.priceFen, i.quantity])).toEqual([
      ['tea', 1200, 2],
      ['cup', 3000, 1],
    ]);
    // WeChat was asked for exactly that amount.
    expect(w.core.ledger.orders.get(`${MERCHANT.mchId}/${created.orderId}`)?.totalFee ?? 5400).toBe(5400);
    expect(w.core.engine.pay(created.payment as never).errMsg).toBe('requestPayment:ok');
    expect(await deliver(w)).toEqual(['PAID']);
  });

  it('refuses carts that are empty, too long, repeat a product, or hold what is not for sale', async () => {
    await refused(order([]), 'INVALID_INPUT', 'items must be a non-empty list');
    await refused(order('tea'), 'INVALID_INPUT', 'items must be a non-empty list');
    await refused(order([null]), 'INVALID_INPUT', 'items[0] must be an object');
    await refused(order([['tea', 1]]), 'INVALID_INPUT', 'items[0] must be an object');
    await refused(
      order(Array.from({ length: 21 }, (_, i) => ({ productId: `p${i}`, quantity: 1 }))),
      'INVALID_INPUT',
      'at most 20 different products per order',
    );
    await refused(
      order([
        { productId: 'tea', quantity: 1 },
        { productId: 'tea', quantity: 2 },
      ]),
      'INVALID_INPUT',
      'product tea is listed twice',
    );
    await refused(
      order([{ productId: 'tea', quantity: 0 }]),
      'INVALID_INPUT',
      'quantity must be from 1 to 99',
    );
    await refused(
      order([{ productId: 'tea', quantity: 100 }]),
      'INVALID_INPUT',
      'quantity must be from 1 to 99',
    );
    await refused(
      order([{ productId: 'nothing', quantity: 1 }]),
      'INVALID_INPUT',
      'product nothing is not on sale',
    );
    await stock(w, 'off', 500, false);
    await refused(order([{ productId: 'off', quantity: 1 }]), 'INVALID_INPUT', 'product off is not on sale');
    await stock(w, 'free', 0);
    await refused(
      order([{ productId: 'free', quantity: 1 }]),
      'INVALID_INPUT',
      'product free is not on sale',
    );
    // Not even as a gift next to a priced product.
    await refused(
      order([
        { productId: 'tea', quantity: 1 },
        { productId: 'free', quantity: 1 },
      ]),
      'INVALID_INPUT',
      'product free is not on sale',
    );
    await stock(w, 'odd', 12.5);
    await refused(order([{ productId: 'odd', quantity: 1 }]), 'INVALID_INPUT', 'product odd is not on sale');
    expect(await w.deps().store.find('orders', {}, {})).toHaveLength(0);
    // Twenty different products is still one order.
    for (let i = 0; i < 20; i++) await stock(w, `s${i}`, 100);
    const twenty = await order(Array.from({ length: 20 }, (_, i) => ({ productId: `s${i}`, quantity: 99 })));
    expect(twenty.totalFee).toBe(20 * 99 * 100);
  });

  it('sells up to one million yuan in one order, not a fen more', async () => {
    await stock(w, 'gold', 50_000_000);
    expect((await order([{ productId: 'gold', quantity: 2 }])).totalFee).toBe(100_000_000);
    // And down to one fen.
    await stock(w, 'fen', 1);
    expect((await order([{ productId: 'fen', quantity: 1 }], { ...SHOPPER, openid: 'o_fen' })).totalFee).toBe(
      1,
    );
    await stock(w, 'gold2', 50_000_001);
    await refused(
      order([{ productId: 'gold2', quantity: 2 }], OTHER),
      'INVALID_INPUT',
      'the order total is out of range',
    );
  });

  it('describes the order in the cashier by shop, first product and count, and keeps a valid client IP only', async () => {
    const one = await order([{ productId: 'tea', quantity: 3 }]);
    const two = await order(
      [
        { productId: 'cup', quantity: 1 },
        { productId: 'tea', quantity: 1 },
      ],
      { ...OTHER, clientIp: '<script>' },
    );
    const a = await orderDoc(w, one.orderId);
    const b = await orderDoc(w, two.orderId);
    expect(a.description).toBe(`${w.config.shopName}-商品tea`);
    expect(b.description).toBe(`${w.config.shopName}-商品cup等2件`);
    expect(a.clientIp).toBe('127.0.0.1');
    expect(b.clientIp).toBe('127.0.0.1');
    const three = await order([{ productId: 'cup', quantity: 2 }], {
      ...SHOPPER,
      openid: 'o_ip',
      clientIp: '10.1.2.3',
    });
    expect((await orderDoc(w, three.orderId)).clientIp).toBe('10.1.2.3');
  });

  it('serves only users of the mini-program bound to the merchant', async () => {
    const stranger = { ...SHOPPER, appid: 'wxanotherapp000001' };
    await refused(
      order([{ productId: 'tea', quantity: 1 }], stranger),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    const { orderId } = await orderAndPay(w);
    await refused(
      queryOrder(w.deps(), { orderId }, stranger),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    await refused(
      createOrder(w.deps(), { orderId }, stranger),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    expect(await w.deps().store.find('orders', {}, {})).toHaveLength(1);
  });
});

describe('paying an order again', () => {
  const again = (orderId: string, caller = SHOPPER) => createOrder(w.deps(), { orderId }, caller);

  it('re-signs a live prepay_id without asking WeChat, for its own shopper only', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    await refused(again(first.orderId, OTHER), 'FORBIDDEN', 'this order belongs to someone else');
    await refused(again('20261130100000nothing000'), 'NOT_FOUND', 'order not found');
    // WeChat would answer SYSTEMERROR if asked.
    w.faults({ systemErrorRate: 1 });
    const second = await again(first.orderId);
    w.faults({ systemErrorRate: 0 });
    expect(second).toMatchObject({ orderId: first.orderId, totalFee: 1200 });
    expect(second.payment.package).toBe(first.payment.package);
    expect(w.core.engine.pay(second.payment as never).errMsg).toBe('requestPayment:ok');
  });

  it('asks WeChat again once the prepay_id is about to run out', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    const o = await orderDoc(w, first.orderId);
    await w.deps().store.cas('orders', { _id: o._id }, { prepayExpiresAtMs: w.now() + 1000 });
    w.faults({ systemErrorRate: 1 });
    await refused(
      again(first.orderId),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay is busy; the order is kept, please pay again shortly',
    );
    w.faults({ systemErrorRate: 0 });
    // The order is kept for the next try, which succeeds.
    expect((await orderDoc(w, first.orderId)).status).toBe('NOTPAY');
    const second = await again(first.orderId);
    expect(w.core.engine.pay(second.payment as never).errMsg).toBe('requestPayment:ok');
    expect((await orderDoc(w, first.orderId)).prepayExpiresAtMs).toBeGreaterThan(w.now() + MINUTE);
  });

  it('refuses a paid, closed, cancelled or expired order; an expired one is closed', async () => {
    const paid = await paidOrder(w);
    await refused(again(paid), 'ORDER_NOT_PAYABLE', 'the order is already paid');
    const open = await order([{ productId: 'cup', quantity: 1 }]);
    w.advance(w.config.orderExpireMs);
    await refused(again(open.orderId), 'ORDER_EXPIRED', 'the order has expired; place a new order');
    expect((await orderDoc(w, open.orderId)).status).toBe('CLOSED');
    await refused(again(open.orderId), 'ORDER_NOT_PAYABLE', 'the order is closed; place a new order');
    const cancelled = await order([{ productId: 'tea', quantity: 1 }]);
    await w.deps().store.cas('orders', { _id: cancelled.orderId }, { cancelledAtMs: w.now() });
    await refused(
      again(cancelled.orderId),
      'ORDER_NOT_PAYABLE',
      'the order was cancelled; place a new order',
    );
  });

  it('keeps an order WeChat did not answer for, payable again, and never stores a prepay_id over a paid order', async () => {
    w.faults({ systemErrorRate: 1 });
    await refused(
      order([{ productId: 'tea', quantity: 1 }]),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay is busy; the order is kept, please pay again shortly',
    );
    w.faults({ systemErrorRate: 0 });
    const [kept] = await w.deps().store.find<OrderDoc>('orders', {}, {});
    expect(kept).toMatchObject({ status: 'NOTPAY', prepayId: null });
    // A notify that marks it paid while the next call is asking WeChat: that call's prepay_id
    // must not land on the paid order.
    const point = pausePoint();
    const racing = createOrder(
      pauseBefore(w.deps(), casOn('orders'), point),
      { orderId: kept!._id },
      SHOPPER,
    );
    await point.arrived;
    await markPaid(w.deps(), kept!, { totalFen: 1200, transactionId: 'T1', record: {} }, 'notify');
    point.release();
    await refused(racing, 'ORDER_NOT_PAYABLE', 'the order is no longer awaiting payment');
    expect(await orderDoc(w, kept!._id)).toMatchObject({ status: 'PAID', prepayId: null });
  });
});

describe('booking a payment exactly once', () => {
  it('a stale notify that read NOTPAY before a close landed books CLOSED → PAID, flagged for the merchant', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    const point = pausePoint();
    // The notify has read the order (NOTPAY) and stops before its first write.
    const notify = handlePayNotify(
      pauseBefore(w.deps(), insertInto('payment_events'), point),
      w.delivery(sent!),
    );
    await point.arrived;
    expect(await closeLocally(w.deps(), await orderDoc(w, orderId), 'expired', 'closeorder')).toBe(true);
    point.release();
    expect((await notify).outcome).toBe('PAID_AFTER_CLOSE');
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE' });
    expect((await eventsOf(w, orderId)).map((e) => e._id).sort()).toEqual([
      `${orderId}:CLOSED`,
      `${orderId}:PAID`,
    ]);
  });

  it('a close that read NOTPAY before the payment landed changes nothing', async () => {
    const { orderId } = await orderAndPay(w);
    const stale = await orderDoc(w, orderId);
    expect(await deliver(w)).toEqual(['PAID']);
    expect(await closeLocally(w.deps(), stale, 'expired', 'closeorder')).toBe(false);
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
    expect((await eventsOf(w, orderId)).map((e) => e._id)).toEqual([`${orderId}:PAID`]);
  });

  it('a notify that dies after its event and before the status write is finished by WeChat’s retry, with one event', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    await expect(
      handlePayNotify(dieBefore(w.deps(), casOn('orders')), w.delivery(sent!)),
    ).rejects.toBeInstanceOf(Killed);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    expect(await eventsOf(w, orderId)).toHaveLength(1);
    expect((await handlePayNotify(w.deps(), w.delivery(sent!))).outcome).toBe('PAID');
    expect(await eventsOf(w, orderId)).toHaveLength(1);
  });

  it('a notify that dies right after its status write has already recorded the payment event', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    await expect(
      handlePayNotify(dieAfter(w.deps(), casOn('orders')), w.delivery(sent!)),
    ).rejects.toBeInstanceOf(Killed);
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
    const [event] = await eventsOf(w, orderId);
    expect(event).toMatchObject({ _id: `${orderId}:PAID`, from: 'NOTPAY', to: 'PAID', source: 'notify' });
    const retry = await handlePayNotify(w.deps(), w.delivery(sent!));
    expect(retry).toMatchObject({ ok: true, outcome: 'ALREADY_PAID' });
  });

  it('a failed event write leaves the order unpaid and unacknowledged, and the retry books it', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    const failing = dieBefore(w.deps(), insertInto('payment_events'));
    await expect(handlePayNotify(failing, w.delivery(sent!))).rejects.toBeInstanceOf(Killed);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    expect((await handlePayNotify(w.deps(), w.delivery(sent!))).outcome).toBe('PAID');
  });

  it('books WeChat’s transaction id and time of payment, ends the reconcile schedule, and acknowledges duplicates once', async () => {
    const { orderId } = await orderAndPay(w);
    const before = await orderDoc(w, orderId);
    expect(before.nextCheckAtMs).toBeGreaterThan(w.now());
    const [sent] = w.outbox.splice(0);
    w.advance(7000);
    expect((await handlePayNotify(w.deps(), w.delivery(sent!))).outcome).toBe('PAID');
    expect((await handlePayNotify(w.deps(), w.delivery(sent!))).outcome).toBe('ALREADY_PAID');
    const after = await orderDoc(w, orderId);
    const wx = [...w.core.ledger.orders.values()].find((o) => o.outTradeNo === orderId)!;
    expect(after.transactionId).toBe(wx.transactionId);
    expect(after.transactionId).toMatch(/^\d{20,}$/);
    // time_end is whole seconds at the cashier, before the notify arrived.
    expect(after.paidAtMs).toBeLessThan(w.now());
    expect(after.nextCheckAtMs).toBeUndefined();
    expect(after.flag).toBeUndefined();
    expect(await eventsOf(w, orderId)).toHaveLength(1);
  });

  it('refuses a genuinely signed notify whose amount is not the order’s, changing nothing', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const body = signPayNotifyForTest(
      { appid: MERCHANT.appid, mchId: MERCHANT.mchId, apiKey: MERCHANT.apiKey, signType: 'HMAC-SHA256' },
      { out_trade_no: orderId, total_fee: 1, openid: SHOPPER.openid },
    );
    const r = await handlePayNotify(w.deps(), w.delivery({ kind: 'pay', body }));
    expect(r).toMatchObject({ ok: false, outcome: 'AMOUNT_MISMATCH' });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    expect(await eventsOf(w, orderId)).toHaveLength(0);
  });
});

describe('closing an order', () => {
  it('an order that never reached WeChat closes at once; one that did waits out WeChat’s five minutes', async () => {
    w.faults({ systemErrorRate: 1 });
    await refused(
      order([{ productId: 'tea', quantity: 1 }]),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay is busy; the order is kept, please pay again shortly',
    );
    w.faults({ systemErrorRate: 0 });
    const [never] = await w.deps().store.find<OrderDoc>('orders', {}, {});
    expect(await expireOrder(w.deps(), never!)).toBe('CLOSED');
    expect(await orderDoc(w, never!._id)).toMatchObject({ status: 'CLOSED', closeReason: 'expired' });

    const placed = await order([{ productId: 'cup', quantity: 1 }]);
    w.advance(4 * MINUTE);
    expect(await expireOrder(w.deps(), await orderDoc(w, placed.orderId))).toBe('PENDING');
    expect((await orderDoc(w, placed.orderId)).status).toBe('NOTPAY');
    w.advance(MINUTE + 1000);
    expect(await expireOrder(w.deps(), await orderDoc(w, placed.orderId))).toBe('CLOSED');
    expect(await orderDoc(w, placed.orderId)).toMatchObject({ status: 'CLOSED' });
    expect((await eventsOf(w, placed.orderId)).map((e) => [e.from, e.to, e.source])).toEqual([
      ['NOTPAY', 'CLOSED', 'closeorder'],
    ]);
    // WeChat closed it too: the old payment parameters no longer pay.
    expect(w.core.engine.pay(placed.payment as never).errMsg).not.toBe('requestPayment:ok');
  });

  it('closeorder answering ORDERPAID while the notify is lost books the payment, unflagged', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    w.advance(6 * MINUTE);
    expect(await expireOrder(w.deps(), await orderDoc(w, orderId))).toBe('PAID');
    const o = await orderDoc(w, orderId);
    expect(o).toMatchObject({ status: 'PAID' });
    expect(o.flag).toBeUndefined();
    expect(o.closedAtMs).toBeUndefined();
    expect((await eventsOf(w, orderId)).map((e) => [e.to, e.source])).toEqual([['PAID', 'orderquery']]);
  });

  it('an order WeChat cannot be reached about stays open for the next try', async () => {
    const placed = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(6 * MINUTE);
    w.faults({ systemErrorRate: 1 });
    expect(await expireOrder(w.deps(), await orderDoc(w, placed.orderId))).toBe('PENDING');
    w.faults({ systemErrorRate: 0 });
    expect((await orderDoc(w, placed.orderId)).status).toBe('NOTPAY');
    expect(await expireOrder(w.deps(), await orderDoc(w, placed.orderId))).toBe('CLOSED');
  });
});

describe('WeChat’s word on an order placed again or looked up', () => {
  const again = (orderId: string) => createOrder(w.deps(), { orderId }, SHOPPER);
  /** The stored prepay_id is about to run out, so paying again asks WeChat with the same parameters. */
  const staleToken = (orderId: string) =>
    w.deps().store.cas('orders', { _id: orderId }, { prepayExpiresAtMs: w.now() + 1000 });

  it('unifiedorder answering ORDERPAID (the notify lost) books the payment and refuses to pay twice', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    await staleToken(orderId);
    await refused(again(orderId), 'ORDER_NOT_PAYABLE', 'the order is already paid');
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
    expect((await eventsOf(w, orderId)).map((e) => [e.to, e.source])).toEqual([['PAID', 'orderquery']]);
  });

  it('unifiedorder answering ORDERCLOSED (closed at WeChat) closes it here too', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(5 * MINUTE);
    await w.deps().wxpay!.current.closePayment(created.orderId);
    await staleToken(created.orderId);
    await refused(again(created.orderId), 'ORDER_NOT_PAYABLE', 'the order is closed; place a new order');
    expect(await orderDoc(w, created.orderId)).toMatchObject({
      status: 'CLOSED',
      closeReason: 'ORDERCLOSED',
    });
  });

  it('orderquery: a trade closed at WeChat closes the order; one WeChat never had, or with another amount, stays as it is', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(5 * MINUTE);
    await w.deps().wxpay!.current.closePayment(created.orderId);
    const closed = await confirmWithQuery(w.deps(), await orderDoc(w, created.orderId));
    expect(closed.status).toBe('CLOSED');
    expect(await orderDoc(w, created.orderId)).toMatchObject({
      status: 'CLOSED',
      closeReason: 'trade_state CLOSED',
    });

    w.faults({ systemErrorRate: 1 });
    await refused(
      order([{ productId: 'cup', quantity: 1 }]),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay is busy; the order is kept, please pay again shortly',
    );
    w.faults({ systemErrorRate: 0 });
    const never = (await w.deps().store.find<OrderDoc>('orders', { prepayId: null }, {}))[0]!;
    expect(await confirmWithQuery(w.deps(), never)).toEqual(never);

    const { orderId } = await orderAndPay(w, 4000);
    w.outbox.length = 0;
    const tampered = { ...(await orderDoc(w, orderId)), totalFee: 4001 };
    expect((await confirmWithQuery(w.deps(), tampered)).status).toBe('NOTPAY');
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    const paid = await confirmWithQuery(w.deps(), await orderDoc(w, orderId));
    expect(paid).toMatchObject({ status: 'PAID' });
    expect(paid.transactionId).toBe((await orderDoc(w, orderId)).transactionId);
  });

  it('an order is closable at WeChat exactly five minutes after it was made', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    const o = await orderDoc(w, created.orderId);
    w.advance(o.createdAtMs + 5 * MINUTE - 1 - w.now());
    expect(await expireOrder(w.deps(), o)).toBe('PENDING');
    w.advance(1);
    expect(await expireOrder(w.deps(), o)).toBe('CLOSED');
  });
});

describe('what a shopper sees', () => {
  it('queryOrder asks WeChat about an unpaid order and books a payment whose notify was lost', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    await refused(
      queryOrder(w.deps(), { orderId }, OTHER),
      'FORBIDDEN',
      'this order belongs to someone else',
    );
    await refused(
      queryOrder(w.deps(), { orderId: '20261130100000nothing000' }, SHOPPER),
      'NOT_FOUND',
      'order not found',
    );
    const seen = await queryOrder(w.deps(), { orderId }, SHOPPER);
    expect(seen.order).toMatchObject({ orderId, status: 'PAID', refundableFee: 5000, payable: false });
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
  });

  it('queryOrder shows the stored order when WeChat does not answer, and a closed one when WeChat closed it', async () => {
    const placed = await order([{ productId: 'tea', quantity: 1 }]);
    w.faults({ systemErrorRate: 1 });
    const seen = await queryOrder(w.deps(), { orderId: placed.orderId }, SHOPPER);
    expect(seen.order).toMatchObject({ status: 'NOTPAY', payable: true });
    w.faults({ systemErrorRate: 0 });
    w.advance(w.config.orderExpireMs + MINUTE);
    const closed = await queryOrder(w.deps(), { orderId: placed.orderId }, SHOPPER);
    expect(closed.order.payable).toBe(false);
  });

  it('queryOrder lists the order’s refunds of that shopper only', async () => {
    const orderId = await paidOrder(w);
    const r = await applied(w, orderId, 1000);
    const seen = await queryOrder(w.deps(), { orderId }, SHOPPER);
    expect(seen.refunds.map((x) => x.refundId)).toEqual([r.refundId]);
    expect(seen.order).toMatchObject({ refundReservedFee: 1000, refundableFee: 4000 });
  });

  it('listOrders shows the caller’s own orders, by status, payable, or with after-sale money', async () => {
    const paid = await paidOrder(w, 5000);
    const refundedFrom = await paidOrder(w, 7000);
    await applied(w, refundedFrom, 100);
    const open = await order([{ productId: 'tea', quantity: 1 }]);
    const cancelled = await order([{ productId: 'cup', quantity: 1 }]);
    await w.deps().store.cas('orders', { _id: cancelled.orderId }, { cancelledAtMs: w.now() });
    await order([{ productId: 'tea', quantity: 1 }], OTHER);
    const ids = async (event: Record<string, unknown>) =>
      (await listOrders(w.deps(), event, SHOPPER)).items.map((o) => o.orderId).sort();
    expect(await ids({})).toEqual([paid, refundedFrom, open.orderId, cancelled.orderId].sort());
    expect(await ids({ status: 'PAID' })).toEqual([paid, refundedFrom].sort());
    expect(await ids({ filter: 'payable' })).toEqual([open.orderId]);
    expect(await ids({ filter: 'payable', status: 'NOTPAY' })).toEqual([open.orderId]);
    await refused(
      listOrders(w.deps(), { filter: 'payable', status: 'PAID' }, SHOPPER),
      'INVALID_INPUT',
      'filter payable lists NOTPAY orders only',
    );
    expect(await ids({ filter: 'afterSale' })).toEqual([refundedFrom]);
    w.advance(w.config.orderExpireMs);
    expect(await ids({ filter: 'payable' })).toEqual([]);
    await refused(
      listOrders(w.deps(), { openid: 'o_other' }, SHOPPER),
      'INVALID_INPUT',
      'unexpected field "openid"',
    );
  });
});
