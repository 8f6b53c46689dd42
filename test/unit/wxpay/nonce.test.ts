/**
 * nonce_str: characters from a CSPRNG by rejection sampling, so each of the 62 is equally
 * likely (bytes 248–255 would favour the first eight). The random source is replaced here
 * by known bytes to pin the rule.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

const queued: number[][] = [];
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return {
    ...real,
    randomBytes: (n: number) => {
      const next = queued.shift();
      return next ? Buffer.from(next) : real.randomBytes(n);
    },
  };
});

const { nonceStr } = await import('../../../cloudfunctions/shared/wxpay/nonce');

afterEach(() => {
  queued.length = 0;
});

describe('nonceStr', () => {
  it('maps each byte below 248 to the alphabet by its remainder of 62', () => {
    queued.push([0, 25, 26, 51, 52, 61, 62, 247]);
    expect(nonceStr(8)).toBe('AZaz09A9');
  });

  it('skips bytes from 248 up, and draws again until it has enough', () => {
    queued.push([248, 255, 1, 250], [2, 3]);
    expect(nonceStr(3)).toBe('BCD');
  });

  it('stops at the length asked for, 32 by default', () => {
    queued.push(Array.from({ length: 64 }, (_, i) => i % 62));
    expect(nonceStr(5)).toBe('ABCDE');
    expect(nonceStr()).toMatch(/^[A-Za-z0-9]{32}$/);
    for (const n of [1, 16, 31, 32]) expect(nonceStr(n)).toHaveLength(n);
  });
});
