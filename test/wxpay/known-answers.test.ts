/**
 * Known answers for every cryptographic step the simulator and the shop share (signatures,
 * paySign, req_info, and the bill layout). The simulator runs the same codec as the cloud
 * functions, so a bug there (a wrong key derivation, a field signed under the wrong name)
 * would agree with itself and pass every integration test. Here each step is computed a
 * second time, with node:crypto only, straight from WeChat's documented steps, and pinned to
 * published vectors; then both the codec and the simulator must agree with it.
 *
 *   签名算法      https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=4_3
 *   再次签名      https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=7_7&index=6
 *   退款结果通知  https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=9_16&index=11
 *   下载对账单    https://pay.weixin.qq.com/wiki/doc/api/jsapi.php?chapter=9_6
 */
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BILL_ALL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  decryptReqInfo,
  encryptReqInfo,
  parseBill,
  paySign,
  sign,
  verify,
  withSign,
} from '../../cloudfunctions/shared/wxpay';
import type { SimMerchant } from '../../sandbox/wxpay';
import {
  type Env,
  HMAC_MERCHANT,
  MD5_MERCHANT,
  type Receiver,
  startEnv,
  startReceiver,
  until,
} from './fixtures';

type Params = Record<string, string>;
type Type = 'MD5' | 'HMAC-SHA256';

// ── the documented steps, with node:crypto and nothing of the project ──────────────────

/**
 * 签名算法: step 1, the non-empty parameters sorted by parameter name in ASCII order, as
 * key=value joined with &; step 2, append &key=<API key>, hash (MD5, or HMAC-SHA256 keyed
 * with the API key), upper-case hex. `sign` itself is not signed.
 */
function refSign(params: Params, key: string, type: Type): string {
  const stringA = Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  const stringSignTemp = `${stringA}&key=${key}`;
  const h = type === 'MD5' ? createHash('md5') : createHmac('sha256', key);
  return h.update(stringSignTemp, 'utf8').digest('hex').toUpperCase();
}

/** 退款结果通知, 解密步骤: (1) base64-decode; (2) md5 of the API key, 32 lower-case hex characters, is the key; (3) AES-256-ECB, PKCS#7. */
function refReqInfoKey(apiKey: string): Buffer {
  return Buffer.from(createHash('md5').update(apiKey, 'utf8').digest('hex'), 'ascii');
}
function refDecrypt(reqInfo: string, apiKey: string): string {
  const d = createDecipheriv('aes-256-ecb', refReqInfoKey(apiKey), null);
  return Buffer.concat([d.update(Buffer.from(reqInfo, 'base64')), d.final()]).toString('utf8');
}
function refEncrypt(xml: string, apiKey: string): string {
  const c = createCipheriv('aes-256-ecb', refReqInfoKey(apiKey), null);
  return Buffer.concat([c.update(xml, 'utf8'), c.final()]).toString('base64');
}

/** Flat APIv2 XML, with or without CDATA, read without the project's parser. */
function refFields(xml: string): Params {
  const out: Params = {};
  for (const m of xml.matchAll(/<([A-Za-z0-9_]+)>(?:<!\[CDATA\[([\s\S]*?)\]\]>|([^<]*))<\/\1>/g)) {
    if (m[1] !== 'xml' && m[1] !== 'root') out[m[1]!] = m[2] ?? m[3] ?? '';
  }
  return out;
}
function refXml(params: Params): string {
  return `<xml>${Object.entries(params)
    .map(([k, v]) => `<${k}><![CDATA[${v}]]></${k}>`)
    .join('')}</xml>`;
}

// ── published vectors ─────────────────────────────────────────────────────────────────

// 签名算法 example: the doc's stringSignTemp and its MD5 and HMAC-SHA256 results.
const DOC_KEY = '192006250b4c09247ec02edce69f6a2d';
const DOC_PARAMS: Params = {
  appid: 'wxd930ea5d5a258f4f',
  mch_id: '10000100',
  device_info: '1000',
  body: 'test',
  nonce_str: 'ibuaiVcKdpRxkhJA',
};
const DOC_MD5 = '9A0A8659F005D6984697E2CA0A9CF3B7';
const DOC_HMAC = '6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6';

// 再次签名 example of wx.requestPayment (the mini-program payment doc).
const PAY_KEY = 'qazwsxedcrfvtgbyhnujmikolp111111';
const PAY_INPUT = {
  appId: 'wxd678efh567hg6787',
  timeStamp: '1490840662',
  nonceStr: '5K8264ILTKCH16CQ2502SI8ZNMTM67VS',
  package: 'prepay_id=wx2017033010242291fcfe0db70013231072',
  signType: 'MD5' as const,
};
const PAY_SIGN = '22D9B4E54AB1950F51E0649E8810ACD6';

// A req_info WeChat sent for a real refund on 2017-11-25, published with its API key as a
// test vector of the Go WeChat Pay SDKs (rwscode/payutil wechat/payment_api_test.go).
const REAL_KEY = 'ziR0QKsTUfMOuochC9RfCdmfHECorQAP';
const REAL_REQ_INFO =
  'YYwp8C48th0wnQzTqeI+41pflB26v+smFj9z6h9RPBgxTyZyxc+4YNEz7QEgZNWj/6rIb2MfyWMZmCc41CfjKSssoSZPXxOhUayb6KvNSZ1p6frOX1PDWzhyruXK7ouNND+gDsG4yZ0XXzsL4/pYNwLLba/71QrnkJ/BHcByk4EXnglju5DLup9pJQSnTxjomI9Rxu57m9jg5lLQFxMWXyeASZJNvof0ulnHlWJswS4OxKOkmW7VEyKyLGV6npoOm03Qsx2wkRxLsSa9gPpg4hdaReeUqh1FMbm7aWjyrVYT/MEZWg98p4GomEIYvz34XfDncTezX4bf/ZiSLXt79aE1/YTZrYfymXeCrGjlbe0rg/T2ezJHAC870u2vsVbY1/KcE2A443N+DEnAziXlBQ1AeWq3Rqk/O6/TMM0lomzgctAOiAMg+bh5+Gu1ubA9O3E+vehULydD5qx2o6i3+qA9ORbH415NyRrQdeFq5vmCiRikp5xYptWiGZA0tkoaLKMPQ4ndE5gWHqiBbGPfULZWokI+QjjhhBmwgbd6J0VqpRorwOuzC/BHdkP72DCdNcm7IDUpggnzBIy0+seWIkcHEryKjge3YDHpJeQCqrAH0CgxXHDt1xtbQbST1VqFyuhPhUjDXMXrknrGPN/oE1t0rLRq+78cI+k8xe5E6seeUXQsEe8r3358mpcDYSmXWSXVZxK6er9EF98APqHwcndyEJD2YyCh/mMVhERuX+7kjlRXSiNUWa/Cv/XAKFQuvUYA5ea2eYWtPRHa4DpyuF1SNsaqVKfgqKXZrJHfAgslVpSVqUpX4zkKszHF4kwMZO3M7J1P94Mxa7Tm9mTOJePOoHPXeEB+m9rX6pSfoi3mJDQ5inJ+Vc4gOkg/Wd/lqiy6TTyP/dHDN6/v+AuJx5AXBo/2NDD3fWhHjkqEKIuARr2ClZt9ZRQO4HkXdZo7CN06sGCHk48Tg8PmxnxKcMZm7Aoquv5yMIM2gWSWIRJhwJ8cUpafIHc+GesDlbF6Zbt+/KXkafJAQq2RklEN+WvZ/zFz113EPgWPjp16TwBoziq96MMekvWKY/vdhjol8VFtGH9F61Oy1Xwf6DJtPw==';
const REAL_PLAIN = {
  out_refund_no: '50fd012ed1b311e7af7800163e32c503',
  out_trade_no: '4893e76d8c8b434cb64e9cd536338e33',
  refund_account: 'REFUND_SOURCE_RECHARGE_FUNDS',
  refund_fee: '6',
  refund_id: '50000404922017112502468056157',
  refund_recv_accout: '支付用户零钱',
  refund_request_source: 'API',
  refund_status: 'SUCCESS',
  settlement_refund_fee: '6',
  settlement_total_fee: '6',
  success_time: '2017-11-25 15:36:17',
  total_fee: '6',
  transaction_id: '4200000015201711256947025404',
};

// 下载对账单: the ALL bill's header and summary header as the doc prints them.
const DOC_BILL_HEADER =
  '交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注';
const DOC_BILL_SUMMARY =
  '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额';

describe('the reference steps reproduce the published vectors', () => {
  it('签名算法: MD5 and HMAC-SHA256 of the doc example', () => {
    expect(refSign(DOC_PARAMS, DOC_KEY, 'MD5')).toBe(DOC_MD5);
    expect(refSign(DOC_PARAMS, DOC_KEY, 'HMAC-SHA256')).toBe(DOC_HMAC);
  });
  it('再次签名: the wx.requestPayment example', () => {
    expect(refSign({ ...PAY_INPUT }, PAY_KEY, 'MD5')).toBe(PAY_SIGN);
  });
  it('退款结果通知: a real req_info decrypts with the md5-hex key', () => {
    expect(refFields(refDecrypt(REAL_REQ_INFO, REAL_KEY))).toEqual(REAL_PLAIN);
  });
});

describe('the codec agrees with the reference', () => {
  it('sign: the published vectors, for both sign types', () => {
    expect(sign(DOC_PARAMS, DOC_KEY, 'MD5')).toBe(DOC_MD5);
    expect(sign(DOC_PARAMS, DOC_KEY, 'HMAC-SHA256')).toBe(DOC_HMAC);
  });

  it('sign and verify: any parameters, any key, both sign types', () => {
    const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,11}$/);
    fc.assert(
      fc.property(
        fc.dictionary(name, fc.oneof(fc.string(), fc.constant(''), fc.string({ unit: 'grapheme' }))),
        fc.stringMatching(/^[A-Za-z0-9]{32}$/),
        fc.constantFrom<Type>('MD5', 'HMAC-SHA256'),
        (params, key, type) => {
          const expected = refSign(params, key, type);
          expect(sign(params, key, type)).toBe(expected);
          expect(verify({ ...params, sign: expected }, key, type)).toBe(true);
          expect(verify({ ...params, sign: expected.toLowerCase() }, key, type)).toBe(true);
          const otherKey = `${key.slice(1)}${key[0] === 'A' ? 'B' : 'A'}`;
          expect(verify({ ...params, sign: refSign(params, otherKey, type) }, key, type)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('withSign signs sign_type too when it is not MD5', () => {
    expect(withSign(DOC_PARAMS, DOC_KEY, 'HMAC-SHA256')).toEqual({
      ...DOC_PARAMS,
      sign_type: 'HMAC-SHA256',
      sign: refSign({ ...DOC_PARAMS, sign_type: 'HMAC-SHA256' }, DOC_KEY, 'HMAC-SHA256'),
    });
    expect(withSign(DOC_PARAMS, DOC_KEY, 'MD5')).toEqual({ ...DOC_PARAMS, sign: DOC_MD5 });
  });

  it('paySign: the published example, and the five camel-case fields under either sign type', () => {
    expect(paySign(PAY_INPUT, PAY_KEY).paySign).toBe(PAY_SIGN);
    const hmac = { ...PAY_INPUT, signType: 'HMAC-SHA256' as const };
    expect(paySign(hmac, PAY_KEY)).toEqual({
      timeStamp: hmac.timeStamp,
      nonceStr: hmac.nonceStr,
      package: hmac.package,
      signType: 'HMAC-SHA256',
      paySign: refSign({ ...hmac }, PAY_KEY, 'HMAC-SHA256'),
    });
  });

  it('req_info: the real notify decrypts, and what the simulator encrypts decrypts by the steps', () => {
    expect(decryptReqInfo(REAL_REQ_INFO, REAL_KEY)).toEqual(REAL_PLAIN);
    expect(refFields(refDecrypt(encryptReqInfo(REAL_PLAIN, DOC_KEY), DOC_KEY))).toEqual(REAL_PLAIN);
    const xml = '<root><out_refund_no><![CDATA[R1]]></out_refund_no><refund_fee>6</refund_fee></root>';
    expect(decryptReqInfo(refEncrypt(xml, DOC_KEY), DOC_KEY)).toEqual({
      out_refund_no: 'R1',
      refund_fee: '6',
    });
  });

  it('bills: the documented header text, and a bill written in that layout parses', () => {
    expect(BILL_ALL_COLUMNS.join(',')).toBe(DOC_BILL_HEADER);
    expect(BILL_SUMMARY_COLUMNS.join(',')).toBe(DOC_BILL_SUMMARY);
    const csv = [
      DOC_BILL_HEADER,
      '`2014-11-10 16:33:45,`wx2421b1c4370ec43b,`10000100,`0,`1000,`1001690740201411100005734289,`1415640626,`085e9858e3ba5186aafcbaed1,`MICROPAY,`SUCCESS,`OTHERS,`CNY,`0.01,`0.0,`0,`0,`0,`0,`,`,`被扫支付测试,`订单额外描述,`0,`0.60%,`0.01,`0.00,`',
      DOC_BILL_SUMMARY,
      '`1,`0.01,`0.0,`0.0,`0,`0.01,`0.00',
    ].join('\r\n');
    const bill = parseBill(csv);
    expect(bill.rows[0]).toMatchObject({ 商户订单号: '1415640626', 应结订单金额: '0.01', 费率: '0.60%' });
    expect(bill.summary).toMatchObject({ 总交易单数: '1', 应结订单总金额: '0.01' });
  });
});

describe('the simulator agrees with the reference', () => {
  let env: Env;
  let receiver: Receiver;
  let ca: string;

  beforeAll(async () => {
    receiver = await startReceiver(() => ({ body: refXml({ return_code: 'SUCCESS', return_msg: 'OK' }) }));
    env = await startEnv({
      merchants: [
        { ...MD5_MERCHANT, refundNotifyUrl: receiver.url },
        { ...HMAC_MERCHANT, refundNotifyUrl: receiver.url },
      ],
    });
    ca = readFileSync(env.certs.caCertPath, 'utf8');
  });
  afterAll(async () => {
    await env?.close();
    await receiver?.close();
  });

  function post(path: string, body: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(`${env.sim.url}${path}`, { method: 'POST', ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  for (const m of [MD5_MERCHANT, HMAC_MERCHANT] as SimMerchant[]) {
    it(`${m.signType}: accepts requests signed by the steps, signs answers, paySign and notifies by them`, async () => {
      const outTradeNo = `KAT${m.signType.replace('-', '')}${Date.now()}`;
      const order: Params = {
        appid: m.appid,
        mch_id: m.mchId,
        nonce_str: 'katnonce0000000000000000000000001',
        body: '已知答案',
        out_trade_no: outTradeNo,
        total_fee: '88',
        spbill_create_ip: '127.0.0.1',
        notify_url: receiver.url,
        trade_type: 'JSAPI',
        openid: 'o_kat',
        ...(m.signType === 'MD5' ? {} : { sign_type: m.signType }),
      };
      const forged = await post(
        '/pay/unifiedorder',
        refXml({ ...order, sign: refSign(order, 'A'.repeat(32), m.signType) }),
      );
      expect(refFields(forged)).toMatchObject({ return_code: 'FAIL', return_msg: '签名错误' });

      const answer = refFields(
        await post('/pay/unifiedorder', refXml({ ...order, sign: refSign(order, m.apiKey, m.signType) })),
      );
      expect(answer).toMatchObject({ return_code: 'SUCCESS', result_code: 'SUCCESS' });
      expect(answer['sign']).toBe(refSign(answer, m.apiKey, m.signType));

      const pay = {
        appId: m.appid,
        timeStamp: '1700000000',
        nonceStr: 'katpay',
        package: `prepay_id=${answer['prepay_id']}`,
        signType: m.signType,
      };
      // A paySign over the field names of unifiedorder (appid, not appId) is refused.
      const { appId, ...rest } = pay;
      const wrongNames = refSign({ ...rest, appid: appId }, m.apiKey, m.signType);
      expect(env.sim.pay({ ...rest, paySign: wrongNames }).errMsg).toMatch(/^requestPayment:fail /);
      expect(env.sim.pay({ ...rest, paySign: refSign(pay, m.apiKey, m.signType) }).errMsg).toBe(
        'requestPayment:ok',
      );

      const body = await until(() => receiver.bodies.find((b) => b.includes(outTradeNo)), 'the pay notify');
      const notify = refFields(body);
      expect(notify).toMatchObject({ out_trade_no: outTradeNo, total_fee: '88', result_code: 'SUCCESS' });
      expect(notify['sign']).toBe(refSign(notify, m.apiKey, m.signType));
    });
  }

  it('encrypts the refund notify’s req_info by the documented steps', async () => {
    const client = env.client(MD5_MERCHANT);
    const outTradeNo = `KATR${Date.now()}`;
    const created = await client.unifiedOrder({
      body: 'x',
      out_trade_no: outTradeNo,
      total_fee: 100,
      spbill_create_ip: '127.0.0.1',
      notify_url: receiver.url,
      openid: 'o_kat',
    });
    const pay = {
      appId: MD5_MERCHANT.appid,
      timeStamp: '1700000000',
      nonceStr: 'katpay',
      package: `prepay_id=${created['prepay_id']}`,
      signType: 'MD5' as const,
    };
    const { appId: _a, ...payParams } = pay;
    expect(env.sim.pay({ ...payParams, paySign: refSign(pay, MD5_MERCHANT.apiKey, 'MD5') }).errMsg).toBe(
      'requestPayment:ok',
    );
    await client.refund({
      out_trade_no: outTradeNo,
      out_refund_no: `${outTradeNo}R`,
      total_fee: 100,
      refund_fee: 40,
    });
    env.sim.settleRefunds();
    const body = await until(
      () => receiver.bodies.find((b) => b.includes('req_info') && refFields(b)['req_info']),
      'the refund notify',
    );
    const outer = refFields(body);
    expect(outer['sign']).toBeUndefined();
    const plain = refFields(refDecrypt(outer['req_info']!, MD5_MERCHANT.apiKey));
    expect(plain).toMatchObject({
      out_refund_no: `${outTradeNo}R`,
      out_trade_no: outTradeNo,
      refund_fee: '40',
      total_fee: '100',
      refund_status: 'SUCCESS',
    });
  });
});
