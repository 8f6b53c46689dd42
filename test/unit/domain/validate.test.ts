/**
 * What a caller is told about bad input, word for word: each check of validate.ts with the
 * code and the message a mini-program shows or logs, and the cursors a list hands back.
 */
import { describe, expect, it } from 'vitest';
import type { Deps } from '../../../cloudfunctions/shared/domain/deps';
import {
  beijingTime,
  decodeCursor,
  encodeCursor,
  ID_PATTERN,
  integer,
  oneOf,
  optionalString,
  requireAdmin,
  requiredString,
  requireOpenid,
} from '../../../cloudfunctions/shared/domain/validate';
import type { Caller } from '../../../cloudfunctions/shared/runtime/callable';

const refusal = (code: string, message: string) => expect.objectContaining({ code, message });
const caller = (openid?: string): Caller =>
  ({ appid: 'wx1', clientIp: '127.0.0.1', source: 'wx_client', ...(openid ? { openid } : {}) }) as Caller;

describe('strings', () => {
  it('trims, treats blank and absent alike, and names the field in every refusal', () => {
    expect(optionalString({ a: '  x  ' }, 'a', { max: 1 })).toBe('x');
    expect(optionalString({ a: '   ' }, 'a', { max: 5 })).toBeUndefined();
    expect(optionalString({ a: null }, 'a', { max: 5 })).toBeUndefined();
    expect(optionalString({}, 'a', { max: 5 })).toBeUndefined();
    expect(() => optionalString({ a: 5 }, 'a', { max: 5 })).toThrow(
      refusal('INVALID_INPUT', 'a must be a string'),
    );
    expect(optionalString({ a: 'abcde' }, 'a', { max: 5 })).toBe('abcde');
    expect(() => optionalString({ a: 'abcdef' }, 'a', { max: 5 })).toThrow(
      refusal('INVALID_INPUT', 'a must be at most 5 characters'),
    );
    expect(() => optionalString({ a: 'x y' }, 'a', { max: 5, pattern: ID_PATTERN })).toThrow(
      refusal('INVALID_INPUT', 'a has an invalid format'),
    );
    expect(optionalString({ a: 'x_y-1' }, 'a', { max: 5, pattern: ID_PATTERN })).toBe('x_y-1');
    expect(() => requiredString({ a: ' ' }, 'a', { max: 5 })).toThrow(
      refusal('INVALID_INPUT', 'a is required'),
    );
    expect(requiredString({ a: 'ok' }, 'a', { max: 5 })).toBe('ok');
  });

  it('ids are 1 to 64 of letters, digits, _ and -', () => {
    expect(ID_PATTERN.test('a'.repeat(64))).toBe(true);
    expect(ID_PATTERN.test('a'.repeat(65))).toBe(false);
    expect(ID_PATTERN.test('')).toBe(false);
    expect(ID_PATTERN.test('ab.c')).toBe(false);
    expect(ID_PATTERN.test('x\nab')).toBe(false);
    expect(ID_PATTERN.test('ab\n')).toBe(false);
  });
});

describe('numbers and choices', () => {
  it('integers within their bounds, bounds included', () => {
    expect(integer({ n: 1 }, 'n', 1, 99)).toBe(1);
    expect(integer({ n: 99 }, 'n', 1, 99)).toBe(99);
    expect(() => integer({ n: 0 }, 'n', 1, 99)).toThrow(refusal('INVALID_INPUT', 'n must be from 1 to 99'));
    expect(() => integer({ n: 100 }, 'n', 1, 99)).toThrow(refusal('INVALID_INPUT', 'n must be from 1 to 99'));
    expect(() => integer({ n: 1.5 }, 'n', 1, 99)).toThrow(refusal('INVALID_INPUT', 'n must be an integer'));
    expect(() => integer({ n: '2' }, 'n', 1, 99)).toThrow(refusal('INVALID_INPUT', 'n must be an integer'));
    expect(() => integer({ n: 2 ** 53 }, 'n', 1, 2 ** 60)).toThrow(
      refusal('INVALID_INPUT', 'n must be an integer'),
    );
  });

  it('one of the listed values, or absent', () => {
    expect(oneOf({ s: 'b' }, 's', ['a', 'b'])).toBe('b');
    expect(oneOf({ s: null }, 's', ['a', 'b'])).toBeUndefined();
    expect(oneOf({}, 's', ['a', 'b'])).toBeUndefined();
    expect(() => oneOf({ s: 'c' }, 's', ['a', 'b'])).toThrow(
      refusal('INVALID_INPUT', 's must be one of a, b'),
    );
    expect(() => oneOf({ s: 1 }, 's', ['a', 'b'])).toThrow(refusal('INVALID_INPUT', 's must be one of a, b'));
  });
});

describe('who is calling', () => {
  it('an openid from the mini-program, and for admin calls one of the merchant’s', () => {
    expect(() => requireOpenid(caller())).toThrow(
      refusal('UNAUTHENTICATED', 'call this function from the mini-program'),
    );
    expect(requireOpenid(caller('o1'))).toBe('o1');
    const deps = { config: { adminOpenids: new Set(['o_admin']) } } as unknown as Deps;
    expect(requireAdmin(deps, caller('o_admin'))).toBe('o_admin');
    expect(() => requireAdmin(deps, caller('o1'))).toThrow(
      refusal('FORBIDDEN', 'only the merchant may do this'),
    );
    expect(() => requireAdmin(deps, caller())).toThrow(
      refusal('UNAUTHENTICATED', 'call this function from the mini-program'),
    );
  });
});

describe('time and cursors', () => {
  it('Beijing time pads every field', () => {
    expect(beijingTime(Date.UTC(2026, 0, 1, 0, 0, 0) - 8 * 3600_000)).toBe('20260101000000');
    expect(beijingTime(Date.UTC(999, 8, 9, 1, 2, 3) - 8 * 3600_000)).toBe('09990909010203');
    expect(beijingTime(Date.UTC(2026, 11, 31, 15, 59, 59))).toBe('20261231235959');
  });

  it('a cursor says its direction and is refused by the other; anything else is “cursor is invalid”', () => {
    const invalid = refusal('INVALID_INPUT', 'cursor is invalid');
    const raw = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');
    expect(encodeCursor(5, 'a')).toBe(raw([5, 'a']));
    expect(encodeCursor(5, 'a', true)).toBe(raw([5, 'a', 'asc']));
    expect(decodeCursor(encodeCursor(5, 'a', true), true)).toEqual({ atMs: 5, id: 'a' });
    expect(() => decodeCursor(encodeCursor(5, 'a', true))).toThrow(invalid);
    expect(() => decodeCursor(encodeCursor(5, 'a'), true)).toThrow(invalid);
    expect(() => decodeCursor(raw([5, 'a', 'desc']), true)).toThrow(invalid);
    expect(() => decodeCursor(raw([5, 'a', 'asc', 1]), true)).toThrow(invalid);
    expect(decodeCursor(null)).toBeUndefined();
    expect(decodeCursor('')).toBeUndefined();
    expect(() => decodeCursor(5)).toThrow(invalid);
    expect(() => decodeCursor('a'.repeat(201))).toThrow(invalid);
    // 200 characters is not refused for its length; 201 is, even when it would decode.
    expect(() => decodeCursor(`${raw([5, 'a'])}${' '.repeat(200 - raw([5, 'a']).length)}`)).not.toThrow();
    expect(() => decodeCursor(`${raw([5, 'a'])}${' '.repeat(201 - raw([5, 'a']).length)}`)).toThrow(invalid);
    // The event is the caller's JSON: an array of the cursor's bytes is not a cursor.
    expect(() => decodeCursor([...Buffer.from(JSON.stringify([5, 'a']))])).toThrow(invalid);
    expect(() => decodeCursor(raw({ 0: 5, 1: 'a' }))).toThrow(invalid);
    expect(() => decodeCursor(raw([5.5, 'a']))).toThrow(invalid);
    expect(() => decodeCursor(raw([5, 7]))).toThrow(invalid);
    expect(() => decodeCursor(raw([5, 'a b']))).toThrow(invalid);
    expect(() => decodeCursor(raw([5]))).toThrow(invalid);
  });
});
