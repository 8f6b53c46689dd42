/**
 * The TCB admin API's database actions, as @cloudbase/database@1.4.3 sends them (recorded from
 * the real wx-server-sdk, see test/emulator): request fields in, the response body the SDK
 * reads out. Errors are answered as {code, message} with HTTP 200, which is how the SDK
 * expects them (it maps `code` through TCB_ERR_CODE).
 */
import { randomUUID } from 'node:crypto';
import { type Doc, isPlainObject, parseEjson, resolveServerValues, stringifyEjson } from './ejson';
import { TcbError, tcbErrors } from './errors';
import type { Store } from './store';

export interface ActionRequest {
  action?: unknown;
  collectionName?: unknown;
  query?: unknown;
  data?: unknown;
  multi?: unknown;
  merge?: unknown;
  upsert?: unknown;
  limit?: unknown;
  offset?: unknown;
  order?: unknown;
  projection?: unknown;
  transactionId?: unknown;
  stages?: unknown;
}

export type ActionResponse = Record<string, unknown> & { requestId: string };

function collectionName(req: ActionRequest): string {
  if (typeof req.collectionName !== 'string' || req.collectionName === '') {
    throw tcbErrors.invalidParam('collectionName is required');
  }
  return req.collectionName;
}

function txId(req: ActionRequest): string | undefined {
  return typeof req.transactionId === 'string' && req.transactionId ? req.transactionId : undefined;
}

function decodeObject(value: unknown, what: string, now: number, fallback?: Doc): Doc {
  if (value === undefined || value === null || value === '') {
    if (fallback) return fallback;
    throw tcbErrors.invalidParam(`${what} is required`);
  }
  const parsed = resolveServerValues(typeof value === 'string' ? parseEjson(value, what) : value, now);
  if (!isPlainObject(parsed)) throw tcbErrors.invalidParam(`${what} must be an object`);
  return parsed;
}

/** orderBy arrives as {"field": ±1} (EJSON); very old SDKs sent [{field, direction}]. */
function decodeOrder(value: unknown, now: number): Record<string, 1 | -1> | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const parsed = typeof value === 'string' ? parseEjson(value, 'order') : value;
  const out: Record<string, 1 | -1> = {};
  if (Array.isArray(parsed)) {
    for (const o of parsed) {
      if (isPlainObject(o) && typeof o['field'] === 'string')
        out[o['field']] = o['direction'] === 'desc' ? -1 : 1;
    }
    return out;
  }
  for (const [k, v] of Object.entries(decodeObject(parsed, 'order', now))) out[k] = Number(v) < 0 ? -1 : 1;
  return out;
}

function nonNegativeInt(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw tcbErrors.invalidParam(`${what} must be a non-negative integer`);
  return n;
}

export async function runAction(
  store: Store,
  req: ActionRequest,
  nowMs: number,
): Promise<Record<string, unknown>> {
  switch (req.action) {
    case 'database.insertDocument': {
      const docs = Array.isArray(req.data) ? req.data : [req.data];
      const decoded = docs.map((d) => decodeObject(d, 'data', nowMs));
      const insertedIds = await store.insert(collectionName(req), decoded, txId(req));
      return { data: { insertedIds } };
    }
    case 'database.getDocument': {
      const list = store.find(
        collectionName(req),
        {
          query: decodeObject(req.query, 'query', nowMs, {}),
          order: decodeOrder(req.order, nowMs),
          offset: nonNegativeInt(req.offset, 'offset'),
          limit: nonNegativeInt(req.limit, 'limit'),
          projection: req.projection ? decodeObject(req.projection, 'projection', nowMs) : undefined,
        },
        txId(req),
      );
      await store.whenDurable();
      return { data: { list: list.map(stringifyEjson) } };
    }
    case 'database.calculateDocument': {
      const total = store.count(collectionName(req), decodeObject(req.query, 'query', nowMs, {}));
      await store.whenDurable();
      return { data: { total } };
    }
    case 'database.modifyDocument': {
      const { updated, upsertId } = await store.modify(
        collectionName(req),
        {
          query: decodeObject(req.query, 'query', nowMs, {}),
          data: decodeObject(req.data, 'data', nowMs),
          multi: req.multi === true,
          merge: req.merge !== false,
          upsert: req.upsert === true,
        },
        txId(req),
      );
      return { data: upsertId === undefined ? { updated } : { updated, upsert_id: upsertId } };
    }
    case 'database.removeDocument': {
      const deleted = await store.remove(
        collectionName(req),
        decodeObject(req.query, 'query', nowMs, {}),
        req.multi === true,
        txId(req),
      );
      return { data: { deleted } };
    }
    case 'database.aggregateDocuments': {
      const stages = Array.isArray(req.stages) ? req.stages : [];
      const pipeline = stages.map((s) => {
        if (!isPlainObject(s) || typeof s['stageKey'] !== 'string') throw tcbErrors.invalidParam('bad stage');
        const value =
          typeof s['stageValue'] === 'string' ? parseEjson(s['stageValue'], 'stageValue') : s['stageValue'];
        return { [s['stageKey']]: resolveServerValues(value, nowMs) } as Doc;
      });
      const list = store.aggregate(collectionName(req), pipeline);
      await store.whenDurable();
      return { data: { list: list.map(stringifyEjson) } };
    }
    case 'database.addCollection':
      await store.createCollection(collectionName(req));
      return {};
    case 'database.startTransaction':
      return { transactionId: store.startTransaction() };
    case 'database.commitTransaction':
      if (!txId(req)) throw tcbErrors.transactionNotExist();
      await store.commitTransaction(txId(req)!);
      return {};
    case 'database.abortTransaction':
      if (!txId(req)) throw tcbErrors.transactionNotExist();
      store.abortTransaction(txId(req)!);
      return {};
    default:
      throw tcbErrors.unsupportedAction(String(req.action));
  }
}

/** One request in, one response body out; never throws. */
export async function handleAction(store: Store, req: ActionRequest, nowMs: number): Promise<ActionResponse> {
  const requestId = randomUUID();
  try {
    return { requestId, ...(await runAction(store, req, nowMs)) };
  } catch (e) {
    if (e instanceof TcbError) return { requestId, code: e.code, message: e.message };
    // A bug in the emulator, not a database answer: say so instead of inventing a TCB code.
    return {
      requestId,
      code: 'SYS_ERR',
      message: `[InternalError] tcb emulator: ${(e as Error).stack ?? e}`,
    };
  }
}
