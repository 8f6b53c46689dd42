/**
 * A small typed port over the wx-server-sdk database. The SDK's own types are unusable
 * (every call is `Promise | void | string`), and the domain should say what it means:
 * get by id, insert once, compare-and-set, find. Every call is one round trip, counted,
 * so logs and benchmarks can hold the design minimum.
 */
import { AppError } from './errors';

// biome-ignore lint/suspicious/noExplicitAny: raw SDK objects, typed at this boundary only.
type Raw = any;

export type Command = Raw;
export type Query = Record<string, unknown>;

export interface FindOptions {
  orderBy?: [field: string, direction: 'asc' | 'desc'][];
  /** Default 100; at most 1000, CloudBase's server-side cap (mind the 1 MB result limit). */
  limit?: number;
  skip?: number;
  /** Only these fields (and _id): keeps large pages under the 1 MB result limit. */
  fields?: readonly string[];
}

export class StoreError extends AppError {}

function errCode(e: unknown): number | undefined {
  const c = (e as { errCode?: unknown } | null)?.errCode;
  return typeof c === 'number' ? c : undefined;
}

/** -502001 with E11000 is CloudBase's duplicate `_id` or unique-index violation. */
export function isDuplicateKey(e: unknown): boolean {
  const msg = String(
    (e as { errMsg?: unknown; message?: unknown } | null)?.errMsg ?? (e as Error)?.message ?? '',
  );
  return errCode(e) === -502001 && /E11000|duplicate/i.test(msg);
}

export class Store {
  private count = 0;
  private waited = 0;
  readonly cmd: Command;

  constructor(private readonly db: Raw) {
    this.cmd = db.command;
  }

  /** Database round trips made through this store. */
  get requests(): number {
    return this.count;
  }

  /** Milliseconds spent waiting for the database (lookups, queries, counts, updates). */
  get waitMs(): number {
    return this.waited;
  }

  private async call(what: string, run: () => Promise<Raw>): Promise<Raw> {
    this.count++;
    const started = Date.now();
    try {
      return await run();
    } catch (e) {
      if (e instanceof AppError) throw e;
      throw new StoreError('DB_ERROR', `database ${what} failed: ${(e as Error)?.message ?? String(e)}`, {
        cause: e,
        details: { errCode: errCode(e) },
      });
    } finally {
      this.waited += Date.now() - started;
    }
  }

  async get<T>(collection: string, id: string): Promise<T | null> {
    const res = await this.call(`get ${collection}`, () => this.db.collection(collection).doc(id).get());
    return (res?.data ?? null) as T | null;
  }

  /** Inserts a document with its own `_id`; 'duplicate' if that id (or a unique index) exists. */
  async insert(
    collection: string,
    doc: { _id: string; [k: string]: unknown } | { _id: string },
  ): Promise<'inserted' | 'duplicate'> {
    this.count++;
    try {
      await this.db.collection(collection).add({ data: doc });
      return 'inserted';
    } catch (e) {
      if (isDuplicateKey(e)) return 'duplicate';
      throw new StoreError(
        'DB_ERROR',
        `database insert into ${collection} failed: ${(e as Error)?.message}`,
        {
          cause: e,
          details: { errCode: errCode(e) },
        },
      );
    }
  }

  /**
   * Compare-and-set: updates the one document matching `where` (which must pin `_id`).
   * CloudBase applies a single-document update atomically and re-checks the condition,
   * so `true` means this caller won the transition.
   */
  async cas(
    collection: string,
    where: Query & { _id: string },
    data: Record<string, unknown>,
  ): Promise<boolean> {
    const res = await this.call(`update ${collection}`, () =>
      this.db.collection(collection).where(where).update({ data }),
    );
    return res?.stats?.updated === 1;
  }

  async find<T>(collection: string, where: Query, options: FindOptions = {}): Promise<T[]> {
    const res = await this.call(`query ${collection}`, () => {
      let q = this.db.collection(collection).where(where);
      for (const [field, dir] of options.orderBy ?? []) q = q.orderBy(field, dir);
      if (options.skip) q = q.skip(options.skip);
      if (options.fields) q = q.field(Object.fromEntries(options.fields.map((f) => [f, true])));
      q = q.limit(Math.min(options.limit ?? 100, 1000));
      return q.get();
    });
    return (res?.data ?? []) as T[];
  }

  /** How many documents match (one request, whatever the count). */
  async countWhere(collection: string, where: Query): Promise<number> {
    const res = await this.call(`count ${collection}`, () =>
      this.db.collection(collection).where(where).count(),
    );
    return Number(res?.total ?? 0);
  }
}
