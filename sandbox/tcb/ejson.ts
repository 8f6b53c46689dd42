/**
 * EJSON in and out, with the same `bson` build the SDK uses (@cloudbase/database → bson 4.7).
 *
 * The SDK sends canonical EJSON strings ({"$numberInt":"1"}, {"$date":…}) and parses our
 * answers with relaxed EJSON.parse, so documents live in memory as relaxed values (plain
 * numbers, Date) that mingo can compare, and go back out as canonical EJSON.
 */
import { BSONRegExp, EJSON } from 'bson';
import { tcbErrors } from './errors';

export type Doc = Record<string, unknown>;

export function parseEjson(text: unknown, what: string): unknown {
  if (typeof text !== 'string') throw tcbErrors.invalidParam(`${what} must be an EJSON string`);
  try {
    return EJSON.parse(text, { relaxed: true });
  } catch (e) {
    throw tcbErrors.invalidParam(`${what} is not valid EJSON: ${(e as Error).message}`);
  }
}

export function stringifyEjson(value: unknown): string {
  return EJSON.stringify(value as Doc, { relaxed: false });
}

function isPlainObject(v: unknown): v is Doc {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const MONGO_TO_JS_FLAGS: Record<string, string> = { i: 'i', m: 'm', s: 's', u: 'u' };

/**
 * Resolves what only the server can: `db.serverDate({offset})` arrives as
 * {$tcb_server_date:{offset}} and becomes the server's clock (plus offset ms); BSON regular
 * expressions become native RegExp so mingo can evaluate `db.RegExp` conditions.
 */
export function resolveServerValues(value: unknown, nowMs: number): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveServerValues(v, nowMs));
  if (value instanceof BSONRegExp) {
    const flags = [...value.options].map((f) => MONGO_TO_JS_FLAGS[f] ?? '').join('');
    return new RegExp(value.pattern, flags);
  }
  if (!isPlainObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === '$tcb_server_date') {
    const spec = value['$tcb_server_date'];
    const offset = isPlainObject(spec) && typeof spec['offset'] === 'number' ? spec['offset'] : 0;
    return new Date(nowMs + offset);
  }
  const out: Doc = {};
  for (const k of keys) out[k] = resolveServerValues(value[k], nowMs);
  return out;
}

/**
 * Deep copy for stored documents: plain objects and arrays are copied, Date is copied, other
 * values (BSON class instances, RegExp) are immutable in practice and shared.
 */
export function cloneValue<T>(value: T): T {
  if (Array.isArray(value)) return value.map(cloneValue) as T;
  if (value instanceof Date) return new Date(value.getTime()) as T;
  if (!isPlainObject(value)) return value;
  const out: Doc = {};
  for (const k of Object.keys(value)) out[k] = cloneValue(value[k]);
  return out as T;
}

export { isPlainObject };
