/**
 * The client's time budget: every call ends by its deadline (the function's remaining time),
 * attempts are cut to fit, and no retry starts that could not finish. Driven by a fake clock
 * and an in-process transport, so nothing waits on real time.
 */
import { describe, expect, it } from 'vitest';
import { callBudgetProblem, callReserveMs } from '../../../cloudfunctions/shared/config';
import {
  createWxPayClient,
  sign,
  toXml,
  WxPayApiError,
  WxPayNetworkError,
} from '../../../cloudfunctions/shared/wxpay';
import { HttpFailure, type PostOptions } from '../../../cloudfunctions/shared/wxpay/http';

const KEY = 'DEADLINEKEYDEADLINEKEYDEADLINE12';
const base = { appid: 'wx1234567890abcdef', mchId: '1900000109', apiKey: KEY, signType: 'MD5' as const };

function rig(answer: (attempt: number, o: PostOptions) => 'hang' | Record<string, string>) {
  let clock = 1_000_000;
  const attempts: PostOptions[] = [];
  const client = createWxPayClient({
    ...base,
    baseUrl: 'http://127.0.0.1:9',
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
    transport: async (_url, _body, o) => {
      attempts.push(o);
      const a = answer(attempts.length, o);
      if (a === 'hang') {
        clock += o.totalTimeoutMs;
        throw new HttpFailure('timeout', 'no answer');
      }
      const fields = { return_code: 'SUCCESS', appid: base.appid, mch_id: base.mchId, nonce_str: 'n', ...a };
      return {
        status: 200,
        contentType: 'text/xml',
        headers: {},
        body: Buffer.from(toXml({ ...fields, sign: sign(fields, KEY, 'MD5') })),
      };
    },
  });
  return { client, attempts, now: () => clock };
}

describe('deadlines', () => {
  it('cuts the last attempt to the deadline and starts none past it', async () => {
    const { client, attempts, now } = rig(() => 'hang');
    const start = now();
    const e = await client.orderQuery({ out_trade_no: 'T1' }, { deadlineMs: start + 13_500 }).catch((x) => x);
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(attempts.map((a) => a.totalTimeoutMs)).toEqual([8000, 5300]);
    // The connect timeout (3 s by default) stays inside each attempt.
    expect(attempts.map((a) => a.connectTimeoutMs)).toEqual([3000, 3000]);
    expect(now()).toBeLessThanOrEqual(start + 13_500);
  });

  it('makes no call at all with less than a useful attempt left', async () => {
    const { client, attempts, now } = rig(() => ({ result_code: 'SUCCESS', trade_state: 'NOTPAY' }));
    const e = await client.orderQuery({ out_trade_no: 'T1' }, { deadlineMs: now() + 100 }).catch((x) => x);
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(attempts).toHaveLength(0);
  });

  it('starts an attempt with 300 ms left, and none with 299, saying why', async () => {
    const ok = rig(() => ({ result_code: 'SUCCESS', trade_state: 'NOTPAY' }));
    await expect(
      ok.client.orderQuery({ out_trade_no: 'T1' }, { deadlineMs: ok.now() + 300 }),
    ).resolves.toMatchObject({ trade_state: 'NOTPAY' });
    expect(ok.attempts.map((a) => a.totalTimeoutMs)).toEqual([300]);
    expect(ok.attempts.map((a) => a.connectTimeoutMs)).toEqual([300]);
    const late = rig(() => ({ result_code: 'SUCCESS', trade_state: 'NOTPAY' }));
    const e = await late.client
      .orderQuery({ out_trade_no: 'T1' }, { deadlineMs: late.now() + 299 })
      .catch((x) => x);
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({
      message: "WeChat Pay /pay/orderquery: no time left before the function's deadline",
      path: '/pay/orderquery',
    });
    expect(late.attempts).toHaveLength(0);
  });

  it('retries only when the pause and a 300 ms attempt both fit before the deadline', async () => {
    const answers = (n: number): Record<string, string> =>
      n === 1
        ? { result_code: 'FAIL', err_code: 'SYSTEMERROR', err_code_des: 'busy' }
        : { result_code: 'SUCCESS', trade_state: 'NOTPAY' };
    // The first pause is 200 ms: 200 + 300 fit in 500 exactly.
    const fits = rig(answers);
    await expect(
      fits.client.orderQuery({ out_trade_no: 'T1' }, { deadlineMs: fits.now() + 500 }),
    ).resolves.toMatchObject({ trade_state: 'NOTPAY' });
    expect(fits.attempts.map((a) => a.totalTimeoutMs)).toEqual([500, 300]);
    const tight = rig(answers);
    const e = await tight.client
      .orderQuery({ out_trade_no: 'T1' }, { deadlineMs: tight.now() + 499 })
      .catch((x) => x);
    // WeChat's own answer, not a made-up "no time left": the retry was never started.
    expect(e).toBeInstanceOf(WxPayApiError);
    expect(e).toMatchObject({ errCode: 'SYSTEMERROR', transient: true });
    expect(tight.attempts).toHaveLength(1);
  });

  it('without a deadline keeps the configured attempts', async () => {
    const { client, attempts } = rig(() => 'hang');
    await client.orderQuery({ out_trade_no: 'T1' }).catch(() => {});
    expect(attempts.map((a) => a.totalTimeoutMs)).toEqual([8000, 8000, 8000]);
  });
});

describe('rate limits', () => {
  it.each(['FREQUENCY_LIMITED', 'INVALID_REQ_TOO_MUCH'])(
    '%s is rate-limited, not transient, and not retried within the call',
    async (code) => {
      const { client, attempts } = rig(() => ({ result_code: 'FAIL', err_code: code, err_code_des: 'x' }));
      const e = (await client.orderQuery({ out_trade_no: 'T1' }).catch((x) => x)) as WxPayApiError;
      expect(e).toBeInstanceOf(WxPayApiError);
      expect(e).toMatchObject({ rateLimited: true, transient: false, errCode: code });
      expect(attempts).toHaveLength(1);
    },
  );

  it('NOTENOUGH is a decision: neither transient nor rate-limited', async () => {
    const { client } = rig(() => ({ result_code: 'FAIL', err_code: 'NOTENOUGH', err_code_des: '余额不足' }));
    expect(await client.orderQuery({ out_trade_no: 'T1' }).catch((x) => x)).toMatchObject({
      rateLimited: false,
      transient: false,
    });
  });
});

describe('signType per call', () => {
  it('signs the request and verifies the answer with the sign type the call names', async () => {
    let sent = '';
    const client = createWxPayClient({
      ...base,
      signType: 'HMAC-SHA256',
      baseUrl: 'http://127.0.0.1:9',
      transport: async (_u, body) => {
        sent = body;
        const f = {
          return_code: 'SUCCESS',
          result_code: 'SUCCESS',
          appid: base.appid,
          mch_id: base.mchId,
          nonce_str: 'n',
          trade_state: 'NOTPAY',
        };
        return {
          status: 200,
          contentType: 'text/xml',
          headers: {},
          body: Buffer.from(toXml({ ...f, sign: sign(f, KEY, 'MD5') })),
        };
      },
    });
    await expect(client.orderQuery({ out_trade_no: 'T1' }, { signType: 'MD5' })).resolves.toMatchObject({
      trade_state: 'NOTPAY',
    });
    // An MD5 sign is 32 hex characters; HMAC-SHA256's is 64.
    expect(
      /<sign><!\[CDATA\[([0-9A-F]+)\]\]><\/sign>|<sign>([0-9A-F]+)<\/sign>/
        .exec(sent)
        ?.slice(1)
        .find(Boolean),
    ).toHaveLength(32);
  });
});

describe('the call budget of a function', () => {
  it('keeps time back to store the answer, and refuses a WeChat timeout that cannot fit', () => {
    expect(callReserveMs(5_000)).toBe(1500);
    expect(callReserveMs(60_000)).toBe(6000);
    expect(callBudgetProblem(15_000, 8_000)).toBeUndefined();
    expect(callBudgetProblem(15_000, 30_000)).toMatch(/WXPAY_TIMEOUT_MS \(30000 ms\) does not fit/);
    expect(callBudgetProblem(5_000, 8_000)).toMatch(/at most 3500 ms/);
  });
});
