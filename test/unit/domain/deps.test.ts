/**
 * How the domain reads a WeChat Pay failure whatever provider raised it, the reason the
 * merchant sees, the refusal when an order's provider is no longer configured, and whoami.
 */
import { describe, expect, it } from 'vitest';
import {
  type Deps,
  failureReason,
  providerNamed,
  providerOf,
  requireWxpay,
  wxFailure,
} from '../../../cloudfunctions/shared/domain/deps';
import { whoami } from '../../../cloudfunctions/shared/domain/whoami';
import type { Caller } from '../../../cloudfunctions/shared/runtime/callable';

describe('a WeChat Pay failure, as the domain reads it', () => {
  it('only errors with a WXPAY_ code are WeChat’s', () => {
    expect(wxFailure(null)).toBeUndefined();
    expect(wxFailure('WXPAY_X')).toBeUndefined();
    expect(wxFailure(new Error('boom'))).toBeUndefined();
    expect(wxFailure({ code: 'DB_ERROR' })).toBeUndefined();
    expect(wxFailure({ code: 5 })).toBeUndefined();
  });

  it('a provider failure class decides transient and rate-limited; the codes come from either naming', () => {
    expect(
      wxFailure({
        code: 'WXPAY_RATE_LIMITED',
        failure: 'rate-limited',
        reason: 'FREQUENCY_LIMITED',
        providerCode: 'FREQUENCY_LIMITED',
        description: '频率限制',
        message: 'too fast',
      }),
    ).toEqual({
      transient: false,
      rateLimited: true,
      reason: 'FREQUENCY_LIMITED',
      errCode: 'FREQUENCY_LIMITED',
      errCodeDes: '频率限制',
      code: 'WXPAY_RATE_LIMITED',
      message: 'too fast',
    });
    expect(wxFailure({ code: 'WXPAY_UNAVAILABLE', failure: 'transient', transient: false })).toMatchObject({
      transient: true,
      rateLimited: false,
    });
    // Without a class, the older flags; empty codes are no codes; no message is the code.
    expect(
      wxFailure({
        code: 'WXPAY_ERROR',
        transient: true,
        rateLimited: true,
        errCode: 'E1',
        errCodeDes: 'd',
        providerCode: '',
      }),
    ).toEqual({
      transient: true,
      rateLimited: true,
      reason: undefined,
      errCode: 'E1',
      errCodeDes: 'd',
      code: 'WXPAY_ERROR',
      message: 'WXPAY_ERROR',
    });
    expect(wxFailure({ code: 'WXPAY_ERROR', transient: 'yes', reason: 5, description: '' })).toEqual({
      transient: false,
      rateLimited: false,
      reason: undefined,
      errCode: undefined,
      errCodeDes: undefined,
      code: 'WXPAY_ERROR',
      message: 'WXPAY_ERROR',
    });
  });

  it('the merchant reads WeChat’s code and description, or ours, cut at 200 characters', () => {
    const f = wxFailure({ code: 'WXPAY_ERROR', errCode: 'NOTENOUGH', errCodeDes: '余额不足', message: 'm' })!;
    expect(failureReason(f)).toBe('NOTENOUGH: 余额不足');
    expect(failureReason(wxFailure({ code: 'WXPAY_UNAVAILABLE', message: 'no answer' })!)).toBe(
      'WXPAY_UNAVAILABLE: no answer',
    );
    expect(
      failureReason(wxFailure({ code: 'WXPAY_ERROR', errCode: 'E', errCodeDes: 'x'.repeat(300) })!),
    ).toHaveLength(200);
  });
});

describe('the provider of an order', () => {
  const v2 = { name: 'v2' } as never;
  const deps = (byName: Record<string, unknown>) => ({ wxpay: { current: v2, byName } }) as unknown as Deps;

  it('is its own, APIv2 for orders stored before providers existed, and a configuration error when gone', () => {
    expect(providerOf(deps({ v2 }), {})).toBe(v2);
    expect(providerNamed(deps({ v2 }), 'v2')).toBe(v2);
    expect(() => providerOf(deps({ v2 }), { provider: 'v3' })).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message:
          'this order was paid through APIv3, which is not configured: add v3 to WXPAY_KEEP_PROVIDERS and keep its variables set',
      }),
    );
    expect(() => providerOf(deps({ v2 }), { provider: 'cloudpay' })).toThrow(/paid through cloudPay, which/);
    expect(() => providerOf(deps({}), {})).toThrow(/paid through APIv2, which/);
    expect(() => requireWxpay({ wxpay: undefined } as unknown as Deps)).toThrow(
      'this function was wired without WeChat Pay',
    );
  });
});

describe('whoami', () => {
  const config = { adminOpenids: new Set(['o_admin']) };
  const who = (openid: string | undefined, event: Record<string, unknown> = {}) =>
    whoami({ config } as unknown as Deps, event, { openid, appid: 'wx1' } as Caller);

  it('says who is calling and whether they are an admin; takes no fields', async () => {
    expect(await who('o_admin')).toEqual({ isAdmin: true, openid: 'o_admin' });
    expect(await who('o_1')).toEqual({ isAdmin: false, openid: 'o_1' });
    await expect(who('o_1', { openid: 'o_admin' })).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: 'unexpected field "openid"',
    });
    await expect(who(undefined)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});
