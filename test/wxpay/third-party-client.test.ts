/**
 * The simulator must not be shaped around our own client: a published APIv2 library
 * (wechatpay-axios-plugin, which verifies every response signature itself) runs unifiedorder,
 * orderquery and a mutual-TLS refund against it unchanged.
 */

import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decorator } from 'wechatpay-axios-plugin';
import { paySign } from '../../cloudfunctions/shared/wxpay';
import { type Env, MD5_MERCHANT, startEnv } from './fixtures';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => env?.close());

describe('a third-party APIv2 client against the simulator', () => {
  it('orders, is paid, queries and refunds with wechatpay-axios-plugin', async () => {
    const m = MD5_MERCHANT;
    const ca = readFileSync(env.certs.caCertPath);
    // The library's APIv2 client: an axios instance that signs requests and verifies answers.
    const v2 = Decorator.xmlBased({
      mchid: m.mchId,
      secret: m.apiKey,
      // Passed to https.Agent for `security: true` (the /secapi/ paths): cert, key, and our CA.
      merchant: { cert: readFileSync(env.certs.certPath), key: readFileSync(env.certs.keyPath), ca },
    } as never) as unknown as {
      post(url: string, data: object, config: object): Promise<{ data: Record<string, string> }>;
    };
    const endpoint = (path: string) => ({
      post: (data: object, config: object) => v2.post(path, data, config),
    });
    const plain = { baseURL: env.sim.url, httpsAgent: new Agent({ ca }) };
    const outTradeNo = `TP${Date.now()}`;

    const ordered = await endpoint('/pay/unifiedorder').post(
      {
        appid: m.appid,
        mch_id: m.mchId,
        body: 'third party',
        out_trade_no: outTradeNo,
        total_fee: 300,
        spbill_create_ip: '127.0.0.1',
        notify_url: 'http://127.0.0.1:9/notify',
        trade_type: 'JSAPI',
        openid: 'o_third_party',
      },
      plain,
    );
    expect(ordered.data).toMatchObject({
      return_code: 'SUCCESS',
      result_code: 'SUCCESS',
      trade_type: 'JSAPI',
    });
    expect(ordered.data['prepay_id']).toBeTruthy();

    // The shopper pays as the WeChat client would, with the second signature.
    const payment = paySign(
      {
        appId: m.appid,
        timeStamp: '1700000000',
        nonceStr: 'n',
        package: `prepay_id=${ordered.data['prepay_id']}`,
        signType: 'MD5',
      },
      m.apiKey,
    );
    const paid = env.sim.pay(payment as unknown as Record<string, unknown>);
    expect(paid.errMsg).toBe('requestPayment:ok');

    const queried = await endpoint('/pay/orderquery').post(
      { appid: m.appid, mch_id: m.mchId, out_trade_no: outTradeNo },
      plain,
    );
    expect(queried.data).toMatchObject({ trade_state: 'SUCCESS', total_fee: '300' });

    const refunded = await endpoint('/secapi/pay/refund').post(
      {
        appid: m.appid,
        mch_id: m.mchId,
        out_trade_no: outTradeNo,
        out_refund_no: `R${outTradeNo}`,
        total_fee: 300,
        refund_fee: 100,
      },
      { baseURL: env.sim.url, security: true },
    );
    expect(refunded.data).toMatchObject({
      return_code: 'SUCCESS',
      result_code: 'SUCCESS',
      refund_fee: '100',
    });
  });
});
