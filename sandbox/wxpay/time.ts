/**
 * The simulator's times, in WeChat Pay's formats (Beijing time, UTC+8, no DST): the shop's own
 * formatting, under the names the simulator uses.
 */
import {
  compactBeijing,
  dashedBeijing,
  parseCompactBeijing,
} from '../../cloudfunctions/shared/providers/time';

/** `yyyyMMddHHmmss`, as in time_end / time_expire. */
export const compactTime = compactBeijing;

/** `yyyy-MM-dd HH:mm:ss`, as in refund success_time and bills. */
export const dashedTime = dashedBeijing;

/** `yyyyMMdd`, as in bill_date. */
export function billDate(ms: number): string {
  return compactBeijing(ms).slice(0, 8);
}

/** Parses `yyyyMMddHHmmss` (Beijing time); undefined when malformed. */
export function parseCompactTime(s: string): number | undefined {
  return parseCompactBeijing(s);
}
