/**
 * Per-caller limits end to end: the built functions in the runtime, the real wx-server-sdk,
 * the CloudBase emulator and the WeChat Pay simulator, with the shipped defaults (10 open
 * unpaid orders, 20 createOrder calls a minute, the same cart within 30 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiError, CreateOrderResult, Result } from '../../cloudfunctions/shared/contract';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import type { Stack } from '../../sandbox/stack';
import { newRequestId, OTHER, order, postHttp, testStack, unwrap } from './support';

const PRODUCTS = ['tea-longjing', 'mooncake-box', 'chopsticks', 'sticker'];
/** The i-th of many different carts. */
const cart = (i: number) => ({
  items: [{ productId: PRODUCTS[i % PRODUCTS.length]!, quantity: Math.floor(i / PRODUCTS.length) + 1 }],
});

function failure(r: Result<unknown>): ApiError {
  if (r.ok) throw new Error('expected a refusal');
  return r.error;
}

let stack: Stack;
beforeAll(async () => {
  stack = await testStack({ timers: false });
});
afterAll(() => stack?.close());

const ordersOf = (openid: string) => stack.db.all<OrderDoc>('orders', { openid });
const ledgerOf = (s: Stack, openid: string) => s.simulator.ledger().orders.filter((o) => o.openid === openid);
const ledgerOrdersOf = (openid: string) => ledgerOf(stack, openid);

describe('one shopper cannot flood createOrder', () => {
  it('200 concurrent calls from one shopper make at most 10 orders, the rest RATE_LIMITED; another shopper buys meanwhile', async () => {
    const flooder = 'o_flooder_200';
    const flood = Promise.all(
      Array.from({ length: 200 }, (_, i) => stack.call('createOrder', cart(i), flooder)),
    );
    // Another shopper, at the same time, through the same functions: no error at all.
    const other = (async () => {
      const created = unwrap(
        await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 3 }] }, OTHER),
      );
      const paid = stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
      expect(paid.errMsg).toBe('requestPayment:ok');
      await stack.simulator.flushNotifies();
      return created.orderId;
    })();
    const [results, otherOrder] = await Promise.all([flood, other]);

    const ok = results.filter((r): r is { ok: true; data: CreateOrderResult } => r.ok);
    const refused = results.filter((r) => !r.ok).map(failure);
    expect(ok.length).toBeGreaterThan(0);
    expect(ok.length).toBeLessThanOrEqual(10);
    expect(refused).toHaveLength(200 - ok.length);
    for (const e of refused) {
      expect(e.code).toBe('RATE_LIMITED');
      expect(e.retryAfterSeconds).toBeGreaterThan(0);
    }
    // The open-orders refusals say how many to pay or cancel first.
    expect(refused.some((e) => e.payOrCancelFirst === 1)).toBe(true);

    const stored = await ordersOf(flooder);
    expect(stored.map((o) => o._id).sort()).toEqual(ok.map((r) => r.data.orderId).sort());
    const atWeChat = ledgerOrdersOf(flooder);
    expect(atWeChat.length).toBeLessThanOrEqual(10);
    expect(atWeChat.map((o) => o.outTradeNo).sort()).toEqual(stored.map((o) => o._id).sort());

    expect((await order(stack, otherOrder)).status).toBe('PAID');
  });

  it('50 identical calls in a burst give one order, made once at WeChat', async () => {
    const tapper = 'o_double_tap';
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        stack.call('createOrder', { items: [{ productId: 'tea-longjing', quantity: 2 }] }, tapper),
      ),
    );
    const ok = results.filter((r): r is { ok: true; data: CreateOrderResult } => r.ok);
    expect(ok.length).toBeGreaterThan(0);
    expect(new Set(ok.map((r) => r.data.orderId)).size).toBe(1);
    for (const r of results.filter((x) => !x.ok)) expect(failure(r).code).toBe('RATE_LIMITED');
    expect(await ordersOf(tapper)).toHaveLength(1);
    expect(ledgerOrdersOf(tapper)).toHaveLength(1);
    // Every answer can be paid: the same prepay_id, signed again.
    const paid = stack.simulator.pay(ok.at(-1)!.data.payment as unknown as Record<string, unknown>);
    expect(paid.errMsg).toBe('requestPayment:ok');
  });

  it('at the open-orders limit paying again still works, and paying one frees a place at once', async () => {
    const shopper = 'o_full_shopper';
    const made: CreateOrderResult[] = [];
    for (let i = 0; i < 10; i++) made.push(unwrap(await stack.call('createOrder', cart(i), shopper)));
    const refused = failure(await stack.call('createOrder', cart(10), shopper));
    expect(refused).toMatchObject({ code: 'RATE_LIMITED', payOrCancelFirst: 1 });
    // Until the first of them expires by itself (30 minutes after it was made).
    expect(refused.retryAfterSeconds).toBeGreaterThan(29 * 60);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(30 * 60);

    const again = unwrap(await stack.call('createOrder', { orderId: made[3]!.orderId }, shopper));
    expect(again.orderId).toBe(made[3]!.orderId);
    const paid = stack.simulator.pay(again.payment as unknown as Record<string, unknown>);
    expect(paid.errMsg).toBe('requestPayment:ok');
    await stack.simulator.flushNotifies();
    expect((await order(stack, made[3]!.orderId)).status).toBe('PAID');

    const next = unwrap(await stack.call('createOrder', cart(11), shopper));
    expect(next.orderId).not.toBe(made[3]!.orderId);
    expect(failure(await stack.call('createOrder', cart(12), shopper)).code).toBe('RATE_LIMITED');
  });

  it('the same cart after its order was paid is a new order', async () => {
    const shopper = 'o_same_again';
    const first = unwrap(await stack.call('createOrder', cart(0), shopper));
    stack.simulator.pay(first.payment as unknown as Record<string, unknown>);
    await stack.simulator.flushNotifies();
    expect((await order(stack, first.orderId)).status).toBe('PAID');
    const second = unwrap(await stack.call('createOrder', cart(0), shopper));
    expect(second.orderId).not.toBe(first.orderId);
  });
});

describe('calls per minute', () => {
  let small: Stack;
  const CTX_LIMITS = {
    LIMIT_CREATE_ORDER_PER_MINUTE: '4',
    LIMIT_APPLY_REFUND_PER_MINUTE: '2',
    LIMIT_READS_PER_MINUTE: '5',
    LIMIT_ADMIN_PER_MINUTE: '8',
    LIMIT_OPEN_ORDERS: '3',
  };
  beforeAll(async () => {
    small = await testStack({ timers: false, env: CTX_LIMITS });
  });
  afterAll(() => small?.close());

  it('listings answer RATE_LIMITED past the limit with the wait, per caller; admins have their own', async () => {
    const shopper = 'o_reader';
    for (let i = 0; i < 5; i++) unwrap(await small.call('listOrders', {}, shopper));
    const refused = failure(await small.call('listProducts', {}, shopper));
    expect(refused.code).toBe('RATE_LIMITED');
    expect(refused.retryAfterSeconds).toBeGreaterThan(0);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(refused.payOrCancelFirst).toBeUndefined();
    // Another shopper is not affected.
    unwrap(await small.call('listOrders', {}, 'o_reader_two'));

    const admin = small.info.adminOpenid;
    for (let i = 0; i < 8; i++) unwrap(await small.call('listRefunds', {}, admin));
    expect(failure(await small.call('listOrders', {}, admin)).code).toBe('RATE_LIMITED');
    // A shopper's admin-only call is refused as FORBIDDEN, not counted.
    expect(failure(await small.call('listRefunds', {}, 'o_reader_two')).code).toBe('FORBIDDEN');
  });

  it('applyRefund and createOrder have their own limits', async () => {
    const shopper = 'o_refunder';
    const created = unwrap(await small.call('createOrder', cart(0), shopper));
    small.simulator.pay(created.payment as unknown as Record<string, unknown>);
    await small.simulator.flushNotifies();
    const apply = () =>
      small.call(
        'applyRefund',
        { orderId: created.orderId, refundFee: 1, reason: 'limit', requestId: newRequestId() },
        shopper,
      );
    unwrap(await apply());
    unwrap(await apply());
    expect(failure(await apply()).code).toBe('RATE_LIMITED');
    // createOrder still has calls left (1 used of 4)…
    for (let i = 1; i < 4; i++) unwrap(await small.call('createOrder', cart(i), shopper));
    // …until it has none.
    const refused = failure(await small.call('createOrder', cart(9), shopper));
    expect(refused.code).toBe('RATE_LIMITED');
    expect(refused.payOrCancelFirst).toBeUndefined();
  });

  it('a refusal costs two database requests, a full open-orders list four, and none reaches WeChat', async () => {
    const shopper = 'o_refused_cost';
    const ctx = { OPENID: shopper, APPID: small.info.merchant.appid, SOURCE: 'wx_client' };
    for (let i = 0; i < 3; i++) unwrap(await small.call('createOrder', cart(i), shopper));
    const full = await small.runtime.invoke('createOrder', cart(3), ctx);
    expect(full.result).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED', payOrCancelFirst: 1 } });
    expect(full.dbRequests).toBe(4); // limits update, read, the listed orders, the refused call counted
    const tooFast = await small.runtime.invoke('createOrder', cart(4), ctx);
    expect(tooFast.result).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED' } });
    expect(tooFast.dbRequests).toBe(2); // limits update, read
    expect(ledgerOf(small, shopper)).toHaveLength(3);
    for (let i = 0; i < 5; i++) unwrap(await small.call('listOrders', {}, shopper));
    const listing = await small.runtime.invoke('listOrders', {}, ctx);
    expect(listing.result).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED' } });
    expect(listing.dbRequests).toBe(2);
  });

  it('queryOrder past the limit shows the stored order without asking WeChat', async () => {
    const shopper = 'o_querier';
    const created = unwrap(await small.call('createOrder', cart(0), shopper));
    const asked = () => small.simulator.ledger().orders.find((o) => o.outTradeNo === created.orderId);
    expect(asked()).toBeDefined();
    for (let i = 0; i < 5; i++) unwrap(await small.call('listOrders', {}, shopper));
    // Paid at WeChat, notify not delivered: only orderquery could find out.
    small.simulator.setFaults({ dropPayNotifies: true });
    small.simulator.pay(created.payment as unknown as Record<string, unknown>);
    const shown = unwrap(await small.call('queryOrder', { orderId: created.orderId }, shopper));
    expect(shown.order.status).toBe('NOTPAY');
    small.simulator.setFaults({ dropPayNotifies: false });
  });
});

describe('pay notifies under a flood', () => {
  let flooded: Stack;
  beforeAll(async () => {
    flooded = await testStack({ timers: false });
  });
  afterAll(() => flooded?.close());

  it('1,000 forged pay notifies (wrong key, both sign types) cost no database request and change nothing', async () => {
    const created = unwrap(
      await flooded.call(
        'createOrder',
        { items: [{ productId: 'chopsticks', quantity: 1 }] },
        'o_flood_target',
      ),
    );
    await flooded.simulator.flushNotifies();
    const m = flooded.info.merchant;
    // Aimed at a real unpaid order with its real amount: only the signature is wrong.
    const forged = Array.from({ length: 1000 }, (_, i) =>
      signPayNotifyForTest(
        {
          appid: m.appid,
          mchId: m.mchid,
          apiKey: 'WRONGKEY0WRONGKEY0WRONGKEY012345',
          signType: i % 2 === 0 ? 'MD5' : 'HMAC-SHA256',
        },
        { out_trade_no: created.orderId, total_fee: created.totalFee, nonce_str: `forged${i}` },
      ),
    );
    const before = flooded.emulator.requestCount();
    const replies: { status: number; text: string }[] = [];
    for (let i = 0; i < forged.length; i += 50) {
      replies.push(
        ...(await Promise.all(forged.slice(i, i + 50).map((b) => postHttp(flooded, '/pay/notify', b)))),
      );
    }
    expect(flooded.emulator.requestCount() - before).toBe(0);
    expect(replies.every((r) => r.text.includes('<return_code><![CDATA[FAIL]]></return_code>'))).toBe(true);
    expect((await order(flooded, created.orderId)).status).toBe('NOTPAY');
    expect(await flooded.db.count('payment_events')).toBe(0);
  });
});
