import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../cloudfunctions/shared/contract';
import {
  CallError,
  ERROR_MESSAGES,
  NETWORK_MESSAGE,
  networkError,
  unwrapResult,
  userMessageOf,
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
