import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../cloudfunctions/shared/contract';
import {
  CallError,
  ERROR_MESSAGES,
  NETWORK_MESSAGE,
  networkError,
  rateLimitText,
  unwrapResult,
  userMessageOf,
  waitText,
} from '../../miniprogram/utils/errors';

const CODES: readonly ErrorCode[] = ERROR_CODES;

function thrown(fn: () => unknown): CallError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CallError) return err;
    throw err;
  }
  throw new Error('expected a CallError');
}

describe('unwrapResult', () => {
  it('returns data of an ok result', () => {
    expect(unwrapResult('whoami', { ok: true, data: { isAdmin: false } })).toEqual({ isAdmin: false });
  });

  it.each(CODES)('turns error code %s into its own Chinese message', (code) => {
    const err = thrown(() => unwrapResult('f', { ok: false, error: { code, message: 'server words' } }));
    expect(err.code).toBe(code);
    expect(err.userMessage).toBe(ERROR_MESSAGES[code]);
    expect(err.userMessage).toMatch(/[\u4e00-\u9fff]/);
    expect(err.userMessage).not.toContain('server words');
    expect(err.message).toContain('server words');
  });

  it('gives every code a distinct message', () => {
    expect(new Set(CODES.map((c) => ERROR_MESSAGES[c])).size).toBe(CODES.length);
  });

  it('treats an unknown code as INTERNAL', () => {
    expect(
      thrown(() => unwrapResult('f', { ok: false, error: { code: 'NEW_CODE', message: 'x' } })).code,
    ).toBe('INTERNAL');
  });

  it.each([undefined, null, 'oops', { data: 1 }, { ok: 'yes' }])(
    'treats a result that is not the envelope (%j) as INTERNAL',
    (result) => {
      expect(thrown(() => unwrapResult('f', result)).code).toBe('INTERNAL');
    },
  );

  it('marks only transient failures as retryable', () => {
    const retryable = (code: ErrorCode) =>
      thrown(() => unwrapResult('f', { ok: false, error: { code, message: '' } })).retryable;
    expect(retryable('WXPAY_UNAVAILABLE')).toBe(true);
    expect(retryable('REFUND_EXCEEDS_PAID')).toBe(false);
  });
});

describe('networkError', () => {
  it('is retryable with the network message and keeps errMsg for the log', () => {
    const err = networkError('createOrder', { errMsg: 'cloud.callFunction:fail timeout' });
    expect(err.code).toBe('NETWORK');
    expect(err.retryable).toBe(true);
    expect(err.userMessage).toBe(NETWORK_MESSAGE);
    expect(err.message).toContain('timeout');
  });
});

describe('userMessageOf', () => {
  it('shows a generic message for a bug rather than its text', () => {
    expect(userMessageOf(new TypeError('x is undefined'))).toBe(ERROR_MESSAGES.INTERNAL);
    expect(userMessageOf(new CallError('FORBIDDEN', 'f'))).toBe(ERROR_MESSAGES.FORBIDDEN);
  });
});

describe('RATE_LIMITED', () => {
  const refused = (error: Record<string, unknown>) =>
    thrown(() =>
      unwrapResult('createOrder', { ok: false, error: { code: 'RATE_LIMITED', message: 'm', ...error } }),
    );

  it('says how long to wait, in Chinese for the shopper and English beside it for the console', () => {
    const err = refused({ retryAfterSeconds: 42 });
    expect(err.userMessage).toBe('操作太频繁，请 42 秒后再试');
    expect(err.retryAfterSeconds).toBe(42);
    expect(rateLimitText({ retryAfterSeconds: 42 })).toEqual({
      zh: '操作太频繁，请 42 秒后再试',
      en: 'Too many requests: try again in 42 s',
    });
  });

  it('says how many unpaid orders to pay or cancel first, and when the first expires anyway', () => {
    expect(refused({ retryAfterSeconds: 1799, payOrCancelFirst: 1 }).userMessage).toBe(
      '待支付的订单太多，请先支付或取消其中 1 笔（或 30 分钟后再试）',
    );
    expect(rateLimitText({ retryAfterSeconds: 1799, payOrCancelFirst: 2 }).en).toBe(
      'Too many unpaid orders: pay or cancel 2 of them first (or try again in 30 min)',
    );
  });

  it('falls back to the plain message when the wait is missing or not a positive whole number', () => {
    for (const bad of [
      {},
      { retryAfterSeconds: -3 },
      { retryAfterSeconds: 1.5 },
      { retryAfterSeconds: '9' },
    ]) {
      expect(refused(bad).userMessage).toBe(ERROR_MESSAGES.RATE_LIMITED);
    }
  });

  it('words a wait in seconds under a minute, else whole minutes rounded up', () => {
    expect(waitText(1)).toEqual({ zh: '1 秒', en: '1 s' });
    expect(waitText(59)).toEqual({ zh: '59 秒', en: '59 s' });
    expect(waitText(60)).toEqual({ zh: '1 分钟', en: '1 min' });
    expect(waitText(61)).toEqual({ zh: '2 分钟', en: '2 min' });
  });
});
