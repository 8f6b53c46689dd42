/**
 * A merchant that signs with MD5 now, holding orders placed while it signed with HMAC-SHA256:
 * paying again repeats each order's own sign type, as WeChat requires of a re-entered order.
 * In one process (world.ts); runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { SHOPPER, stock } from './shop';
import { useWorld } from './world';

const w = useWorld({ signType: 'MD5' });
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 1200);
});

describe('asking WeChat again for an order placed under the other sign type', () => {
  it('an MD5 order is signed with MD5', async () => {
    const created = await createOrder(w.deps(), { items: [{ productId: 'tea', quantity: 1 }] }, SHOPPER);
    expect(created.payment.signType).toBe('MD5');
  });

  it('an order placed under HMAC-SHA256 is re-entered and signed with HMAC-SHA256', async () => {
    const created = await createOrder(w.deps(), { items: [{ productId: 'tea', quantity: 1 }] }, SHOPPER);
    const store = w.deps().store;
    await store.cas(
      'orders',
      { _id: created.orderId },
      { signType: 'HMAC-SHA256', prepayExpiresAtMs: w.now() },
    );
    const sim = [...w.core.ledger.orders.values()].find((o) => o.outTradeNo === created.orderId)!;
    sim.signType = 'HMAC-SHA256';
    sim.request['sign_type'] = 'HMAC-SHA256';
    const again = await createOrder(w.deps(), { orderId: created.orderId }, SHOPPER);
    expect(again.payment.signType).toBe('HMAC-SHA256');
    // The cashier takes it: WeChat's check of paySign under the order's own type.
    expect(w.core.engine.pay(again.payment as never).errMsg).toBe('requestPayment:ok');
  });
});
