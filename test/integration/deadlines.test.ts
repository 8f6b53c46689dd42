/**
 * Every WeChat call ends before the function that makes it is killed, with the production
 * timeouts (WXPAY_TIMEOUT_MS 8000, 3 attempts; config.json timeouts): a hanging WeChat costs
 * the shopper a clear answer, never a killed function and a lost fallback.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import { SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

const asShopper = { OPENID: SHOPPER, SOURCE: 'wx_client' };

describe('deadlines with production timeouts', () => {
  it('runs the functions with the production WeChat Pay timeout', () => {
    expect(stack.env['WXPAY_TIMEOUT_MS']).toBeUndefined();
  });

  it('queryOrder with orderquery hanging answers the stored order before its 15 s timeout', async () => {
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    stack.simulator.setFaults({ timeoutRate: { '/pay/orderquery': 1 } });
    try {
      const out = await stack.runtime.invoke(
        'queryOrder',
        { orderId: created.orderId },
        { ...asShopper, APPID: stack.info.merchant.appid },
      );
      expect(out.error).toBeUndefined();
      expect(out.result).toMatchObject({
        ok: true,
        data: { order: { orderId: created.orderId, status: 'NOTPAY' } },
      });
      expect(out.durationMs).toBeLessThan(15_000);
    } finally {
      stack.simulator.setFaults({ timeoutRate: 0 });
    }
  }, 60_000);

  it('createOrder with unifiedorder hanging answers WXPAY_UNAVAILABLE before its 20 s timeout, order kept', async () => {
    stack.simulator.setFaults({ timeoutRate: { '/pay/unifiedorder': 1 } });
    try {
      const out = await stack.runtime.invoke(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 2 }] },
        { ...asShopper, APPID: stack.info.merchant.appid },
      );
      expect(out.error).toBeUndefined();
      expect(out.result).toMatchObject({ ok: false, error: { code: 'WXPAY_UNAVAILABLE' } });
      expect(out.durationMs).toBeLessThan(20_000);
      // The order was stored before WeChat heard of it: pay again, or reconcile, picks it up.
      expect(await stack.db.count('orders', { openid: SHOPPER, 'items.0.quantity': 2 })).toBe(1);
    } finally {
      stack.simulator.setFaults({ timeoutRate: 0 });
    }
  }, 60_000);
});
