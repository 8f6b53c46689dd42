import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFunctionRuntime } from '../../sandbox/runtime';
import { ROOT, type Stack } from '../../sandbox/stack';
import { buyAndPay, events, newRequestId, order, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

/** Moves an order into the past, as if the shopper came back after the payment window. */
async function age(orderId: string, minutes: number) {
  const o = await order(stack, orderId);
  const shift = minutes * 60_000;
  await stack.db.raw
    .collection('orders')
    .doc(orderId)
    .update({ createdAtMs: o.createdAtMs - shift, expiresAtMs: Date.now() - 1000 });
}

describe('expiry', () => {
  it('paying again after the window closes the order at WeChat and locally, and says so', async () => {
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'chopsticks', quantity: 1 }] }, SHOPPER),
    );
    await age(created.orderId, 31);
    const again = await stack.call('createOrder', { orderId: created.orderId }, SHOPPER);
    expect(again).toMatchObject({ ok: false, error: { code: 'ORDER_EXPIRED' } });
    expect((await order(stack, created.orderId)).status).toBe('CLOSED');
    expect(stack.simulator.ledger().orders.find((o) => o.outTradeNo === created.orderId)?.tradeState).toBe(
      'CLOSED',
    );
    // The old cashier parameters can no longer take money.
    expect(stack.simulator.pay(created.payment as unknown as Record<string, unknown>).errMsg).not.toBe(
      'requestPayment:ok',
    );
    expect((await events(stack, created.orderId)).map((e) => e.to)).toEqual(['CLOSED']);
  });

  it('reconcile closes unpaid orders past their window, but never one WeChat says is paid', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    const unpaid = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    // Another cart: the same one again at once would be the same order.
    const paid = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 2 }] }, SHOPPER),
    );
    expect(stack.simulator.pay(paid.payment as unknown as Record<string, unknown>).errMsg).toBe(
      'requestPayment:ok',
    );
    await age(unpaid.orderId, 40);
    await age(paid.orderId, 40);
    const run = await stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' });
    expect(run.result).toMatchObject({ ordersClosed: 1, ordersPaid: 1, errors: 0 });
    expect((await order(stack, unpaid.orderId)).status).toBe('CLOSED');
    expect((await order(stack, paid.orderId)).status).toBe('PAID');
    stack.simulator.setFaults({ dropPayNotifies: false });
  });
});

describe('stranded refund reservations', () => {
  it('reconcile releases a reservation whose refund was never created, and leaves real ones alone', async () => {
    stack.simulator.setFaults({ dropPayNotifies: false });
    const crashed = await buyAndPay(stack, SHOPPER, 'mooncake-box');
    const pending = await buyAndPay(stack, SHOPPER, 'chopsticks');
    unwrap(
      await stack.call(
        'applyRefund',
        { orderId: pending, refundFee: 990, reason: 'real', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    // What applyRefund leaves when its function dies between the reservation and the insert.
    const _ = stack.db.command;
    const longAgo = Date.now() - 15 * 60_000;
    await stack.db.raw
      .collection('orders')
      .doc(crashed)
      .update({
        refundReservedFee: _.inc(5000),
        refundUsedFee: _.inc(5000),
        refundCount: _.inc(1),
        refundOpenCount: _.inc(1),
        'refundBook.RSTRANDED0000000001': { fee: 5000, state: 'reserved', atMs: longAgo },
        reservationCheckAtMs: longAgo,
      });
    await stack.db.raw.collection('orders').doc(pending).update({ reservationCheckAtMs: longAgo });

    const run = await stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' });
    expect(run.result).toMatchObject({ reservationsReleased: 1, errors: 0 });
    expect(await order(stack, crashed)).toMatchObject({
      refundReservedFee: 0,
      refundUsedFee: 0,
      refundCount: 0,
      refundOpenCount: 0,
    });
    expect((await order(stack, crashed)).refundBook['RSTRANDED0000000001']?.state).toBe('released');
    expect(await order(stack, pending)).toMatchObject({ refundReservedFee: 990, refundUsedFee: 990 });
    // The released amount can be applied for again.
    unwrap(
      await stack.call(
        'applyRefund',
        { orderId: crashed, refundFee: 12800, reason: 'again', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    // A second run releases nothing more.
    await stack.db.raw.collection('orders').doc(crashed).update({ reservationCheckAtMs: longAgo });
    const again = await stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' });
    expect(again.result).toMatchObject({ reservationsReleased: 0 });
    expect((await order(stack, crashed)).refundUsedFee).toBe(12800);
  });
});

describe('unifiedorder re-entry', () => {
  it('repeats the order’s own notify_url after the configuration changed, so WeChat does not answer 201', async () => {
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    // The prepay_id is about to lapse, so paying again must call unifiedorder again.
    await stack.db.raw.collection('orders').doc(created.orderId).update({ prepayExpiresAtMs: Date.now() });
    const moved = createFunctionRuntime({
      functionsDir: join(ROOT, 'dist', 'cloudfunctions'),
      serviceUrl: stack.emulator.serviceUrl,
      env: { ...stack.env, WXPAY_NOTIFY_URL: `${stack.info.gatewayUrl}/http/pay/notify-moved` },
      log: () => {},
      functionLog: () => {},
    });
    try {
      const again = await moved.invoke(
        'createOrder',
        { orderId: created.orderId },
        { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
      );
      expect(again.result).toMatchObject({ ok: true, data: { orderId: created.orderId } });
      expect((await order(stack, created.orderId)).status).toBe('NOTPAY');
    } finally {
      await moved.close();
    }
  });
});
