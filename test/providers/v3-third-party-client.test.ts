/**
 * The simulator's APIv3 side must not be shaped around our own client: a published APIv3
 * library (wechatpay-axios-plugin, which signs its requests and verifies every answer with
 * its own `certs` map) runs JSAPI, query and refund against it unchanged, in both of
 * WeChat's key modes: the WeChat Pay public key (new merchants) and a platform certificate.
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rsa, Wechatpay } from 'wechatpay-axios-plugin';
import { DIRECT, startV3Env, uniqueNo, type V3Env } from './fixtures';

interface Answer {
  status: number;
  data: Record<string, unknown>;
}
type Chain = {
  post(data: object, config?: object): Promise<Answer>;
  get(config?: object): Promise<Answer>;
} & {
  [k: string]: Chain;
};

function client(env: V3Env, certs: Record<string, string>): Chain {
  const wxpay = new Wechatpay({
    mchid: DIRECT.mchId,
    serial: new X509Certificate(readFileSync(env.certs.certPath)).serialNumber,
    privateKey: Rsa.from(`file://${env.certs.keyPath}`, Rsa.KEY_TYPE_PRIVATE),
    certs: Object.fromEntries(
      Object.entries(certs).map(([k, file]) => [k, Rsa.from(`file://${file}`, Rsa.KEY_TYPE_PUBLIC)]),
    ),
    baseURL: `${env.sim.url}/`,
    httpsAgent: new Agent({ ca: readFileSync(env.certs.caCertPath) }),
  } as never);
  return wxpay as unknown as Chain;
}

async function journey(env: V3Env, wxpay: Chain): Promise<void> {
  const outTradeNo = uniqueNo('TP3');
  const ordered = await wxpay.v3!.pay!.transactions!.jsapi!.post({
    appid: DIRECT.appid,
    mchid: DIRECT.mchId,
    description: 'third party v3',
    out_trade_no: outTradeNo,
    notify_url: 'https://127.0.0.1:9/notify',
    amount: { total: 300, currency: 'CNY' },
    payer: { openid: 'o_third_party_v3' },
  });
  expect(ordered.status).toBe(200);
  const prepayId = ordered.data['prepay_id'] as string;
  expect(prepayId).toMatch(/^wx/);

  // The shopper pays with the RSA paySign the library documents (its Formatter and Rsa).
  const { Formatter } = await import('wechatpay-axios-plugin');
  const timeStamp = String(Formatter.timestamp());
  const nonceStr = Formatter.nonce();
  const pkg = `prepay_id=${prepayId}`;
  const paySign = Rsa.sign(
    Formatter.joinedByLineFeed(DIRECT.appid, timeStamp, nonceStr, pkg),
    Rsa.from(`file://${env.certs.keyPath}`, Rsa.KEY_TYPE_PRIVATE),
  );
  expect(env.sim.pay({ timeStamp, nonceStr, package: pkg, signType: 'RSA', paySign })).toEqual({
    errMsg: 'requestPayment:ok',
  });

  const queried = await wxpay.v3!.pay!.transactions!.outTradeNo!['{out_trade_no}']!.get({
    params: { mchid: DIRECT.mchId },
    out_trade_no: outTradeNo,
  });
  expect(queried.data).toMatchObject({
    trade_state: 'SUCCESS',
    out_trade_no: outTradeNo,
    amount: { total: 300 },
  });

  const refunded = await wxpay.v3!.refund!.domestic!.refunds!.post({
    out_trade_no: outTradeNo,
    out_refund_no: `R${outTradeNo}`,
    amount: { refund: 100, total: 300, currency: 'CNY' },
  });
  expect(refunded.data).toMatchObject({
    out_refund_no: `R${outTradeNo}`,
    status: 'PROCESSING',
    amount: { refund: 100 },
  });
}

describe('a third-party APIv3 client against the simulator', () => {
  let publicKeyOnly: V3Env;
  let certificateOnly: V3Env;
  beforeAll(async () => {
    // A merchant opened since late 2024: only the WeChat Pay public key, no platform certificate.
    publicKeyOnly = await startV3Env({ v3: { platformCertificate: undefined } });
    // An older merchant: only the platform certificate.
    certificateOnly = await startV3Env({ v3: { publicKey: undefined } });
  });
  afterAll(async () => {
    await publicKeyOnly?.close();
    await certificateOnly?.close();
  });

  it('orders, is paid, queries and refunds with wechatpay-axios-plugin in public-key mode', async () => {
    const env = publicKeyOnly;
    await journey(env, client(env, { [env.material.publicKeyId]: env.material.publicKeyPath }));
  });

  it('does the same in platform-certificate mode', async () => {
    const env = certificateOnly;
    await journey(env, client(env, { [env.material.platformSerial]: env.material.platformCertPath }));
  });

  it('has its own verification refuse an answer signed with a key it was not given', async () => {
    const env = publicKeyOnly;
    const order = (c: Chain) =>
      c.v3!.pay!.transactions!.jsapi!.post({
        appid: DIRECT.appid,
        mchid: DIRECT.mchId,
        description: 'x',
        out_trade_no: uniqueNo('TPW'),
        notify_url: 'https://127.0.0.1:9/notify',
        amount: { total: 1 },
        payer: { openid: 'o' },
      });
    // The same 200 answer: refused under the wrong key, accepted under the right one.
    const wrong = client(env, { [env.material.publicKeyId]: env.material.platformCertPath });
    await expect(order(wrong)).rejects.toMatchObject({ code: 'EV3_RES_HEADER_SIGNATURE_DIGEST' });
    const right = client(env, { [env.material.publicKeyId]: env.material.publicKeyPath });
    await expect(order(right)).resolves.toMatchObject({ status: 200 });
  });
});
