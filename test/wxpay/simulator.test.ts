import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decryptReqInfo,
  parseXml,
  paySign,
  sign,
  signPayNotifyForTest,
  toXml,
  verify,
  type WxParams,
  type WxParamsIn,
  type WxPayApiError,
} from '../../cloudfunctions/shared/wxpay';
import { type SimMerchant, startWxPaySimulator, verifyPayNotify, verifyRequest } from '../../sandbox/wxpay';
import { compactTime } from '../../sandbox/wxpay/time';
import {
  type Env,
  HMAC_MERCHANT,
  MD5_MERCHANT,
  type Receiver,
  startEnv,
  startReceiver,
  uniqueNo,
  until,
} from './fixtures';

/** More than the simulator's scaled rules need (timeScale 0.001): closeorder 5 min, refunds 1 min apart. */
const CLOSE_AFTER_MS = 1_000;
const SPACING_MS = 1_000;

let env: Env;
let receiver: Receiver;
const SUCCESS_REPLY = toXml({ return_code: 'SUCCESS', return_msg: 'OK' });

beforeAll(async () => {
  env = await startEnv();
  receiver = await startReceiver(() => ({ body: SUCCESS_REPLY }));
});
afterAll(async () => {
  await env?.close();
  await receiver?.close();
});

const orderParams = (outTradeNo: string, extra: Record<string, string | number> = {}) => ({
  body: '测试商品',
  out_trade_no: outTradeNo,
  total_fee: 100,
  spbill_create_ip: '127.0.0.1',
  notify_url: receiver.url,
  openid: 'o_test_openid',
  ...extra,
});

function payment(m: SimMerchant, prepayId: string, key = m.apiKey) {
  return {
    ...paySign(
      {
        appId: m.appid,
        timeStamp: '1700000000',
        nonceStr: 'abc',
        package: `prepay_id=${prepayId}`,
        signType: m.signType,
      },
      key,
    ),
  };
}

async function newOrder(m = MD5_MERCHANT, extra: Record<string, string | number> = {}) {
  const no = uniqueNo('O');
  const res = await env.client(m).unifiedOrder(orderParams(no, extra));
  return { no, prepayId: res['prepay_id']! };
}

async function tradeState(m: SimMerchant, no: string): Promise<string | undefined> {
  return (await env.client(m).orderQuery({ out_trade_no: no }))['trade_state'];
}

function rejection(p: Promise<unknown>): Promise<WxPayApiError> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: WxPayApiError) => e,
  );
}

/** Posts a raw body to the simulator (HTTPS, its CA), as a hand-written client would. */
function rawPost(path: string, body: string, method = 'POST'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(env.sim.url + path), {
      method,
      ca: readFileSync(env.certs.caCertPath),
      headers: { 'content-type': path.startsWith('/sandbox/') ? 'application/json' : 'text/xml' },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.end(body);
  });
}

describe('paying through /sandbox/pay (the phone)', () => {
  it('pays with a correct paySign over HTTP and answers like wx.requestPayment', async () => {
    const { no, prepayId } = await newOrder(HMAC_MERCHANT);
    const res = await rawPost('/sandbox/pay', JSON.stringify({ payment: payment(HMAC_MERCHANT, prepayId) }));
    expect(JSON.parse(res.body)).toEqual({ errMsg: 'requestPayment:ok' });
    expect(await tradeState(HMAC_MERCHANT, no)).toBe('SUCCESS');
  });

  it('refuses a paySign made with the wrong key, and the order stays NOTPAY', async () => {
    const { no, prepayId } = await newOrder();
    const res = env.sim.pay(payment(MD5_MERCHANT, prepayId, 'f'.repeat(32)));
    expect(res.errMsg).toMatch(/^requestPayment:fail .*签名/);
    expect(await tradeState(MD5_MERCHANT, no)).toBe('NOTPAY');
  });

  it('refuses a paySign whose signType differs from the order', async () => {
    const { prepayId } = await newOrder(HMAC_MERCHANT);
    const md5Pay = paySign(
      {
        appId: HMAC_MERCHANT.appid,
        timeStamp: '1',
        nonceStr: 'n',
        package: `prepay_id=${prepayId}`,
        signType: 'MD5',
      },
      HMAC_MERCHANT.apiKey,
    );
    expect(env.sim.pay({ ...md5Pay }).errMsg).toMatch(/^requestPayment:fail/);
  });

  it('CANCEL and FAIL leave the order payable (NOTPAY); paying twice is refused', async () => {
    const { no, prepayId } = await newOrder();
    expect(env.sim.pay(payment(MD5_MERCHANT, prepayId), 'CANCEL')).toEqual({
      errMsg: 'requestPayment:fail cancel',
    });
    expect(env.sim.pay(payment(MD5_MERCHANT, prepayId), 'FAIL').errMsg).toMatch(/^requestPayment:fail /);
    expect(await tradeState(MD5_MERCHANT, no)).toBe('NOTPAY');
    expect(env.sim.pay(payment(MD5_MERCHANT, prepayId))).toEqual({ errMsg: 'requestPayment:ok' });
    expect(env.sim.pay(payment(MD5_MERCHANT, prepayId)).errMsg).toMatch(/已支付/);
  });

  it('cannot pay a closed order', async () => {
    const { no, prepayId } = await newOrder();
    env.advance(CLOSE_AFTER_MS);
    await env.client(MD5_MERCHANT).closeOrder({ out_trade_no: no });
    expect(env.sim.pay(payment(MD5_MERCHANT, prepayId)).errMsg).toMatch(/^requestPayment:fail .*关闭/);
  });
});

describe('unifiedorder re-entry', () => {
  it('gives the same prepay_id for identical parameters', async () => {
    const { no, prepayId } = await newOrder();
    const again = await env.client(MD5_MERCHANT).unifiedOrder(orderParams(no));
    expect(again['prepay_id']).toBe(prepayId);
  });

  it('answers INVALID_REQUEST "201 商户订单号重复" when any parameter differs', async () => {
    const { no } = await newOrder();
    const e = await rejection(env.client(MD5_MERCHANT).unifiedOrder(orderParams(no, { total_fee: 101 })));
    expect(e).toMatchObject({
      errCode: 'INVALID_REQUEST',
      errCodeDes: '201 商户订单号重复',
      transient: false,
    });
  });

  it('answers ORDERPAID after payment and ORDERCLOSED after closing', async () => {
    const paid = await newOrder();
    env.sim.pay(payment(MD5_MERCHANT, paid.prepayId));
    expect(await rejection(env.client(MD5_MERCHANT).unifiedOrder(orderParams(paid.no)))).toMatchObject({
      errCode: 'ORDERPAID',
    });
    const closed = await newOrder();
    env.advance(CLOSE_AFTER_MS);
    await env.client(MD5_MERCHANT).closeOrder({ out_trade_no: closed.no });
    expect(await rejection(env.client(MD5_MERCHANT).unifiedOrder(orderParams(closed.no)))).toMatchObject({
      errCode: 'ORDERCLOSED',
    });
  });
});

describe('time: prepay_id validity and time_expire (injected clock)', () => {
  let clock = Date.UTC(2026, 0, 1, 4, 0, 0);
  let timed: Env;
  beforeAll(async () => {
    timed = await startEnv({ now: () => clock });
  });
  afterAll(async () => {
    await timed?.close();
  });

  it('refuses a prepay_id older than 2 hours, and re-entry then issues a new one', async () => {
    const client = timed.client(MD5_MERCHANT);
    const no = uniqueNo('E');
    const first = (await client.unifiedOrder(orderParams(no)))['prepay_id']!;
    clock += 2 * 3600 * 1000;
    expect(timed.sim.pay(payment(MD5_MERCHANT, first)).errMsg).toMatch(/过期/);
    const second = (await client.unifiedOrder(orderParams(no)))['prepay_id']!;
    expect(second).not.toBe(first);
    expect(timed.sim.pay(payment(MD5_MERCHANT, first)).errMsg).toMatch(/^requestPayment:fail/);
    expect(timed.sim.pay(payment(MD5_MERCHANT, second))).toEqual({ errMsg: 'requestPayment:ok' });
  });

  it('honours time_expire: payable before, not after, and re-entry answers ORDERCLOSED', async () => {
    const client = timed.client(HMAC_MERCHANT);
    const expire = compactTime(clock + 10 * 60 * 1000);
    const a = uniqueNo('X');
    const b = uniqueNo('X');
    const pa = (await client.unifiedOrder(orderParams(a, { time_expire: expire })))['prepay_id']!;
    const pb = (await client.unifiedOrder(orderParams(b, { time_expire: expire })))['prepay_id']!;
    clock += 9 * 60 * 1000;
    expect(timed.sim.pay(payment(HMAC_MERCHANT, pa))).toEqual({ errMsg: 'requestPayment:ok' });
    clock += 2 * 60 * 1000;
    expect(timed.sim.pay(payment(HMAC_MERCHANT, pb)).errMsg).toMatch(/过期/);
    expect(await rejection(client.unifiedOrder(orderParams(b, { time_expire: expire })))).toMatchObject({
      errCode: 'ORDERCLOSED',
    });
  });

  it('refuses a time_expire less than a minute away', async () => {
    const e = await rejection(
      timed
        .client(MD5_MERCHANT)
        .unifiedOrder(orderParams(uniqueNo('X'), { time_expire: compactTime(clock + 30_000) })),
    );
    expect(e).toMatchObject({ errCode: 'INVALID_REQUEST' });
  });
});

describe('orderquery states', () => {
  it('walks NOTPAY → USERPAYING → PAYERROR → SUCCESS → REFUND', async () => {
    const { no, prepayId } = await newOrder();
    expect(await tradeState(MD5_MERCHANT, no)).toBe('NOTPAY');
    env.sim.pay(payment(MD5_MERCHANT, prepayId), 'USERPAYING');
    expect(await tradeState(MD5_MERCHANT, no)).toBe('USERPAYING');
    env.sim.pay(payment(MD5_MERCHANT, prepayId), 'PAYERROR');
    expect(await tradeState(MD5_MERCHANT, no)).toBe('PAYERROR');
    env.sim.pay(payment(MD5_MERCHANT, prepayId));
    expect(await tradeState(MD5_MERCHANT, no)).toBe('SUCCESS');
    await env
      .client(MD5_MERCHANT)
      .refund({ out_trade_no: no, out_refund_no: uniqueNo('R'), total_fee: 100, refund_fee: 1 });
    expect(await tradeState(MD5_MERCHANT, no)).toBe('REFUND');
  });
});

describe('refund rules', () => {
  async function paid(totalFee: number, m = MD5_MERCHANT) {
    const o = await newOrder(m, { total_fee: totalFee });
    env.sim.pay(payment(m, o.prepayId));
    return o.no;
  }
  const refund = (no: string, outRefundNo: string, refundFee: number, totalFee: number, m = MD5_MERCHANT) =>
    env
      .client(m)
      .refund({ out_trade_no: no, out_refund_no: outRefundNo, total_fee: totalFee, refund_fee: refundFee });

  it('accepts partial refunds up to the total and refuses the cent beyond', async () => {
    const no = await paid(100);
    await refund(no, uniqueNo('R'), 60, 100);
    env.advance(SPACING_MS);
    await refund(no, uniqueNo('R'), 40, 100);
    env.advance(SPACING_MS);
    const e = await rejection(refund(no, uniqueNo('R'), 1, 100));
    expect(e).toMatchObject({ code: 'WXPAY_RESULT_FAIL', errCode: 'ERROR', transient: false });
    expect(e.errCodeDes).toContain('全额退款');
  });

  it('refuses a refund larger than what is left', async () => {
    const no = await paid(100);
    await refund(no, uniqueNo('R'), 70, 100);
    env.advance(SPACING_MS);
    const e = await rejection(refund(no, uniqueNo('R'), 31, 100));
    expect(e.errCodeDes).toMatch(/可退30分/);
  });

  it('allows at most 50 partial refunds per order', async () => {
    const no = await paid(60);
    for (let i = 0; i < 50; i++) {
      await refund(no, `${no}r${i}`, 1, 60);
      env.advance(SPACING_MS);
    }
    const e = await rejection(refund(no, `${no}r50`, 1, 60));
    expect(e).toMatchObject({ errCode: 'ERROR' });
    expect(e.errCodeDes).toContain('50');
  });

  it('answers a repeated out_refund_no as the first time, and refuses it with other amounts', async () => {
    const no = await paid(100);
    const rn = uniqueNo('R');
    const first = await refund(no, rn, 10, 100);
    const again = await refund(no, rn, 10, 100);
    expect(again['refund_id']).toBe(first['refund_id']);
    expect(env.sim.ledger().refunds.filter((r) => r.outRefundNo === rn)).toHaveLength(1);
    expect(await rejection(refund(no, rn, 11, 100))).toMatchObject({ errCode: 'INVALID_REQUEST' });
  });

  it('refuses a total_fee that is not the order amount and refunds of unpaid orders', async () => {
    const no = await paid(100);
    expect(await rejection(refund(no, uniqueNo('R'), 10, 99))).toMatchObject({ errCode: 'INVALID_REQUEST' });
    const unpaid = await newOrder();
    expect(await rejection(refund(unpaid.no, uniqueNo('R'), 10, 100))).toMatchObject({ errCode: 'ERROR' });
    expect(await rejection(refund('missing', uniqueNo('R'), 10, 100))).toMatchObject({
      errCode: 'ORDERNOTEXIST',
    });
  });

  it('fails with an injected NOTENOUGH, which is not transient', async () => {
    const no = await paid(100);
    env.sim.setFaults({ refundError: 'NOTENOUGH' });
    try {
      const e = await rejection(refund(no, uniqueNo('R'), 10, 100));
      expect(e).toMatchObject({ errCode: 'NOTENOUGH', transient: false });
    } finally {
      env.sim.setFaults({ refundError: null });
    }
  });

  it('ends REFUNDCLOSE with the injected outcome, which frees the amount again', async () => {
    const no = await paid(100);
    env.sim.setFaults({ refundOutcome: 'REFUNDCLOSE', refundDelayMs: 60_000 });
    try {
      const rn = uniqueNo('R');
      await refund(no, rn, 100, 100);
      env.sim.settleRefunds();
      expect((await env.client(MD5_MERCHANT).refundQuery({ out_refund_no: rn }))['refund_status_0']).toBe(
        'REFUNDCLOSE',
      );
    } finally {
      env.sim.setFaults({ refundOutcome: 'SUCCESS', refundDelayMs: null });
    }
    env.advance(SPACING_MS);
    await expect(refund(no, uniqueNo('R'), 100, 100)).resolves.toMatchObject({ result_code: 'SUCCESS' });
  });

  it('answers REFUNDNOTEXIST for an unknown refund', async () => {
    expect(await rejection(env.client(MD5_MERCHANT).refundQuery({ out_refund_no: 'nope' }))).toMatchObject({
      errCode: 'REFUNDNOTEXIST',
    });
  });
});

describe('the rules refund exceptions meet', () => {
  async function paid(totalFee: number) {
    const o = await newOrder(MD5_MERCHANT, { total_fee: totalFee });
    env.sim.pay(payment(MD5_MERCHANT, o.prepayId));
    return o.no;
  }
  const refund = (no: string, rn: string, fee: number, total: number) =>
    env
      .client(MD5_MERCHANT)
      .refund({ out_trade_no: no, out_refund_no: rn, total_fee: total, refund_fee: fee });

  it('refuses a second refund of one order within the minute (FREQUENCY_LIMITED), but repeats the first', async () => {
    const no = await paid(100);
    const first = uniqueNo('R');
    await refund(no, first, 10, 100);
    expect(await rejection(refund(no, uniqueNo('R'), 10, 100))).toMatchObject({
      errCode: 'FREQUENCY_LIMITED',
      rateLimited: true,
    });
    await expect(refund(no, first, 10, 100)).resolves.toMatchObject({ out_refund_no: first });
    env.advance(SPACING_MS);
    await expect(refund(no, uniqueNo('R'), 10, 100)).resolves.toMatchObject({ result_code: 'SUCCESS' });
  });

  it('answers rate-limit codes even to a repeat of an accepted refund, and queued errors once each', async () => {
    const no = await paid(100);
    const rn = uniqueNo('R');
    await refund(no, rn, 10, 100);
    env.sim.setFaults({ refundErrorQueue: ['INVALID_REQ_TOO_MUCH', 'NOTENOUGH'] });
    expect(await rejection(refund(no, rn, 10, 100))).toMatchObject({ errCode: 'INVALID_REQ_TOO_MUCH' });
    // NOTENOUGH is a decision about a new application: a repeat is answered as the first time.
    await expect(refund(no, rn, 10, 100)).resolves.toMatchObject({ out_refund_no: rn });
    env.advance(SPACING_MS);
    expect(await rejection(refund(no, uniqueNo('R'), 10, 100))).toMatchObject({ errCode: 'NOTENOUGH' });
    env.advance(SPACING_MS);
    await expect(refund(no, uniqueNo('R'), 10, 100)).resolves.toMatchObject({ result_code: 'SUCCESS' });
  });

  it('closeorder: not before 5 minutes, and not while the user is paying', async () => {
    const young = await newOrder();
    expect(await rejection(env.client(MD5_MERCHANT).closeOrder({ out_trade_no: young.no }))).toMatchObject({
      errCode: 'SYSTEMERROR',
    });
    const paying = await newOrder();
    env.sim.pay(payment(MD5_MERCHANT, paying.prepayId), 'USERPAYING');
    env.advance(CLOSE_AFTER_MS);
    expect(await rejection(env.client(MD5_MERCHANT).closeOrder({ out_trade_no: paying.no }))).toMatchObject({
      errCode: 'USERPAYING',
    });
    await expect(env.client(MD5_MERCHANT).closeOrder({ out_trade_no: young.no })).resolves.toMatchObject({
      result_code: 'SUCCESS',
    });
  });

  it('a coupon-paid order reports cash_fee below total_fee, and refunds both in proportion', async () => {
    const o = await newOrder(MD5_MERCHANT, { total_fee: 1000 });
    expect(env.sim.pay(payment(MD5_MERCHANT, o.prepayId), 'SUCCESS', { couponFee: 200 }).errMsg).toBe(
      'requestPayment:ok',
    );
    const q = await env.client(MD5_MERCHANT).orderQuery({ out_trade_no: o.no });
    expect(q).toMatchObject({ total_fee: '1000', cash_fee: '800', coupon_fee: '200', coupon_count: '1' });
    const r = await refund(o.no, uniqueNo('R'), 500, 1000);
    expect(r).toMatchObject({ refund_fee: '500', coupon_refund_fee: '100', cash_refund_fee: '400' });
  });

  it('settles one refund with the outcome asked for, which refundquery then reports', async () => {
    const no = await paid(100);
    const rn = uniqueNo('R');
    env.sim.setFaults({ refundDelayMs: 3_600_000 });
    try {
      await refund(no, rn, 10, 100);
      expect(env.sim.settleRefund(rn, 'CHANGE')).toBe(true);
      expect(env.sim.settleRefund(rn, 'SUCCESS')).toBe(false);
      expect((await env.client(MD5_MERCHANT).refundQuery({ out_refund_no: rn }))['refund_status_0']).toBe(
        'CHANGE',
      );
    } finally {
      env.sim.setFaults({ refundDelayMs: null });
    }
  });
});

describe('notifies', () => {
  it('posts a pay notify that verifies with the codec under the order sign type, without sign_type', async () => {
    const { no, prepayId } = await newOrder(HMAC_MERCHANT, { attach: 'cart=7' });
    env.sim.pay(payment(HMAC_MERCHANT, prepayId));
    const body = await until(() => receiver.bodies.find((b) => b.includes(no)), 'pay notify');
    const p = parseXml(body);
    expect(verify(p, HMAC_MERCHANT.apiKey, 'HMAC-SHA256')).toBe(true);
    expect(p['sign_type']).toBeUndefined();
    expect(p).toMatchObject({
      out_trade_no: no,
      total_fee: '100',
      result_code: 'SUCCESS',
      attach: 'cart=7',
      mch_id: HMAC_MERCHANT.mchId,
    });
    expect(verifyPayNotify(body, HMAC_MERCHANT)).toMatchObject({ ok: true });
  });

  it('posts a refund notify whose req_info decrypts with the codec, to the request notify_url', async () => {
    const { no, prepayId } = await newOrder();
    env.sim.pay(payment(MD5_MERCHANT, prepayId));
    const rn = uniqueNo('R');
    await env.client(MD5_MERCHANT).refund({
      out_trade_no: no,
      out_refund_no: rn,
      total_fee: 100,
      refund_fee: 25,
      notify_url: receiver.url,
    });
    env.sim.settleRefunds();
    const body = await until(
      () => receiver.bodies.find((b) => b.includes('req_info') && decryptOk(b, rn)),
      'refund notify',
    );
    const outer = parseXml(body);
    expect(outer['sign']).toBeUndefined();
    expect(outer).toMatchObject({
      return_code: 'SUCCESS',
      appid: MD5_MERCHANT.appid,
      mch_id: MD5_MERCHANT.mchId,
    });
    expect(decryptReqInfo(outer['req_info']!, MD5_MERCHANT.apiKey)).toMatchObject({
      out_refund_no: rn,
      out_trade_no: no,
      refund_fee: '25',
      total_fee: '100',
      refund_status: 'SUCCESS',
    });
  });

  it('refuses, with its own helpers, a notify the codec signed with a wrong key', () => {
    const forged = signPayNotifyForTest(
      { ...MD5_MERCHANT, apiKey: 'e'.repeat(32) },
      { out_trade_no: 'T1', total_fee: 100 },
    );
    expect(verifyPayNotify(forged, MD5_MERCHANT)).toMatchObject({
      ok: false,
      reason: 'signature does not verify',
    });
    expect(verifyRequest(forged, [MD5_MERCHANT])).toMatchObject({ ok: false, error: 'SIGNERROR' });
    const genuine = signPayNotifyForTest(MD5_MERCHANT, { out_trade_no: 'T1', total_fee: 100 });
    expect(verifyPayNotify(genuine, MD5_MERCHANT)).toMatchObject({ ok: true });
  });
});

function decryptOk(body: string, outRefundNo: string): boolean {
  try {
    return decryptReqInfo(parseXml(body)['req_info']!, MD5_MERCHANT.apiKey)['out_refund_no'] === outRefundNo;
  } catch {
    return false;
  }
}

describe('request verification, as WeChat does it', () => {
  const base = (m: SimMerchant): WxParams => ({
    appid: m.appid,
    mch_id: m.mchId,
    nonce_str: 'raw0nce',
    out_trade_no: 'does-not-exist',
  });
  /** Hand-written XML with no CDATA at all. */
  const bare = (p: WxParamsIn) =>
    `<xml>${Object.entries(p)
      .map(([k, v]) => `<${k}>${v}</${k}>`)
      .join('')}</xml>`;

  it.each([
    ['MD5 without sign_type', MD5_MERCHANT, false],
    ['MD5 with sign_type', MD5_MERCHANT, true],
    ['HMAC-SHA256 with sign_type', HMAC_MERCHANT, true],
  ] as const)('accepts XML without CDATA, %s', async (_name, m, withType) => {
    const p: WxParamsIn = { ...base(m), ...(withType ? { sign_type: m.signType } : {}) };
    const res = parseXml(
      (await rawPost('/pay/orderquery', bare({ ...p, sign: sign(p, m.apiKey, m.signType) }))).body,
    );
    expect(res).toMatchObject({ return_code: 'SUCCESS', result_code: 'FAIL', err_code: 'ORDERNOTEXIST' });
    // The answer is signed with the request's sign type.
    expect(verify(res, m.apiKey, m.signType)).toBe(true);
  });

  it('verifies an HMAC signature without sign_type as MD5, so it fails (WeChat defaults to MD5)', async () => {
    const p = base(HMAC_MERCHANT);
    const res = parseXml(
      (await rawPost('/pay/orderquery', bare({ ...p, sign: sign(p, HMAC_MERCHANT.apiKey, 'HMAC-SHA256') })))
        .body,
    );
    expect(res).toEqual({ return_code: 'FAIL', return_msg: '签名错误' });
  });

  it('answers the communication errors with return_code FAIL', async () => {
    const fail = async (body: string, method = 'POST') =>
      parseXml((await rawPost('/pay/orderquery', body, method)).body);
    expect(await fail('')).toEqual({ return_code: 'FAIL', return_msg: 'post数据为空' });
    expect(await fail('<xml><a>1</a>')).toEqual({ return_code: 'FAIL', return_msg: 'XML格式错误' });
    expect(await fail('', 'GET')).toEqual({ return_code: 'FAIL', return_msg: '请使用post方法' });
    expect(
      await fail(bare({ appid: MD5_MERCHANT.appid, mch_id: MD5_MERCHANT.mchId, nonce_str: 'n' })),
    ).toEqual({
      return_code: 'FAIL',
      return_msg: '缺少参数sign',
    });
    const mismatched = { ...base(MD5_MERCHANT), appid: HMAC_MERCHANT.appid };
    expect(await fail(bare({ ...mismatched, sign: sign(mismatched, MD5_MERCHANT.apiKey, 'MD5') }))).toEqual({
      return_code: 'FAIL',
      return_msg: 'appid和mch_id不匹配',
    });
  });

  it('refuses a refund with no client certificate at the TLS layer', async () => {
    const p = { ...base(MD5_MERCHANT), out_refund_no: 'R', total_fee: 1, refund_fee: 1 };
    const res = await rawPost(
      '/secapi/pay/refund',
      toXml({ ...p, sign: sign(p, MD5_MERCHANT.apiKey, 'MD5') }),
    );
    expect(res.status).toBe(400);
    expect(res.body).toContain('No required SSL certificate was sent');
  });
});

describe('control surface and persistence', () => {
  it('exposes faults, ledger and notifies as JSON', async () => {
    const set = await rawPost('/sandbox/faults', JSON.stringify({ duplicateNotifies: 0, notifyDelayMs: 0 }));
    expect(JSON.parse(set.body)).toMatchObject({ duplicateNotifies: 0, refundOutcome: 'SUCCESS' });
    const { no } = await newOrder();
    const ledger = JSON.parse((await rawPost('/sandbox/ledger', '', 'GET')).body) as {
      orders: { outTradeNo: string }[];
    };
    expect(ledger.orders.map((o) => o.outTradeNo)).toContain(no);
    expect(Array.isArray(JSON.parse((await rawPost('/sandbox/notifies', '', 'GET')).body))).toBe(true);
  });

  it('keeps the ledger across a restart when given a stateFile', async () => {
    const stateFile = join(env.dir, 'state', 'wxpay.json');
    const opts = { certs: env.certs, merchants: [MD5_MERCHANT], timeScale: 0.001, stateFile };
    const first = await startWxPaySimulator(opts);
    const client = () => env.client(MD5_MERCHANT, { baseUrl: current.url });
    let current = first;
    const no = uniqueNo('P');
    const prepayId = (await client().unifiedOrder(orderParams(no)))['prepay_id']!;
    await first.close();
    current = await startWxPaySimulator(opts);
    try {
      expect(current.pay(payment(MD5_MERCHANT, prepayId))).toEqual({ errMsg: 'requestPayment:ok' });
      expect((await client().orderQuery({ out_trade_no: no }))['trade_state']).toBe('SUCCESS');
    } finally {
      await current.close();
    }
  });
});
