/**
 * cancelOrder through the stack: the order stops being payable at once, WeChat closes it when
 * its 5-minute rule allows (in the call, or reconcile afterwards), and money that reaches
 * WeChat around a cancel is never lost. The races are forced: the emulator holds the cancel's
 * write while a pay notify is processed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreateOrderResult } from '../../cloudfunctions/shared/contract';
import type { PaymentEventDoc } from '../../cloudfunctions/shared/domain/model';
import type { Stack } from '../../sandbox/stack';
import {
  events,
  isSuccessXml,
  OTHER,
  order,
  passTime as passTimeAt,
  payNotifyFor,
  postHttp,
  SHOPPER,
  testStack,
  unwrap,
} from './support';

/**
 * WeChat's 5 minutes before closeorder, at a tenth of the usual test speed (3 s): a fresh
 * order must still be inside them when the cancel arrives, however loaded the machine.
 */
const TIME_SCALE = 0.01;
const passTime = (productionMs: number) => passTimeAt(productionMs, TIME_SCALE);

let stack: Stack;
beforeAll(async () => {
  stack = await testStack({ timeScale: TIME_SCALE });
});
afterAll(() => stack?.close());

const FIVE_MINUTES = 5 * 60_000;

async function newOrder(productId = 'sticker'): Promise<CreateOrderResult> {
  return unwrap(await stack.call('createOrder', { items: [{ productId, quantity: 1 }] }, SHOPPER));
}
const atWeChat = (orderId: string) =>
  stack.simulator.ledger().orders.find((o) => o.outTradeNo === orderId)?.tradeState;
const pay = (created: CreateOrderResult) =>
  stack.simulator.pay(created.payment as unknown as Record<string, unknown>).errMsg;
const reconcile = () => stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' });
const paidEvents = async (orderId: string) =>
  (await stack.db.all<PaymentEventDoc>('payment_events', { orderId, to: 'PAID' })).length;

describe('cancelOrder', () => {
  it('a fresh order stops being payable at once; reconcile closes it at WeChat after 5 minutes', async () => {
    const created = await newOrder();
    const out = unwrap(await stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER));
    expect(out.outcome).toBe('CLOSING');
    expect(out.order).toMatchObject({ status: 'NOTPAY', payable: false });
    expect(out.order.cancelledAtMs).toBeGreaterThan(0);
    expect(await stack.call('createOrder', { orderId: created.orderId }, SHOPPER)).toMatchObject({
      ok: false,
      error: { code: 'ORDER_NOT_PAYABLE' },
    });
    // WeChat refuses closeorder in the first 5 minutes, so it still holds the order open.
    expect(atWeChat(created.orderId)).toBe('NOTPAY');
    const listed = unwrap(await stack.call('listOrders', { filter: 'payable' }, SHOPPER));
    expect(listed.items.map((o) => o.orderId)).not.toContain(created.orderId);

    await passTime(FIVE_MINUTES);
    await reconcile();
    expect(await order(stack, created.orderId)).toMatchObject({ status: 'CLOSED', closeReason: 'cancelled' });
    expect(atWeChat(created.orderId)).toBe('CLOSED');
    expect((await events(stack, created.orderId)).map((e) => e.to)).toEqual(['CLOSED']);
  });

  it('an order older than 5 minutes is closed at WeChat and here in the same call, and a repeat changes nothing', async () => {
    const created = await newOrder();
    await passTime(FIVE_MINUTES);
    const out = unwrap(await stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER));
    expect(out.outcome).toBe('CLOSED');
    expect(out.order.status).toBe('CLOSED');
    expect(atWeChat(created.orderId)).toBe('CLOSED');
    const closedAt = (await order(stack, created.orderId)).closedAtMs;
    const again = unwrap(await stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER));
    expect(again.outcome).toBe('CLOSED');
    expect((await order(stack, created.orderId)).closedAtMs).toBe(closedAt);
    expect((await events(stack, created.orderId)).map((e) => e.to)).toEqual(['CLOSED']);
    // The old cashier parameters can no longer take money.
    expect(pay(created)).not.toBe('requestPayment:ok');
  });

  it('a payment WeChat took before the cancel wins: closeorder says ORDERPAID and the order is PAID', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    try {
      const created = await newOrder();
      expect(pay(created)).toBe('requestPayment:ok');
      await passTime(FIVE_MINUTES);
      const out = unwrap(await stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER));
      expect(out.outcome).toBe('PAID');
      expect(out.order).toMatchObject({ status: 'PAID', payable: false });
      expect((await order(stack, created.orderId)).flag).toBeUndefined();
      expect(atWeChat(created.orderId)).toBe('SUCCESS');
      expect(await paidEvents(created.orderId)).toBe(1);
    } finally {
      stack.simulator.setFaults({ dropPayNotifies: false });
    }
  });

  it('a cashier still open after the cancel can pay before WeChat allows the close: the money is booked PAID', async () => {
    const created = await newOrder();
    expect(unwrap(await stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER)).outcome).toBe(
      'CLOSING',
    );
    expect(pay(created)).toBe('requestPayment:ok');
    await stack.simulator.flushNotifies();
    expect((await order(stack, created.orderId)).status).toBe('PAID');
    // Reconcile's close comes due, and finds nothing to close.
    await passTime(FIVE_MINUTES);
    await reconcile();
    expect((await order(stack, created.orderId)).status).toBe('PAID');
    expect(atWeChat(created.orderId)).toBe('SUCCESS');
    expect(await paidEvents(created.orderId)).toBe(1);
  });

  it('a pay notify processed while the cancel is held before its write wins; the cancel answers PAID', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    try {
      const created = await newOrder();
      expect(pay(created)).toBe('requestPayment:ok');
      // Hold the cancel's one write: the update that sets cancelledAtMs.
      const write = stack.emulator.faults.pause({
        collection: 'orders',
        op: 'update',
        where: { _id: created.orderId },
        test: (r) => JSON.stringify(r.data).includes('cancelledAtMs'),
      });
      const cancelling = stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER);
      const held = await write.reached();
      const notify = await postHttp(
        stack,
        '/pay/notify',
        payNotifyFor(stack, {
          out_trade_no: created.orderId,
          total_fee: created.totalFee,
          transaction_id: '4200000000202611300001',
          time_end: '20261130101010',
        }),
      );
      expect(isSuccessXml(notify.text)).toBe(true);
      held.release();
      const out = unwrap(await cancelling);
      expect(out.outcome).toBe('PAID');
      const doc = await order(stack, created.orderId);
      expect(doc.status).toBe('PAID');
      expect(doc.cancelledAtMs).toBeUndefined();
      expect(await paidEvents(created.orderId)).toBe(1);
    } finally {
      stack.simulator.setFaults({ dropPayNotifies: false });
    }
  });

  it('money WeChat reports for an order the cancel already closed is booked PAID and flagged PAID_AFTER_CLOSE', async () => {
    const created = await newOrder();
    await passTime(FIVE_MINUTES);
    expect(unwrap(await stack.call('cancelOrder', { orderId: created.orderId }, SHOPPER)).outcome).toBe(
      'CLOSED',
    );
    // WeChat's own word (a verified notify): the payment went through just before the close.
    const notify = await postHttp(
      stack,
      '/pay/notify',
      payNotifyFor(stack, {
        out_trade_no: created.orderId,
        total_fee: created.totalFee,
        transaction_id: '4200000000202611300002',
        time_end: '20261130101011',
      }),
    );
    expect(isSuccessXml(notify.text)).toBe(true);
    expect(await order(stack, created.orderId)).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE' });
    const q = unwrap(await stack.call('queryOrder', { orderId: created.orderId }, SHOPPER));
    expect(q.order).toMatchObject({
      status: 'PAID',
      flag: 'PAID_AFTER_CLOSE',
      refundableFee: created.totalFee,
    });
  });

  it('is the owner’s only, and refuses what the contract does not name', async () => {
    const created = await newOrder();
    expect(await stack.call('cancelOrder', { orderId: created.orderId }, OTHER)).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    expect(await stack.call('cancelOrder', { orderId: 'nosuchorder' }, SHOPPER)).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND' },
    });
    expect(
      await stack.call('cancelOrder', { orderId: created.orderId, openid: OTHER } as never, SHOPPER),
    ).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    expect((await order(stack, created.orderId)).cancelledAtMs).toBeUndefined();
  });
});

describe('listOrders tabs', () => {
  it('待支付 lists only orders that can still be paid; 售后 only orders with refunds in progress or refunded', async () => {
    const shopper = 'o_tabs_shopper';
    // Each a different cart: the same cart again within LIMIT_SAME_CART_SECONDS is the same order.
    let quantity = 0;
    const make = async () =>
      unwrap(
        await stack.call(
          'createOrder',
          { items: [{ productId: 'tea-longjing', quantity: ++quantity }] },
          shopper,
        ),
      );
    const open = await make();
    const cancelled = await make();
    unwrap(await stack.call('cancelOrder', { orderId: cancelled.orderId }, shopper));
    const refunded = await make();
    const untouched = await make();
    for (const o of [refunded, untouched]) expect(pay(o)).toBe('requestPayment:ok');
    await stack.simulator.flushNotifies();
    unwrap(
      await stack.call(
        'applyRefund',
        {
          orderId: refunded.orderId,
          refundFee: 100,
          reasonCode: 'NOT_WANTED',
          requestId: `tabs${Date.now()}`,
        },
        shopper,
      ),
    );

    const ids = async (event: Parameters<typeof stack.call<'listOrders'>>[1]) =>
      unwrap(await stack.call('listOrders', event, shopper)).items.map((o) => o.orderId);
    expect(await ids({ filter: 'payable' })).toEqual([open.orderId]);
    expect(await ids({ filter: 'afterSale' })).toEqual([refunded.orderId]);
    expect((await ids({})).sort()).toEqual(
      [open.orderId, cancelled.orderId, refunded.orderId, untouched.orderId].sort(),
    );
    expect(await stack.call('listOrders', { status: 'PAID', filter: 'payable' }, shopper)).toMatchObject({
      ok: false,
      error: { code: 'INVALID_INPUT' },
    });
  });
});
