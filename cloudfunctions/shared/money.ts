import { AppError } from './errors';

/**
 * Money is integer fen everywhere. These convert at the edges (bills, display) with
 * string arithmetic, because 9.8 * 100 === 980.0000000000001 in floating point.
 */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen))
    throw new AppError('INVALID_AMOUNT', `amount in fen must be an integer, got ${fen}`);
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

export function yuanToFen(yuan: string): number {
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(yuan.trim());
  if (!m)
    throw new AppError(
      'INVALID_AMOUNT',
      `not an amount in yuan with at most 2 decimals: ${JSON.stringify(yuan)}`,
    );
  const fen = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'));
  if (!Number.isSafeInteger(fen)) throw new AppError('INVALID_AMOUNT', `amount too large: ${yuan}`);
  return m[1] === '-' ? -fen : fen;
}

/** Strict parse of a fen amount that WeChat sends as a string ("1", never "1.0"). */
export function parseFen(value: string | undefined): number | undefined {
  if (value === undefined || !/^(0|[1-9]\d{0,14})$/.test(value)) return undefined;
  return Number(value);
}
