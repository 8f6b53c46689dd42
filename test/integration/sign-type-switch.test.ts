/**
 * The merchant switches WXPAY_SIGN_TYPE while orders are in flight. WeChat keeps signing each
 * order's notifies with the type the order was created with, and unifiedorder re-entry must
 * repeat it; only types the merchant allows are ever tried, never the one a notify names.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay';
import { createFunctionRuntime } from '../../sandbox/runtime';
import { ROOT, type Stack } from '../../sandbox/stack';
import { isSuccessXml, order, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
let switched: ReturnType<typeof createFunctionRuntime>;
beforeAll(async () => {
  stack = await testStack({ signType: 'MD5' });
  switched = createFunctionRuntime({
    functionsDir: join(ROOT, 'dist', 'cloudfunctions'),
    serviceUrl: stack.emulator.serviceUrl,
    env: { ...stack.env, WXPAY_SIGN_TYPE: 'HMAC-SHA256' },
    log: () => {},
    functionLog: () => {},
  });
});
afterAll(async () => {
  await switched?.close();
  await stack?.close();
});

const notifyEvent = (body: string) => ({ httpMethod: 'POST', body, isBase64Encoded: false, headers: {} });
const asShopper = () => ({ OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' });

function notifyBody(orderId: string, signType: 'MD5' | 'HMAC-SHA256', apiKey = stack.info.merchant.apiKey) {
  const m = stack.info.merchant;
  return signPayNotifyForTest(
    { appid: m.appid, mchId: m.mchid, apiKey, signType },
    { out_trade_no: orderId, total_fee: 1, openid: SHOPPER, transaction_id: `4200${Date.now()}` },
  );
}

describe('switching MD5 → HMAC-SHA256 with orders in flight', () => {
  it('an order created under MD5 is paid by its MD5 notify after the switch', async () => {
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    const out = await switched.invoke('payNotify', notifyEvent(notifyBody(created.orderId, 'MD5')), {
      SOURCE: 'wx_http',
    });
    expect(isSuccessXml((out.result as { body: string }).body)).toBe(true);
    expect((await order(stack, created.orderId)).status).toBe('PAID');
  });

  it('refuses a notify for an MD5 order signed HMAC-SHA256, even with the right key', async () => {
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    const out = await switched.invoke('payNotify', notifyEvent(notifyBody(created.orderId, 'HMAC-SHA256')), {
      SOURCE: 'wx_http',
    });
    expect((out.result as { body: string }).body).toContain('FAIL');
    expect((await order(stack, created.orderId)).status).toBe('NOTPAY');
  });

  it('paying again after the switch repeats the order’s MD5 unifiedorder, so WeChat does not answer 201', async () => {
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    // The prepay_id is about to lapse, so paying again calls unifiedorder again.
    await stack.db.raw.collection('orders').doc(created.orderId).update({ prepayExpiresAtMs: Date.now() });
    const again = await switched.invoke('createOrder', { orderId: created.orderId }, asShopper());
    expect(again.result).toMatchObject({ ok: true, data: { payment: { signType: 'MD5' } } });
    const payment = (again.result as { data: { payment: Record<string, unknown> } }).data.payment;
    expect(stack.simulator.pay(payment).errMsg).toBe('requestPayment:ok');
  });

  it('a notify that verifies under no allowed sign type costs no database request', async () => {
    // Another cart than the test before: the same cart within LIMIT_SAME_CART_SECONDS gives back
    // that test's order, which its simulated payment's notify may turn PAID at any moment.
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 2 }] }, SHOPPER),
    );
    for (const type of ['MD5', 'HMAC-SHA256'] as const) {
      const forged = notifyBody(created.orderId, type, 'WRONGKEY0WRONGKEY0WRONGKEY012345');
      const out = await stack.runtime.invoke('payNotify', notifyEvent(forged), { SOURCE: 'wx_http' });
      expect((out.result as { body: string }).body).toContain('FAIL');
      expect(out.dbRequests).toBe(0);
    }
    expect((await order(stack, created.orderId)).status).toBe('NOTPAY');
  });
});
