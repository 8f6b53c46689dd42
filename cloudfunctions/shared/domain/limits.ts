/**
 * Per-caller limits: calls per minute by kind, unpaid orders open at once, and the same cart
 * ordered twice. WeChat counts its call rate per merchant (FREQUENCY_LIMITED goes to the
 * merchant, not to the caller), so one shopper's loop would otherwise fail every other
 * shopper's checkout; and every new order is a document.
 *
 * Everything lives in one small document per caller (`caller_limits`, _id = openid) and is
 * decided by one conditional update, which CloudBase applies atomically to a single
 * document, so concurrent calls of one caller cannot all slip through:
 *
 * - calls per minute: `calls.<kind>` holds the times of the caller's latest calls, newest
 *   first, at most the limit (a sliding log). A call is allowed when the limit-th newest is
 *   older than a minute (or missing), and the same update pushes the call's time.
 * - open orders: `orders` lists the orders the caller created that may still be unpaid, at
 *   most the limit. A new order is allowed while the list is shorter; the same update
 *   pushes it. Paid, closed and expired ones stay listed until the list is full: only then
 *   are they looked up and dropped (compare-and-set on `ordersV`), so the payment path never
 *   writes here.
 * - the same cart: each listed order carries a hash of its cart; the update also requires
 *   that no order of the same cart was listed within the window. A second call with the same
 *   cart loses that race, reads the document and gets the first call's order back.
 *
 * Cost in database requests, per call: 1 on the normal path (the update); a refusal 2 (the
 * update, then a read to say why and for how long); a caller's very first call 3 (update,
 * read, insert). The open-orders list, when full, adds one query of the listed orders and
 * one compare-and-set (or, when they are all still open, a write counting the refused call).
 */
import { createHash } from 'node:crypto';
import type { LimitScope } from '../config';
import { AppError } from '../errors';
import type { Caller } from '../runtime/callable';
import type { Command } from '../store';
import type { Deps } from './deps';
import { COLLECTIONS, isPayable, type OrderDoc } from './model';

export type { LimitScope } from '../config';

/** Calls are counted per minute of the caller's own time, never scaled. */
export const LIMIT_WINDOW_MS = 60_000;
/**
 * An order is listed before it is inserted; one missing for less than this may still be on
 * its way (createOrder times out after 20 s), so it keeps its place.
 */
export const ORDER_INSERT_GRACE_MS = 30_000;
/** Updates lost to a concurrent change of the same document before giving up. */
const MAX_ATTEMPTS = 4;

/** One order the caller created, as the open-orders list keeps it. */
export interface OpenOrderEntry {
  id: string;
  /** cartKey() of its items. */
  cart: string;
  atMs: number;
  /** It stops being payable then at the latest (its expiresAtMs). */
  untilMs: number;
}

export interface CallerLimitsDoc {
  /** = openid */
  _id: string;
  /** Per kind: the times of the latest calls, newest first, at most that kind's limit. */
  calls?: Partial<Record<LimitScope, number[]>>;
  /** Orders that may still be unpaid and payable; paid or closed ones are dropped when it is full. */
  orders?: OpenOrderEntry[];
  /** Bumped by every change of `orders`: dropping the ended ones is a compare-and-set on it. */
  ordersV?: number;
}

export interface CallerLimits {
  perMinute: (scope: LimitScope) => number;
  openOrders: number;
}

export function limitsFor(deps: Pick<Deps, 'config'>, openid: string): CallerLimits {
  const l = deps.config.limits;
  const admin = deps.config.adminOpenids.has(openid);
  return {
    perMinute: (scope) => (admin ? l.adminPerMinute : l.perMinute[scope]),
    openOrders: admin ? l.adminOpenOrders : l.openOrders,
  };
}

/** The same items in the same quantities give the same key, whatever their order in the call. */
export function cartKey(lines: readonly { productId: string; quantity: number }[]): string {
  const canonical = lines
    .map((l) => `${l.productId}*${l.quantity}`)
    .sort()
    .join(',');
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22);
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export function rateLimited(
  message: string,
  retryAfterMs: number,
  extra: { payOrCancelFirst?: number } = {},
): AppError {
  return new AppError('RATE_LIMITED', message, {
    details: { retryAfterSeconds: seconds(retryAfterMs), ...extra },
  });
}

/** How long until a call of `scope` is allowed again, or undefined when it is allowed now. */
export function rateWaitMs(
  doc: CallerLimitsDoc,
  scope: LimitScope,
  nowMs: number,
  max: number,
): number | undefined {
  // Stryker disable next-line ArrayDeclaration: the fallback's content is filtered away (no string is greater than a time).
  const recent = (doc.calls?.[scope] ?? []).filter((t) => t > nowMs - LIMIT_WINDOW_MS).sort((a, b) => b - a);
  if (recent.length < max) return undefined;
  return recent[max - 1]! + LIMIT_WINDOW_MS - nowMs;
}

/** The listed order made for the same cart within the window, if any. */
export function sameCartEntry(
  doc: CallerLimitsDoc,
  cart: string,
  nowMs: number,
  windowMs: number,
): OpenOrderEntry | undefined {
  if (windowMs <= 0) return undefined;
  return doc.orders
    ?.filter((e) => e.cart === cart && e.atMs > nowMs - windowMs)
    .sort((a, b) => b.atMs - a.atMs)[0];
}

/** Which listed orders still hold a place, given the ones found in the database. */
export function stillOpen(
  listed: readonly OpenOrderEntry[],
  found: ReadonlyMap<string, Pick<OrderDoc, 'status' | 'expiresAtMs'>>,
  nowMs: number,
): OpenOrderEntry[] {
  return listed.filter((e) => {
    if (e.untilMs <= nowMs) return false;
    const o = found.get(e.id);
    return o ? isPayable(o, nowMs) : nowMs - e.atMs < ORDER_INSERT_GRACE_MS;
  });
}

/** The refusal when `open` orders hold every place: how many to settle, and when one expires anyway. */
export function openOrdersRefusal(open: readonly OpenOrderEntry[], max: number, nowMs: number): AppError {
  const excess = open.length - max + 1;
  const firstEnd = Math.min(...open.map((e) => e.untilMs));
  return rateLimited(
    `${open.length} unpaid orders are open (at most ${max}): pay or cancel ${excess} of them first`,
    firstEnd - nowMs,
    { payOrCancelFirst: excess },
  );
}

// ── the conditional updates ──────────────────────────────────────────────────────────

/** The limit-th newest call of `scope` is a minute old or older, or there are fewer (as rateWaitMs counts). */
function underRate(_: Command, scope: LimitScope, nowMs: number, max: number): Record<string, unknown> {
  return { [`calls.${scope}.${max - 1}`]: _.not(_.gt(nowMs - LIMIT_WINDOW_MS)) };
}

function pushCall(_: Command, scope: LimitScope, nowMs: number, max: number): Record<string, unknown> {
  return { [`calls.${scope}`]: _.push({ each: [nowMs], sort: -1, slice: max }) };
}

type Admission = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * Counts one call of `scope` for `openid` if the caller is under the limit. Never throws for
 * the limit itself: the caller decides what a refusal means (an error, or a cheaper answer).
 */
export async function tryAdmitCall(deps: Deps, openid: string, scope: LimitScope): Promise<Admission> {
  const { store } = deps;
  const _ = store.cmd;
  const max = limitsFor(deps, openid).perMinute(scope);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const now = deps.now();
    const where = { _id: openid, ...underRate(_, scope, now, max) };
    if (await store.cas(COLLECTIONS.callerLimits, where, pushCall(_, scope, now, max)))
      return { allowed: true };
    // Refused, or the caller has no document yet: one read tells which, and for how long.
    const doc = await store.get<CallerLimitsDoc>(COLLECTIONS.callerLimits, openid);
    if (!doc) {
      const fresh: CallerLimitsDoc = { _id: openid, calls: { [scope]: [now] }, orders: [], ordersV: 0 };
      if ((await store.insert(COLLECTIONS.callerLimits, fresh)) === 'inserted') return { allowed: true };
      continue; // a concurrent first call created it: count against it
    }
    const wait = rateWaitMs(doc, scope, now, max);
    if (wait !== undefined) return { allowed: false, retryAfterMs: wait };
    // A call left the window between the update and the read: try again.
  }
  return { allowed: false, retryAfterMs: 1000 };
}

/** Counts one call of `scope`, or refuses it with RATE_LIMITED and the wait. */
export async function admitCall(deps: Deps, openid: string, scope: LimitScope): Promise<void> {
  const r = await tryAdmitCall(deps, openid, scope);
  if (!r.allowed) {
    deps.log('warn', 'limits.refused', { openid, scope, retryAfterMs: r.retryAfterMs });
    throw rateLimited(
      `too many ${scope} calls: at most ${limitsFor(deps, openid).perMinute(scope)} a minute`,
      r.retryAfterMs,
    );
  }
}

/**
 * The callable wrapper's check (runtime/function.ts): a call without an openid is refused by
 * the handler itself, and so is a non-admin's call of an admin-only function, both before any
 * database request; counting them would only add one.
 */
export async function limitCaller(
  deps: Deps,
  caller: Caller,
  scope: LimitScope,
  options: { adminOnly?: boolean } = {},
): Promise<void> {
  const openid = caller.openid;
  if (!openid) return;
  if (options.adminOnly && !deps.config.adminOpenids.has(openid)) return;
  await admitCall(deps, openid, scope);
}

export type NewOrderAdmission =
  | { kind: 'new' }
  /** The same cart was ordered within the window: this is that order (it may still be on its way). */
  | { kind: 'same'; entry: OpenOrderEntry };

/**
 * Admits a new order `orderId` for `cart` in one conditional update: a createOrder call under
 * the per-minute limit, a place among the open orders, and no order of the same cart within
 * the window. Throws RATE_LIMITED (with the wait, and for open orders how many to pay or
 * cancel first).
 */
export async function admitNewOrder(
  deps: Deps,
  openid: string,
  order: { orderId: string; cart: string; untilMs: number },
): Promise<NewOrderAdmission> {
  const { store } = deps;
  const _ = store.cmd;
  const lim = limitsFor(deps, openid);
  const rate = lim.perMinute('createOrder');
  const sameCartMs = deps.config.limits.sameCartMs;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const now = deps.now();
    const entry: OpenOrderEntry = { id: order.orderId, cart: order.cart, atMs: now, untilMs: order.untilMs };
    const admit = { ...pushCall(_, 'createOrder', now, rate), orders: _.push([entry]), ordersV: _.inc(1) };
    const where: Record<string, unknown> & { _id: string } = {
      _id: openid,
      ...underRate(_, 'createOrder', now, rate),
      [`orders.${lim.openOrders - 1}`]: _.exists(false),
    };
    if (sameCartMs > 0)
      where['orders'] = _.not(_.elemMatch({ cart: order.cart, atMs: _.gt(now - sameCartMs) }));
    if (await store.cas(COLLECTIONS.callerLimits, where, admit)) return { kind: 'new' };

    const doc = await store.get<CallerLimitsDoc>(COLLECTIONS.callerLimits, openid);
    if (!doc) {
      const fresh: CallerLimitsDoc = {
        _id: openid,
        calls: { createOrder: [now] },
        orders: [entry],
        ordersV: 1,
      };
      if ((await store.insert(COLLECTIONS.callerLimits, fresh)) === 'inserted') return { kind: 'new' };
      continue;
    }
    const wait = rateWaitMs(doc, 'createOrder', now, rate);
    if (wait !== undefined) {
      deps.log('warn', 'limits.refused', { openid, scope: 'createOrder', retryAfterMs: wait });
      throw rateLimited(`too many createOrder calls: at most ${rate} a minute`, wait);
    }
    const same = sameCartEntry(doc, order.cart, now, sameCartMs);
    if (same) return { kind: 'same', entry: same };
    // Stryker disable next-line ArrayDeclaration: every caller_limits document is created with `orders` (both inserts) and keeps it (forgetOrder pulls from it), so the fallback is never taken.
    const listed = doc.orders ?? [];
    if (listed.length < lim.openOrders) continue; // changed since the update: try again

    // The list is full: drop the orders that were paid, closed or expired since.
    const live = listed.filter((e) => e.untilMs > now);
    const found =
      live.length === 0
        ? // Stryker disable next-line ArrayDeclaration: with no live entry, what was found is never read (stillOpen keeps only entries of `live`).
          []
        : await store.find<OrderDoc>(
            COLLECTIONS.orders,
            { _id: _.in(live.map((e) => e.id)) },
            // Stryker disable next-line ObjectLiteral: the limit and the projection only make the answer smaller; whole documents, up to the default 100, decide the same.
            { limit: live.length, fields: ['status', 'expiresAtMs'] },
          );
    const open = stillOpen(live, new Map(found.map((o) => [o._id, o])), now);
    if (open.length < lim.openOrders) {
      const pruned = await store.cas(
        COLLECTIONS.callerLimits,
        { _id: openid, ordersV: doc.ordersV ?? 0, ...underRate(_, 'createOrder', now, rate) },
        { ...pushCall(_, 'createOrder', now, rate), orders: _.set([...open, entry]), ordersV: _.inc(1) },
      );
      if (pruned) return { kind: 'new' };
      continue;
    }
    // Refused calls count too, so a loop against a full list soon costs only the update and
    // the read of the per-minute refusal, not this query of the listed orders.
    await store.cas(
      COLLECTIONS.callerLimits,
      { _id: openid, ...underRate(_, 'createOrder', now, rate) },
      pushCall(_, 'createOrder', now, rate),
    );
    deps.log('warn', 'limits.open_orders', { openid, open: open.length, max: lim.openOrders });
    throw openOrdersRefusal(open, lim.openOrders, now);
  }
  throw rateLimited('too many concurrent createOrder calls, please try again', 1000);
}

/** Takes an order off the caller's list: it was never created (bad cart), or it ended. */
export async function forgetOrder(deps: Deps, openid: string, orderId: string): Promise<void> {
  const _ = deps.store.cmd;
  await deps.store.cas(
    COLLECTIONS.callerLimits,
    { _id: openid },
    { orders: _.pull({ id: orderId }), ordersV: _.inc(1) },
  );
}
