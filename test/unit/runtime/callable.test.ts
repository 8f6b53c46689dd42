/**
 * The callable wrapper's contract, in process: who the caller is (the WX context only), what
 * a failure looks like to the mini-program, and what it never shows it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AppError } from '../../../cloudfunctions/shared/errors';
import { setLogSink } from '../../../cloudfunctions/shared/log';
import {
  callable,
  callerFrom,
  eventFields,
  toApiError,
} from '../../../cloudfunctions/shared/runtime/callable';

let lines: Record<string, unknown>[];
let restore: (line: string) => void;
beforeEach(() => {
  lines = [];
  restore = setLogSink((l) => lines.push(JSON.parse(l)));
});
afterEach(() => {
  setLogSink(restore);
});

describe('callerFrom', () => {
  it('takes identity from the WX context, and treats empty values as absent', () => {
    expect(
      callerFrom({ OPENID: 'o1', APPID: 'wx1', CLIENTIP: '1.2.3.4', SOURCE: 'wx_client', UNIONID: 'u' }),
    ).toEqual({ openid: 'o1', appid: 'wx1', clientIp: '1.2.3.4', source: 'wx_client' });
    expect(callerFrom({ OPENID: '', APPID: '', CLIENTIP: '', SOURCE: '' })).toEqual({
      openid: undefined,
      appid: undefined,
      clientIp: undefined,
      source: '',
    });
    expect(callerFrom({})).toEqual({
      openid: undefined,
      appid: undefined,
      clientIp: undefined,
      source: undefined,
    });
  });
});

describe('eventFields', () => {
  it('drops the userInfo the platform adds and keeps every other field', () => {
    expect(eventFields({ orderId: 'A', userInfo: { openId: 'forged' }, n: 0 })).toEqual({
      orderId: 'A',
      n: 0,
    });
  });
  it('turns anything that is not a plain object into an empty event', () => {
    for (const e of [null, undefined, 'x', 3, ['orderId'], true]) expect(eventFields(e)).toEqual({});
  });
});

describe('toApiError', () => {
  it('passes a contract code and its message through, and logs nothing', () => {
    expect(toApiError(new AppError('FORBIDDEN', 'not yours'), 'fn')).toEqual({
      code: 'FORBIDDEN',
      message: 'not yours',
    });
    expect(lines).toEqual([]);
  });

  it('maps other typed errors to a contract code by family, keeping their message, and logs the original code', () => {
    const cases: [string, string][] = [
      ['CONFIG_MISSING', 'CONFIG_INVALID'],
      ['WXPAY_TIMEOUT', 'WXPAY_ERROR'],
      ['DB_ERROR', 'INTERNAL'],
      ['XCONFIG', 'INTERNAL'],
      ['XWXPAY', 'INTERNAL'],
    ];
    for (const [code, mapped] of cases) {
      expect(toApiError(new AppError(code, `because ${code}`), 'createOrder')).toEqual({
        code: mapped,
        message: `because ${code}`,
      });
    }
    expect(lines.map((l) => [l['event'], l['fn'], l['code'], l['level']])).toEqual(
      cases.map(([code]) => ['function.error', 'createOrder', code, 'error']),
    );
  });

  it('answers INTERNAL with a fixed message for anything else, so internals never reach the caller', () => {
    const e = new TypeError('cannot read secret of undefined');
    expect(toApiError(e, 'applyRefund')).toEqual({
      code: 'INTERNAL',
      message: 'internal error, please try again',
    });
    expect(toApiError('a string', 'applyRefund')).toEqual({
      code: 'INTERNAL',
      message: 'internal error, please try again',
    });
    expect(lines[0]).toMatchObject({
      level: 'error',
      event: 'function.crash',
      fn: 'applyRefund',
      error: { name: 'TypeError', message: 'cannot read secret of undefined' },
    });
  });
});

describe('callable', () => {
  it('resolves {ok, data} with the caller from the context and the event without userInfo', async () => {
    const seen: unknown[] = [];
    const main = callable(
      'whoami',
      async (event, caller) => {
        seen.push(event, caller);
        return { fine: true };
      },
      () => ({ OPENID: 'o_ctx', APPID: 'wx_ctx', SOURCE: 'wx_client' }),
    );
    expect(await main({ a: 1, userInfo: { openId: 'o_forged' } })).toEqual({
      ok: true,
      data: { fine: true },
    });
    expect(seen).toEqual([
      { a: 1 },
      { openid: 'o_ctx', appid: 'wx_ctx', clientIp: undefined, source: 'wx_client' },
    ]);
  });

  it('resolves {ok: false, error} instead of rejecting when the handler throws', async () => {
    const main = callable(
      'queryOrder',
      async () => {
        throw new AppError('NOT_FOUND', 'order not found');
      },
      () => ({}),
    );
    expect(await main({})).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'order not found' } });
  });

  it('resolves {ok: false} when reading the context itself fails', async () => {
    const main = callable(
      'listOrders',
      async () => 'unreachable',
      () => {
        throw new Error('no context');
      },
    );
    expect(await main({})).toEqual({
      ok: false,
      error: { code: 'INTERNAL', message: 'internal error, please try again' },
    });
  });
});

describe('toApiError for RATE_LIMITED', () => {
  const limited = (details?: Record<string, unknown>) =>
    toApiError(new AppError('RATE_LIMITED', 'slow down', details ? { details } : {}), 'createOrder');

  it('carries the wait and how many orders to settle first, as whole positive numbers', () => {
    expect(limited({ retryAfterSeconds: 30, payOrCancelFirst: 2 })).toEqual({
      code: 'RATE_LIMITED',
      message: 'slow down',
      retryAfterSeconds: 30,
      payOrCancelFirst: 2,
    });
    expect(limited({ retryAfterSeconds: 1 })).toEqual({
      code: 'RATE_LIMITED',
      message: 'slow down',
      retryAfterSeconds: 1,
    });
    expect(limited({ payOrCancelFirst: 1 })).toEqual({
      code: 'RATE_LIMITED',
      message: 'slow down',
      payOrCancelFirst: 1,
    });
    expect(lines).toEqual([]);
  });

  it('leaves out a wait or a count that is not a whole positive number', () => {
    for (const bad of [0, -1, 1.5, '30', Number.MAX_SAFE_INTEGER + 2, null, undefined]) {
      expect(limited({ retryAfterSeconds: bad, payOrCancelFirst: bad })).toEqual({
        code: 'RATE_LIMITED',
        message: 'slow down',
      });
    }
    expect(limited()).toEqual({ code: 'RATE_LIMITED', message: 'slow down' });
  });

  it('shows those fields on no other error', () => {
    const e = new AppError('FORBIDDEN', 'not yours', {
      details: { retryAfterSeconds: 5, payOrCancelFirst: 1 },
    });
    expect(toApiError(e, 'fn')).toEqual({ code: 'FORBIDDEN', message: 'not yours' });
  });
});
