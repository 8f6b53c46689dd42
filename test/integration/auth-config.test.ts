import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptRefundNotifyForTest } from '../../cloudfunctions/shared/wxpay';
import { createFunctionRuntime } from '../../sandbox/runtime';
import { ROOT, type Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  OTHER,
  order,
  payNotifyFor,
  SHOPPER,
  testStack,
  unwrap,
} from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

describe('authorization', () => {
  it('refuses another user’s order, a non-admin reviewer, and client-sent amounts or openids, writing nothing', async () => {
    const orderId = await buyAndPay(stack, SHOPPER);
    // Bad catalogue data: a fractional price must never be sold.
    await stack.db.insertMany('products', [
      { _id: 'bad-price', name: 'bad', priceFen: 0.5, image: '', onSale: true, sort: 99 },
    ]);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 1, reason: 'x', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    const before = {
      orders: await stack.db.count('orders'),
      refunds: await stack.db.count('refunds'),
      events: await stack.db.count('payment_events'),
      order: await order(stack, orderId),
    };
    const forbidden = [
      await stack.call('queryOrder', { orderId }, OTHER),
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 1, reason: 'mine now', requestId: newRequestId() },
        OTHER,
      ),
      await stack.call('createOrder', { orderId }, OTHER),
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, SHOPPER),
      await stack.call('listRefunds', {}, OTHER),
    ];
    for (const r of forbidden) expect(r).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    const invalid = [
      await stack.call(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }], totalFee: 1 } as never,
        OTHER,
      ),
      await stack.call(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1, priceFen: 0 }] } as never,
        OTHER,
      ),
      await stack.call(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }], openid: SHOPPER } as never,
        OTHER,
      ),
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 0.5 }] }, OTHER),
      await stack.call('createOrder', { items: [{ productId: 'retired-mug', quantity: 1 }] }, OTHER),
      await stack.call('createOrder', { items: [{ productId: 'bad-price', quantity: 2 }] }, OTHER),
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 1, reason: 'x', openid: OTHER, requestId: newRequestId() } as never,
        SHOPPER,
      ),
      await stack.call(
        'applyRefund',
        { orderId, refundFee: -5, reason: 'x', requestId: newRequestId() },
        SHOPPER,
      ),
      await stack.call('listOrders', { openid: SHOPPER } as never, OTHER),
    ];
    for (const r of invalid) expect(r).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    const anonymous = await stack.runtime.invoke('listOrders', {}, { SOURCE: 'wx_client' });
    expect(anonymous.result).toMatchObject({ ok: false, error: { code: 'UNAUTHENTICATED' } });
    expect({
      orders: await stack.db.count('orders'),
      refunds: await stack.db.count('refunds'),
      events: await stack.db.count('payment_events'),
      order: await order(stack, orderId),
    }).toEqual(before);
    expect(unwrap(await stack.call('whoami', {}, ADMIN)).isAdmin).toBe(true);
    expect(unwrap(await stack.call('whoami', {}, SHOPPER)).isAdmin).toBe(false);
  });

  it('ignores the userInfo the platform adds to events: identity is the WX context only', async () => {
    const list = await stack.runtime.invoke(
      'listOrders',
      { userInfo: { openId: SHOPPER, appId: 'x' } },
      { OPENID: OTHER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
    );
    expect(list.result).toMatchObject({ ok: true, data: { items: [] } });
  });
});

describe('database round trips', () => {
  it('hold the design minimum on every step', async () => {
    // A shopper new to the shop: the first limited call creates their limits document.
    const shopper = 'o_round_trips';
    const ctx = (openid: string) => ({
      OPENID: openid,
      APPID: stack.info.merchant.appid,
      SOURCE: 'wx_client',
    });
    const firstCall = await stack.runtime.invoke('listProducts', {}, ctx(shopper));
    expect(firstCall.dbRequests).toBe(4); // limits: update (no document yet), read, insert; products
    expect((await stack.runtime.invoke('listProducts', {}, ctx(shopper))).dbRequests).toBe(2); // limits, products
    expect((await stack.runtime.invoke('listOrders', {}, ctx(shopper))).dbRequests).toBe(2); // limits, one page
    const created = await stack.runtime.invoke(
      'createOrder',
      { items: [{ productId: 'sticker', quantity: 1 }] },
      ctx(shopper),
    );
    const data = (created.result as { data: { orderId: string; payment: Record<string, unknown> } }).data;
    expect(created.dbRequests).toBe(4); // limits (one conditional update), products, insert order, store prepay_id
    const again = await stack.runtime.invoke('createOrder', { orderId: data.orderId }, ctx(shopper));
    expect(again.dbRequests).toBe(1); // re-signing the stored prepay_id is not counted
    const sameCart = await stack.runtime.invoke(
      'createOrder',
      { items: [{ productId: 'sticker', quantity: 1 }] },
      ctx(shopper),
    );
    expect((sameCart.result as { data: { orderId: string } }).data.orderId).toBe(data.orderId);
    expect(sameCart.dbRequests).toBe(4); // limits update (same cart), read, the call counted, the order
    stack.simulator.setFaults({ dropPayNotifies: true });
    stack.simulator.pay(data.payment);
    const body = payNotifyFor(stack, { out_trade_no: data.orderId, total_fee: 1 });
    const first = await stack.runtime.invoke(
      'payNotify',
      { httpMethod: 'POST', body, isBase64Encoded: false, headers: {} },
      { SOURCE: 'wx_http' },
    );
    expect(first.dbRequests).toBe(5); // order, event, CAS; the admin's notice: insert, WeChat's answer
    const dup = await stack.runtime.invoke(
      'payNotify',
      { httpMethod: 'POST', body, isBase64Encoded: false, headers: {} },
      { SOURCE: 'wx_http' },
    );
    expect(dup.dbRequests).toBe(1);
    stack.simulator.setFaults({ dropPayNotifies: false });

    const applied = await stack.runtime.invoke(
      'applyRefund',
      { orderId: data.orderId, refundFee: 1, reason: 'db', requestId: newRequestId() },
      ctx(shopper),
    );
    expect(applied.dbRequests).toBe(7); // limits, the requestId's refund, order, reserve, insert; notice insert, answer
    const refundId = (applied.result as { data: { refund: { refundId: string } } }).data.refund.refundId;
    stack.simulator.setFaults({ dropRefundNotifies: true });
    const approved = await stack.runtime.invoke(
      'approveRefund',
      { refundId, decision: 'approve' },
      ctx(ADMIN),
    );
    // refund, claim, the order's refund slot taken before the call and held a minute past its
    // answer, PROCESSING, event; the shopper's notice: insert, answer
    expect(approved.dbRequests).toBe(8);
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    stack.simulator.setFaults({ dropRefundNotifies: false });
    const m = stack.info.merchant;
    const refundBody = encryptRefundNotifyForTest(
      { appid: m.appid, mchId: m.mchid, apiKey: m.apiKey },
      {
        out_refund_no: refundId,
        out_trade_no: data.orderId,
        refund_fee: 1,
        total_fee: 1,
        refund_status: 'SUCCESS',
      },
    );
    const event = { httpMethod: 'POST', body: refundBody, isBase64Encoded: false, headers: {} };
    const settled = await stack.runtime.invoke('refundNotify', event, { SOURCE: 'wx_http' });
    expect(settled.dbRequests).toBe(6); // refund, event, settle, CAS; the shopper's notice: insert, answer
    expect((await stack.runtime.invoke('refundNotify', event, { SOURCE: 'wx_http' })).dbRequests).toBe(1);
    // An admin's listing is counted against the admin's own limit (the first one creates it).
    expect((await stack.runtime.invoke('listRefunds', {}, ctx(ADMIN))).dbRequests).toBe(6);
    expect((await stack.runtime.invoke('listRefunds', {}, ctx(ADMIN))).dbRequests).toBe(4); // limits, refunds, their orders, the pending count
  });
});

describe('configuration', () => {
  it('a missing API key fails fast with a clear message naming it, and notifies answer FAIL', async () => {
    const { WXPAY_API_KEY: _dropped, ...env } = stack.env;
    const broken = createFunctionRuntime({
      functionsDir: join(ROOT, 'dist', 'cloudfunctions'),
      serviceUrl: stack.emulator.serviceUrl,
      env,
    });
    try {
      const r = await broken.invoke(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }] },
        { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
      );
      expect(r.result).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });
      expect(JSON.stringify(r.result)).toContain('WXPAY_API_KEY is missing');
      const n = await broken.invoke(
        'payNotify',
        { httpMethod: 'POST', body: '<xml/>', isBase64Encoded: false },
        { SOURCE: 'wx_http' },
      );
      expect(JSON.stringify(n.result)).toContain('FAIL');
      // Functions that need no merchant key keep working.
      const products = await broken.invoke(
        'listProducts',
        {},
        { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
      );
      expect(products.result).toMatchObject({ ok: true });
    } finally {
      await broken.close();
    }
  });
});
