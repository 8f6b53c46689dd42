/**
 * cloudPay through the real wx-server-sdk: `cloud.cloudPay.*` goes to the CloudBase emulator
 * as the SDK sends it (multipart `wx.wxPayApi`), the emulator hands it to the simulator's
 * cloudPay side, and the pay and refund callbacks invoke the named function. The provider
 * judges returnCode/resultCode, not the SDK's errCode, and believes a callback only once
 * queryOrder / queryRefund say the same.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CreatePaymentInput,
  createCloudPayProvider,
  type PaymentProvider,
  ProviderError,
} from '../../cloudfunctions/shared/providers';
import type { CloudPayApi } from '../../cloudfunctions/shared/providers/cloudpay';
import { nonceStr } from '../../cloudfunctions/shared/wxpay';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import type { WxPayApiCall } from '../../sandbox/tcb/wxpayapi';
import { connectSdk, type Sdk } from '../emulator/sdk';
import { DIRECT, startV3Env, uniqueNo, until, type V3Env } from './fixtures';

/** From any time of a day to past 10:00 of the next (Beijing): 34 hours. */
const NEXT_MORNING_MS = 34 * 3600_000;

let env: V3Env;
let emulator: TcbEmulator;
let sdk: Sdk;
let provider: PaymentProvider;
const calls: WxPayApiCall[] = [];
/** The callbacks the platform made: function name, event, what the function answered. */
const callbacks: { fn: string; event: Record<string, unknown>; result: unknown }[] = [];
let callbackAnswer: (fn: string, event: Record<string, unknown>) => Promise<unknown>;

beforeAll(async () => {
  env = await startV3Env({
    sim: { cloudPay: { bound: [{ subMchId: DIRECT.mchId, subAppid: DIRECT.appid }] } },
  });
  emulator = await startTcbEmulator({
    wxPayApi: (call) => {
      calls.push(call);
      return env.sim.cloudPay(call);
    },
  });
  sdk = connectSdk(emulator.serviceUrl);
  provider = createCloudPayProvider({
    api: sdk.cloud.cloudPay as CloudPayApi,
    subMchId: DIRECT.mchId,
    envId: 'test',
    payFunction: 'payNotify',
    refundFunction: 'refundNotify',
    now: Date.now,
    nonce: () => nonceStr(32),
  });
  // What the two callback functions would do: let the provider read the event and answer.
  callbackAnswer = async (_fn, event) => {
    const parsed = await provider.parseNotification({
      transport: 'function',
      event,
      source: 'wx_paycallback',
    });
    const reply = provider.reply(
      parsed.verified ? { ok: true } : { ok: false, retry: parsed.retry, message: parsed.code },
    );
    return reply.transport === 'function' ? reply.value : null;
  };
  env.sim.setFunctionInvoker(async (fn, event) => {
    const result = await callbackAnswer(fn, event);
    callbacks.push({ fn, event, result });
    return result;
  });
});
afterAll(async () => {
  await emulator?.close();
  await env?.close();
});

function order(over: Partial<CreatePaymentInput> = {}): CreatePaymentInput {
  return {
    outTradeNo: uniqueNo('CP'),
    description: '小店-普洱',
    totalFen: 9900,
    payerOpenid: 'o_cloudpay_payer',
    clientIp: '127.0.0.1',
    expiresAtMs: Date.now() + 30 * 60_000,
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

describe('the wire format the real SDK sends', () => {
  it('is a multipart wx.wxPayApi call with snake_case requestData, and the appid in apiOptions when named', async () => {
    const before = calls.length;
    await sdk.cloud.cloudPay.queryOrder({ subMchId: DIRECT.mchId, nonceStr: 'n1', outTradeNo: 'WIRE1' });
    expect(calls[before]).toEqual({
      apiName: 'queryOrder',
      data: { sub_mch_id: DIRECT.mchId, nonce_str: 'n1', out_trade_no: 'WIRE1' },
      envName: 'test',
    });
    await sdk.cloud
      .cloudPay({ appid: DIRECT.appid })
      .queryOrder({ subMchId: DIRECT.mchId, nonceStr: 'n2', outTradeNo: 'WIRE2' });
    expect(calls[before + 1]).toMatchObject({ apiName: 'queryOrder', appid: DIRECT.appid });
  });

  it("resolves with errCode 0 even when WeChat said FAIL, and WeChat's err_code is lost", async () => {
    const res = await sdk.cloud.cloudPay.queryOrder({
      subMchId: DIRECT.mchId,
      nonceStr: 'n3',
      outTradeNo: 'NO_SUCH_CP',
    });
    expect(res).toMatchObject({
      errCode: 0,
      errMsg: 'cloudPay.queryOrder:ok',
      returnCode: 'SUCCESS',
      resultCode: 'FAIL',
      errCodeDes: '订单不存在',
    });
    const unbound = await sdk.cloud.cloudPay.queryOrder({
      subMchId: '1999999999',
      nonceStr: 'n4',
      outTradeNo: 'X',
    });
    expect(unbound).toMatchObject({ errCode: 0, returnCode: 'FAIL', returnMsg: '受理关系不存在' });
  });
});

describe('cloudPay behind the port', () => {
  it('orders, is paid, is called back, confirms by query, refunds and is called back again', async () => {
    const input = order();
    const { prepayId, payment } = await provider.createPayment(input);
    // The platform's own payment object, passed through: MD5, signed by Tencent's provider.
    expect(payment).toMatchObject({ signType: 'MD5', package: `prepay_id=${prepayId}` });
    const placed = calls.at(-1)!;
    expect(placed.apiName).toBe('unifiedOrder');
    expect(placed.data).toMatchObject({
      env_id: 'test',
      function_name: 'payNotify',
      total_fee: 9900,
      sub_mch_id: DIRECT.mchId,
    });

    const before = callbacks.length;
    expect(env.sim.pay(payment as never)).toEqual({ errMsg: 'requestPayment:ok' });
    await until(() => callbacks.length > before, 'the pay callback');
    const cb = callbacks[before]!;
    expect(cb.fn).toBe('payNotify');
    expect(cb.event).toMatchObject({
      returnCode: 'SUCCESS',
      resultCode: 'SUCCESS',
      subMchId: DIRECT.mchId,
      outTradeNo: input.outTradeNo,
      totalFee: 9900,
    });
    expect(cb.event['sign']).toBeUndefined();
    expect(cb.result).toEqual({ errcode: 0, errmsg: 'OK' });
    await until(
      () => env.sim.notifies().some((n) => n.transport === 'function' && n.acknowledged),
      'the callback acknowledged',
    );

    const status = await provider.queryPayment(input.outTradeNo);
    expect(status).toMatchObject({
      state: 'SUCCESS',
      paid: true,
      totalFen: 9900,
      payerOpenid: 'o_cloudpay_payer',
    });

    const no = uniqueNo('RCP');
    expect(
      await provider.refund({
        outTradeNo: input.outTradeNo,
        outRefundNo: no,
        refundFen: 900,
        totalFen: 9900,
        reason: '少了一包',
      }),
    ).toMatchObject({
      outRefundNo: no,
      status: 'PROCESSING',
    });
    expect(calls.at(-1)!.data).toMatchObject({ function_name: 'refundNotify', out_refund_no: no });
    const beforeRefund = callbacks.length;
    env.sim.settleRefunds();
    await until(() => callbacks.length > beforeRefund, 'the refund callback');
    expect(callbacks[beforeRefund]).toMatchObject({
      fn: 'refundNotify',
      event: { outRefundNo: no, refundStatus: 'SUCCESS' },
      result: { errcode: 0 },
    });
    expect(await provider.queryRefund(no)).toMatchObject({
      status: 'SUCCESS',
      refundFen: 900,
      outTradeNo: input.outTradeNo,
    });
  });

  it('believes a callback only when the query agrees', async () => {
    const input = order();
    await provider.createPayment(input);
    const forged = {
      returnCode: 'SUCCESS',
      resultCode: 'SUCCESS',
      subMchId: DIRECT.mchId,
      outTradeNo: input.outTradeNo,
      totalFee: 9900,
      transactionId: '4200000000000000000000000000',
    };
    // The order exists but is not paid: WeChat's answer wins, and the platform is asked to retry.
    expect(
      await provider.parseNotification({ transport: 'function', event: forged, source: 'wx_paycallback' }),
    ).toMatchObject({
      verified: false,
      code: 'NOT_CONFIRMED',
      retry: true,
    });
    expect(provider.reply({ ok: false, retry: true, message: 'NOT_CONFIRMED' })).toEqual({
      transport: 'function',
      value: { errcode: -1, errmsg: 'NOT_CONFIRMED' },
    });
    // Paid, but the callback claims another amount.
    const paid = order();
    const { payment } = await provider.createPayment(paid);
    env.sim.pay(payment as never);
    expect(
      await provider.parseNotification({
        transport: 'function',
        event: { ...forged, outTradeNo: paid.outTradeNo, totalFee: 1 },
        source: 'wx_paycallback',
      }),
    ).toMatchObject({ verified: false, code: 'MISMATCH' });
    // Not from the platform at all: a mini-program user calling the function.
    expect(
      await provider.parseNotification({ transport: 'function', event: forged, source: 'wx_client' }),
    ).toMatchObject({
      verified: false,
      code: 'NOT_A_CALLBACK',
    });
    expect(
      await provider.parseNotification({
        transport: 'function',
        event: { ...forged, subMchId: '1999999999' },
        source: 'wx_paycallback',
      }),
    ).toMatchObject({ verified: false, code: 'MERCHANT_MISMATCH' });
  });

  it('retries a callback the function did not answer with errcode 0', async () => {
    const input = order();
    const { payment } = await provider.createPayment(input);
    let n = 0;
    const real = callbackAnswer;
    callbackAnswer = async (fn, event) => (++n < 3 ? { errcode: 1, errmsg: 'busy' } : real(fn, event));
    try {
      env.sim.pay(payment as never);
      await until(
        () =>
          env.sim
            .notifies()
            .some((r) => r.transport === 'function' && r.acknowledged && r.body.includes(input.outTradeNo)),
        'the third attempt acknowledged',
      );
      expect(
        env.sim
          .notifies()
          .filter((r) => r.body.includes(input.outTradeNo))
          .map((r) => [r.attempt, r.acknowledged]),
      ).toEqual([
        [1, false],
        [2, false],
        [3, true],
      ]);
    } finally {
      callbackAnswer = real;
    }
  });

  it("classifies failures from WeChat's text, since err_code does not survive the SDK", async () => {
    expect(await failure(provider.queryPayment('NO_SUCH_CP_2'))).toMatchObject({
      failure: 'definitive',
      reason: 'ORDER_NOT_FOUND',
    });
    const input = order();
    env.sim.pay((await provider.createPayment(input)).payment as never);
    env.sim.setFaults({ refundError: 'NOTENOUGH' });
    expect(
      await failure(
        provider.refund({
          outTradeNo: input.outTradeNo,
          outRefundNo: uniqueNo('RN'),
          refundFen: 1,
          totalFen: 9900,
        }),
      ),
    ).toMatchObject({
      failure: 'definitive',
      reason: 'NOT_ENOUGH',
    });
    env.sim.setFaults({ refundError: 'FREQUENCY_LIMITED' });
    expect(
      await failure(
        provider.refund({
          outTradeNo: input.outTradeNo,
          outRefundNo: uniqueNo('RF'),
          refundFen: 1,
          totalFen: 9900,
        }),
      ),
    ).toMatchObject({
      failure: 'rate-limited',
    });
    env.sim.setFaults({ refundError: null, systemErrorNext: 1 });
    expect(await failure(provider.queryPayment(input.outTradeNo))).toMatchObject({
      failure: 'transient',
      reason: 'SYSTEM_ERROR',
    });
    const unbound = createCloudPayProvider({
      api: sdk.cloud.cloudPay as CloudPayApi,
      subMchId: '1999999999',
      envId: 'test',
      payFunction: 'payNotify',
      refundFunction: 'refundNotify',
      now: Date.now,
      nonce: () => 'n',
    });
    expect(await failure(unbound.queryPayment('X'))).toMatchObject({
      failure: 'definitive',
      reason: 'NO_AUTH',
      providerCode: 'RETURN_FAIL',
    });
  });

  it("keeps cloudPay orders out of the merchant's own API, as at WeChat", async () => {
    const input = order();
    env.sim.pay((await provider.createPayment(input)).payment as never);
    expect(await failure(env.v2().queryPayment(input.outTradeNo))).toMatchObject({
      reason: 'ORDER_NOT_FOUND',
    });
  });

  it('closes, downloads the bill as CSV, and cannot re-sign a payment locally', async () => {
    const input = order();
    await provider.createPayment(input);
    env.advance(1_000); // past closeorder's 5 minutes (×0.001)
    await provider.closePayment(input.outTradeNo);
    await provider.closePayment(input.outTradeNo);
    expect((await provider.queryPayment(input.outTradeNo)).state).toBe('CLOSED');
    const paid = order();
    env.sim.pay((await provider.createPayment(paid)).payment as never);
    const today = new Date(env.sim.now() + 8 * 3600_000).toISOString().slice(0, 10);
    // WeChat makes a day's bill from 10:00 the next day (Beijing): look then, and come back.
    env.sim.setClockOffset(NEXT_MORNING_MS);
    try {
      expect(await provider.downloadBill(today)).toContain(paid.outTradeNo);
    } finally {
      env.sim.setClockOffset(0);
    }
    expect(provider.capabilities).toMatchObject({
      canResignPayment: false,
      notifyTransport: 'function',
      unsignedCallbacks: true,
    });
    expect(() => provider.resignPayment('wx1')).toThrow(ProviderError);
  });
});
