/**
 * WeChat Pay's time formats, all in Beijing time (UTC+8, no daylight saving):
 * v2 `yyyyMMddHHmmss` (time_end, time_expire) and `yyyy-MM-dd HH:mm:ss` (refund success_time),
 * v3 RFC 3339 (`2018-06-08T10:34:56+08:00`).
 */
const CST_OFFSET_MS = 8 * 3600_000;

function fields(ms: number): [string, string, string, string, string, string] {
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

/** `yyyyMMddHHmmss` */
export function compactBeijing(ms: number): string {
  return fields(ms).join('');
}

/** `yyyy-MM-dd HH:mm:ss`, as in v2's refund success_time and the bills. */
export function dashedBeijing(ms: number): string {
  const [y, mo, d, h, mi, s] = fields(ms);
  return `${y}-${mo}-${d} ${h}:${mi}:${s}`;
}

/** `yyyy-MM-ddTHH:mm:ss+08:00`, as v3 time_expire wants it. */
export function rfc3339Beijing(ms: number): string {
  const [y, mo, d, h, mi, s] = fields(ms);
  return `${y}-${mo}-${d}T${h}:${mi}:${s}+08:00`;
}

function fromParts(m: RegExpExecArray | null): number | undefined {
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s) - CST_OFFSET_MS;
  // Date.UTC rolls 2026-02-30 over to March; a real WeChat time never needs that.
  const back = fields(ms);
  return back.map(Number).join(',') === [y, mo, d, h, mi, s].join(',') ? ms : undefined;
}

/** `yyyyMMddHHmmss` (Beijing) → epoch ms; undefined when malformed. */
export function parseCompactBeijing(s: string | undefined): number | undefined {
  return s === undefined ? undefined : fromParts(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s));
}

/** `yyyy-MM-dd HH:mm:ss` (Beijing) → epoch ms; undefined when malformed. */
export function parseDashedBeijing(s: string | undefined): number | undefined {
  return s === undefined ? undefined : fromParts(/^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(s));
}

/** RFC 3339 with an explicit offset → epoch ms; undefined when malformed. */
export function parseRfc3339(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s)) return undefined;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? ms : undefined;
}

/** A bill date as `YYYY-MM-DD` (v3) from `YYYY-MM-DD` or `YYYYMMDD`; undefined when malformed. */
export function billDateDashed(date: string): string | undefined {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(date);
  if (!m) return undefined;
  const ms = fromParts(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(`${m[1]}${m[2]}${m[3]}000000`));
  return ms === undefined ? undefined : `${m[1]}-${m[2]}-${m[3]}`;
}
