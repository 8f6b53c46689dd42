/**
 * The port over the APIv2 client, against the simulator: the same journey as APIv3 with
 * APIv2's words mapped (REFUNDCLOSE → CLOSED, CHANGE → ABNORMAL, err_code → failure class),
 * its XML notifies read and answered, and service-provider mode (sub_mch_id, sub_appid,
 * sub_openid) with the notify's sub_mch_id checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CreatePaymentInput,
  type PaymentProvider,
  ProviderError,
} from '../../cloudfunctions/shared/providers';
import { createV2Provider } from '../../cloudfunctions/shared/providers/v2';
import {
  parseXml,
  paySign,
  sign,
  signPayNotifyForTest,
  toXml,
  verify,
} from '../../cloudfunctions/shared/wxpay';
import { type Endpoint, SP, SUB, startEndpoint, startV3Env, uniqueNo, until, type V3Env } from './fixtures';

let env: V3Env;
let endpoint: Endpoint;
let provider: PaymentProvider;

beforeAll(async () => {
  env = await startV3Env();
  provider = env.v2();
  endpoint = await startEndpoint(async (d) => {
    const r = provider.reply(
      (
        await provider.parseNotification({
          transport: 'http',
          method: d.method,
          headers: d.headers,
          body: d.body,
        })
      ).verified
        ? { ok: true }
        : { ok: false, retry: false, message: 'refused' },
    );
    return r.transport === 'http' ? r : { statusCode: 500 };
  });
});
afterAll(async () => {
  await env?.close();
  await endpoint?.close();
});

function order(over: Partial<CreatePaymentInput> = {}): CreatePaymentInput {
  return {
    outTradeNo: uniqueNo('V2'),
    description: '小店-碧螺春',
    totalFen: 4200,
    payerOpenid: 'o_v2_payer',
    clientIp: '127.0.0.1',
    expiresAtMs: Date.now() + 30 * 60_000,
    notifyUrl: endpoint.url,
    ...over,
  };
}

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProviderError) return e;
    throw e;
  }
  throw new Error('expected a ProviderError');
}

describe('APIv2 behind the port', () => {
  it('orders, is paid, hears and acknowledges the XML notify, queries, refunds and hears the refund', async () => {
    const input = order();
    const { prepayId, payment } = await provider.createPayment(input);
    expect(payment).toMatchObject({ signType: 'HMAC-SHA256', package: `prepay_id=${prepayId}` });
    const before = endpoint.received.length;
    expect(env.sim.pay(payment as never)).toEqual({ errMsg: 'requestPayment:ok' });
    await until(
      () =>
        env.sim
          .notifies()
          .some((n) => n.kind === 'pay' && n.body.includes(input.outTradeNo) && n.acknowledged),
      'the pay notify acknowledged with return_code SUCCESS',
    );
    const d = endpoint.received[before]!;
    expect(
      await provider.parseNotification({
        transport: 'http',
        method: 'POST',
        headers: d.headers,
        body: d.body,
      }),
    ).toMatchObject({
      verified: true,
      event: { kind: 'payment', outTradeNo: input.outTradeNo, totalFen: 4200, payerOpenid: 'o_v2_payer' },
    });

    const status = await provider.queryPayment(input.outTradeNo);
    expect(status).toMatchObject({ state: 'SUCCESS', paid: true, totalFen: 4200 });
    expect(status.paidAtMs).toBeGreaterThan(Date.now() - 60_000);

    const no = uniqueNo('R2');
    expect(
      await provider.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: no,
        refundFen: 200,
        totalFen: 4200,
        notifyUrl: endpoint.url,
      }),
    ).toMatchObject({
      outRefundNo: no,
      status: 'PROCESSING',
    });
    const beforeRefund = endpoint.received.length;
    env.sim.settleRefunds();
    await until(() => endpoint.received.length > beforeRefund, 'the refund notify');
    const r = endpoint.received[beforeRefund]!;
    expect(
      await provider.parseNotification({
        transport: 'http',
        method: 'POST',
        headers: r.headers,
        body: r.body,
      }),
    ).toMatchObject({
      verified: true,
      event: {
        kind: 'refund',
        outRefundNo: no,
        outTradeNo: input.outTradeNo,
        status: 'SUCCESS',
        refundFen: 200,
        totalFen: 4200,
      },
    });
    expect(await provider.queryRefund(no)).toMatchObject({
      status: 'SUCCESS',
      refundFen: 200,
      outTradeNo: input.outTradeNo,
    });
  });

  it('re-signs a stored prepay_id the way the cashier checks it', async () => {
    const { prepayId } = await provider.createPayment(order());
    expect(env.sim.pay(provider.resignPayment(prepayId) as never)).toEqual({ errMsg: 'requestPayment:ok' });
  });

  it('maps REFUNDCLOSE to CLOSED and CHANGE to ABNORMAL', async () => {
    for (const [outcome, status] of [
      ['REFUNDCLOSE', 'CLOSED'],
      ['CHANGE', 'ABNORMAL'],
    ] as const) {
      const input = order();
      env.sim.pay((await provider.createPayment(input)).payment as never);
      const no = uniqueNo('RX');
      await provider.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: no,
        refundFen: 100,
        totalFen: 4200,
      });
      env.sim.setFaults({ refundOutcome: outcome });
      env.sim.settleRefunds();
      env.sim.setFaults({ refundOutcome: 'SUCCESS' });
      expect((await provider.queryRefund(no)).status).toBe(status);
    }
  });

  it('classifies err_code: ORDERNOTEXIST definitive, NOTENOUGH definitive, FREQUENCY_LIMITED rate-limited, SYSTEMERROR transient', async () => {
    expect(await failure(provider.queryPayment('NO_SUCH_V2'))).toMatchObject({
      failure: 'definitive',
      reason: 'ORDER_NOT_FOUND',
      providerCode: 'ORDERNOTEXIST',
    });
    const input = order();
    env.sim.pay((await provider.createPayment(input)).payment as never);
    const refund = () =>
      provider.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: uniqueNo('RE'),
        refundFen: 100,
        totalFen: 4200,
      });
    env.sim.setFaults({ refundError: 'NOTENOUGH' });
    expect(await failure(refund())).toMatchObject({ failure: 'definitive', reason: 'NOT_ENOUGH' });
    env.sim.setFaults({ refundError: 'FREQUENCY_LIMITED' });
    expect(await failure(refund())).toMatchObject({ failure: 'rate-limited', code: 'WXPAY_RATE_LIMITED' });
    env.sim.setFaults({ refundError: null, systemErrorNext: 3 });
    expect(await failure(refund())).toMatchObject({
      failure: 'transient',
      reason: 'SYSTEM_ERROR',
      transient: true,
    });
    env.sim.setFaults({ systemErrorNext: 0 });
  });

  it('closes, and closing again is not an error', async () => {
    const input = order();
    await provider.createPayment(input);
    env.advance(1_000); // past closeorder's 5 minutes (×0.001)
    await provider.closePayment(input.outTradeNo);
    await provider.closePayment(input.outTradeNo);
    expect((await provider.queryPayment(input.outTradeNo)).state).toBe('CLOSED');
  });

  it('refuses a forged pay notify for a real order and says FAIL in XML', async () => {
    const input = order();
    await provider.createPayment(input);
    const forged = signPayNotifyForTest(
      { appid: env.direct.appid, mchId: env.direct.mchId, apiKey: 'x'.repeat(32), signType: 'HMAC-SHA256' },
      { out_trade_no: input.outTradeNo, total_fee: 4200 },
    );
    expect(
      await provider.parseNotification({
        transport: 'http',
        method: 'POST',
        headers: {},
        body: Buffer.from(forged),
      }),
    ).toMatchObject({
      verified: false,
      code: 'BAD_SIGN',
    });
    expect(provider.reply({ ok: false, retry: false, message: 'invalid sign' })).toMatchObject({
      statusCode: 200,
      body: expect.stringContaining('<return_code><![CDATA[FAIL]]></return_code>'),
    });
  });
});

describe('APIv2 in service-provider mode (服务商)', () => {
  it('orders for the sub-merchant with sub_appid and sub_openid, paid with a paySign naming sub_appid', async () => {
    const p = env.v2({ partner: true, subAppid: true });
    const receiver = await startEndpoint(async (d) => {
      const parsed = await p.parseNotification({
        transport: 'http',
        method: 'POST',
        headers: d.headers,
        body: d.body,
      });
      const r = p.reply(parsed.verified ? { ok: true } : { ok: false, retry: false, message: 'no' });
      return r.transport === 'http' ? r : { statusCode: 500 };
    });
    try {
      const input = order({ notifyUrl: receiver.url });
      const { payment } = await p.createPayment(input);
      // WeChat checks the paySign against the appid the order was placed for: the sub-merchant's.
      expect(payment.paySign).toBe(
        paySign(
          {
            appId: SUB.subAppid,
            timeStamp: payment.timeStamp,
            nonceStr: payment.nonceStr,
            package: payment.package,
            signType: 'MD5',
          },
          env.sp.apiKey,
        ).paySign,
      );
      expect(env.sim.pay(payment as never)).toEqual({ errMsg: 'requestPayment:ok' });
      await until(() => receiver.received.length > 0, 'the partner pay notify');
      const notify = parseXml(receiver.received[0]!.body);
      expect(notify).toMatchObject({
        mch_id: SP.mchId,
        sub_mch_id: SUB.subMchId,
        sub_appid: SUB.subAppid,
        sub_openid: 'o_v2_payer',
      });
      expect(notify['openid']).toBeUndefined();
      await until(
        () => env.sim.notifies().some((n) => n.url === receiver.url && n.acknowledged),
        'the notify acknowledged',
      );
      expect(await p.queryPayment(input.outTradeNo)).toMatchObject({
        state: 'SUCCESS',
        payerOpenid: 'o_v2_payer',
      });
      // The sub-merchant's order is not the direct merchant's, nor the provider's own.
      expect(await failure(provider.queryPayment(input.outTradeNo))).toMatchObject({
        reason: 'ORDER_NOT_FOUND',
      });
      const no = uniqueNo('RSP');
      await p.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: no,
        refundFen: 4200,
        totalFen: 4200,
        notifyUrl: receiver.url,
      });
      env.sim.settleRefunds();
      await until(
        () => env.sim.notifies().some((n) => n.kind === 'refund' && n.url === receiver.url && n.acknowledged),
        'the refund notify acknowledged',
      );
      expect((await p.queryRefund(no)).status).toBe('SUCCESS');
    } finally {
      await receiver.close();
    }
  });

  it('refuses a genuine notify signed with the provider key for another of its sub-merchants', async () => {
    const p = env.v2({ partner: true });
    const fields = {
      appid: SP.appid,
      mch_id: SP.mchId,
      sub_mch_id: '1900000129',
      nonce_str: 'n',
      result_code: 'SUCCESS',
      return_code: 'SUCCESS',
      openid: 'o',
      out_trade_no: 'T1',
      total_fee: 1,
      transaction_id: '4200000000000000000000000001',
      time_end: '20260101120000',
    };
    const xml = toXml({ ...fields, sign: sign(fields, env.sp.apiKey, 'MD5') });
    expect(verify({ ...fields, sign: sign(fields, env.sp.apiKey, 'MD5') }, env.sp.apiKey, 'MD5')).toBe(true);
    expect(
      await p.parseNotification({ transport: 'http', method: 'POST', headers: {}, body: Buffer.from(xml) }),
    ).toMatchObject({
      verified: false,
      code: 'MERCHANT_MISMATCH',
      message: 'sub_mch_id mismatch',
    });
    const mine = toXml({
      ...fields,
      sub_mch_id: SUB.subMchId,
      sign: sign({ ...fields, sub_mch_id: SUB.subMchId }, env.sp.apiKey, 'MD5'),
    });
    expect(
      (await p.parseNotification({ transport: 'http', method: 'POST', headers: {}, body: Buffer.from(mine) }))
        .verified,
    ).toBe(true);
  });

  it("keeps each sub-merchant's out_trade_no space apart", async () => {
    const { createWxPayClient } = await import('../../cloudfunctions/shared/wxpay');
    const { readFileSync } = await import('node:fs');
    const placed = order();
    await env.v2({ partner: true }).createPayment(placed);
    // The provider's second sub-merchant asks about the first one's order number …
    const other = createV2Provider({
      client: createWxPayClient({
        appid: SP.appid,
        mchId: SP.mchId,
        apiKey: env.sp.apiKey,
        signType: 'MD5',
        baseUrl: env.sim.url,
        caPem: env.caPem,
        subMchId: '1900000129',
        cert: {
          certPem: readFileSync(env.spCerts.certPath, 'utf8'),
          keyPem: readFileSync(env.spCerts.keyPath, 'utf8'),
        },
        sleep: async () => {},
      }),
      appid: SP.appid,
      mchId: SP.mchId,
      apiKey: env.sp.apiKey,
      signType: 'MD5',
      subMchId: '1900000129',
      now: Date.now,
      nonce: () => 'n',
    });
    // … and that sub-merchant has no such order: its out_trade_no space is its own.
    expect(await failure(other.queryPayment(placed.outTradeNo))).toMatchObject({ reason: 'ORDER_NOT_FOUND' });
  });
});
