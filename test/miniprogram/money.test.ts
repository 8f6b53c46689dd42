import { describe, expect, it } from 'vitest';
import { fenToYuan, parseYuanToFen } from '../../miniprogram/utils/money';

describe('fenToYuan', () => {
  it.each([
    [0, '0.00'],
    [1, '0.01'],
    [10, '0.10'],
    [99, '0.99'],
    [100, '1.00'],
    [12345, '123.45'],
    [-5, '-0.05'],
    [9007199254740991, '90071992547409.91'],
  ])('formats %i fen as %s yuan', (fen, yuan) => {
    expect(fenToYuan(fen)).toBe(yuan);
  });

  it('does not print a made-up amount for a non-integer', () => {
    expect(fenToYuan(1.5)).toBe('--');
    expect(fenToYuan(Number.NaN)).toBe('--');
  });
});

describe('parseYuanToFen', () => {
  it.each([
    ['1', 100],
    ['0.01', 1],
    ['12.3', 1230],
    ['12.30', 1230],
    ['007.07', 707],
    ['  8.8 ', 880],
    // Float multiply gets these wrong: 1.13 * 100 = 112.99999999999999, 0.07 * 100 = 7.000000000000001.
    ['1.13', 113],
    ['0.07', 7],
    ['19.99', 1999],
  ])('reads %j yuan as %i fen', (text, fen) => {
    expect(parseYuanToFen(text)).toEqual({ ok: true, fen });
  });

  it.each([
    ['', 'empty'],
    ['  ', 'empty'],
    ['.', 'format'],
    // A bare point is read two ways (0.5? 5?): the shopper is told the rule instead.
    ['.5', 'format'],
    ['5.', 'format'],
    ['-1', 'format'],
    ['+1', 'format'],
    ['1e2', 'format'],
    ['1,000', 'format'],
    ['１２', 'format'],
    ['abc', 'format'],
    ['1.2.3', 'format'],
    ['1.234', 'decimals'],
    ['0.001', 'decimals'],
    ['99999999999999999', 'too_large'],
  ])('refuses %j (%s) instead of guessing', (text, reason) => {
    expect(parseYuanToFen(text)).toEqual({ ok: false, reason });
  });

  it('round-trips every fen amount up to 100 yuan through its yuan string', () => {
    const wrong: number[] = [];
    for (let fen = 0; fen <= 10_000; fen++) {
      const back = parseYuanToFen(fenToYuan(fen));
      if (!back.ok || back.fen !== fen) wrong.push(fen);
    }
    expect(wrong).toEqual([]);
  });
});
