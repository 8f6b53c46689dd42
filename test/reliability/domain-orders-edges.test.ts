/**
 * Orders as the operator reads them and the rarer answers a shopper can meet, in one process
 * (world.ts): the log line of each order event, WeChat refusing an order outright, an order
 * number drawn twice, a payment booked after a close, and WeChat unreachable on a close or a
 * query. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { admitCall } from '../../cloudfunctions/shared/domain/limits';
import { handlePayNotify } from '../../cloudfunctions/shared/domain/notify';
import {
  closeLocally,
  createOrder,
  expireOrder,
  queryOrder,
} from '../../cloudfunctions/shared/domain/orders';
import { applyRefund } from '../../cloudfunctions/shared/domain/refunds';
import { beijingTime } from '../../cloudfunctions/shared/domain/validate';
import {
  alwaysLosing,
  deliver,
  dieBefore,
  eventsOf,
  insertInto,
  logged,
  orderAndPay,
  orderDoc,
  refused,
  SHOPPER,
  stock,
} from './shop';
import { Killed, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 1200);
  await stock(w, 'cup', 3000);
});

const MINUTE = 60_000;
const order = (items: unknown, deps = w.deps()) => createOrder(deps, { items }, SHOPPER);

describe('what the operator reads about an order', () => {
  it('order.created: the order, its total and provider, and what the limits cost', async () => {
    const created = await order([
      { productId: 'tea', quantity: 2 },
      { productId: 'cup', quantity: 1 },
    ]);
    const [line] = logged(w, 'order.created');
    expect(line).toMatchObject({
      level: 'info',
      fields: { orderId: created.orderId, totalFee: 5400, provider: 'v2', dbRequests: expect.any(Number) },
    });
    const limits = line!.fields['limits'] as { dbRequests: number; dbMs: number };
    // The limits read and wrote caller_limits: a few requests, never more than the whole call.
    expect(limits.dbRequests).toBeGreaterThanOrEqual(1);
    expect(limits.dbRequests).toBeLessThan(line!.fields['dbRequests'] as number);
    expect(limits.dbMs).toBeGreaterThanOrEqual(0);
    expect(limits.dbMs).toBeLessThan(60_000);
  });

  it('order.paid: info from NOTPAY, with WeChat’s transaction id', async () => {
    const { orderId } = await orderAndPay(w);
    expect(await deliver(w)).toEqual(['PAID']);
    const o = await orderDoc(w, orderId);
    expect(logged(w, 'order.paid')).toEqual([
      {
        level: 'info',
        event: 'order.paid',
        fields: {
          orderId,
          from: 'NOTPAY',
          to: 'PAID',
          source: 'notify',
          transactionId: o.transactionId,
          dbRequests: expect.any(Number),
        },
      },
    ]);
    expect(o.transactionId).toMatch(/^\d{28}$/);
  });

  it('order.closed, then a payment after the close: order.paid as a warning, from CLOSED', async () => {
    const { orderId } = await orderAndPay(w);
    expect(await closeLocally(w.deps(), await orderDoc(w, orderId), 'expired', 'closeorder')).toBe(true);
    expect(logged(w, 'order.closed')).toEqual([
      {
        level: 'info',
        event: 'order.closed',
        fields: {
          orderId,
          from: 'NOTPAY',
          to: 'CLOSED',
          reason: 'expired',
          source: 'closeorder',
          dbRequests: expect.any(Number),
        },
      },
    ]);
    // A second close changes nothing and logs nothing.
    expect(await closeLocally(w.deps(), await orderDoc(w, orderId), 'expired', 'closeorder')).toBe(false);
    expect(logged(w, 'order.closed')).toHaveLength(1);
    expect(await deliver(w)).toEqual(['PAID_AFTER_CLOSE']);
    expect(logged(w, 'order.paid')).toEqual([
      expect.objectContaining({
        level: 'warn',
        fields: expect.objectContaining({ orderId, from: 'CLOSED' }),
      }),
    ]);
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE' });
  });

  it('order.unifiedorder_failed: WeChat’s code, the provider, and the order kept', async () => {
    w.faults({ systemErrorRate: 1 });
    await refused(
      order([{ productId: 'tea', quantity: 1 }]),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay is busy; the order is kept, please pay again shortly',
    );
    w.faults({ systemErrorRate: 0 });
    const [line] = logged(w, 'order.unifiedorder_failed');
    expect(line).toEqual({
      level: 'warn',
      event: 'order.unifiedorder_failed',
      fields: {
        orderId: expect.any(String),
        provider: 'v2',
        errCode: 'SYSTEMERROR',
        code: 'WXPAY_UNAVAILABLE',
      },
    });
    expect((await orderDoc(w, line!.fields['orderId'] as string)).status).toBe('NOTPAY');
  });

  it('WeChat unreachable on a query or a close: order.query_failed and order.closeorder_failed, the order kept', async () => {
    const created = await order([{ productId: 'tea', quantity: 2 }]);
    w.faults({ systemErrorRate: 1 });
    const seen = await queryOrder(w.deps(), { orderId: created.orderId }, SHOPPER);
    expect(seen.order.status).toBe('NOTPAY');
    w.advance(6 * MINUTE);
    expect(await expireOrder(w.deps(), await orderDoc(w, created.orderId))).toBe('PENDING');
    w.faults({ systemErrorRate: 0 });
    expect(logged(w, 'order.query_failed')).toEqual([
      {
        level: 'warn',
        event: 'order.query_failed',
        fields: { orderId: created.orderId, code: 'WXPAY_UNAVAILABLE' },
      },
    ]);
    expect(logged(w, 'order.closeorder_failed')).toEqual([
      {
        level: 'warn',
        event: 'order.closeorder_failed',
        fields: { orderId: created.orderId, errCode: 'SYSTEMERROR', code: 'WXPAY_UNAVAILABLE' },
      },
    ]);
    expect((await orderDoc(w, created.orderId)).status).toBe('NOTPAY');
  });
});

describe('rarer answers a shopper can meet', () => {
  it('WeChat refusing the order’s parameters outright: the order is closed here and the shopper told why', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    // Paying again after the prepay_id ran out repeats the order; changed parameters are a
    // different order under the same number to WeChat, which refuses it for good.
    await w
      .deps()
      .store.cas(
        'orders',
        { _id: created.orderId },
        { prepayExpiresAtMs: w.now(), description: '另一件商品' },
      );
    await refused(
      createOrder(w.deps(), { orderId: created.orderId }, SHOPPER),
      'WXPAY_ERROR',
      'WeChat Pay refused the order: 201 商户订单号重复',
    );
    expect(await orderDoc(w, created.orderId)).toMatchObject({
      status: 'CLOSED',
      closeReason: 'unifiedorder INVALID_REQUEST',
    });
    expect((await eventsOf(w, created.orderId)).map((e) => [e.to, e.source])).toEqual([
      ['CLOSED', 'unifiedorder'],
    ]);
  });

  it('an order number drawn twice: the second order is refused, and the cart can be ordered again', async () => {
    const deps = { ...w.deps(), random: (n: number) => 'x'.repeat(n) };
    await order([{ productId: 'tea', quantity: 1 }], deps);
    await refused(
      order([{ productId: 'cup', quantity: 1 }], { ...w.deps(), random: (n: number) => 'x'.repeat(n) }),
      'CONFLICT',
      'order number collision, please try again',
    );
    // The failed call gave its open-order place back: the same cart is a new order now.
    const next = await order([{ productId: 'cup', quantity: 1 }]);
    expect(next.totalFee).toBe(3000);
  });
});

describe('the same cart twice (a double tap on 去结算)', () => {
  const cart = [{ productId: 'tea', quantity: 3 }];
  /** Deps whose waits move the shared clock, so the polling is seen in time, not hoped for. */
  const clocked = (budgetMs?: number) => {
    const deps = w.deps();
    return {
      ...deps,
      sleep: async (ms: number) => w.advance(ms),
      ...(budgetMs !== undefined
        ? { budget: { endsAtMs: w.now() + budgetMs, callDeadlineMs: w.now() + budgetMs } }
        : {}),
    };
  };

  it('gets the first order back, re-signed, without asking WeChat again, and logs order.same_cart', async () => {
    const first = await order(cart);
    w.advance(1000);
    w.faults({ systemErrorRate: 1 });
    const second = await order(cart, clocked());
    w.faults({ systemErrorRate: 0 });
    expect(second.orderId).toBe(first.orderId);
    expect(second.payment.package).toBe(first.payment.package);
    expect(logged(w, 'order.same_cart')).toEqual([
      {
        level: 'info',
        event: 'order.same_cart',
        fields: { orderId: first.orderId, dbRequests: expect.any(Number) },
      },
    ]);
    expect([...w.core.ledger.orders.values()]).toHaveLength(1);
  });

  it('the first got no prepay_id (WeChat busy): the second waits for it a few seconds, then asks WeChat for that order', async () => {
    w.faults({ systemErrorRate: 1 });
    await refused(
      order(cart),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay is busy; the order is kept, please pay again shortly',
    );
    w.faults({ systemErrorRate: 0 });
    const [stored] = await w.deps().store.find<{ _id: string }>('orders', {}, {});
    const start = w.now();
    const second = await order(cart, clocked());
    // It read the order again at 50, 100, 200, 400, 800 and 1600 ms before asking.
    expect(w.now() - start).toBe(3150);
    expect(second.orderId).toBe(stored!._id);
    expect(w.core.engine.pay(second.payment as never).errMsg).toBe('requestPayment:ok');
    expect(await w.deps().store.find('orders', {}, {})).toHaveLength(1);
  });

  it('the first died before storing its order: asked to try again shortly, and after the grace it is a new order', async () => {
    await expect(order(cart, dieBefore(w.deps(), insertInto('orders')))).rejects.toBeInstanceOf(Killed);
    const start = w.now();
    await expect(order(cart, clocked())).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      message: 'this cart is being ordered by another call right now; try again shortly',
      details: { retryAfterSeconds: 2 },
    });
    expect(w.now() - start).toBe(3150);
    // Near the end of its budget a call stops reading early.
    const late = w.now();
    await expect(order(cart, clocked(100))).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    expect(w.now() - late).toBe(50);
    w.advance(30_000);
    const fresh = await order(cart, clocked());
    expect(fresh.totalFee).toBe(3600);
    expect(await w.deps().store.find('orders', {}, {})).toHaveLength(1);
  });

  it('the first was paid already: the same cart is a new order', async () => {
    const first = await order(cart);
    expect(w.core.engine.pay(first.payment as never).errMsg).toBe('requestPayment:ok');
    expect(await deliver(w)).toEqual(['PAID']);
    const second = await order(cart, clocked());
    expect(second.orderId).not.toBe(first.orderId);
    expect(logged(w, 'order.same_cart')).toEqual([]);
  });
});

describe('a payment whose order keeps changing under it', () => {
  it('is tried three times, then refused for WeChat to send again, with nothing booked', async () => {
    const { orderId } = await orderAndPay(w);
    const losing = alwaysLosing(w.deps(), 'orders');
    const [sent] = w.outbox.splice(0);
    await expect(handlePayNotify(losing.deps, w.delivery(sent!))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: `order ${orderId} kept changing while being marked paid`,
    });
    expect(losing.attempts()).toBe(3);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    // WeChat's retry books it.
    expect((await handlePayNotify(w.deps(), w.delivery(sent!))).outcome).toBe('PAID');
  });
});

describe('an order as stored', () => {
  it('field by field, before and after WeChat’s prepay_id', async () => {
    w.advance(1234);
    const created = await createOrder(
      w.deps(),
      {
        items: [
          { productId: 'tea', quantity: 2 },
          { productId: 'cup', quantity: 1 },
        ],
      },
      { ...SHOPPER, clientIp: '10.0.0.7' },
    );
    const o = await orderDoc(w, created.orderId);
    expect(o).toEqual({
      _id: created.orderId,
      openid: SHOPPER.openid,
      status: 'NOTPAY',
      items: [
        { productId: 'tea', name: '商品tea', priceFen: 1200, quantity: 2 },
        { productId: 'cup', name: '商品cup', priceFen: 3000, quantity: 1 },
      ],
      totalFee: 5400,
      description: `${w.config.shopName}-商品tea等2件`,
      clientIp: '10.0.0.7',
      provider: 'v2',
      signType: 'HMAC-SHA256',
      notifyUrl: w.config.wxpay.payNotifyUrl,
      createdAtMs: w.now(),
      updatedAtMs: w.now(),
      expiresAtMs: w.now() + w.config.orderExpireMs,
      prepayId: expect.stringMatching(/^wx/),
      prepayExpiresAtMs: w.now() + 2 * 3600_000,
      nextCheckAtMs: w.now() + w.config.reconcile.notifyGraceMs,
      checkCount: 0,
      refundReservedFee: 0,
      refundedFee: 0,
      refundUsedFee: 0,
      refundCount: 0,
      refundOpenCount: 0,
      refundBook: {},
      refundCallUntilMs: 0,
    });
    expect(created).toMatchObject({ orderId: o._id, totalFee: 5400 });
    // out_trade_no: Beijing time, then 12 random characters.
    expect(o._id.slice(0, 14)).toBe(beijingTime(w.now()));
    expect(o._id.slice(14)).toMatch(/^[0-9A-Za-z]{12}$/);
  });
});

describe('what a shopper sees past their limits', () => {
  it('queryOrder beyond the read limit shows the stored order and does not ask WeChat; within it, it does', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const max = w.config.limits.perMinute.reads;
    for (let i = 0; i < max; i++) await admitCall(w.deps(), SHOPPER.openid!, 'reads');
    const over = await queryOrder(w.deps(), { orderId }, SHOPPER);
    expect(over.order.status).toBe('NOTPAY');
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    w.advance(61_000);
    expect((await queryOrder(w.deps(), { orderId }, SHOPPER)).order.status).toBe('PAID');
  });

  it('paying again asks WeChat only when the prepay_id ran out, and only then counts as a createOrder call', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    const max = w.config.limits.perMinute.createOrder;
    // Use up the minute's createOrder calls (the first order took one).
    for (let i = 1; i < max; i++) await admitCall(w.deps(), SHOPPER.openid!, 'createOrder');
    // Re-signing is free.
    expect((await createOrder(w.deps(), { orderId: first.orderId }, SHOPPER)).orderId).toBe(first.orderId);
    await w.deps().store.cas('orders', { _id: first.orderId }, { prepayExpiresAtMs: w.now() });
    await expect(createOrder(w.deps(), { orderId: first.orderId }, SHOPPER)).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      message: `too many createOrder calls: at most ${max} a minute`,
    });
  });
});

describe('asking WeChat again for an order', () => {
  it('repeats the sign type the order was placed with, after the merchant switched to another', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    // Placed under MD5 (the merchant has switched to HMAC-SHA256 since); its prepay_id ran out.
    const store = w.deps().store;
    await store.cas('orders', { _id: created.orderId }, { signType: 'MD5', prepayExpiresAtMs: w.now() });
    const sim = [...w.core.ledger.orders.values()].find((o) => o.outTradeNo === created.orderId)!;
    sim.signType = 'MD5';
    sim.request['sign_type'] = 'MD5';
    const again = await createOrder(w.deps(), { orderId: created.orderId }, SHOPPER);
    expect(again.payment.signType).toBe('MD5');
  });

  it('an order WeChat never had is closed here when it expires', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    for (const [k, o] of w.core.ledger.orders)
      if (o.outTradeNo === created.orderId) w.core.ledger.orders.delete(k);
    w.advance(6 * MINUTE);
    expect(await expireOrder(w.deps(), await orderDoc(w, created.orderId))).toBe('CLOSED');
    expect(await orderDoc(w, created.orderId)).toMatchObject({ status: 'CLOSED', closeReason: 'expired' });
  });
});

describe('the cashier’s description', () => {
  it('drops markup and control characters, and is cut at 40 characters without splitting an emoji', async () => {
    await stock(w, 'odd', 100);
    await w.deps().store.cas('products', { _id: 'odd' }, { name: `<b>茶&\u0001叶</b>${'🍵'.repeat(50)}` });
    const created = await order([{ productId: 'odd', quantity: 1 }]);
    const d = (await orderDoc(w, created.orderId)).description;
    const expected = Array.from(`${w.config.shopName}-b茶叶/b${'🍵'.repeat(50)}`)
      .slice(0, 40)
      .join('');
    expect(d).toBe(expected);
    expect(Array.from(d)).toHaveLength(40);
    // A client IP that is not one is replaced; IPv6 is one.
    const v6 = await createOrder(
      w.deps(),
      { items: [{ productId: 'cup', quantity: 1 }] },
      { ...SHOPPER, clientIp: '2001:db8::1' },
    );
    expect((await orderDoc(w, v6.orderId)).clientIp).toBe('2001:db8::1');
    const bad = await createOrder(
      w.deps(),
      { items: [{ productId: 'tea', quantity: 2 }] },
      { ...SHOPPER, clientIp: '1.2.3.4 ' },
    );
    expect((await orderDoc(w, bad.orderId)).clientIp).toBe('127.0.0.1');
  });
});

describe('createOrder and queryOrder, the rest', () => {
  it('paying again takes the order id alone', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    await refused(
      createOrder(w.deps(), { orderId: first.orderId, items: [] }, SHOPPER),
      'INVALID_INPUT',
      'unexpected field "items"',
    );
    await refused(
      createOrder(w.deps(), { items: [{ productId: 'tea', quantity: 1 }], totalFee: 1 }, SHOPPER),
      'INVALID_INPUT',
      'unexpected field "totalFee"',
    );
  });

  it('queryOrder lists the order’s refunds newest first', async () => {
    const { orderId } = await orderAndPay(w);
    expect(await deliver(w)).toEqual(['PAID']);
    const a = await applyRefund(
      w.deps(),
      { orderId, refundFee: 100, reason: '一', requestId: 'req-query-a' },
      SHOPPER,
    );
    w.advance(1000);
    const b = await applyRefund(
      w.deps(),
      { orderId, refundFee: 200, reason: '二', requestId: 'req-query-b' },
      SHOPPER,
    );
    const seen = await queryOrder(w.deps(), { orderId }, SHOPPER);
    expect(seen.refunds.map((r) => r.refundId)).toEqual([b.refund.refundId, a.refund.refundId]);
    expect(seen.order).toMatchObject({ orderId, status: 'PAID', refundableFee: 4700 });
  });
});

describe('WeChat’s five minutes in a sandbox with a time scale', () => {
  it('shrink by it', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    const scaled = () => ({ ...w.deps(), config: { ...w.config, timeScale: 0.5 } });
    w.advance(2 * MINUTE);
    expect(await expireOrder(scaled(), await orderDoc(w, created.orderId))).toBe('PENDING');
    // Not yet: WeChat is not asked.
    expect(logged(w, 'order.closeorder_failed')).toEqual([]);
    w.advance(MINUTE);
    // Past 2.5 scaled minutes WeChat is asked (the simulator keeps real minutes, and refuses).
    expect(await expireOrder(scaled(), await orderDoc(w, created.orderId))).toBe('PENDING');
    expect(logged(w, 'order.closeorder_failed')).toHaveLength(1);
  });
});
