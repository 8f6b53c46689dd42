/** WeChat Pay writes and reads times in Beijing time (UTC+8, no DST). */
const CST_OFFSET_MS = 8 * 3600 * 1000;

function parts(ms: number): string[] {
  const d = new Date(ms + CST_OFFSET_MS);
  const p = (n: number) => String(n).padStart(2, '0');
  return [
    String(d.getUTCFullYear()),
    p(d.getUTCMonth() + 1),
    p(d.getUTCDate()),
    p(d.getUTCHours()),
    p(d.getUTCMinutes()),
    p(d.getUTCSeconds()),
  ];
}

/** `yyyyMMddHHmmss`, as in time_end / time_expire. */
export function compactTime(ms: number): string {
  return parts(ms).join('');
}

/** `yyyy-MM-dd HH:mm:ss`, as in refund success_time and bills. */
export function dashedTime(ms: number): string {
  const [y, mo, d, h, mi, s] = parts(ms);
  return `${y}-${mo}-${d} ${h}:${mi}:${s}`;
}

/** `yyyyMMdd`, as in bill_date. */
export function billDate(ms: number): string {
  return parts(ms).slice(0, 3).join('');
}

/** Parses `yyyyMMddHHmmss` (Beijing time); undefined when malformed. */
export function parseCompactTime(s: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec] = m.map(Number) as [number, number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, sec) - CST_OFFSET_MS;
  return compactTime(ms) === s ? ms : undefined;
}
