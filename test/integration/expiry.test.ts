import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import { events, order, SHOPPER, testStack, unwrap } from './support';

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
    const paid = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
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
