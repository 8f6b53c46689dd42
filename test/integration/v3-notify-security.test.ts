/**
 * APIv3 notifies aimed at the shop's real orders, through the gateway's HTTP access and the
 * built payNotify: only WeChat Pay's signature over the exact bytes, fresh and not seen
 * before, under a serial the shop holds, with a resource that decrypts with its tag intact,
 * moves an order. Every other one is answered 4xx (so a WECHATPAY/SIGNTEST/ probe is refused
 * as WeChat wants) before any database request, and the order stays exactly as it was.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { rfc3339Beijing } from '../../cloudfunctions/shared/providers/time';
import { notifyBodyForTest, signAnswerForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import type { Stack } from '../../sandbox/stack';
import { order, postV3, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack({ provider: 'v3' });
  // Only the notifies this file makes reach the shop.
  stack.simulator.setFaults({ dropPayNotifies: true });
});
afterAll(() => stack?.close());

/** A real order, unpaid at the shop and at WeChat. */
async function realOrder(): Promise<{ orderId: string; totalFee: number }> {
  const created = unwrap(
    await stack.call('createOrder', { items: [{ productId: 'tea-longjing', quantity: 1 }] }, SHOPPER),
  );
  return { orderId: created.orderId, totalFee: created.totalFee };
}

/** The TRANSACTION.SUCCESS body WeChat would send for it, encrypted with the merchant's APIv3 key. */
function paidBody(o: { orderId: string; totalFee: number }, apiV3Key = stack.info.v3!.apiV3Key): string {
  const m = stack.info.merchant;
  return notifyBodyForTest(
    'TRANSACTION.SUCCESS',
    {
      mchid: m.mchid,
      appid: m.appid,
      out_trade_no: o.orderId,
      transaction_id: '4200009999202611300000000001',
      trade_type: 'JSAPI',
      trade_state: 'SUCCESS',
      trade_state_desc: '支付成功',
      bank_type: 'OTHERS',
      success_time: rfc3339Beijing(Date.now()),
      payer: { openid: SHOPPER },
      amount: { total: o.totalFee, payer_total: o.totalFee, currency: 'CNY', payer_currency: 'CNY' },
    },
    apiV3Key,
  );
}

/** Delivers through HTTP access as WeChat does, reading the function's own database count. */
async function deliver(body: string, headers: Record<string, string>) {
  const out = await stack.runtime.invoke(
    'payNotify',
    {
      httpMethod: 'POST',
      body,
      isBase64Encoded: false,
      headers: { ...headers, 'content-type': 'application/json' },
    },
    { SOURCE: 'wx_http' },
  );
  return { ...(out.result as { statusCode: number; body: string }), dbRequests: out.dbRequests };
}

/** Everything a notify could have changed: the order, and its trade log. */
async function snapshot(orderId: string): Promise<{ order: OrderDoc; events: number }> {
  return {
    order: await order(stack, orderId),
    events: await stack.db.count('payment_events', { orderId }),
  };
}

describe('an APIv3 pay notify aimed at a real order', () => {
  it('forged with another key under the real serial changes nothing and costs no database request', async () => {
    const o = await realOrder();
    const before = await snapshot(o.orderId);
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const body = paidBody(o);
    const headers = signAnswerForTest({ serial: stack.info.v3!.publicKeyId, privateKey: attacker }, body, {
      timestampS: Math.floor(Date.now() / 1000),
      signatureType: true,
    });
    const r = await deliver(body, headers);
    expect(r.statusCode).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'FAIL' });
    expect(r.dbRequests).toBe(0);
    expect(await snapshot(o.orderId)).toEqual(before);
  });

  it('with a serial the shop does not hold (an unknown platform certificate) changes nothing', async () => {
    const o = await realOrder();
    const before = await snapshot(o.orderId);
    const body = paidBody(o);
    const genuine = stack.simulator.v3!.signNotifyForTest(body);
    const r = await deliver(body, {
      ...genuine,
      'Wechatpay-Serial': '5157F09EFDC096DE15EBE81A47057A7232F1B8E1',
    });
    expect(r).toMatchObject({ statusCode: 400, dbRequests: 0 });
    expect(await snapshot(o.orderId)).toEqual(before);
  });

  it('with its GCM tag tampered (signed by WeChat Pay all the same) changes nothing', async () => {
    const o = await realOrder();
    const before = await snapshot(o.orderId);
    const envelope = JSON.parse(paidBody(o)) as { resource: { ciphertext: string } };
    const sealed = Buffer.from(envelope.resource.ciphertext, 'base64');
    sealed[sealed.length - 1]! ^= 0x01; // the last byte of the 16-byte tag
    envelope.resource.ciphertext = sealed.toString('base64');
    const body = JSON.stringify(envelope);
    // The signature holds: only the tag check can refuse it.
    const r = await deliver(body, stack.simulator.v3!.signNotifyForTest(body));
    expect(r).toMatchObject({ statusCode: 400, dbRequests: 0 });
    expect(await snapshot(o.orderId)).toEqual(before);
    // The same message with its tag intact and the same signing pays it: the tag was the reason.
    const intact = paidBody(o);
    expect((await deliver(intact, stack.simulator.v3!.signNotifyForTest(intact))).statusCode).toBe(204);
    expect((await order(stack, o.orderId)).status).toBe('PAID');
  });

  it('encrypted with another APIv3 key (its tag cannot hold) changes nothing', async () => {
    const o = await realOrder();
    const before = await snapshot(o.orderId);
    const body = paidBody(o, 'x'.repeat(32));
    const r = await deliver(body, stack.simulator.v3!.signNotifyForTest(body));
    expect(r).toMatchObject({ statusCode: 400, dbRequests: 0 });
    expect(await snapshot(o.orderId)).toEqual(before);
  });

  it('replayed (the same signed message again, or older than five minutes) changes nothing', async () => {
    const o = await realOrder();
    const body = paidBody(o);
    const headers = stack.simulator.v3!.signNotifyForTest(body);
    // WeChat's genuine message pays the order once.
    expect((await deliver(body, headers)).statusCode).toBe(204);
    const paid = await snapshot(o.orderId);
    expect(paid).toMatchObject({ order: { status: 'PAID' }, events: 1 });
    // The captured message sent again: refused as a replay by the instance that saw it, and
    // in any case it changes nothing.
    const again = await deliver(body, headers);
    expect([204, 400]).toContain(again.statusCode);
    expect(await snapshot(o.orderId)).toEqual(paid);
    // Signed by WeChat Pay, but six minutes old: refused before anything is read.
    const o2 = await realOrder();
    const before = await snapshot(o2.orderId);
    const old = paidBody(o2);
    const stale = await deliver(
      old,
      stack.simulator.v3!.signNotifyForTest(old, { timestampS: Math.floor(Date.now() / 1000) - 360 }),
    );
    expect(stale).toMatchObject({ statusCode: 400, dbRequests: 0 });
    expect(await snapshot(o2.orderId)).toEqual(before);
  });

  it('re-serialised (same JSON, other bytes) or probed with WECHATPAY/SIGNTEST/ changes nothing', async () => {
    const o = await realOrder();
    const before = await snapshot(o.orderId);
    const body = paidBody(o);
    const headers = stack.simulator.v3!.signNotifyForTest(body);
    const pretty = JSON.stringify(JSON.parse(body), null, 1);
    expect(await deliver(pretty, headers)).toMatchObject({ statusCode: 400, dbRequests: 0 });
    const probe = {
      ...headers,
      'Wechatpay-Signature': `WECHATPAY/SIGNTEST/${headers['Wechatpay-Signature']}`,
    };
    expect(await deliver(body, probe)).toMatchObject({ statusCode: 400, dbRequests: 0 });
    expect(await snapshot(o.orderId)).toEqual(before);
  });

  it('a genuine one through the gateway is answered 204 with no body, once stored', async () => {
    const o = await realOrder();
    const body = paidBody(o);
    const r = await postV3(stack, '/pay/notify', body, stack.simulator.v3!.signNotifyForTest(body));
    expect(r).toMatchObject({ ok: true, status: 204, body: '' });
    expect((await order(stack, o.orderId)).status).toBe('PAID');
  });
});
