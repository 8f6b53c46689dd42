import { AppError } from '../errors';
import type { Caller } from '../runtime/callable';
import type { Query, Store } from '../store';
import type { Deps } from './deps';

export function invalid(message: string): AppError {
  return new AppError('INVALID_INPUT', message);
}

/**
 * Refuses fields the contract does not name. A client that sends `openid`, `totalFee` or a
 * price is told so instead of being silently ignored (docs/ARCHITECTURE.md §3: never trust the client).
 */
export function onlyFields(event: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(event)) {
    if (!allowed.includes(k)) throw invalid(`unexpected field "${k}"`);
  }
}

export function optionalString(
  event: Record<string, unknown>,
  key: string,
  opts: { max: number; pattern?: RegExp },
): string | undefined {
  const v = event[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`${key} must be a string`);
  const s = v.trim();
  if (s.length > opts.max) throw invalid(`${key} must be at most ${opts.max} characters`);
  if (opts.pattern && !opts.pattern.test(s)) throw invalid(`${key} has an invalid format`);
  return s === '' ? undefined : s;
}

export function requiredString(
  event: Record<string, unknown>,
  key: string,
  opts: { max: number; pattern?: RegExp },
): string {
  const s = optionalString(event, key, opts);
  if (s === undefined) throw invalid(`${key} is required`);
  return s;
}

export function integer(event: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = event[key];
  // Stryker disable next-line ConditionalExpression: isSafeInteger is false for anything but a number; typeof only narrows the type
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(`${key} must be an integer`);
  if (v < min || v > max) throw invalid(`${key} must be from ${min} to ${max}`);
  return v;
}

export function oneOf<T extends string>(
  event: Record<string, unknown>,
  key: string,
  values: readonly T[],
): T | undefined {
  const v = event[key];
  if (v === undefined || v === null) return undefined;
  // Stryker disable next-line ConditionalExpression: values holds only strings; typeof only narrows the type
  if (typeof v !== 'string' || !values.includes(v as T))
    throw invalid(`${key} must be one of ${values.join(', ')}`);
  return v as T;
}

export const ID_PATTERN = /^[0-9A-Za-z_-]{1,64}$/;

export function requireOpenid(caller: Caller): string {
  if (!caller.openid) throw new AppError('UNAUTHENTICATED', 'call this function from the mini-program');
  return caller.openid;
}

export function requireAdmin(deps: Deps, caller: Caller): string {
  const openid = requireOpenid(caller);
  if (!deps.config.adminOpenids.has(openid)) throw new AppError('FORBIDDEN', 'only the merchant may do this');
  return openid;
}

/** yyyyMMddHHmmss in Beijing time, the format of time_expire and time_end. */
export function beijingTime(ms: number): string {
  const d = new Date(ms + 8 * 3600_000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/**
 * Cursor for lists in creation order: the last item's time and id, so ties never skip or
 * repeat. An oldest-first cursor says so, and is refused by a newest-first listing (and back).
 */
export function encodeCursor(atMs: number, id: string, oldestFirst = false): string {
  const v: unknown[] = oldestFirst ? [atMs, id, 'asc'] : [atMs, id];
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

export function decodeCursor(cursor: unknown, oldestFirst = false): { atMs: number; id: string } | undefined {
  if (cursor === undefined || cursor === null || cursor === '') return undefined;
  if (typeof cursor !== 'string' || cursor.length > 200) throw invalid('cursor is invalid');
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      Number.isSafeInteger(v[0]) &&
      typeof v[1] === 'string' &&
      ID_PATTERN.test(v[1]) &&
      (oldestFirst ? v.length === 3 && v[2] === 'asc' : v.length === 2)
    ) {
      return { atMs: v[0], id: v[1] };
    }
  } catch {
    // fall through
  }
  throw invalid('cursor is invalid');
}

/**
 * One page of `collection` matching `base` in creation order (newest first unless
 * `oldestFirst`), continuing after `cursor`. Paging by (createdAtMs, _id) rather than skip
 * keeps pages stable while new documents arrive.
 */
export async function createdOrderPage<T extends { _id: string; createdAtMs: number }>(
  store: Store,
  collection: string,
  base: Query,
  rawCursor: unknown,
  pageSize: number,
  oldestFirst = false,
): Promise<{ rows: T[]; nextCursor: string | null }> {
  const cursor = decodeCursor(rawCursor, oldestFirst);
  const _ = store.cmd;
  const after = oldestFirst ? _.gt : _.lt;
  const where = cursor
    ? _.and([
        base,
        _.or([{ createdAtMs: after(cursor.atMs) }, { createdAtMs: cursor.atMs, _id: after(cursor.id) }]),
      ])
    : base;
  const direction = oldestFirst ? 'asc' : 'desc';
  const rows = await store.find<T>(collection, where, {
    orderBy: [
      ['createdAtMs', direction],
      ['_id', direction],
    ],
    limit: pageSize + 1,
  });
  const page = rows.slice(0, pageSize);
  const last = page[page.length - 1];
  return {
    rows: page,
    nextCursor: rows.length > pageSize && last ? encodeCursor(last.createdAtMs, last._id, oldestFirst) : null,
  };
}

/** One newest-first page (see createdOrderPage). */
export function newestFirstPage<T extends { _id: string; createdAtMs: number }>(
  store: Store,
  collection: string,
  base: Query,
  rawCursor: unknown,
  pageSize: number,
): Promise<{ rows: T[]; nextCursor: string | null }> {
  return createdOrderPage<T>(store, collection, base, rawCursor, pageSize);
}
