/**
 * APIv3's and cloudPay's time budget, as APIv2's (test/unit/wxpay/deadline.test.ts): a call
 * ends by its deadline (the function's remaining time), attempts are cut to fit, no retry
 * starts that could not finish, and a cloudPay call the platform does not answer in time is
 * given up as an unknown outcome. Fake clocks and in-process edges: nothing waits on real time
 * except the one cloudPay wait, which is short.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type CloudPayApi,
  createCloudPayProvider,
  ProviderError,
} from '../../cloudfunctions/shared/providers';
import { createV3Client } from '../../cloudfunctions/shared/providers/v3/client';
import { VerifierKeys } from '../../cloudfunctions/shared/providers/v3/keys';
import { HttpFailure, type RequestOptions } from '../../cloudfunctions/shared/wxpay/http';

function v3Rig() {
  let clock = 1_000_000;
  const attempts: RequestOptions[] = [];
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const client = createV3Client({
    mchid: '1900000109',
    merchantSerial: 'ABCDEF',
    privateKey,
    verifiers: new VerifierKeys([{ serial: 'PUB_KEY_ID_1', kind: 'public-key', key: publicKey }]),
    baseUrl: 'http://127.0.0.1:9',
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
    transport: async (_url, o) => {
      attempts.push(o);
      clock += o.totalTimeoutMs;
      throw new HttpFailure('timeout', 'no answer');
    },
  });
  return { client, attempts, now: () => clock };
}

describe('the APIv3 client under a deadline', () => {
  it('cuts the last attempt to the deadline and starts none past it', async () => {
    const { client, attempts, now } = v3Rig();
    const start = now();
    const e = await client
      .call('GET', '/v3/pay/transactions/out-trade-no/T1?mchid=1900000109', undefined, {
        operation: 'query',
        deadlineMs: start + 13_500,
      })
      .catch((x) => x);
    expect(e).toBeInstanceOf(ProviderError);
    expect(e).toMatchObject({ failure: 'transient', reason: 'NETWORK' });
    expect(attempts.map((a) => a.totalTimeoutMs)).toEqual([8000, 5300]);
    expect(now()).toBeLessThanOrEqual(start + 13_500);
  });

  it('makes no call at all with less than a useful attempt left', async () => {
    const { client, attempts, now } = v3Rig();
    const e = await client
      .call('GET', '/v3/pay/transactions/out-trade-no/T1?mchid=1900000109', undefined, {
        operation: 'query',
        deadlineMs: now() + 100,
      })
      .catch((x) => x);
    expect(e).toMatchObject({ failure: 'transient', reason: 'NETWORK' });
    expect(attempts).toEqual([]);
  });
});

describe('cloudPay under a deadline', () => {
  it('gives up waiting for the platform by the deadline: an unknown outcome, not a refusal', async () => {
    const never = () => new Promise<Record<string, unknown>>(() => {});
    const api: CloudPayApi = {
      unifiedOrder: never,
      queryOrder: never,
      closeOrder: never,
      refund: never,
      queryRefund: never,
      downloadBill: never,
    };
    const provider = createCloudPayProvider({
      api,
      subMchId: '1900000109',
      envId: 'test',
      payFunction: 'payNotify',
      refundFunction: 'refundNotify',
      now: Date.now,
      nonce: () => 'n',
      timeoutMs: 8000,
    });
    const started = Date.now();
    const e = await provider
      .refund(
        { outTradeNo: 'T1', outRefundNo: 'R1', refundFen: 1, totalFen: 1 },
        { deadlineMs: started + 400 },
      )
      .catch((x) => x);
    const took = Date.now() - started;
    expect(e).toMatchObject({ failure: 'transient', reason: 'NETWORK', providerCode: 'TIMEOUT' });
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(2000);
    // With no useful time left, the platform is not called at all.
    let called = false;
    const counting = createCloudPayProvider({
      api: {
        ...api,
        queryOrder: async () => {
          called = true;
          return {};
        },
      },
      subMchId: '1900000109',
      envId: 'test',
      payFunction: 'payNotify',
      refundFunction: 'refundNotify',
      now: Date.now,
      nonce: () => 'n',
    });
    await expect(counting.queryPayment('T1', { deadlineMs: Date.now() + 50 })).rejects.toMatchObject({
      providerCode: 'TIMEOUT',
    });
    expect(called).toBe(false);
  });
});
