import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createWxPayClient,
  parseBill,
  parseXml,
  paySign,
  sign,
  toXml,
  type WxParamsIn,
  WxPayApiError,
  WxPayNetworkError,
} from '../../cloudfunctions/shared/wxpay';
import { ensureCerts } from '../../sandbox/certs';
import { billDate } from '../../sandbox/wxpay/time';
import { type Env, HMAC_MERCHANT, MD5_MERCHANT, startEnv, uniqueNo } from './fixtures';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

const order = (outTradeNo: string, totalFee = 100) => ({
  body: '测试商品',
  out_trade_no: outTradeNo,
  total_fee: totalFee,
  spbill_create_ip: '127.0.0.1',
  notify_url: 'http://127.0.0.1:9/pay/notify',
  openid: 'o_test_openid',
});

/** Places and pays an order through the simulator as a phone would. */
async function paidOrder(
  m = MD5_MERCHANT,
  totalFee = 100,
): Promise<{ outTradeNo: string; transactionId: string }> {
  const outTradeNo = uniqueNo('T');
  const res = await env.client(m).unifiedOrder(order(outTradeNo, totalFee));
  const payment = paySign(
    {
      appId: m.appid,
      timeStamp: '1700000000',
      nonceStr: 'n0nce',
      package: `prepay_id=${res['prepay_id']}`,
      signType: m.signType,
    },
    m.apiKey,
  );
  expect(env.sim.pay({ ...payment })).toEqual({ errMsg: 'requestPayment:ok' });
  const q = await env.client(m).orderQuery({ out_trade_no: outTradeNo });
  return { outTradeNo, transactionId: q['transaction_id']! };
}

/** A plain HTTP server that answers every POST with `answer(n)` and records the bodies. */
async function fakeWeChat(answer: (n: number) => { status?: number; body: string }) {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      const a = answer(bodies.length);
      res.writeHead(a.status ?? 200, { 'content-type': 'text/xml' });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function signedAnswer(fields: WxParamsIn, m = MD5_MERCHANT, key = m.apiKey): string {
  const p: WxParamsIn = {
    return_code: 'SUCCESS',
    return_msg: 'OK',
    appid: m.appid,
    mch_id: m.mchId,
    nonce_str: 'x',
    ...fields,
  };
  return toXml({ ...p, sign: sign(p, key, m.signType) });
}

function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('unifiedOrder', () => {
  it.each([MD5_MERCHANT, HMAC_MERCHANT])(
    'resolves a verified answer with prepay_id ($signType)',
    async (m) => {
      const res = await env.client(m).unifiedOrder(order(uniqueNo('U')));
      expect(res['prepay_id']).toMatch(/^wx\d{14}[0-9a-f]{22}$/);
      expect(res).toMatchObject({
        return_code: 'SUCCESS',
        result_code: 'SUCCESS',
        trade_type: 'JSAPI',
        appid: m.appid,
      });
    },
  );

  it('refuses a non-integer amount before calling WeChat', async () => {
    const e = await caught(
      env.client(MD5_MERCHANT).unifiedOrder({ ...order(uniqueNo('U')), total_fee: 9.8 }),
    );
    expect(e).toMatchObject({ code: 'INVALID_INPUT' });
  });
});

describe('orderQuery and closeOrder', () => {
  it('finds a paid order by out_trade_no and by transaction_id', async () => {
    const { outTradeNo, transactionId } = await paidOrder();
    const client = env.client(MD5_MERCHANT);
    const byTrade = await client.orderQuery({ out_trade_no: outTradeNo });
    expect(byTrade).toMatchObject({
      trade_state: 'SUCCESS',
      total_fee: '100',
      transaction_id: transactionId,
    });
    expect(byTrade['time_end']).toMatch(/^\d{14}$/);
    expect((await client.orderQuery({ transaction_id: transactionId }))['out_trade_no']).toBe(outTradeNo);
  });

  it('closes an unpaid order, which orderquery then reports CLOSED', async () => {
    const client = env.client(HMAC_MERCHANT);
    const no = uniqueNo('C');
    await client.unifiedOrder(order(no));
    env.advance(1_000); // past closeorder's 5 minutes (×0.001)
    await expect(client.closeOrder({ out_trade_no: no })).resolves.toMatchObject({ result_code: 'SUCCESS' });
    expect((await client.orderQuery({ out_trade_no: no }))['trade_state']).toBe('CLOSED');
  });

  it('reports ORDERPAID when closing a paid order, without retrying', async () => {
    const { outTradeNo } = await paidOrder();
    const sleeps: number[] = [];
    const e = await caught(
      env
        .client(MD5_MERCHANT, { sleep: async (ms) => void sleeps.push(ms) })
        .closeOrder({ out_trade_no: outTradeNo }),
    );
    expect(e).toBeInstanceOf(WxPayApiError);
    expect(e).toMatchObject({
      code: 'WXPAY_RESULT_FAIL',
      errCode: 'ORDERPAID',
      transient: false,
      path: '/pay/closeorder',
    });
    expect(sleeps).toEqual([]);
  });

  it('reports ORDERNOTEXIST with every field of the answer kept in raw', async () => {
    const e = (await caught(env.client(MD5_MERCHANT).orderQuery({ out_trade_no: 'nope' }))) as WxPayApiError;
    expect(e.errCode).toBe('ORDERNOTEXIST');
    expect(e.errCodeDes).toBe('订单不存在');
    expect(e.raw).toMatchObject({
      return_code: 'SUCCESS',
      result_code: 'FAIL',
      err_code: 'ORDERNOTEXIST',
      mch_id: MD5_MERCHANT.mchId,
    });
    expect(e.raw?.['sign']).toBeTruthy();
  });
});

describe('refund (mutual TLS)', () => {
  it('is accepted with the PEM pair, and refundquery goes PROCESSING then SUCCESS', async () => {
    const { outTradeNo } = await paidOrder();
    env.sim.setFaults({ refundDelayMs: 60_000 });
    const client = env.client(MD5_MERCHANT);
    const outRefundNo = uniqueNo('R');
    const res = await client.refund({
      out_trade_no: outTradeNo,
      out_refund_no: outRefundNo,
      total_fee: 100,
      refund_fee: 30,
    });
    env.sim.setFaults({ refundDelayMs: null });
    expect(res).toMatchObject({ result_code: 'SUCCESS', out_refund_no: outRefundNo, refund_fee: '30' });
    expect(res['refund_id']).toMatch(/^50\d{27}$/);
    expect(await client.refundQuery({ out_refund_no: outRefundNo })).toMatchObject({
      refund_count: '1',
      refund_status_0: 'PROCESSING',
    });
    expect(env.sim.settleRefunds()).toBeGreaterThanOrEqual(1);
    const q = await client.refundQuery({ out_trade_no: outTradeNo });
    expect(q).toMatchObject({ out_refund_no_0: outRefundNo, refund_status_0: 'SUCCESS', refund_fee_0: '30' });
    expect(q['refund_success_time_0']).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  });

  it('is accepted with the PKCS#12 bundle and the mch_id as passphrase', async () => {
    const { outTradeNo } = await paidOrder();
    const client = env.client(MD5_MERCHANT, {
      cert: { pfx: readFileSync(env.certs.pfxPath), passphrase: MD5_MERCHANT.mchId },
    });
    await expect(
      client.refund({
        out_trade_no: outTradeNo,
        out_refund_no: uniqueNo('R'),
        total_fee: 100,
        refund_fee: 100,
      }),
    ).resolves.toMatchObject({ result_code: 'SUCCESS' });
  });

  it('fails with CONFIG_INVALID before any network call when no certificate is configured', async () => {
    const fake = await fakeWeChat(() => ({ body: signedAnswer({ result_code: 'SUCCESS' }) }));
    try {
      const client = createWxPayClient({ ...env.config(MD5_MERCHANT), baseUrl: fake.url, cert: undefined });
      const e = await caught(
        client.refund({ out_trade_no: 'T', out_refund_no: 'R', total_fee: 1, refund_fee: 1 }),
      );
      expect(e).toMatchObject({ code: 'CONFIG_INVALID' });
      expect((e as Error).message).toMatch(/client certificate/);
      expect(fake.bodies).toHaveLength(0);
    } finally {
      await fake.close();
    }
  });

  it('fails with CONFIG_INVALID on a wrong PKCS#12 passphrase, without echoing it', async () => {
    const client = env.client(MD5_MERCHANT, {
      cert: { pfx: readFileSync(env.certs.pfxPath), passphrase: 'wrong-secret-pass' },
    });
    const e = await caught(
      client.refund({ out_trade_no: 'T', out_refund_no: 'R', total_fee: 1, refund_fee: 1 }),
    );
    expect(e).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(JSON.stringify({ m: (e as Error).message, e })).not.toContain('wrong-secret-pass');
  });

  it('is refused by the simulator for a certificate from another CA, and not retried', async () => {
    const { outTradeNo } = await paidOrder();
    const foreign = await ensureCerts(join(env.dir, 'foreign'), { mchId: MD5_MERCHANT.mchId });
    const sleeps: number[] = [];
    const client = env.client(MD5_MERCHANT, {
      cert: {
        certPem: readFileSync(foreign.certPath, 'utf8'),
        keyPem: readFileSync(foreign.keyPath, 'utf8'),
      },
      sleep: async (ms) => void sleeps.push(ms),
    });
    const e = await caught(
      client.refund({
        out_trade_no: outTradeNo,
        out_refund_no: uniqueNo('R'),
        total_fee: 100,
        refund_fee: 1,
      }),
    );
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({ status: 400 });
    expect((e as Error).message).toContain('The SSL certificate error');
    expect(sleeps).toEqual([]);
    expect(env.sim.ledger().refunds.filter((r) => r.outTradeNo === outTradeNo)).toHaveLength(0);
  });

  it("refuses another merchant's certificate (certificate not match)", async () => {
    const { outTradeNo } = await paidOrder(HMAC_MERCHANT);
    const client = env.client(HMAC_MERCHANT, { cert: env.config(MD5_MERCHANT).cert });
    const e = await caught(
      client.refund({
        out_trade_no: outTradeNo,
        out_refund_no: uniqueNo('R'),
        total_fee: 100,
        refund_fee: 1,
      }),
    );
    expect(e).toMatchObject({ code: 'WXPAY_RETURN_FAIL', returnMsg: '证书和商户号不匹配' });
  });
});

describe('retries', () => {
  it('retries SYSTEMERROR with backoff and succeeds, placing one order from one signed body', async () => {
    const sleeps: number[] = [];
    let nonces = 0;
    const client = env.client(MD5_MERCHANT, {
      sleep: async (ms) => void sleeps.push(ms),
      nonce: () => `nonce${++nonces}`,
    });
    env.sim.setFaults({ systemErrorNext: 2 });
    const no = uniqueNo('S');
    const res = await client.unifiedOrder(order(no));
    expect(res['prepay_id']).toBeTruthy();
    expect(sleeps).toEqual([200, 600]);
    expect(nonces).toBe(1);
    expect(env.sim.ledger().orders.filter((o) => o.outTradeNo === no)).toHaveLength(1);
  });

  it('sends byte-identical bodies on every attempt', async () => {
    const fake = await fakeWeChat((n) => ({
      body: signedAnswer(
        n < 3
          ? { result_code: 'FAIL', err_code: 'SYSTEMERROR', err_code_des: '系统超时' }
          : { result_code: 'SUCCESS', trade_type: 'JSAPI', prepay_id: 'wx123' },
      ),
    }));
    try {
      const client = env.client(MD5_MERCHANT, { baseUrl: fake.url });
      await expect(client.unifiedOrder(order('SAME1'))).resolves.toMatchObject({ prepay_id: 'wx123' });
      expect(fake.bodies).toHaveLength(3);
      expect(new Set(fake.bodies).size).toBe(1);
      expect(parseXml(fake.bodies[0]!)).toMatchObject({ out_trade_no: 'SAME1', total_fee: '100' });
    } finally {
      await fake.close();
    }
  });

  it('gives up after maxAttempts with the last transient error', async () => {
    env.sim.setFaults({ systemErrorNext: 5 });
    const e = await caught(env.client(MD5_MERCHANT, { maxAttempts: 2 }).orderQuery({ out_trade_no: 'x' }));
    env.sim.setFaults({ systemErrorNext: 0 });
    expect(e).toMatchObject({ code: 'WXPAY_RESULT_FAIL', errCode: 'SYSTEMERROR', transient: true });
  });

  it('never retries a business error (ORDERPAID on re-entry)', async () => {
    const { outTradeNo } = await paidOrder();
    const sleeps: number[] = [];
    const e = await caught(
      env.client(MD5_MERCHANT, { sleep: async (ms) => void sleeps.push(ms) }).unifiedOrder(order(outTradeNo)),
    );
    expect(e).toMatchObject({ code: 'WXPAY_RESULT_FAIL', errCode: 'ORDERPAID', transient: false });
    expect(sleeps).toEqual([]);
  });

  it('times out a hanging request and reports WXPAY_UNAVAILABLE', async () => {
    env.sim.setFaults({ timeoutRate: 1 });
    try {
      const started = Date.now();
      const e = await caught(
        env.client(MD5_MERCHANT, { totalTimeoutMs: 150, maxAttempts: 2 }).orderQuery({ out_trade_no: 'x' }),
      );
      expect(e).toBeInstanceOf(WxPayNetworkError);
      expect(e).toMatchObject({ code: 'WXPAY_UNAVAILABLE', transient: true });
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    } finally {
      env.sim.setFaults({ timeoutRate: 0 });
    }
  });

  it('reports a refused connection as WXPAY_UNAVAILABLE after every attempt', async () => {
    const fake = await fakeWeChat(() => ({ body: '' }));
    await fake.close();
    const sleeps: number[] = [];
    const client = env.client(MD5_MERCHANT, { baseUrl: fake.url, sleep: async (ms) => void sleeps.push(ms) });
    await expect(client.orderQuery({ out_trade_no: 'x' })).rejects.toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
    });
    expect(sleeps).toEqual([200, 600]);
  });

  it('retries HTTP 5xx and non-XML answers as unavailability', async () => {
    const fake = await fakeWeChat((n) =>
      n === 1
        ? { status: 502, body: 'bad gateway' }
        : n === 2
          ? { body: '<html>busy</html>' }
          : { body: signedAnswer({ result_code: 'SUCCESS', trade_state: 'NOTPAY' }) },
    );
    try {
      await expect(
        env.client(MD5_MERCHANT, { baseUrl: fake.url }).orderQuery({ out_trade_no: 'x' }),
      ).resolves.toMatchObject({
        trade_state: 'NOTPAY',
      });
      expect(fake.bodies).toHaveLength(3);
    } finally {
      await fake.close();
    }
  });
});

describe('answer verification', () => {
  async function answerWith(body: string) {
    const fake = await fakeWeChat(() => ({ body }));
    try {
      const e = await caught(
        env.client(MD5_MERCHANT, { baseUrl: fake.url }).orderQuery({ out_trade_no: 'x' }),
      );
      return { e: e as WxPayApiError, attempts: fake.bodies.length };
    } finally {
      await fake.close();
    }
  }

  it('rejects a tampered signature as a transient WXPAY_BAD_RESPONSE', async () => {
    const good = signedAnswer({ result_code: 'SUCCESS', trade_state: 'NOTPAY' });
    const { e, attempts } = await answerWith(good.replace('NOTPAY', 'SUCCESS'));
    expect(e).toMatchObject({ code: 'WXPAY_BAD_RESPONSE', transient: true });
    expect(attempts).toBe(3);
  });

  it('rejects an answer signed with another key', async () => {
    const { e } = await answerWith(
      signedAnswer({ result_code: 'SUCCESS', trade_state: 'SUCCESS' }, MD5_MERCHANT, 'x'.repeat(32)),
    );
    expect(e.code).toBe('WXPAY_BAD_RESPONSE');
  });

  it('rejects a correctly signed answer about another merchant', async () => {
    const other = { ...MD5_MERCHANT, mchId: '10000999' };
    const { e } = await answerWith(
      signedAnswer({ result_code: 'SUCCESS', trade_state: 'SUCCESS' }, other, MD5_MERCHANT.apiKey),
    );
    expect(e.code).toBe('WXPAY_BAD_RESPONSE');
    expect(e.message).toMatch(/another appid\/mch_id/);
  });

  it('rejects an unsigned SUCCESS', async () => {
    const { e } = await answerWith(
      toXml({
        return_code: 'SUCCESS',
        appid: MD5_MERCHANT.appid,
        mch_id: MD5_MERCHANT.mchId,
        result_code: 'SUCCESS',
        trade_state: 'SUCCESS',
      }),
    );
    expect(e.code).toBe('WXPAY_BAD_RESPONSE');
  });

  it('reports return_code FAIL (wrong API key → 签名错误) without retrying and without the key', async () => {
    const wrongKey = 'abcdefabcdefabcdefabcdefabcdef12';
    const sleeps: number[] = [];
    const e = await caught(
      env
        .client(MD5_MERCHANT, { apiKey: wrongKey, sleep: async (ms) => void sleeps.push(ms) })
        .orderQuery({ out_trade_no: 'x' }),
    );
    expect(e).toMatchObject({
      code: 'WXPAY_RETURN_FAIL',
      returnCode: 'FAIL',
      returnMsg: '签名错误',
      transient: false,
    });
    expect(sleeps).toEqual([]);
    expect(`${(e as Error).message} ${JSON.stringify(e)}`).not.toContain(wrongKey);
  });
});

describe('downloadBill', () => {
  it("returns the day's CSV with amounts in yuan", async () => {
    const { outTradeNo } = await paidOrder(HMAC_MERCHANT, 1234);
    // A day's bill exists from 10:00 the next day: move WeChat's clock a day ahead.
    env.sim.setClockOffset(24 * 3600_000 + 10 * 3600_000);
    const csv = await env
      .client(HMAC_MERCHANT)
      .downloadBill({ bill_date: billDate(Date.now()), bill_type: 'SUCCESS' })
      .finally(() => env.sim.setClockOffset(0));
    const bill = parseBill(csv);
    const row = bill.rows.find((r) => r['商户订单号'] === outTradeNo);
    expect(row).toMatchObject({
      交易状态: 'SUCCESS',
      应结订单金额: '12.34',
      订单金额: '12.34',
      商户号: HMAC_MERCHANT.mchId,
    });
    expect(Number(bill.summary['总交易单数'])).toBe(bill.rows.length);
  });

  it('reports "No Bill Exist" as WXPAY_RETURN_FAIL', async () => {
    const e = await caught(env.client(MD5_MERCHANT).downloadBill({ bill_date: '20200101' }));
    expect(e).toMatchObject({ code: 'WXPAY_RETURN_FAIL', returnMsg: 'No Bill Exist', transient: false });
  });
});
