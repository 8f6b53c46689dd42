/**
 * The emulator's document store: collections of EJSON documents with MongoDB semantics.
 *
 * Why mingo over our own persistence: the SDK sends MongoDB query and update documents
 * ($ne, $in, $elemMatch, $push with $each, dot paths, …) and the platform runs them on
 * MongoDB. mingo is a maintained, widely used implementation of exactly that language, so
 * the emulator inherits Mongo's matching, sorting and update rules instead of a hand-written
 * subset. What mingo lacks (durability, unique indexes, locks, transactions, and the write
 * errors Mongo raises where mingo is lenient) is implemented here.
 *
 * Atomicity: every operation finds its targets and applies its change synchronously, with no
 * `await` in between, on Node's single thread. So `where({_id, status:'A'}).update(...)` is a
 * true compare-and-set: of N concurrent requests exactly one sees status 'A'.
 */
import { randomBytes } from 'node:crypto';
import { Aggregator, Query, update } from 'mingo';
import { cloneValue, type Doc, isPlainObject, stringifyEjson } from './ejson';
import { TcbError, tcbErrors } from './errors';
import type { JournalEntry, JournalWrite, SnapshotState } from './journal';

export interface IndexSpec {
  fields: string[];
  unique?: boolean;
  /** Leave out documents that have none of the fields (MongoDB's sparse index). */
  sparse?: boolean;
  name?: string;
}

export interface FindOptions {
  query: Doc;
  order?: Record<string, 1 | -1>;
  offset?: number;
  limit?: number;
  projection?: Doc;
}

export interface ModifyOptions {
  query: Doc;
  data: Doc;
  multi: boolean;
  /** true: `data` holds update operators; false: `data` replaces the document (doc.set). */
  merge: boolean;
  upsert: boolean;
}

export interface StoreOptions {
  indexes?: Record<string, IndexSpec[]>;
  /** Transactions not committed or aborted within this time are aborted (TCB says 30 s). */
  transactionLifetimeMs?: number;
  now?: () => number;
  /** Called with each committed change; resolves when it is durable. */
  persist?: (entry: JournalEntry) => Promise<void>;
}

/** What find/count/update use: the server's default and maximum page sizes (reference §1.5). */
export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

const UPDATE_OPERATORS = new Set([
  '$set',
  '$unset',
  '$inc',
  '$mul',
  '$min',
  '$max',
  '$rename',
  '$bit',
  '$push',
  '$pop',
  '$addToSet',
  '$pull',
  '$pullAll',
  '$currentDate',
]);

interface UniqueIndex {
  name: string;
  fields: string[];
  sparse: boolean;
  /** tuple of field values → key of the document holding it */
  entries: Map<string, string>;
}

interface Collection {
  name: string;
  docs: Map<string, Doc>;
  unique: UniqueIndex[];
}

interface TxWrite {
  c: string;
  key: string;
  id: unknown;
  doc: Doc | null;
}

interface Transaction {
  id: string;
  /** Pre-images of documents others changed after this transaction began (copy-on-write). */
  snapshot: Map<string, Doc | null>;
  writes: Map<string, TxWrite>;
  timer: NodeJS.Timeout;
}

export function idKey(id: unknown): string {
  return typeof id === 'string' ? `s${id}` : `j${stringifyEjson({ v: id })}`;
}

const lockKey = (c: string, key: string) => `${c}\u0000${key}`;

let idCounter = randomBytes(3).readUIntBE(0, 3);
/** 32 hex chars, time-prefixed like TCB's generated ids so insertion order sorts roughly by _id. */
export function newDocId(nowMs: number): string {
  idCounter = (idCounter + 1) % 0xffffff;
  return (
    Math.floor(nowMs / 1000)
      .toString(16)
      .padStart(8, '0') +
    idCounter.toString(16).padStart(6, '0') +
    randomBytes(9).toString('hex')
  );
}

function compileQuery(query: Doc): Query {
  try {
    return new Query(query);
  } catch (e) {
    throw tcbErrors.invalidOperator((e as Error).message);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) return 'date';
  return typeof value;
}

function getPath(doc: unknown, path: string[]): unknown {
  let cur = doc;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Doc)[seg];
  }
  return cur;
}

/**
 * mingo quietly overwrites or skips where MongoDB refuses an update; the platform returns
 * these refusals as -502001 (e.g. "Cannot create field 'x' in element {y: null}", reference
 * §1.3), so they are checked here first with Mongo's wording.
 */
function checkUpdateAllowed(doc: Doc, modifier: Doc): void {
  for (const [op, spec] of Object.entries(modifier)) {
    if (!UPDATE_OPERATORS.has(op)) throw tcbErrors.writeFailed(`Unknown modifier: ${op}`);
    if (!isPlainObject(spec))
      throw tcbErrors.writeFailed(`Modifiers operate on fields but we found a ${describe(spec)} instead`);
    for (const [field, arg] of Object.entries(spec)) {
      const path = field.split('.');
      if (path[0] === '_id' && op !== '$unset') {
        const before = doc['_id'];
        const after = op === '$set' ? arg : undefined;
        if (op !== '$set' || stringifyEjson({ v: before }) !== stringifyEjson({ v: after })) {
          throw tcbErrors.writeFailed(
            `Performing an update on the path '_id' would modify the immutable field '_id'`,
          );
        }
      }
      if (op !== '$unset') {
        let cur: unknown = doc;
        for (let i = 0; i < path.length - 1; i++) {
          const seg = path[i]!;
          const next = (cur as Doc)[seg];
          if (next === undefined) break;
          const child = path[i + 1]!;
          const isIndex = /^\d+$/.test(child);
          if (
            next === null ||
            typeof next !== 'object' ||
            next instanceof Date ||
            (Array.isArray(next) && !isIndex)
          ) {
            throw tcbErrors.writeFailed(
              `Cannot create field '${child}' in element {${seg}: ${next === null ? 'null' : JSON.stringify(next)}}`,
            );
          }
          cur = next;
        }
      }
      const current = getPath(doc, path);
      if ((op === '$inc' || op === '$mul') && current !== undefined && typeof current !== 'number') {
        throw tcbErrors.writeFailed(
          `Cannot apply ${op} to a value of non-numeric type. {_id: ${JSON.stringify(doc['_id'])}} has the field '${field}' of non-numeric type ${describe(current)}`,
        );
      }
      if ((op === '$inc' || op === '$mul') && typeof arg !== 'number') {
        throw tcbErrors.writeFailed(
          `Cannot ${op === '$inc' ? 'increment' : 'multiply'} with non-numeric argument: {${field}: ${JSON.stringify(arg)}}`,
        );
      }
      if (
        ['$push', '$addToSet', '$pop', '$pull', '$pullAll'].includes(op) &&
        current !== undefined &&
        !Array.isArray(current)
      ) {
        throw tcbErrors.writeFailed(
          `The field '${field}' must be an array but is of type ${describe(current)} in document {_id: ${JSON.stringify(doc['_id'])}}`,
        );
      }
    }
  }
}

/** Applies update operators to a copy; returns the new document, or null when nothing changed. */
function applyModifier(doc: Doc, modifier: Doc): Doc | null {
  checkUpdateAllowed(doc, modifier);
  const next = cloneValue(doc);
  let changed: string[];
  try {
    changed = update(next, modifier as never);
  } catch (e) {
    throw tcbErrors.writeFailed((e as Error).message);
  }
  return changed.length > 0 ? next : null;
}

function sameDoc(a: Doc, b: Doc): boolean {
  return stringifyEjson(a) === stringifyEjson(b);
}

function setPath(doc: Doc, path: string, value: unknown): void {
  const segs = path.split('.');
  let cur = doc;
  for (const seg of segs.slice(0, -1)) {
    if (!isPlainObject(cur[seg])) cur[seg] = {};
    cur = cur[seg] as Doc;
  }
  cur[segs[segs.length - 1]!] = cloneValue(value);
}

/** The fields an upsert copies from its query: top-level equalities (Mongo's rule). */
function equalityFields(query: Doc, into: Doc = {}): Doc {
  for (const [k, v] of Object.entries(query)) {
    if (k === '$and' && Array.isArray(v)) {
      for (const sub of v) if (isPlainObject(sub)) equalityFields(sub, into);
      continue;
    }
    if (k.startsWith('$')) continue;
    if (isPlainObject(v) && Object.keys(v).some((x) => x.startsWith('$'))) {
      if ('$eq' in v) setPath(into, k, v['$eq']);
      continue;
    }
    setPath(into, k, v);
  }
  return into;
}

const isIdValue = (v: unknown): v is string | number => typeof v === 'string' || typeof v === 'number';

/**
 * The ids a query pins `_id` to (`doc(id)`, a compare-and-set `{_id, status}`, or
 * `_id: _.in([...])`, whatever else it says), so it is served from the id map the way
 * MongoDB serves it from the _id index, instead of a scan of the collection. Each candidate
 * is still tested against the whole query. Undefined: the query does not pin `_id`.
 */
function pinnedIds(query: Doc): (string | number)[] | undefined {
  const v = query['_id'];
  if (isIdValue(v)) return [v];
  if (!isPlainObject(v)) return undefined;
  const ops = Object.keys(v);
  if (ops.length !== 1) return undefined;
  if (ops[0] === '$eq' && isIdValue(v['$eq'])) return [v['$eq']];
  const list = v['$in'];
  if (ops[0] === '$in' && Array.isArray(list) && list.every(isIdValue)) return list;
  return undefined;
}

/**
 * What each candidate is tested against. When `_id` is pinned, the candidates come from the id
 * map and already satisfy it, so the pin is left out: mingo's `$in` hashes its whole list for
 * every document it tests, which made an `_id in` of 1,000 ids cost a million hash operations.
 */
function compileFilter(query: Doc): Query {
  if (pinnedIds(query) === undefined) return compileQuery(query);
  const { _id: _pinned, ...rest } = query;
  return compileQuery(rest);
}

/**
 * The projection a function's `field()` sends (top-level fields included, `_id` kept unless
 * excluded) applied by hand after sort and limit, as MongoDB applies it: mingo's general
 * projection cost more than the query itself on a 1,000-document read. Anything else (dotted
 * paths, exclusions, operators) is left to mingo.
 */
function topLevelInclusion(projection: Doc | undefined): ((doc: Doc) => Doc) | undefined {
  if (!projection) return undefined;
  const fields: string[] = [];
  let keepId = true;
  for (const [k, v] of Object.entries(projection)) {
    if (k === '_id' && (v === 0 || v === false)) keepId = false;
    else if (k.includes('.') || k.startsWith('$') || (v !== 1 && v !== true)) return undefined;
    else if (k !== '_id') fields.push(k);
  }
  if (fields.length === 0) return undefined;
  if (keepId) fields.unshift('_id');
  return (doc) => {
    const out: Doc = {};
    for (const f of fields) if (f in doc) out[f] = doc[f];
    return out;
  };
}

export class Store {
  private readonly collections = new Map<string, Collection>();
  private readonly indexSpecs: Record<string, IndexSpec[]>;
  private readonly transactions = new Map<string, Transaction>();
  /** lockKey → id of the transaction that wrote the document and has not finished. */
  private readonly locks = new Map<string, string>();
  private readonly lockWaiters = new Map<string, (() => void)[]>();
  private readonly now: () => number;
  private readonly lifetimeMs: number;
  private persist: ((entry: JournalEntry) => Promise<void>) | undefined;
  private seq = 0;
  /** Resolves when everything committed so far is durable; reads wait on it too. */
  private durable: Promise<void> = Promise.resolve();

  constructor(options: StoreOptions = {}) {
    this.indexSpecs = options.indexes ?? {};
    this.now = options.now ?? Date.now;
    this.lifetimeMs = options.transactionLifetimeMs ?? 30_000;
    this.persist = options.persist;
  }

  setPersist(persist: (entry: JournalEntry) => Promise<void>): void {
    this.persist = persist;
  }

  // ── recovery and snapshots ───────────────────────────────────────────────────────────

  load(state: SnapshotState | null, entries: JournalEntry[]): void {
    if (state) {
      this.seq = state.seq;
      for (const [name, docs] of Object.entries(state.collections)) {
        const coll = this.ensureCollection(name);
        for (const d of docs) this.applyWrite(coll, idKey(d['_id']), d);
      }
    }
    for (const e of entries) {
      if (e.seq <= this.seq) continue;
      this.seq = e.seq;
      for (const name of e.create ?? []) this.ensureCollection(name);
      for (const w of e.writes ?? []) this.applyWrite(this.ensureCollection(w.c), idKey(w.id), w.doc);
    }
  }

  snapshot(): SnapshotState {
    const collections: Record<string, Doc[]> = {};
    for (const c of this.collections.values()) collections[c.name] = [...c.docs.values()];
    return { seq: this.seq, collections };
  }

  collectionNames(): string[] {
    return [...this.collections.keys()].sort();
  }

  /** Waits for everything acknowledged so far to be on disk. */
  whenDurable(): Promise<void> {
    return this.durable;
  }

  close(): void {
    for (const tx of this.transactions.values()) clearTimeout(tx.timer);
    this.transactions.clear();
  }

  // ── collections and indexes ──────────────────────────────────────────────────────────

  private ensureCollection(name: string): Collection {
    let c = this.collections.get(name);
    if (!c) {
      const unique = (this.indexSpecs[name] ?? [])
        .filter((s) => s.unique)
        .map((s) => ({
          name: s.name ?? s.fields.map((f) => `${f}_1`).join('_'),
          fields: s.fields,
          sparse: s.sparse === true,
          entries: new Map<string, string>(),
        }));
      c = { name, docs: new Map(), unique };
      this.collections.set(name, c);
    }
    return c;
  }

  private collection(name: string): Collection {
    const c = this.collections.get(name);
    if (!c) throw tcbErrors.collectionNotExist(name);
    return c;
  }

  createCollection(name: string): Promise<void> {
    if (!name || typeof name !== 'string') throw tcbErrors.invalidParam('collectionName is required');
    if (this.collections.has(name)) throw tcbErrors.collectionExists();
    this.ensureCollection(name);
    return this.commit([], [name]);
  }

  /** The index key of a document, or null when a sparse index leaves it out. */
  private tupleKey(index: UniqueIndex, doc: Doc): string | null {
    const values = index.fields.map((f) => getPath(doc, f.split('.')));
    if (index.sparse && values.every((v) => v === undefined)) return null;
    // Mongo indexes a missing field as null, so two documents without it collide too.
    return stringifyEjson(values.map((v) => v ?? null));
  }

  private duplicateError(coll: Collection, index: UniqueIndex | null, doc: Doc): TcbError {
    const fields = index ? index.fields : ['_id'];
    const dup = fields.map((f) => `${f}: ${JSON.stringify(getPath(doc, f.split('.')) ?? null)}`).join(', ');
    return tcbErrors.writeFailed(
      `E11000 duplicate key error collection: local.${coll.name} index: ${index ? index.name : '_id_'} dup key: { ${dup} }`,
    );
  }

  /**
   * Checks unique indexes for a batch of changes against the committed documents.
   * `changes` maps document keys to their new value (null = removed).
   */
  private checkUnique(coll: Collection, changes: Map<string, Doc | null>): void {
    for (const index of coll.unique) {
      const claimed = new Map<string, string>();
      for (const [key, doc] of changes) {
        if (!doc) continue;
        const tk = this.tupleKey(index, doc);
        if (tk === null) continue;
        const owner = index.entries.get(tk);
        const ownerStillHasIt =
          owner !== undefined &&
          owner !== key &&
          (!changes.has(owner) || (changes.get(owner) && this.tupleKey(index, changes.get(owner)!) === tk));
        if (ownerStillHasIt || (claimed.has(tk) && claimed.get(tk) !== key)) {
          throw this.duplicateError(coll, index, doc);
        }
        claimed.set(tk, key);
      }
    }
  }

  private applyWrite(coll: Collection, key: string, doc: Doc | null): void {
    const old = coll.docs.get(key);
    for (const index of coll.unique) {
      const oldKey = old ? this.tupleKey(index, old) : null;
      if (oldKey !== null && index.entries.get(oldKey) === key) index.entries.delete(oldKey);
      const newKey = doc ? this.tupleKey(index, doc) : null;
      if (newKey !== null) index.entries.set(newKey, key);
    }
    if (doc) coll.docs.set(key, doc);
    else coll.docs.delete(key);
  }

  /**
   * The single place where committed state changes. Before overwriting, it saves the
   * pre-image into every open transaction that has not seen this document change yet, which
   * is what gives transactions their start-time snapshot.
   */
  private commit(writes: TxWrite[], create: string[] = []): Promise<void> {
    if (writes.length === 0 && create.length === 0) return this.durable;
    for (const w of writes) {
      const coll = this.ensureCollection(w.c);
      const lk = lockKey(w.c, w.key);
      for (const tx of this.transactions.values()) {
        if (!tx.snapshot.has(lk) && !tx.writes.has(lk)) tx.snapshot.set(lk, coll.docs.get(w.key) ?? null);
      }
      this.applyWrite(coll, w.key, w.doc);
    }
    this.seq += 1;
    const entry: JournalEntry = { seq: this.seq };
    if (create.length) entry.create = create;
    if (writes.length) entry.writes = writes.map((w): JournalWrite => ({ c: w.c, id: w.id, doc: w.doc }));
    if (this.persist) {
      const p = this.persist(entry);
      // Later reads wait for this; a failed sync is reported to the writer, not to readers.
      this.durable = p.catch(() => undefined);
      return p;
    }
    return this.durable;
  }

  // ── locks held by transactions ───────────────────────────────────────────────────────

  private lockedByOther(c: string, key: string, txId?: string): boolean {
    const owner = this.locks.get(lockKey(c, key));
    return owner !== undefined && owner !== txId;
  }

  private waitForUnlock(c: string, key: string): Promise<void> {
    const lk = lockKey(c, key);
    return new Promise((resolve) => {
      const list = this.lockWaiters.get(lk) ?? [];
      list.push(resolve);
      this.lockWaiters.set(lk, list);
    });
  }

  private releaseLocks(tx: Transaction): void {
    for (const lk of tx.writes.keys()) {
      if (this.locks.get(lk) !== tx.id) continue;
      this.locks.delete(lk);
      const waiters = this.lockWaiters.get(lk) ?? [];
      this.lockWaiters.delete(lk);
      for (const w of waiters) w();
    }
  }

  /**
   * Plain writes to a document a transaction has written wait until that transaction ends
   * ("普通的更新操作会被阻塞，直到事务锁释放或者超时", reference §1.6), then start over, so
   * their condition is evaluated against the committed result. Transactions end by commit,
   * abort or their lifetime, so the wait is bounded.
   */
  private async plainWrite<T>(c: string, attempt: () => { blockedOn?: string; run?: () => T }): Promise<T> {
    for (;;) {
      const step = attempt();
      if (step.blockedOn !== undefined) {
        await this.waitForUnlock(c, step.blockedOn);
        continue;
      }
      return step.run!();
    }
  }

  // ── transactions ─────────────────────────────────────────────────────────────────────

  startTransaction(): string {
    const id = randomBytes(16).toString('hex');
    const timer = setTimeout(() => this.abortTransaction(id, true), this.lifetimeMs);
    timer.unref();
    this.transactions.set(id, { id, snapshot: new Map(), writes: new Map(), timer });
    return id;
  }

  private tx(id: string): Transaction {
    const tx = this.transactions.get(id);
    if (!tx) throw tcbErrors.transactionNotExist();
    return tx;
  }

  abortTransaction(id: string, quiet = false): void {
    const tx = this.transactions.get(id);
    if (!tx) {
      if (quiet) return;
      throw tcbErrors.transactionNotExist();
    }
    clearTimeout(tx.timer);
    this.transactions.delete(id);
    this.releaseLocks(tx);
  }

  async commitTransaction(id: string): Promise<void> {
    const tx = this.tx(id);
    const writes = [...tx.writes.values()];
    // Unique values claimed by plain writes after this transaction wrote are caught here.
    const byColl = new Map<string, Map<string, Doc | null>>();
    for (const w of writes) {
      const m = byColl.get(w.c) ?? new Map<string, Doc | null>();
      m.set(w.key, w.doc);
      byColl.set(w.c, m);
    }
    try {
      for (const [c, changes] of byColl) this.checkUnique(this.ensureCollection(c), changes);
    } catch (e) {
      this.abortTransaction(id, true);
      throw e;
    }
    clearTimeout(tx.timer);
    this.transactions.delete(id);
    const changed = writes.filter((w) => {
      const current = this.collections.get(w.c)?.docs.get(w.key) ?? null;
      return !(current === null && w.doc === null);
    });
    const done = this.commit(changed);
    this.releaseLocks(tx);
    await done;
  }

  /** The document as the transaction sees it: its own writes, else its snapshot. */
  private txRead(tx: Transaction, coll: Collection, key: string): Doc | null {
    const lk = lockKey(coll.name, key);
    const own = tx.writes.get(lk);
    if (own) return own.doc;
    if (tx.snapshot.has(lk)) return tx.snapshot.get(lk) ?? null;
    return coll.docs.get(key) ?? null;
  }

  private txView(tx: Transaction, coll: Collection): Doc[] {
    const keys = new Set<string>(coll.docs.keys());
    const prefix = `${coll.name}\u0000`;
    for (const lk of [...tx.snapshot.keys(), ...tx.writes.keys()]) {
      if (lk.startsWith(prefix)) keys.add(lk.slice(prefix.length));
    }
    const out: Doc[] = [];
    for (const key of keys) {
      const d = this.txRead(tx, coll, key);
      if (d) out.push(d);
    }
    return out;
  }

  /**
   * A transactional write takes the document's lock. Another transaction's lock, or a commit
   * by anyone since this transaction began, is a write conflict; like MongoDB, the conflict
   * (or any other write error) aborts the transaction.
   */
  private txWrite(tx: Transaction, coll: Collection, key: string, id: unknown, doc: Doc | null): void {
    const lk = lockKey(coll.name, key);
    if (this.lockedByOther(coll.name, key, tx.id) || (tx.snapshot.has(lk) && !tx.writes.has(lk))) {
      this.abortTransaction(tx.id, true);
      throw tcbErrors.transactionConflict();
    }
    this.locks.set(lk, tx.id);
    tx.writes.set(lk, { c: coll.name, key, id, doc });
  }

  private inTransaction<T>(tx: Transaction, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof TcbError && e.code !== 'DATABASE_COLLECTION_NOT_EXIST')
        this.abortTransaction(tx.id, true);
      throw e;
    }
  }

  private txCheckUnique(tx: Transaction, coll: Collection, key: string, doc: Doc): void {
    for (const index of coll.unique) {
      const tk = this.tupleKey(index, doc);
      if (tk === null) continue;
      for (const other of this.txView(tx, coll)) {
        const ok = idKey(other['_id']);
        if (ok !== key && this.tupleKey(index, other) === tk) throw this.duplicateError(coll, index, doc);
      }
    }
  }

  // ── reads ────────────────────────────────────────────────────────────────────────────

  private candidates(coll: Collection, query: Doc, tx?: Transaction): Doc[] {
    const ids = pinnedIds(query);
    if (ids !== undefined) {
      const out: Doc[] = [];
      // An id listed twice is still one document; in _id order, as an index scan returns them.
      for (const key of [...new Set(ids.map(idKey))].sort()) {
        const d = tx ? this.txRead(tx, coll, key) : (coll.docs.get(key) ?? null);
        if (d) out.push(d);
      }
      return out;
    }
    return tx ? this.txView(tx, coll) : [...coll.docs.values()];
  }

  find(name: string, options: FindOptions, txId?: string): Doc[] {
    const coll = this.collection(name);
    const tx = txId ? this.tx(txId) : undefined;
    const query = compileFilter(options.query);
    const limit = Math.min(options.limit && options.limit > 0 ? options.limit : DEFAULT_LIMIT, MAX_LIMIT);
    const pick = topLevelInclusion(options.projection);
    try {
      let cursor = query.find<Doc>(
        this.candidates(coll, options.query, tx),
        (pick ? undefined : options.projection) as never,
      );
      if (options.order && Object.keys(options.order).length > 0) cursor = cursor.sort(options.order);
      if (options.offset) cursor = cursor.skip(options.offset);
      const docs = cursor.limit(limit).all();
      return pick ? docs.map(pick) : docs;
    } catch (e) {
      throw tcbErrors.requestFailed((e as Error).message);
    }
  }

  count(name: string, queryDoc: Doc): number {
    const coll = this.collection(name);
    const query = compileFilter(queryDoc);
    let n = 0;
    for (const d of this.candidates(coll, queryDoc)) if (query.test(d)) n += 1;
    return n;
  }

  aggregate(name: string, pipeline: Doc[]): Doc[] {
    const coll = this.collection(name);
    try {
      return new Aggregator(pipeline).run([...coll.docs.values()]) as Doc[];
    } catch (e) {
      throw tcbErrors.invalidOperator((e as Error).message);
    }
  }

  // ── writes ───────────────────────────────────────────────────────────────────────────

  /**
   * Inserts in order and stops at the first failure, keeping what was inserted before it, as
   * MongoDB's ordered insertMany does. Returns the ids.
   */
  async insert(name: string, docs: Doc[], txId?: string): Promise<unknown[]> {
    const coll = this.collection(name);
    const prepared = docs.map((d) => {
      if (!isPlainObject(d)) throw tcbErrors.invalidParam('each document must be an object');
      const doc = cloneValue(d);
      if (doc['_id'] === undefined) doc['_id'] = newDocId(this.now());
      return doc;
    });
    if (txId) {
      const tx = this.tx(txId);
      return this.inTransaction(tx, () => {
        for (const doc of prepared) {
          const key = idKey(doc['_id']);
          if (this.txRead(tx, coll, key)) throw this.duplicateError(coll, null, doc);
          this.txCheckUnique(tx, coll, key, doc);
          this.txWrite(tx, coll, key, doc['_id'], doc);
        }
        return prepared.map((d) => d['_id']);
      });
    }
    const { done, error } = await this.plainWrite(name, () => {
      for (const doc of prepared) {
        const key = idKey(doc['_id']);
        if (this.lockedByOther(name, key)) return { blockedOn: key };
      }
      return {
        run: () => {
          const writes: TxWrite[] = [];
          const changes = new Map<string, Doc | null>();
          let error: unknown;
          for (const doc of prepared) {
            const key = idKey(doc['_id']);
            try {
              if (coll.docs.has(key) || changes.has(key)) throw this.duplicateError(coll, null, doc);
              changes.set(key, doc);
              this.checkUnique(coll, changes);
            } catch (e) {
              changes.delete(key);
              error = e;
              break;
            }
            writes.push({ c: name, key, id: doc['_id'], doc });
          }
          return { done: this.commit(writes), error };
        },
      };
    });
    await done;
    if (error) throw error;
    return prepared.map((d) => d['_id']);
  }

  /** doc.update / doc.set / where.update. Returns Mongo's nModified and the upserted id. */
  async modify(
    name: string,
    options: ModifyOptions,
    txId?: string,
  ): Promise<{ updated: number; upsertId?: unknown }> {
    const coll = this.collection(name);
    const query = compileFilter(options.query);
    if (!isPlainObject(options.data)) throw tcbErrors.invalidParam('data must be an object');
    const isOperatorDoc = Object.keys(options.data).some((k) => k.startsWith('$'));
    if (!options.merge && isOperatorDoc)
      throw tcbErrors.writeFailed('The replacement document must not contain update operators');
    // merge:true with a plain object (raw callers) means "set these fields".
    const modifier: Doc = options.merge && !isOperatorDoc ? { $set: options.data } : options.data;

    const nextOf = (current: Doc): Doc | null => {
      if (options.merge) return applyModifier(current, modifier);
      const replaced = { _id: current['_id'], ...cloneValue(options.data) };
      return sameDoc(current, replaced) ? null : replaced;
    };
    const upsertDoc = (): Doc => {
      const base = equalityFields(options.query);
      const doc = options.merge ? (applyModifier(base, modifier) ?? base) : { ...cloneValue(options.data) };
      doc['_id'] = base['_id'] ?? doc['_id'] ?? newDocId(this.now());
      return doc;
    };

    if (txId) {
      const tx = this.tx(txId);
      return this.inTransaction(tx, () => {
        const matches = this.candidates(coll, options.query, tx).filter((d) => query.test(d));
        const targets = options.multi ? matches : matches.slice(0, 1);
        let updated = 0;
        for (const current of targets) {
          const key = idKey(current['_id']);
          const next = nextOf(current);
          if (!next) continue;
          this.txCheckUnique(tx, coll, key, next);
          this.txWrite(tx, coll, key, current['_id'], next);
          updated += 1;
        }
        if (targets.length === 0 && options.upsert) {
          const doc = upsertDoc();
          const key = idKey(doc['_id']);
          this.txCheckUnique(tx, coll, key, doc);
          this.txWrite(tx, coll, key, doc['_id'], doc);
          return { updated: 0, upsertId: doc['_id'] };
        }
        return { updated };
      });
    }

    const { done, result, error } = await this.plainWrite(name, () => {
      const matches = this.candidates(coll, options.query).filter((d) => query.test(d));
      const targets = options.multi ? matches : matches.slice(0, 1);
      for (const d of targets) {
        const key = idKey(d['_id']);
        if (this.lockedByOther(name, key)) return { blockedOn: key };
      }
      if (targets.length === 0 && options.upsert) {
        const id = equalityFields(options.query)['_id'];
        if (id !== undefined && this.lockedByOther(name, idKey(id))) return { blockedOn: idKey(id) };
      }
      return {
        run: () => {
          const writes: TxWrite[] = [];
          const changes = new Map<string, Doc | null>();
          let error: unknown;
          let upsertId: unknown;
          try {
            for (const current of targets) {
              const key = idKey(current['_id']);
              const next = nextOf(current);
              if (!next) continue;
              changes.set(key, next);
              this.checkUnique(coll, changes);
              writes.push({ c: name, key, id: current['_id'], doc: next });
            }
            if (targets.length === 0 && options.upsert) {
              const doc = upsertDoc();
              const key = idKey(doc['_id']);
              changes.set(key, doc);
              this.checkUnique(coll, changes);
              writes.push({ c: name, key, id: doc['_id'], doc });
              upsertId = doc['_id'];
            }
          } catch (e) {
            error = e;
          }
          const result = upsertId === undefined ? { updated: writes.length } : { updated: 0, upsertId };
          return { done: this.commit(writes), result, error };
        },
      };
    });
    await done;
    if (error) throw error;
    return result;
  }

  async remove(name: string, queryDoc: Doc, multi: boolean, txId?: string): Promise<number> {
    const coll = this.collection(name);
    const query = compileFilter(queryDoc);
    if (txId) {
      const tx = this.tx(txId);
      return this.inTransaction(tx, () => {
        const matches = this.candidates(coll, queryDoc, tx).filter((d) => query.test(d));
        const targets = multi ? matches : matches.slice(0, 1);
        for (const d of targets) this.txWrite(tx, coll, idKey(d['_id']), d['_id'], null);
        return targets.length;
      });
    }
    const { done, count } = await this.plainWrite(name, () => {
      const matches = this.candidates(coll, queryDoc).filter((d) => query.test(d));
      const targets = multi ? matches : matches.slice(0, 1);
      for (const d of targets) {
        const key = idKey(d['_id']);
        if (this.lockedByOther(name, key)) return { blockedOn: key };
      }
      return {
        run: () => {
          const writes = targets.map(
            (d): TxWrite => ({ c: name, key: idKey(d['_id']), id: d['_id'], doc: null }),
          );
          return { done: this.commit(writes), count: writes.length };
        },
      };
    });
    await done;
    return count;
  }
}
