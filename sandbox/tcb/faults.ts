/**
 * Database faults for tests and the sandbox's control surface: what production does to a
 * function between its read and its write, made to happen on purpose and at a chosen point.
 *
 * A rule matches requests (collection, operation, fields of the `where` or of the written
 * data, the invocation that sent it) and does one thing to each of the next `times` of them:
 *
 * - `fail`: answer an error the real service returns (errors.ts TRANSIENT_ERRORS); nothing
 *   is applied. The SDK surfaces it exactly as in production.
 * - `drop`: close the connection without applying anything (the request was lost on the way).
 * - `loseAnswer`: apply the request, then close the connection (`reset`, the SDK sees
 *   "-501001 … socket hang up") or never answer (`hang`, the caller's own timeout decides).
 *   The caller cannot tell it from `drop`; the database can.
 * - `pause`: hold the request before it reaches the database until the test releases it
 *   (then it proceeds, fails, drops or loses its answer). This is the deterministic hook
 *   between a function's read and its write: while an update is held, anything else may run.
 *   If the caller goes away while held (its function timed out and was killed), the request
 *   is abandoned and never applied, as if the process had died before sending it.
 *
 * Rules are checked in the order they were added; the first that matches and has uses left
 * takes the request. Requests are counted (requestCount) whatever happens to them.
 */
import { type Doc, isPlainObject, parseEjson, stringifyEjson } from './ejson';
import { type TcbError, TRANSIENT_ERRORS, type TransientErrorName } from './errors';

export type DbOp =
  | 'insert'
  | 'update'
  | 'set'
  | 'remove'
  | 'get'
  | 'count'
  | 'aggregate'
  | 'transaction'
  | 'createCollection'
  | 'other';

const WRITE_OPS: readonly DbOp[] = ['insert', 'update', 'set', 'remove'];
const READ_OPS: readonly DbOp[] = ['get', 'count', 'aggregate'];
const ALL_OPS: readonly DbOp[] = [...WRITE_OPS, ...READ_OPS, 'transaction', 'createCollection', 'other'];

/** What a rule sees of a request: decoded, never the raw EJSON. */
export interface DbRequestInfo {
  action: string;
  op: DbOp;
  collection: string | undefined;
  /** The condition (doc(id) sends {_id}); {} when there is none. */
  where: Doc;
  /** Inserted documents, or the update / replacement document (operators kept); [] for reads. */
  data: Doc[];
  transactionId: string | undefined;
  /** The invocation that sent it (the runtime's per-invocation `/inv/<scope>/admin` URL). */
  scope: string | undefined;
  /** The environment id the SDK named (`envName`); '' means "the account's default one". */
  env: string | undefined;
}

export interface DbFaultMatch {
  collection?: string | string[];
  /** An operation, a list, or `write` (insert/update/set/remove) / `read` (get/count/aggregate). */
  op?: DbOp | 'write' | 'read' | (DbOp | 'write' | 'read')[];
  /** Each key (a dot path) must be in the request's condition with this value (or as {$eq: value}). */
  where?: Doc;
  /** Each key (a dot path) must be written with this value: a field of an inserted or replacing document, or of the update's $set. */
  data?: Doc;
  scope?: string;
  /** true: only requests inside a transaction; false: only outside. */
  transaction?: boolean;
  /** JS callers only: any further condition. */
  test?: (req: DbRequestInfo) => boolean;
}

/** A named transient error (errors.ts), or any code/message pair the SDK should receive. */
export type DbFaultError = TransientErrorName | { code: string; message: string };

/** What happens to a request that a rule took, or to a held request when it is released. */
export type DbFaultEffect =
  | { action: 'proceed' }
  | { action: 'fail'; error?: DbFaultError }
  | { action: 'drop' }
  | { action: 'loseAnswer'; how?: 'reset' | 'hang' };

export type DbFaultSpec = (Exclude<DbFaultEffect, { action: 'proceed' }> | { action: 'pause' }) & {
  match?: DbFaultMatch;
  /** How many matching requests the rule takes; 0 = every one until removed. Default 1. */
  times?: number;
};

/** `held` until released; `running` while the server carries the effect out; then how it ended. */
export type HitState = 'held' | 'running' | 'answered' | 'failed' | 'dropped' | 'lost' | 'abandoned';

export interface HitOutcome {
  state: Exclude<HitState, 'held' | 'running'>;
  /** The body the database produced (answered, or lost on the way back). */
  response?: Record<string, unknown>;
}

export interface FaultHit {
  /** `<ruleId>.<n>`, n from 1. */
  id: string;
  ruleId: string;
  request: DbRequestInfo;
  readonly state: HitState;
  /** Lets a held request go on; default `proceed`. No effect once it is no longer held. */
  release(effect?: DbFaultEffect): boolean;
  /** Resolves when the request is finished with: answered, failed, dropped, lost or abandoned. */
  settled: Promise<HitOutcome>;
}

export interface FaultRule {
  id: string;
  spec: DbFaultSpec;
  readonly hits: readonly FaultHit[];
  /** Uses left; Infinity for times 0. */
  readonly remaining: number;
  /** The n-th request this rule took (0 = the first), as soon as it arrives. */
  hit(n?: number, timeoutMs?: number): Promise<FaultHit>;
  /** For pause rules: the first held request (hit(0)). */
  reached(timeoutMs?: number): Promise<FaultHit>;
  /** Releases every request this rule is holding now; returns how many. */
  release(effect?: DbFaultEffect): number;
  /** Disarms the rule and lets whatever it holds proceed. */
  remove(): void;
}

export class FaultSpecError extends Error {}

/** Decodes the wire request leniently: a malformed one is refused later by the action itself. */
export function describeRequest(body: Record<string, unknown>, scope: string | undefined): DbRequestInfo {
  const action = typeof body['action'] === 'string' ? body['action'] : '';
  const decode = (v: unknown): Doc | undefined => {
    if (v === undefined || v === null || v === '') return undefined;
    try {
      const parsed = typeof v === 'string' ? parseEjson(v, 'value') : v;
      return isPlainObject(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  };
  let op: DbOp;
  switch (action) {
    case 'database.insertDocument':
      op = 'insert';
      break;
    case 'database.modifyDocument':
      op = body['merge'] === false ? 'set' : 'update';
      break;
    case 'database.removeDocument':
      op = 'remove';
      break;
    case 'database.getDocument':
      op = 'get';
      break;
    case 'database.calculateDocument':
      op = 'count';
      break;
    case 'database.aggregateDocuments':
      op = 'aggregate';
      break;
    case 'database.startTransaction':
    case 'database.commitTransaction':
    case 'database.abortTransaction':
      op = 'transaction';
      break;
    case 'database.addCollection':
      op = 'createCollection';
      break;
    default:
      op = 'other';
  }
  const rawData = body['data'];
  const data = (Array.isArray(rawData) ? rawData : rawData === undefined ? [] : [rawData])
    .map(decode)
    .filter((d): d is Doc => d !== undefined);
  return {
    action,
    op,
    collection: typeof body['collectionName'] === 'string' ? body['collectionName'] : undefined,
    where: decode(body['query']) ?? {},
    data,
    transactionId:
      typeof body['transactionId'] === 'string' && body['transactionId'] ? body['transactionId'] : undefined,
    scope,
    env: typeof body['envName'] === 'string' ? body['envName'] : undefined,
  };
}

const same = (a: unknown, b: unknown) => stringifyEjson({ v: a }) === stringifyEjson({ v: b });

/** Every dot path of a document or condition to its value, nested objects included. */
function paths(doc: Doc, into = new Map<string, unknown>(), prefix = ''): Map<string, unknown> {
  for (const [k, v] of Object.entries(doc)) {
    if (k === '$and' && Array.isArray(v)) {
      for (const sub of v) if (isPlainObject(sub)) paths(sub, into, prefix);
      continue;
    }
    if (k.startsWith('$')) continue;
    const key = prefix + k;
    into.set(key, v);
    if (isPlainObject(v) && !Object.keys(v).some((x) => x.startsWith('$'))) paths(v, into, `${key}.`);
  }
  return into;
}

/** The fields a write sets: an inserted or replacing document, or an update's $set (and plain fields). */
function writtenPaths(req: DbRequestInfo, doc: Doc): Map<string, unknown> {
  if (req.op !== 'update') return paths(doc);
  const out = paths(doc);
  const set = doc['$set'];
  if (isPlainObject(set)) paths(set, out);
  return out;
}

function includesAll(actual: Map<string, unknown>, expected: Doc): boolean {
  return Object.entries(expected).every(([k, want]) => {
    if (!actual.has(k)) return false;
    const got = actual.get(k);
    return same(got, want) || (isPlainObject(got) && '$eq' in got && same(got['$eq'], want));
  });
}

function opsOf(op: DbFaultMatch['op']): Set<DbOp> {
  if (op === undefined) return new Set(ALL_OPS);
  const out = new Set<DbOp>();
  for (const o of Array.isArray(op) ? op : [op]) {
    if (o === 'write') for (const w of WRITE_OPS) out.add(w);
    else if (o === 'read') for (const r of READ_OPS) out.add(r);
    else out.add(o);
  }
  return out;
}

export function matches(m: DbFaultMatch | undefined, req: DbRequestInfo): boolean {
  if (!m) return true;
  if (!opsOf(m.op).has(req.op)) return false;
  if (m.collection !== undefined) {
    const names = Array.isArray(m.collection) ? m.collection : [m.collection];
    if (req.collection === undefined || !names.includes(req.collection)) return false;
  }
  if (m.scope !== undefined && m.scope !== req.scope) return false;
  if (m.transaction !== undefined && m.transaction !== (req.transactionId !== undefined)) return false;
  if (m.where && !includesAll(paths(req.where), m.where)) return false;
  if (m.data && !req.data.some((d) => includesAll(writtenPaths(req, d), m.data!))) return false;
  if (m.test && !m.test(req)) return false;
  return true;
}

export function faultError(e: DbFaultError | undefined): { code: string; message: string } {
  if (e === undefined) return errorBody(TRANSIENT_ERRORS.timeout());
  if (typeof e === 'string') return errorBody(TRANSIENT_ERRORS[e]());
  return { code: e.code, message: e.message };
}

function errorBody(e: TcbError): { code: string; message: string } {
  return { code: e.code, message: e.message };
}

const EFFECTS = ['proceed', 'fail', 'drop', 'loseAnswer'] as const;

/** Checks a spec or release effect that came over HTTP (or from untyped JS). */
export function checkEffect(raw: unknown, allowPause: boolean): DbFaultEffect | { action: 'pause' } {
  if (!isPlainObject(raw)) throw new FaultSpecError('expected a JSON object');
  const action = raw['action'] ?? (allowPause ? undefined : 'proceed');
  const allowed: readonly string[] = allowPause ? ['fail', 'drop', 'loseAnswer', 'pause'] : EFFECTS;
  if (typeof action !== 'string' || !allowed.includes(action)) {
    throw new FaultSpecError(`action must be one of ${allowed.join(', ')}`);
  }
  if (action === 'fail') {
    const error = raw['error'];
    if (error !== undefined) {
      const named = typeof error === 'string' && error in TRANSIENT_ERRORS;
      const custom =
        isPlainObject(error) && typeof error['code'] === 'string' && typeof error['message'] === 'string';
      if (!named && !custom) {
        throw new FaultSpecError(
          `error must be one of ${Object.keys(TRANSIENT_ERRORS).join(', ')}, or {code, message}`,
        );
      }
    }
    return { action, error: error as DbFaultError | undefined };
  }
  if (action === 'loseAnswer') {
    const how = raw['how'] ?? 'reset';
    if (how !== 'reset' && how !== 'hang') throw new FaultSpecError('how must be reset or hang');
    return { action, how };
  }
  return { action } as DbFaultEffect | { action: 'pause' };
}

export function checkSpec(raw: unknown): DbFaultSpec {
  const effect = checkEffect(raw, true) as
    | Exclude<DbFaultEffect, { action: 'proceed' }>
    | { action: 'pause' };
  const r = raw as Doc;
  const times = r['times'] ?? 1;
  if (typeof times !== 'number' || !Number.isInteger(times) || times < 0) {
    throw new FaultSpecError('times must be a whole number ≥ 0 (0 = every matching request)');
  }
  const m = r['match'];
  if (m !== undefined && !isPlainObject(m)) throw new FaultSpecError('match must be an object');
  if (m) {
    const known = ['collection', 'op', 'where', 'data', 'scope', 'transaction', 'test'];
    const unknown = Object.keys(m).filter((k) => !known.includes(k));
    if (unknown.length) throw new FaultSpecError(`match does not know ${unknown.join(', ')}`);
    const ops = m['op'] === undefined ? [] : Array.isArray(m['op']) ? m['op'] : [m['op']];
    for (const o of ops) {
      if (typeof o !== 'string' || ![...ALL_OPS, 'write', 'read'].includes(o as DbOp)) {
        throw new FaultSpecError(`op must be one of ${[...ALL_OPS, 'write', 'read'].join(', ')}`);
      }
    }
    for (const k of ['where', 'data'] as const) {
      if (m[k] !== undefined && !isPlainObject(m[k]))
        throw new FaultSpecError(`match.${k} must be an object`);
    }
    if (m['transaction'] !== undefined && typeof m['transaction'] !== 'boolean') {
      throw new FaultSpecError('match.transaction must be true or false');
    }
    if (m['test'] !== undefined && typeof m['test'] !== 'function') {
      throw new FaultSpecError('match.test must be a function');
    }
  }
  return { ...effect, times, ...(m ? { match: m as DbFaultMatch } : {}) } as DbFaultSpec;
}

/** What a request that reached a rule gets to do next; the server carries it out. */
export interface Interception {
  hit: FaultHit;
  /** Resolves with the effect to carry out: at once, or when a held request is released. */
  effect: Promise<DbFaultEffect | 'abandoned'>;
  /** The server reports the end of the request here. */
  settle(outcome: HitOutcome): void;
  /** The caller went away before the server finished: a held request is abandoned. */
  callerGone(): void;
}

class Hit implements FaultHit {
  state: HitState;
  readonly settled: Promise<HitOutcome>;
  private resolveSettled!: (o: HitOutcome) => void;
  private resolveEffect: ((e: DbFaultEffect | 'abandoned') => void) | undefined;
  readonly effect: Promise<DbFaultEffect | 'abandoned'>;

  constructor(
    readonly id: string,
    readonly ruleId: string,
    readonly request: DbRequestInfo,
    spec: DbFaultSpec,
  ) {
    this.settled = new Promise((r) => {
      this.resolveSettled = r;
    });
    if (spec.action === 'pause') {
      this.state = 'held';
      this.effect = new Promise((r) => {
        this.resolveEffect = r;
      });
    } else {
      this.state = 'running';
      this.effect = Promise.resolve(spec as DbFaultEffect);
    }
  }

  release(effect: DbFaultEffect = { action: 'proceed' }): boolean {
    if (this.state !== 'held' || !this.resolveEffect) return false;
    this.state = 'running';
    this.resolveEffect(effect);
    this.resolveEffect = undefined;
    return true;
  }

  abandon(): void {
    if (this.state !== 'held' || !this.resolveEffect) return;
    this.resolveEffect('abandoned');
    this.resolveEffect = undefined;
    this.settle({ state: 'abandoned' });
  }

  settle(outcome: HitOutcome): void {
    this.state = outcome.state;
    this.resolveSettled(outcome);
  }

  toJSON() {
    return { id: this.id, ruleId: this.ruleId, state: this.state, request: this.request };
  }
}

class Rule implements FaultRule {
  readonly hits: Hit[] = [];
  private waiters: { n: number; resolve: (h: FaultHit) => void }[] = [];
  used = 0;
  removed = false;

  constructor(
    readonly id: string,
    readonly spec: DbFaultSpec,
    private readonly onRemove: (r: Rule) => void,
  ) {}

  get remaining(): number {
    if (this.removed) return 0;
    const times = this.spec.times ?? 1;
    return times === 0 ? Number.POSITIVE_INFINITY : times - this.used;
  }

  take(req: DbRequestInfo): Hit {
    this.used += 1;
    const hit = new Hit(`${this.id}.${this.hits.length + 1}`, this.id, req, this.spec);
    this.hits.push(hit);
    for (const w of this.waiters.filter((x) => x.n < this.hits.length)) w.resolve(this.hits[w.n]!);
    this.waiters = this.waiters.filter((x) => x.n >= this.hits.length);
    return hit;
  }

  hit(n = 0, timeoutMs = 10_000): Promise<FaultHit> {
    const have = this.hits[n];
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`fault rule ${this.id}: request #${n + 1} did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      const done = (h: FaultHit) => {
        clearTimeout(timer);
        resolve(h);
      };
      this.waiters.push({ n, resolve: done });
    });
  }

  reached(timeoutMs?: number): Promise<FaultHit> {
    return this.hit(0, timeoutMs);
  }

  release(effect?: DbFaultEffect): number {
    let n = 0;
    for (const h of this.hits) if (h.release(effect)) n++;
    return n;
  }

  remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.release();
    this.onRemove(this);
  }

  toJSON() {
    const { test: _test, ...match } = this.spec.match ?? {};
    return {
      id: this.id,
      spec: { ...this.spec, match },
      used: this.used,
      remaining: Number.isFinite(this.remaining) ? this.remaining : null,
      held: this.hits.filter((h) => h.state === 'held').map((h) => h.id),
    };
  }
}

/** The emulator's fault registry; `emulator.faults`. */
export class DbFaults {
  private rules: Rule[] = [];
  private seq = 0;

  /** Adds a rule (see the module comment); checked after the rules added before it. */
  add(spec: DbFaultSpec): FaultRule {
    const rule = new Rule(`f${++this.seq}`, checkSpec(spec), (r) => {
      this.rules = this.rules.filter((x) => x !== r);
    });
    this.rules.push(rule);
    return rule;
  }

  /** The next `n` writes (any collection unless `match` narrows it) fail with `error` (default timeout). */
  failNext(n: number, error?: DbFaultError, match: DbFaultMatch = {}): FaultRule {
    if (!Number.isInteger(n) || n < 1) throw new FaultSpecError('failNext needs n ≥ 1');
    return this.add({ action: 'fail', error, match: { op: 'write', ...match }, times: n });
  }

  /** The next `times` requests matching `match` fail with `error` (default timeout). */
  fail(match: DbFaultMatch, error?: DbFaultError, times = 1): FaultRule {
    return this.add({ action: 'fail', error, match, times });
  }

  /** The next matching request is applied, and its answer lost. */
  loseAnswer(match: DbFaultMatch, how: 'reset' | 'hang' = 'reset', times = 1): FaultRule {
    return this.add({ action: 'loseAnswer', how, match, times });
  }

  /** The next matching request never reaches the database; the connection closes. */
  drop(match: DbFaultMatch, times = 1): FaultRule {
    return this.add({ action: 'drop', match, times });
  }

  /** The next matching request is held until released (`rule.reached()` gives it to you). */
  pause(match: DbFaultMatch, times = 1): FaultRule {
    return this.add({ action: 'pause', match, times });
  }

  /** A rule by id; used-up rules stay listed (remaining 0) until removed or cleared. */
  rule(id: string): FaultRule | undefined {
    return this.rules.find((r) => r.id === id);
  }

  list(): FaultRule[] {
    return [...this.rules];
  }

  /** Requests held right now. */
  held(): FaultHit[] {
    return this.rules.flatMap((r) => r.hits.filter((h) => h.state === 'held'));
  }

  /** Removes every rule; held requests proceed. */
  clear(): void {
    for (const r of [...this.rules]) r.remove();
  }

  /** Abandons every held request without running it (the emulator is stopping). */
  abandonAll(): void {
    for (const r of this.rules) for (const h of r.hits) h.abandon();
  }

  /** Called by the server for every request; undefined when no rule takes it. */
  /** Whether any rule can still take a request: without one, requests are not decoded for matching. */
  armed(): boolean {
    return this.rules.some((r) => r.remaining > 0);
  }

  intercept(req: DbRequestInfo): Interception | undefined {
    const rule = this.rules.find((r) => r.remaining > 0 && matches(r.spec.match, req));
    if (!rule) return undefined;
    const hit = rule.take(req);
    return {
      hit,
      effect: hit.effect,
      settle: (o) => hit.settle(o),
      callerGone: () => hit.abandon(),
    };
  }
}
