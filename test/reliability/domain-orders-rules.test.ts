/**
 * The finer rules of placing and paying an order, in one process (world.ts): which cart lines
 * and ids are refused and with what words, what the limits cost in the log, the same cart
 * again at the exact edges of its grace and of a prepay_id's life, and errors that are not
 * WeChat's. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { ORDER_INSERT_GRACE_MS } from '../../cloudfunctions/shared/domain/limits';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { PREPAY_MARGIN_MS } from '../../cloudfunctions/shared/domain/model';
import { handlePayNotify } from '../../cloudfunctions/shared/domain/notify';
import {
  closeLocally,
  createOrder,
  expireOrder,
  listOrders,
  queryOrder,
} from '../../cloudfunctions/shared/domain/orders';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import {
  applied,
  casOn,
  dieBefore,
  eventsOf,
  insertInto,
  logged,
  orderAndPay,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refused,
  refusesBadOrderIds,
  SHOPPER,
  stock,
  withProvider,
} from './shop';
import { Killed, MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 1200);
  await stock(w, 'cup', 3000);
});

const order = (items: unknown, deps: Deps = w.deps(), caller = SHOPPER) =>
  createOrder(deps, { items }, caller);
const payAgain = (orderId: unknown, deps: Deps = w.deps()) => createOrder(deps, { orderId }, SHOPPER);
const unifiedOrders = () => [...w.core.ledger.orders.values()].length;

/** Deps whose waits move the shared clock, so polling is seen in time, not hoped for. */
function clocked(): Deps {
  return { ...w.deps(), sleep: async (ms: number) => w.advance(ms) };
}

describe('what a cart and an order id may hold', () => {
  it('a cart line that is not an object is refused by its position', async () => {
    await refused(order([1]), 'INVALID_INPUT', 'items[0] must be an object');
    await refused(order(['tea']), 'INVALID_INPUT', 'items[0] must be an object');
    await refused(
      order([{ productId: 'tea', quantity: 1 }, true]),
      'INVALID_INPUT',
      'items[1] must be an object',
    );
  });

  it('a product id is at most 64 letters, digits, "_" or "-"', async () => {
    await refused(
      order([{ productId: 'x'.repeat(65), quantity: 1 }]),
      'INVALID_INPUT',
      'productId must be at most 64 characters',
    );
    await refused(
      order([{ productId: 'tea;drop', quantity: 1 }]),
      'INVALID_INPUT',
      'productId has an invalid format',
    );
    await stock(w, 'x'.repeat(64), 100);
    expect((await order([{ productId: 'x'.repeat(64), quantity: 1 }])).totalFee).toBe(100);
  });

  it('paying again names an order id of at most 32 letters, digits, "_" or "-"', async () => {
    await refusesBadOrderIds((orderId) => payAgain(orderId));
    await refused(payAgain(null), 'INVALID_INPUT', 'orderId is required');
  });

  it('keeps a client IP only when the whole of it is one', async () => {
    const ip = async (clientIp: string, productId: string) =>
      (
        await orderDoc(
          w,
          (
            await order([{ productId, quantity: 1 }], w.deps(), { ...SHOPPER, clientIp })
          ).orderId,
        )
      ).clientIp;
    expect(await ip('host 10.1.2.3', 'tea')).toBe('127.0.0.1');
    expect(await ip('10.1.2.3', 'cup')).toBe('10.1.2.3');
  });
});

describe('what the limits cost, as logged', () => {
  it('counts only the limits’ own requests, whatever the invocation did before', async () => {
    await order([{ productId: 'tea', quantity: 1 }]);
    const fresh = logged(w, 'order.created')[0]!.fields['limits'] as { dbRequests: number };
    // Another shopper's first order, from an invocation that has made requests already.
    const busy = w.deps();
    for (let i = 0; i < 5; i++) await busy.store.get('orders', `none${i}`);
    await order([{ productId: 'tea', quantity: 1 }], busy, { ...SHOPPER, openid: 'o_second' });
    const later = logged(w, 'order.created')[1]!.fields['limits'] as { dbRequests: number };
    expect(later.dbRequests).toBe(fresh.dbRequests);
    expect(later.dbRequests).toBeGreaterThan(0);
  });
});

describe('the same cart again', () => {
  const cart = [{ productId: 'tea', quantity: 3 }];

  // Reading the order again takes 50 + 100 + 200 + 400 + 800 + 1600 ms before deciding.
  const POLLING_MS = 3150;

  it('whose first call died before storing its order: "try again shortly" until the grace has passed', async () => {
    await expect(order(cart, dieBefore(w.deps(), insertInto('orders')))).rejects.toBeInstanceOf(Killed);
    // Decided 1 ms before the grace ends.
    w.advance(ORDER_INSERT_GRACE_MS - POLLING_MS - 1);
    await refused(
      order(cart, clocked()),
      'RATE_LIMITED',
      'this cart is being ordered by another call right now; try again shortly',
    );
  });

  it('whose first call died before storing its order: a new order once the grace has passed, to the millisecond', async () => {
    await expect(order(cart, dieBefore(w.deps(), insertInto('orders')))).rejects.toBeInstanceOf(Killed);
    // Decided exactly when the grace ends.
    w.advance(ORDER_INSERT_GRACE_MS - POLLING_MS);
    const fresh = await order(cart, clocked());
    expect(fresh.totalFee).toBe(3600);
  });

  it('stops reading when the next wait would end past its deadline, and not before', async () => {
    await expect(order(cart, dieBefore(w.deps(), insertInto('orders')))).rejects.toBeInstanceOf(Killed);
    // 150 ms left: the 50 and 100 ms waits end at or before the deadline, the 200 ms one after.
    const start = w.now();
    const deps = { ...clocked(), budget: { endsAtMs: start + 150, callDeadlineMs: start + 150 } };
    await refused(order(cart, deps), 'RATE_LIMITED');
    expect(w.now() - start).toBe(150);
  });

  it('waits for real between reads when the invocation brings no sleep of its own', async () => {
    await expect(order(cart, dieBefore(w.deps(), insertInto('orders')))).rejects.toBeInstanceOf(Killed);
    // The shop's clock stands still here; 1,599 ms of budget fits the waits of 50 to 800 ms only.
    const deps = { ...w.deps(), budget: { endsAtMs: w.now() + 1599, callDeadlineMs: w.now() + 1599 } };
    const t0 = performance.now();
    await refused(order(cart, deps), 'RATE_LIMITED');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1500);
  });

  it('whose order with a live prepay_id is read once and re-signed', async () => {
    const first = await order(cart);
    const d = clocked();
    const start = w.now();
    const again = await order(cart, d);
    expect(again.orderId).toBe(first.orderId);
    // No polling: the order was complete at the first read.
    expect(w.now()).toBe(start);
    expect(unifiedOrders()).toBe(1);
  });

  it('whose order was closed here is a new order', async () => {
    const first = await order(cart);
    expect(await closeLocally(w.deps(), await orderDoc(w, first.orderId), 'test', 'closeorder')).toBe(true);
    const second = await order(cart, clocked());
    expect(second.orderId).not.toBe(first.orderId);
    expect(logged(w, 'order.same_cart')).toEqual([]);
  });

  it('whose prepay_id runs out within the margin asks WeChat again, to the millisecond', async () => {
    const first = await order(cart);
    const runsOut = w.now() + PREPAY_MARGIN_MS + 1000;
    await w.deps().store.cas('orders', { _id: first.orderId }, { prepayExpiresAtMs: runsOut });
    // One millisecond before the margin: re-signed, WeChat not asked.
    w.advance(999);
    await order(cart, clocked());
    expect((await orderDoc(w, first.orderId)).prepayExpiresAtMs).toBe(runsOut);
    // At the margin: asked again, and the new prepay_id's life stored.
    w.advance(1);
    await order(cart, clocked());
    expect((await orderDoc(w, first.orderId)).prepayExpiresAtMs).toBeGreaterThan(runsOut);
  });
});

describe('paying again', () => {
  it('asks WeChat for a new prepay_id from the moment the old one is within its margin', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    const runsOut = w.now() + PREPAY_MARGIN_MS + 1000;
    await w.deps().store.cas('orders', { _id: first.orderId }, { prepayExpiresAtMs: runsOut });
    w.advance(999);
    await payAgain(first.orderId);
    expect((await orderDoc(w, first.orderId)).prepayExpiresAtMs).toBe(runsOut);
    w.advance(1);
    await payAgain(first.orderId);
    expect((await orderDoc(w, first.orderId)).prepayExpiresAtMs).toBeGreaterThan(runsOut);
  });

  it('an error that is not WeChat’s reaches the caller as it is, and the order stays payable', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    await w.deps().store.cas('orders', { _id: first.orderId }, { prepayExpiresAtMs: w.now() });
    const deps = withProvider(w, {
      createPayment: async () => {
        throw new TypeError('a bug in the provider');
      },
    });
    await expect(payAgain(first.orderId, deps)).rejects.toThrow(new TypeError('a bug in the provider'));
    expect((await orderDoc(w, first.orderId)).status).toBe('NOTPAY');
    expect(logged(w, 'order.unifiedorder_failed')).toEqual([]);
  });

  it('unifiedorder answering ORDERCLOSED records the close as WeChat’s answer to unifiedorder', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(5 * 60_000);
    await w.deps().wxpay!.current.closePayment(first.orderId);
    await w.deps().store.cas('orders', { _id: first.orderId }, { prepayExpiresAtMs: w.now() });
    await refused(payAgain(first.orderId), 'ORDER_NOT_PAYABLE', 'the order is closed; place a new order');
    expect((await eventsOf(w, first.orderId)).map((e) => [e.to, e.source])).toEqual([
      ['CLOSED', 'unifiedorder'],
    ]);
  });
});

describe('booking a payment', () => {
  it('found by orderquery (the notify lost): with WeChat’s time of payment, to the second', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const sim = [...w.core.ledger.orders.values()].find((o) => o.outTradeNo === orderId)!;
    w.advance(60_000);
    const seen = await queryOrder(w.deps(), { orderId }, SHOPPER);
    const paid = await orderDoc(w, orderId);
    expect(paid.status).toBe('PAID');
    expect(paid.paidAtMs).toBe(Math.floor(sim.paidAtMs! / 1000) * 1000);
    // The shopper reads the same time in the answer.
    expect(seen.order.paidAtMs).toBe(paid.paidAtMs);
  });

  it('of another amount: order.amount_mismatch, an error naming both amounts and the source', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    const body = signPayNotifyForTest(
      { appid: MERCHANT.appid, mchId: MERCHANT.mchId, apiKey: MERCHANT.apiKey, signType: 'HMAC-SHA256' },
      { out_trade_no: orderId, total_fee: 1, openid: SHOPPER.openid },
    );
    await handlePayNotify(w.deps(), w.delivery({ kind: 'pay', body }));
    expect(logged(w, 'order.amount_mismatch')).toEqual([
      {
        level: 'error',
        event: 'order.amount_mismatch',
        fields: { orderId, expected: 5000, got: 1, source: 'notify' },
      },
    ]);
  });
});

describe('two deliveries of one notify', () => {
  it('the one whose write lost reads PAID and acknowledges, booking nothing twice', async () => {
    const { orderId } = await orderAndPay(w);
    const [sent] = w.outbox.splice(0);
    const point = pausePoint();
    const slow = handlePayNotify(pauseBefore(w.deps(), casOn('orders'), point), w.delivery(sent!));
    await point.arrived;
    const fast = await handlePayNotify(w.deps(), w.delivery(sent!));
    const paidAt = (await orderDoc(w, orderId)).updatedAtMs;
    w.advance(1000);
    point.release();
    expect([fast.outcome, (await slow).outcome]).toEqual(['PAID', 'ALREADY_PAID']);
    expect(logged(w, 'order.paid')).toHaveLength(1);
    expect((await orderDoc(w, orderId)).updatedAtMs).toBe(paidAt);
    expect(await eventsOf(w, orderId)).toHaveLength(1);
  });
});

describe('queryOrder', () => {
  it('asks WeChat only about an unpaid order with a prepay_id, waiting 5 s at most', async () => {
    const asked: { id: string; deadlineMs?: number; at: number }[] = [];
    const base = w.deps().wxpay!.byName.v2!;
    const spying = () =>
      withProvider(w, {
        queryPayment: (id, options) => {
          asked.push({ id, ...options, at: w.now() });
          return base.queryPayment(id, options);
        },
      });
    const unpaid = await order([{ productId: 'tea', quantity: 1 }]);
    await queryOrder(spying(), { orderId: unpaid.orderId }, SHOPPER);
    expect(asked).toEqual([{ id: unpaid.orderId, deadlineMs: asked[0]!.at + 5000, at: asked[0]!.at }]);
    // Without a prepay_id WeChat has no such order yet; a paid one needs no asking.
    await w.deps().store.cas('orders', { _id: unpaid.orderId }, { prepayId: null });
    await queryOrder(spying(), { orderId: unpaid.orderId }, SHOPPER);
    const paid = await paidOrder(w, 3000, { ...SHOPPER, openid: 'o_paid' });
    await queryOrder(spying(), { orderId: paid }, { ...SHOPPER, openid: 'o_paid' });
    expect(asked).toHaveLength(1);
  });

  it('an unpaid order WeChat also calls unpaid stays payable', async () => {
    const unpaid = await order([{ productId: 'tea', quantity: 1 }]);
    const seen = await queryOrder(w.deps(), { orderId: unpaid.orderId }, SHOPPER);
    expect(seen.order).toMatchObject({ status: 'NOTPAY', payable: true });
    expect((await orderDoc(w, unpaid.orderId)).status).toBe('NOTPAY');
  });

  it('a trade WeChat calls REVOKED closes the order, recorded as orderquery’s answer', async () => {
    const unpaid = await order([{ productId: 'tea', quantity: 1 }]);
    const deps = withProvider(w, {
      queryPayment: async (id) => ({
        outTradeNo: id,
        state: 'REVOKED',
        paid: false,
        record: { trade_state: 'REVOKED' },
      }),
    });
    const seen = await queryOrder(deps, { orderId: unpaid.orderId }, SHOPPER);
    expect(seen.order.status).toBe('CLOSED');
    expect(await orderDoc(w, unpaid.orderId)).toMatchObject({
      status: 'CLOSED',
      closeReason: 'trade_state REVOKED',
    });
    const [event] = await eventsOf(w, unpaid.orderId);
    expect(event).toMatchObject({ to: 'CLOSED', source: 'orderquery', fields: { trade_state: 'REVOKED' } });
  });

  it('shows the stored order when the query fails with an error that is not WeChat’s, and logs it', async () => {
    const unpaid = await order([{ productId: 'tea', quantity: 1 }]);
    const deps = withProvider(w, {
      queryPayment: async () => {
        throw new Error('boom');
      },
    });
    const seen = await queryOrder(deps, { orderId: unpaid.orderId }, SHOPPER);
    expect(seen.order.status).toBe('NOTPAY');
    expect(logged(w, 'order.query_failed')).toEqual([
      {
        level: 'warn',
        event: 'order.query_failed',
        fields: { orderId: unpaid.orderId, code: 'Error: boom' },
      },
    ]);
  });

  it('names an order id of at most 32 letters, digits, "_" or "-"', async () => {
    await refusesBadOrderIds((orderId) => queryOrder(w.deps(), { orderId }, SHOPPER));
  });

  it('lists the refunds of that order only', async () => {
    const one = await paidOrder(w, 3000);
    const two = await paidOrder(w, 4000);
    const r1 = await applied(w, one, 1000);
    await applied(w, two, 2000);
    const seen = await queryOrder(w.deps(), { orderId: one }, SHOPPER);
    expect(seen.refunds.map((r) => r.refundId)).toEqual([r1.refundId]);
  });
});

describe('expiring an order', () => {
  it('a close that fails with an error that is not WeChat’s is logged and tried again later', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(6 * 60_000);
    const deps = withProvider(w, {
      closePayment: async () => {
        throw new Error('socket hang up');
      },
    });
    expect(await expireOrder(deps, await orderDoc(w, created.orderId))).toBe('PENDING');
    expect(logged(w, 'order.closeorder_failed')).toEqual([
      {
        level: 'warn',
        event: 'order.closeorder_failed',
        fields: { orderId: created.orderId, errCode: undefined, code: undefined },
      },
    ]);
    expect((await orderDoc(w, created.orderId)).status).toBe('NOTPAY');
  });

  it('an order closed at WeChat already is closed here, without a failure', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(6 * 60_000);
    await w.deps().wxpay!.current.closePayment(created.orderId);
    expect(await expireOrder(w.deps(), await orderDoc(w, created.orderId))).toBe('CLOSED');
    expect(logged(w, 'order.closeorder_failed')).toEqual([]);
    expect(await orderDoc(w, created.orderId)).toMatchObject({ status: 'CLOSED', closeReason: 'expired' });
  });

  it('closeorder answering ORDERCLOSED (closed at WeChat meanwhile): closed here, without a failure', async () => {
    const created = await order([{ productId: 'tea', quantity: 1 }]);
    w.advance(6 * 60_000);
    const deps = withProvider(w, {
      closePayment: async () => {
        throw Object.assign(new Error('订单已关闭'), {
          code: 'WXPAY_ERROR',
          failure: 'permanent',
          reason: 'ORDER_CLOSED',
          providerCode: 'ORDERCLOSED',
        });
      },
    });
    expect(await expireOrder(deps, await orderDoc(w, created.orderId))).toBe('CLOSED');
    expect(logged(w, 'order.closeorder_failed')).toEqual([]);
    expect((await orderDoc(w, created.orderId)).status).toBe('CLOSED');
  });

  it('closeorder saying ORDERPAID while orderquery shows another amount: nothing booked, tried again later', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    w.advance(6 * 60_000);
    await w.deps().store.cas('orders', { _id: orderId }, { totalFee: 4999 });
    expect(await expireOrder(w.deps(), await orderDoc(w, orderId))).toBe('PENDING');
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    expect(logged(w, 'order.amount_mismatch')).toHaveLength(1);
  });
});

describe('listOrders', () => {
  it('pages newest first, twenty at a time, from the cursor it gave', async () => {
    const first = await order([{ productId: 'tea', quantity: 1 }]);
    const model = await orderDoc(w, first.orderId);
    const store = w.deps().store;
    for (let i = 1; i <= 20; i++) {
      if (i === 20) {
        // Exactly one page: no cursor to a page that would be empty.
        const only = await listOrders(w.deps(), {}, SHOPPER);
        expect(only.items).toHaveLength(20);
        expect(only.nextCursor).toBeNull();
      }
      const doc: OrderDoc = {
        ...model,
        _id: `${model._id.slice(0, -2)}${String(i).padStart(2, '0')}`,
        createdAtMs: model.createdAtMs + i,
      };
      await store.insert('orders', doc);
    }
    const page1 = await listOrders(w.deps(), {}, SHOPPER);
    expect(page1.items).toHaveLength(20);
    expect(page1.nextCursor).toEqual(expect.any(String));
    const page2 = await listOrders(w.deps(), { cursor: page1.nextCursor }, SHOPPER);
    expect(page2.items.map((o) => o.orderId)).toEqual([first.orderId]);
    expect(page2.nextCursor).toBeNull();
  });
});
