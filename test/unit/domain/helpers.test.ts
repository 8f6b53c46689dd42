import { describe, expect, it } from 'vitest';
import {
  beijingTime,
  decodeCursor,
  encodeCursor,
  onlyFields,
} from '../../../cloudfunctions/shared/domain/validate';
import { AppError } from '../../../cloudfunctions/shared/errors';
import { callable, eventFields, toApiError } from '../../../cloudfunctions/shared/runtime/callable';

describe('beijingTime', () => {
  it('formats epoch ms as yyyyMMddHHmmss in UTC+8, the format of time_expire', () => {
    expect(beijingTime(Date.UTC(2026, 0, 31, 16, 5, 9))).toBe('20260201000509');
  });
});

describe('cursors', () => {
  it('round-trip and refuse tampering', () => {
    expect(decodeCursor(encodeCursor(123, 'abc_1'))).toEqual({ atMs: 123, id: 'abc_1' });
    expect(decodeCursor(undefined)).toBeUndefined();
    expect(() => decodeCursor('garbage!')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() => decodeCursor(Buffer.from('[1,"$where"]').toString('base64url'))).toThrow(AppError);
  });
});

describe('onlyFields', () => {
  it('refuses a client-sent openid or amount by name', () => {
    expect(() => onlyFields({ items: [], openid: 'x' }, ['items'])).toThrow('unexpected field "openid"');
    expect(() => onlyFields({ items: [], totalFee: 1 }, ['items'])).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
  });
});

describe('callable', () => {
  it('drops the platform-added userInfo so it is never taken as identity', () => {
    expect(eventFields({ userInfo: { openId: 'forged' }, orderId: 'x' })).toEqual({ orderId: 'x' });
    expect(eventFields('nope')).toEqual({});
  });
  it('resolves contract errors as {ok:false} and hides internal crashes', async () => {
    const ctx = () => ({ OPENID: 'o1' });
    const bad = callable(
      't',
      async () => {
        throw new AppError('FORBIDDEN', 'no');
      },
      ctx,
    );
    expect(await bad({})).toEqual({ ok: false, error: { code: 'FORBIDDEN', message: 'no' } });
    const crash = callable(
      't',
      async () => {
        throw new TypeError('secret detail');
      },
      ctx,
    );
    expect(await crash({})).toEqual({
      ok: false,
      error: { code: 'INTERNAL', message: 'internal error, please try again' },
    });
    expect(toApiError(new AppError('CONFIG_INVALID', 'WXPAY_API_KEY is missing'), 't').code).toBe(
      'CONFIG_INVALID',
    );
    const good = callable('t', async (_e, caller) => caller.openid, ctx);
    expect(await good({})).toEqual({ ok: true, data: 'o1' });
  });
});
