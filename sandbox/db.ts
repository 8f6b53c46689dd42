/**
 * An admin view of the emulator's database for seeding, the console and test assertions.
 * It uses @cloudbase/node-sdk (the layer wx-server-sdk wraps, same pinned version) because
 * wx-server-sdk's init is once per process, and tests and tools talk to several emulators.
 */
// biome-ignore lint/suspicious/noExplicitAny: the node-sdk ships loose types; this is a test/tool edge.
type Raw = any;

// Stops the node-sdk from probing Tencent Cloud's metadata service for credentials.
process.env['TENCENTCLOUD'] ??= 'true';
// The node-sdk is CommonJS only.
const tcb = require('@cloudbase/node-sdk');

export interface AdminDb {
  raw: Raw;
  command: Raw;
  all<T>(collection: string, where?: Record<string, unknown>): Promise<T[]>;
  get<T>(collection: string, id: string): Promise<T | null>;
  count(collection: string, where?: Record<string, unknown>): Promise<number>;
  insertMany(collection: string, docs: Record<string, unknown>[]): Promise<void>;
}

export function adminDatabase(serviceUrl: string): AdminDb {
  const db = tcb.init({ env: 'local', secretId: 'local', secretKey: 'local', serviceUrl }).database();
  return {
    raw: db,
    command: db.command,
    async all<T>(collection: string, where: Record<string, unknown> = {}) {
      const out: T[] = [];
      for (let skip = 0; ; skip += 1000) {
        const res = await db.collection(collection).where(where).skip(skip).limit(1000).get();
        out.push(...(res.data as T[]));
        if (res.data.length < 1000) return out;
      }
    },
    async get<T>(collection: string, id: string) {
      const res = await db.collection(collection).doc(id).get();
      return ((res.data as T[])[0] ?? null) as T | null;
    },
    async count(collection: string, where: Record<string, unknown> = {}) {
      return (await db.collection(collection).where(where).count()).total as number;
    },
    async insertMany(collection: string, docs: Record<string, unknown>[]) {
      if (docs.length > 0) await db.collection(collection).add(docs);
    },
  };
}
