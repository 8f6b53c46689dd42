/**
 * Money on the client is integer fen, as on the server (docs/ARCHITECTURE.md §3). Conversions go
 * through strings so that no binary float ever touches an amount: 0.07 * 100 is
 * 7.000000000000001 and 1.13 * 100 is 112.99999999999999.
 */

/** 1 → '0.01', 12345 → '123.45', -5 → '-0.05'. */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen)) return '--';
  const sign = fen < 0 ? '-' : '';
  const digits = String(Math.abs(fen)).padStart(3, '0');
  return `${sign}${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

export type YuanParse =
  | { ok: true; fen: number }
  | { ok: false; reason: 'empty' | 'format' | 'decimals' | 'too_large' };

const YUAN = /^(\d+)(?:\.(\d+))?$/;

/**
 * Parses what a shopper typed in yuan ('12', '12.3', '12.30') into integer fen. Refuses
 * signs, exponents, separators, a bare point ('.5', '5.') and more than two decimals
 * instead of guessing or rounding: a refund of a different amount than the one meant must
 * never be sent.
 */
export function parseYuanToFen(input: string): YuanParse {
  const text = input.trim();
  if (text === '') return { ok: false, reason: 'empty' };
  const match = YUAN.exec(text);
  if (!match) return { ok: false, reason: 'format' };
  const whole = match[1] ?? '';
  const fraction = match[2] ?? '';
  if (fraction.length > 2) return { ok: false, reason: 'decimals' };
  const digits = `${whole}${fraction.padEnd(2, '0')}`.replace(/^0+(?=\d)/, '');
  const fen = Number(digits);
  if (!Number.isSafeInteger(fen)) return { ok: false, reason: 'too_large' };
  return { ok: true, fen };
}
