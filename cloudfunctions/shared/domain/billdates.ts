/** Bill dates: WeChat's bills are by Beijing day (UTC+8, no daylight saving), written yyyyMMdd. */
import { invalid } from './validate';

const CST_OFFSET_MS = 8 * 3600_000;
export const DAY_MS = 24 * 3600_000;

/** yyyyMMdd of the Beijing day that contains `ms`. */
export function billDateOf(ms: number): string {
  const d = new Date(ms + CST_OFFSET_MS);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`;
}

/** Epoch ms of 00:00 Beijing on `billDate`; undefined for a date that does not exist. */
export function dayStartMs(billDate: string): number | undefined {
  // The round trip below refuses anything but exactly eight digits of a real day, so the
  // anchors only make the refusal earlier.
  // Stryker disable next-line Regex: equivalent, see above.
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(billDate);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - CST_OFFSET_MS;
  return billDateOf(ms) === billDate ? ms : undefined;
}

/** Minutes since midnight, Beijing. */
export function beijingMinute(ms: number): number {
  const d = new Date(ms + CST_OFFSET_MS);
  return d.getUTCHours() * 60 + d.getUTCMinutes();
}

/**
 * A day up to today. Today's bill does not exist yet (WeChat answers "Bill Creating" and the
 * check says NOT_READY); the sandbox's WeChat may run ahead of the function's clock.
 */
export function parseBillDate(raw: string, nowMs: number): string {
  const start = dayStartMs(raw);
  if (start === undefined) throw invalid('date must be a day as yyyyMMdd (Beijing time)');
  if (start > nowMs) throw invalid('date must not be in the future (Beijing time)');
  return raw;
}
