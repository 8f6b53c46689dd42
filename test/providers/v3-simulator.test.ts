/**
 * The APIv3 provider against the simulator's v3 side: JSAPI → pay → signed, encrypted notify
 * → query → refund → refund notify → query, for a direct merchant and a service provider;
 * every answer verified by the provider, every failure classified.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CreatePaymentInput,
  type PaymentProvider,
  ProviderError,
} from '../../cloudfunctions/shared/providers';
import type { V3Client } from '../../cloudfunctions/shared/providers/v3/client';
import { paySignMessage, verifySha256Rsa } from '../../cloudfunctions/shared/providers/v3/crypto';
import { VerifierKeys } from '../../cloudfunctions/shared/providers/v3/keys';
import { createV3Provider } from '../../cloudfunctions/shared/providers/v3/provider';
import {
  DIRECT,
  type Endpoint,
  SUB,
  startEndpoint,
  startV3Env,
  uniqueNo,
  until,
  type V3Env,
} from './fixtures';

/** From any time of a day to past 10:00 of the next (Beijing): 34 hours. */
const NEXT_MORNING_MS = 34 * 3600_000;

let env: V3Env;
let endpoint: Endpoint;
let provider: PaymentProvider;

beforeAll(async () => {
  env = await startV3Env();
  provider = env.v3();
  endpoint = await startEndpoint(
    async (d) =>
      provider.reply(
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
      ) as never,
  );
});
afterAll(async () => {
  await env?.close();
  await endpoint?.close();
});

function order(over: Partial<CreatePaymentInput> = {}): CreatePaymentInput {
  return {
    outTradeNo: uniqueNo('V3'),
    description: '小店-西湖龙井',
    totalFen: 6800,
    payerOpenid: 'o_v3_payer',
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

describe('APIv3 against the simulator (direct merchant)', () => {
  it('orders, is paid with an RSA paySign, hears the notify, queries, refunds and hears the refund', async () => {
    const input = order();
    const { prepayId, payment } = await provider.createPayment(input);
    expect(prepayId).toMatch(/^wx/);
    expect(payment).toMatchObject({ signType: 'RSA', package: `prepay_id=${prepayId}` });
    // The paySign is the merchant's RSA signature over appId, timeStamp, nonceStr, package.
    const merchantPublic = createPublicKey(createPrivateKey(readFileSync(env.certs.keyPath)));
    expect(
      verifySha256Rsa(
        paySignMessage(DIRECT.appid, payment.timeStamp, payment.nonceStr, payment.package),
        payment.paySign,
        merchantPublic,
      ),
    ).toBe(true);

    // Re-entering with the same parameters gives the same prepay_id.
    expect((await provider.createPayment(input)).prepayId).toBe(prepayId);

    const before = endpoint.received.length;
    expect(env.sim.pay(payment as never)).toEqual({ errMsg: 'requestPayment:ok' });
    await until(() => endpoint.received.length > before, 'the pay notify');
    const delivered = endpoint.received[before]!;
    const parsed = await env.v3().parseNotification({
      transport: 'http',
      method: 'POST',
      headers: delivered.headers,
      body: delivered.body,
    });
    // (a fresh provider: the receiver's own provider has already used this nonce)
    expect(parsed).toMatchObject({
      verified: true,
      event: { kind: 'payment', outTradeNo: input.outTradeNo, totalFen: 6800 },
    });
    await until(
      () =>
        env.sim
          .notifies()
          .some((n) => n.kind === 'pay' && n.body === delivered.body.toString() && n.acknowledged),
      'the notify to be acknowledged with 204',
    );

    const status = await provider.queryPayment(input.outTradeNo);
    expect(status).toMatchObject({ state: 'SUCCESS', paid: true, totalFen: 6800, payerOpenid: 'o_v3_payer' });
    expect(status.paidAtMs).toBeGreaterThan(Date.now() - 60_000);
    expect(status.transactionId).toMatch(/^4200/);

    const refundNo = uniqueNo('R3');
    const accepted = await provider.refund({
      outTradeNo: input.outTradeNo,
      outRefundNo: refundNo,
      refundFen: 1800,
      totalFen: 6800,
      reason: '不想要了',
      notifyUrl: endpoint.url,
    });
    expect(accepted).toMatchObject({ outRefundNo: refundNo, status: 'PROCESSING' });
    expect(accepted.refundId).not.toBe('');
    // The same out_refund_no again refunds once and answers about the same refund.
    expect(
      (
        await provider.refund({
          outTradeNo: input.outTradeNo,
          outRefundNo: refundNo,
          refundFen: 1800,
          totalFen: 6800,
        })
      ).refundId,
    ).toBe(accepted.refundId);

    const beforeRefund = endpoint.received.length;
    env.sim.settleRefunds();
    await until(() => endpoint.received.length > beforeRefund, 'the refund notify');
    const refundNotify = endpoint.received[beforeRefund]!;
    expect(
      await env.v3().parseNotification({
        transport: 'http',
        method: 'POST',
        headers: refundNotify.headers,
        body: refundNotify.body,
      }),
    ).toMatchObject({
      verified: true,
      event: { kind: 'refund', outRefundNo: refundNo, status: 'SUCCESS', refundFen: 1800 },
    });

    expect(await provider.queryRefund(refundNo)).toMatchObject({
      outRefundNo: refundNo,
      outTradeNo: input.outTradeNo,
      status: 'SUCCESS',
      refundFen: 1800,
      totalFen: 6800,
    });
  });

  it('closes an unpaid order with 204, and a second close is not an error', async () => {
    const input = order();
    await provider.createPayment(input);
    env.advance(1_000); // past closeorder's 5 minutes (×0.001)
    await provider.closePayment(input.outTradeNo);
    expect((await provider.queryPayment(input.outTradeNo)).state).toBe('CLOSED');
    await provider.closePayment(input.outTradeNo);
  });

  it('reports REFUNDCLOSE and CHANGE as CLOSED and ABNORMAL, in the query and the notify', async () => {
    for (const [outcome, status, event] of [
      ['REFUNDCLOSE', 'CLOSED', 'REFUND.CLOSED'],
      ['CHANGE', 'ABNORMAL', 'REFUND.ABNORMAL'],
    ] as const) {
      const input = order();
      const { payment } = await provider.createPayment(input);
      env.sim.pay(payment as never);
      const no = uniqueNo('RC');
      await provider.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: no,
        refundFen: 100,
        totalFen: 6800,
        notifyUrl: endpoint.url,
      });
      env.sim.setFaults({ refundOutcome: outcome });
      const before = endpoint.received.length;
      env.sim.settleRefunds();
      env.sim.setFaults({ refundOutcome: 'SUCCESS' });
      expect((await provider.queryRefund(no)).status).toBe(status);
      await until(
        () => endpoint.received.slice(before).some((d) => d.body.toString().includes(event)),
        `the ${event} notify`,
      );
    }
  });

  it('classifies failures: not found, not enough, rate limited, system errors retried with the same body', async () => {
    expect(await failure(provider.queryPayment('NO_SUCH_ORDER_1'))).toMatchObject({
      failure: 'definitive',
      reason: 'ORDER_NOT_FOUND',
      providerCode: 'ORDER_NOT_EXIST',
      httpStatus: 404,
    });
    expect(await failure(provider.queryRefund('NO_SUCH_REFUND_1'))).toMatchObject({
      reason: 'REFUND_NOT_FOUND',
    });

    const input = order();
    const { payment } = await provider.createPayment(input);
    env.sim.pay(payment as never);
    const refund = (no: string) =>
      provider.refund({ outTradeNo: input.outTradeNo, outRefundNo: no, refundFen: 100, totalFen: 6800 });
    env.sim.setFaults({ refundError: 'NOTENOUGH' });
    expect(await failure(refund(uniqueNo('RN')))).toMatchObject({
      failure: 'definitive',
      reason: 'NOT_ENOUGH',
      httpStatus: 403,
      code: 'WXPAY_ERROR',
    });
    env.sim.setFaults({ refundError: 'FREQUENCY_LIMITED' });
    expect(await failure(refund(uniqueNo('RF')))).toMatchObject({
      failure: 'rate-limited',
      httpStatus: 429,
      code: 'WXPAY_RATE_LIMITED',
    });
    env.sim.setFaults({ refundError: null });

    // Two SYSTEM_ERRORs, then success: the client's third attempt wins.
    env.sim.setFaults({ systemErrorNext: 2 });
    expect((await refund(uniqueNo('RS'))).status).toBe('PROCESSING');
    env.sim.setFaults({ systemErrorNext: 3 });
    expect(await failure(refund(uniqueNo('RT')))).toMatchObject({
      failure: 'transient',
      reason: 'SYSTEM_ERROR',
      httpStatus: 500,
    });
    env.sim.setFaults({ systemErrorNext: 0 });
  });

  it('treats a lost answer as transient, and re-entry finds the order it created', async () => {
    const quick = env.v3({ client: { totalTimeoutMs: 300, maxAttempts: 1 } });
    const input = order();
    env.sim.setFaults({ hangAfterEffectRate: { '/pay/unifiedorder': 1 } });
    expect(await failure(quick.createPayment(input))).toMatchObject({
      failure: 'transient',
      reason: 'NETWORK',
    });
    env.sim.setFaults({ hangAfterEffectRate: 0 });
    expect((await provider.queryPayment(input.outTradeNo)).state).toBe('NOTPAY');
    expect((await provider.createPayment(input)).prepayId).toMatch(/^wx/);
  });
});

describe('APIv3 answer verification', () => {
  it('asks for public-key signatures with Wechatpay-Serial: a wrong certificate key is never consulted', async () => {
    const bogus = createPublicKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const verifiers = [
      ...env.verifiers({ publicKey: true }),
      { serial: env.sim.v3!.platformSerial!, kind: 'platform-certificate' as const, key: bogus },
    ];
    expect((await env.v3({ verifiers }).createPayment(order())).prepayId).toMatch(/^wx/);
  });

  it('works with the platform certificate alone (no public key, no Wechatpay-Serial sent)', async () => {
    expect(
      (await env.v3({ verifiers: env.verifiers({ certificate: true }) }).createPayment(order())).prepayId,
    ).toMatch(/^wx/);
  });

  it('refuses an answer signed by a key it does not hold, as an unknown outcome', async () => {
    const e = await failure(
      env
        .v3({
          verifiers: env
            .verifiers({ certificate: true, publicKey: false })
            .map((v) => ({ ...v, serial: 'ABCDEF' })),
        })
        .createPayment(order()),
    );
    expect(e).toMatchObject({ failure: 'transient', reason: 'BAD_RESPONSE', providerCode: 'UNKNOWN_SERIAL' });
  });

  it('refuses an answer whose signature does not verify under the serial it names', async () => {
    const bogus = createPublicKey(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const e = await failure(
      env
        .v3({ verifiers: [{ serial: env.sim.v3!.publicKeyId!, kind: 'public-key', key: bogus }] })
        .createPayment(order()),
    );
    expect(e).toMatchObject({ failure: 'transient', providerCode: 'BAD_SIGNATURE' });
  });

  it('is refused by WeChat with 401 SIGN_ERROR when the request is signed with another key', async () => {
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const e = await failure(env.v3({ client: { privateKey: stranger } }).queryPayment('X2'));
    expect(e).toMatchObject({ failure: 'definitive', reason: 'SIGN_ERROR', httpStatus: 401 });
  });
});

describe('APIv3 as a service provider (服务商)', () => {
  it('orders for the sub-merchant with sub_openid, is paid, notified, queried and refunded on the partner paths', async () => {
    const p = env.v3({ merchant: 'partner' });
    const receiver = await startEndpoint();
    try {
      const input = order({ notifyUrl: receiver.url });
      const { payment } = await p.createPayment(input);
      const spPublic = createPublicKey(createPrivateKey(readFileSync(env.spCerts.keyPath)));
      // The paySign names the sub-merchant's mini program and is made with the provider's key.
      expect(
        verifySha256Rsa(
          paySignMessage(SUB.subAppid, payment.timeStamp, payment.nonceStr, payment.package),
          payment.paySign,
          spPublic,
        ),
      ).toBe(true);
      expect(env.sim.pay(payment as never)).toEqual({ errMsg: 'requestPayment:ok' });
      await until(() => receiver.received.length > 0, 'the partner pay notify');
      const d = receiver.received[0]!;
      expect(
        await p.parseNotification({ transport: 'http', method: 'POST', headers: d.headers, body: d.body }),
      ).toMatchObject({
        verified: true,
        event: { kind: 'payment', outTradeNo: input.outTradeNo, payerOpenid: 'o_v3_payer' },
      });
      expect(await p.queryPayment(input.outTradeNo)).toMatchObject({
        state: 'SUCCESS',
        payerOpenid: 'o_v3_payer',
      });
      // The order is the sub-merchant's: the direct merchant's API does not see it.
      expect(await failure(provider.queryPayment(input.outTradeNo))).toMatchObject({
        reason: 'ORDER_NOT_FOUND',
      });
      const no = uniqueNo('RP');
      await p.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: no,
        refundFen: 6800,
        totalFen: 6800,
        notifyUrl: receiver.url,
      });
      env.sim.settleRefunds();
      await until(() => receiver.received.length > 1, 'the partner refund notify');
      const r = receiver.received[1]!;
      expect(
        await p.parseNotification({ transport: 'http', method: 'POST', headers: r.headers, body: r.body }),
      ).toMatchObject({
        verified: true,
        event: { kind: 'refund', outRefundNo: no, status: 'SUCCESS' },
      });
      expect((await p.queryRefund(no)).status).toBe('SUCCESS');
    } finally {
      await receiver.close();
    }
  });
});

describe('the trade bill', () => {
  it("downloads the day's bill and checks its SHA1 against hash_value", async () => {
    const input = order();
    const { payment } = await provider.createPayment(input);
    env.sim.pay(payment as never);
    const today = new Date(env.sim.now() + 8 * 3600_000).toISOString().slice(0, 10);
    // WeChat makes a day's bill from 10:00 the next day (Beijing): look then, and come back.
    env.sim.setClockOffset(NEXT_MORNING_MS);
    let csv: string;
    try {
      csv = await provider.downloadBill(today);
    } finally {
      env.sim.setClockOffset(0);
    }
    expect(csv).toContain(input.outTradeNo);
    expect(csv.split('\n')[0]).toMatch(/^\ufeff?交易时间,/);
  });

  it('refuses a file whose SHA1 differs from the signed hash_value', async () => {
    const client: V3Client = {
      mchid: DIRECT.mchId,
      authorize: () => '',
      call: async () => ({
        status: 200,
        raw: Buffer.alloc(0),
        requestId: undefined,
        json: {
          hash_type: 'SHA1',
          hash_value: 'a'.repeat(40),
          download_url: 'https://api.mch.weixin.qq.com/v3/billdownload/file?token=t',
        },
      }),
      download: async () => Buffer.from('交易时间,公众账号ID\r\n'),
    };
    const p = createV3Provider({
      client,
      merchant: { kind: 'direct', appid: DIRECT.appid, mchid: DIRECT.mchId },
      apiV3Key: env.material.apiV3Key,
      privateKey: createPrivateKey(readFileSync(env.certs.keyPath)),
      verifiers: new VerifierKeys([]),
      now: Date.now,
      nonce: () => 'n',
    });
    expect(await failure(p.downloadBill('2026-01-01'))).toMatchObject({
      reason: 'BAD_RESPONSE',
      description: expect.stringMatching(/SHA1/),
    });
  });
});

describe('APIv3 notifies from the simulator', () => {
  it("are retried on WeChat's schedule until 200/204, each attempt signed anew", async () => {
    const p = env.v3();
    const receiver = await startEndpoint(async (d, n) => {
      if (n < 3)
        return {
          statusCode: 500,
          headers: { 'content-type': 'application/json' },
          body: '{"code":"FAIL","message":"busy"}',
        };
      const parsed = await p.parseNotification({
        transport: 'http',
        method: d.method,
        headers: d.headers,
        body: d.body,
      });
      return p.reply(parsed.verified ? { ok: true } : { ok: false, retry: false, message: 'no' }) as never;
    });
    try {
      const { payment } = await provider.createPayment(order({ notifyUrl: receiver.url }));
      env.sim.pay(payment as never);
      await until(
        () => env.sim.notifies().some((n) => n.url === receiver.url && n.acknowledged),
        'an acknowledged attempt',
      );
      await new Promise((r) => setTimeout(r, 200));
      const attempts = env.sim.notifies().filter((n) => n.url === receiver.url);
      expect(attempts.map((a) => [a.attempt, a.replyStatus, a.acknowledged])).toEqual([
        [1, 500, false],
        [2, 500, false],
        [3, 204, true],
      ]);
      const nonces = receiver.received.map((d) => d.headers['wechatpay-nonce']);
      expect(new Set(nonces).size).toBe(3);
      expect(receiver.received.every((d) => d.body.equals(receiver.received[0]!.body))).toBe(true);
    } finally {
      await receiver.close();
    }
  });

  it('are signed by the platform certificate when the simulator is told so, and a merchant holding both keys accepts both', async () => {
    const certEnv = await startV3Env({ v3: { notifySigner: 'platform-certificate' } });
    const receiver = await startEndpoint();
    try {
      const both = certEnv.v3({ verifiers: certEnv.verifiers({ publicKey: true, certificate: true }) });
      const onlyPublic = certEnv.v3({ verifiers: certEnv.verifiers({ publicKey: true }) });
      const { payment } = await both.createPayment(order({ notifyUrl: receiver.url }));
      certEnv.sim.pay(payment as never);
      await until(() => receiver.received.length > 0, 'the notify');
      const d = receiver.received[0]!;
      expect(d.headers['wechatpay-serial']).toBe(certEnv.sim.v3!.platformSerial);
      const input = { transport: 'http' as const, method: 'POST', headers: d.headers, body: d.body };
      expect((await both.parseNotification(input)).verified).toBe(true);
      expect(await onlyPublic.parseNotification(input)).toMatchObject({
        verified: false,
        code: 'UNKNOWN_SERIAL',
      });
    } finally {
      await receiver.close();
      await certEnv.close();
    }
  });
});

describe("APIv2's faults on the APIv3 side", () => {
  it('drops, duplicates and times out as configured', async () => {
    const receiver = await startEndpoint();
    try {
      env.sim.setFaults({ dropPayNotifies: true });
      const dropped = order({ notifyUrl: receiver.url });
      env.sim.pay((await provider.createPayment(dropped)).payment as never);
      expect(env.sim.notifies().filter((n) => n.url === receiver.url)).toMatchObject([
        { transport: 'v3', dropped: true },
      ]);
      env.sim.setFaults({ dropPayNotifies: false, duplicateNotifies: 1 });
      env.sim.pay((await provider.createPayment(order({ notifyUrl: receiver.url }))).payment as never);
      await until(() => receiver.received.length === 2, 'the notify and its duplicate');
      expect(receiver.received[0]!.headers['wechatpay-nonce']).not.toBe(
        receiver.received[1]!.headers['wechatpay-nonce'],
      );
      expect(receiver.received[0]!.body.equals(receiver.received[1]!.body)).toBe(true);
      env.sim.setFaults({ duplicateNotifies: 0, timeoutRate: { '/pay/orderquery': 1 } });
      const quick = env.v3({ client: { totalTimeoutMs: 300, maxAttempts: 1 } });
      expect(await failure(quick.queryPayment(dropped.outTradeNo))).toMatchObject({
        failure: 'transient',
        reason: 'NETWORK',
      });
    } finally {
      env.sim.setFaults({ dropPayNotifies: false, duplicateNotifies: 0, timeoutRate: 0 });
      await receiver.close();
    }
  });
});
