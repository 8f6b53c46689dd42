import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptRefundNotifyForTest, sign, toXml } from '../../cloudfunctions/shared/wxpay';
import type { Stack } from '../../sandbox/stack';
import { events, isSuccessXml, order, payNotifyFor, postHttp, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  // Notifies here are posted by the tests; the simulator's own are dropped.
  stack = await testStack();
  stack.simulator.setFaults({ dropPayNotifies: true });
});
afterAll(() => stack?.close());

async function newOrder(productId = 'tea-longjing') {
  return unwrap(await stack.call('createOrder', { items: [{ productId, quantity: 1 }] }, SHOPPER));
}

describe('payNotify', () => {
  it('50 identical notifies at once make one transition and one payment_events entry, all answered SUCCESS', async () => {
    const o = await newOrder();
    const body = payNotifyFor(stack, { out_trade_no: o.orderId, total_fee: o.totalFee });
    const replies = await Promise.all(Array.from({ length: 50 }, () => postHttp(stack, '/pay/notify', body)));
    expect(replies.filter((r) => r.status === 200 && isSuccessXml(r.text))).toHaveLength(50);
    const doc = await order(stack, o.orderId);
    expect(doc.status).toBe('PAID');
    expect((await events(stack, o.orderId)).map((e) => e.to)).toEqual(['PAID']);

    // A replay long after changes nothing and still answers SUCCESS.
    const replay = await postHttp(stack, '/pay/notify', body);
    expect(isSuccessXml(replay.text)).toBe(true);
    expect(await order(stack, o.orderId)).toEqual(doc);
  });

  it('accepts an HMAC notify without sign_type when HMAC is configured, and base64 bodies', async () => {
    const o = await newOrder('chopsticks');
    const m = stack.info.merchant;
    const fields = {
      appid: m.appid,
      mch_id: m.mchid,
      nonce_str: 'n1',
      result_code: 'SUCCESS',
      return_code: 'SUCCESS',
      out_trade_no: o.orderId,
      total_fee: String(o.totalFee),
      transaction_id: '4200000000000000000000000001',
      openid: SHOPPER,
    };
    const body = toXml({ ...fields, sign: sign(fields, m.apiKey, m.signType) });
    const res = await fetch(`${stack.info.gatewayUrl}/http/pay/notify`, {
      method: 'POST',
      body: Buffer.from(body),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(isSuccessXml(await res.text())).toBe(true);
    expect((await order(stack, o.orderId)).status).toBe('PAID');
  });

  it('refuses forged and altered notifies with FAIL and changes nothing', async () => {
    const o = await newOrder();
    const before = await order(stack, o.orderId);
    const m = stack.info.merchant;
    const good = { out_trade_no: o.orderId, total_fee: o.totalFee };
    const cases: Record<string, string> = {
      wrongKey: payNotifyFor(stack, good, 'A'.repeat(32)),
      changedAmount: payNotifyFor(stack, good).replace(
        `<total_fee>${o.totalFee}</total_fee>`,
        '<total_fee>1</total_fee>',
      ),
      signedWrongAmount: payNotifyFor(stack, { ...good, total_fee: 1, cash_fee: 1 }),
      otherAppid: payNotifyFor(stack, { ...good, appid: 'wxotherappid00001' }),
      otherMchid: payNotifyFor(stack, { ...good, mch_id: '1900000999' }),
      unknownOrder: payNotifyFor(stack, { ...good, out_trade_no: '20990101000000NOSUCHORDER' }),
      missingSign: payNotifyFor(stack, good).replace(/<sign>.*?<\/sign>/, ''),
      notXml: '{"return_code":"SUCCESS"}',
      xxe: `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><out_trade_no>&e;</out_trade_no></xml>`,
      empty: '',
    };
    for (const [name, body] of Object.entries(cases)) {
      const res = await postHttp(stack, '/pay/notify', body);
      expect(isSuccessXml(res.text), name).toBe(false);
      expect(res.text, name).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    }
    expect(await order(stack, o.orderId)).toEqual(before);
    expect(await events(stack, o.orderId)).toEqual([]);
    expect(m.apiKey).toHaveLength(32);
  });

  it('refuses GET and mini-program calls to the notify function', async () => {
    const get = await fetch(`${stack.info.gatewayUrl}/http/pay/notify`);
    expect(await get.text()).toContain('FAIL');
    const fromClient = await stack.runtime.invoke(
      'payNotify',
      { body: '<xml/>' },
      { OPENID: SHOPPER, APPID: stack.info.merchant.appid, SOURCE: 'wx_client' },
    );
    expect(JSON.stringify(fromClient.result)).toContain('FAIL');
  });

  it('records money that arrives after the order was closed, flagged for the merchant', async () => {
    const o = await newOrder();
    await stack.db.raw
      .collection('orders')
      .doc(o.orderId)
      .update({ status: 'CLOSED', closedAtMs: Date.now() });
    const res = await postHttp(
      stack,
      '/pay/notify',
      payNotifyFor(stack, { out_trade_no: o.orderId, total_fee: o.totalFee }),
    );
    expect(isSuccessXml(res.text)).toBe(true);
    expect(await order(stack, o.orderId)).toMatchObject({ status: 'PAID', flag: 'PAID_AFTER_CLOSE' });
  });
});

describe('refundNotify', () => {
  it('refuses a req_info encrypted with another key, an unknown refund and a mismatched amount', async () => {
    const m = stack.info.merchant;
    const keys = { appid: m.appid, mchId: m.mchid, apiKey: m.apiKey };
    const info = {
      out_refund_no: 'RNOSUCH',
      out_trade_no: 'T',
      refund_fee: 1,
      total_fee: 1,
      refund_status: 'SUCCESS' as const,
    };
    for (const body of [
      encryptRefundNotifyForTest({ ...keys, apiKey: 'B'.repeat(32) }, info),
      encryptRefundNotifyForTest(keys, info),
      encryptRefundNotifyForTest({ ...keys, mchId: '1900000999' }, info),
    ]) {
      expect(isSuccessXml((await postHttp(stack, '/refund/notify', body)).text)).toBe(false);
    }
  });
});

describe('what WeChat sends beyond the plain payment', () => {
  it('a signed "payment failed" notify (result_code FAIL) is acknowledged and changes nothing', async () => {
    stack.simulator.setFaults({ dropPayNotifies: false, notifyPayFailures: true });
    try {
      const o = await newOrder();
      expect(stack.simulator.pay(o.payment as never, 'FAIL').errMsg).toMatch(/^requestPayment:fail/);
      await stack.simulator.flushNotifies();
      const sent = stack.simulator.notifies().filter((n) => n.body.includes(o.orderId));
      expect(sent).toHaveLength(1);
      expect(sent[0]!.body).toContain('<result_code><![CDATA[FAIL]]></result_code>');
      expect(sent[0]!.acknowledged).toBe(true);
      expect((await order(stack, o.orderId)).status).toBe('NOTPAY');
    } finally {
      stack.simulator.setFaults({ dropPayNotifies: true, notifyPayFailures: false });
    }
  });

  it('a coupon-paid order is PAID on total_fee; cash_fee and coupon_fee are kept in the trade log', async () => {
    stack.simulator.setFaults({ dropPayNotifies: false });
    try {
      const o = await newOrder();
      expect(stack.simulator.pay(o.payment as never, 'SUCCESS', { couponFee: 800 }).errMsg).toBe(
        'requestPayment:ok',
      );
      await stack.simulator.flushNotifies();
      expect((await order(stack, o.orderId)).status).toBe('PAID');
      const [paid] = await events(stack, o.orderId);
      expect(paid?.fields).toMatchObject({
        total_fee: String(o.totalFee),
        cash_fee: String(o.totalFee - 800),
        coupon_fee: '800',
      });
    } finally {
      stack.simulator.setFaults({ dropPayNotifies: true });
    }
  });
});
