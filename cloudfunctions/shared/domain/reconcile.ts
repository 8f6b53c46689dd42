/**
 * The timer job that makes the books agree with WeChat when a notify never came, a call got
 * no answer or a function died mid-way.
 *
 * Every order and refund that still needs WeChat carries its own `nextCheckAtMs`; a run takes
 * the due ones oldest-due first and, before working on one, moves its next check into the
 * future with a compare-and-set (its claim). So a stuck item waits its growing gap instead of
 * hiding newer ones behind it, and two runs at once never work on the same item. Every step
 * after the claim is itself a CAS or holds a lease. A run stops starting work when its own
 * time budget is spent and says what it left for next time.
 *
 * At scale (thousands of unpaid orders due at once) a run is mostly waiting for WeChat, so it
 * works on several items of a page at once, each under its own claim, and takes the kinds of
 * work in turns, a page each, so a crowd of one kind never starves the others.
 */
import { MIN_SEND_BUDGET_MS, retryNotices } from '../notices/outbox';
import { sendBudgetMs } from '../notices/transitions';
import type { Query } from '../store';
import { type Deps, providerOf, wxFailure } from './deps';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';
import { confirmWithQuery, expireOrder } from './orders';
import { release, reservedEntries } from './refund-book';
import { applyWeChatRefund } from './refund-outcome';
import { askWeChat, claimSubmitLease, retryClosed, submitRefund } from './refund-submit';
import { releaseEnded } from './refunds';
import { gapMs, ORDER_CHECK_GAPS_MS, REFUND_QUERY_GAPS_MS } from './schedule';

export interface ReconcileOptions {
  /** Items per database page. */
  batch?: number;
  /** Items worked on at once, each under its own claim. */
  concurrency?: number;
}

export interface ReconcileReport {
  ordersChecked: number;
  ordersPaid: number;
  ordersClosed: number;
  refundsChecked: number;
  refundsSubmitted: number;
  refundsFinalized: number;
  reservationsReleased: number;
  /** Notices sent from the outbox (retries, and those written for reconcile), and given up. */
  noticesSent: number;
  noticesFailed: number;
  errors: number;
  /** The budget ran out with due items left; they are first in line next run. */
  outOfTime: boolean;
  /** When the earliest item not looked at this run is due (epoch ms), or null when none waits. */
  nextDueAtMs: number | null;
  dbRequests: number;
}

/** Leave this much of the call budget for the last item's writes. */
const STOP_MARGIN_MS = 2_000;
/**
 * Items worked on at once, so WeChat calls in flight at once: 16 calls of ~150 ms are ~100 a
 * second, far under WeChat Pay's published per-merchant limits (orderquery 1800 QPS,
 * refundquery 300, refund 150), and each holds at most one database request at a time. The
 * WeChat Pay client keeps as many sockets open (../wxpay/client.ts).
 */
export const RECONCILE_CONCURRENCY = 16;
/** Items per page: a page of full order documents stays far under the 1 MB result limit. */
export const RECONCILE_BATCH = 100;

export async function reconcile(deps: Deps, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const batch = options.batch ?? RECONCILE_BATCH;
  const concurrency = Math.max(1, options.concurrency ?? RECONCILE_CONCURRENCY);
  const start = deps.now();
  const report: ReconcileReport = {
    ordersChecked: 0,
    ordersPaid: 0,
    ordersClosed: 0,
    refundsChecked: 0,
    refundsSubmitted: 0,
    refundsFinalized: 0,
    reservationsReleased: 0,
    noticesSent: 0,
    noticesFailed: 0,
    errors: 0,
    outOfTime: false,
    nextDueAtMs: null,
    dbRequests: 0,
  };
  const { store } = deps;
  const _ = store.cmd;
  const inTime = () => {
    if (deps.now() < deps.budget.callDeadlineMs - STOP_MARGIN_MS) return true;
    report.outOfTime = true;
    return false;
  };
  const guarded = async (what: string, id: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (e) {
      report.errors++;
      deps.log('warn', 'reconcile.step_failed', {
        what,
        id,
        code: wxFailure(e)?.errCode ?? (e as { code?: string })?.code,
        error: e,
      });
    }
  };
  /**
   * Due items of one kind, oldest due first, read a page at a time after the last one read
   * (so items queued or in flight are not read again) and the next page read while the
   * last items of this one are still being worked on. Each item is taken once per run.
   */
  const lane = <T extends { _id: string } & Record<string, unknown>>(
    collection: string,
    where: (now: number) => Query,
    field: string,
    work: (item: T) => Promise<void>,
  ) => {
    const seen = new Set<string>();
    const queue: T[] = [];
    let after: { at: unknown; id: string } | undefined;
    let done = false;
    let failure: unknown;
    let fetching: Promise<void> | undefined;
    const fetch = () => {
      fetching ??= (async () => {
        try {
          const due = where(deps.now());
          const page = await store.find<T>(
            collection,
            after
              ? _.and([due, _.or([{ [field]: _.gt(after.at) }, { [field]: after.at, _id: _.gt(after.id) }])])
              : due,
            {
              orderBy: [
                [field, 'asc'],
                ['_id', 'asc'],
              ],
              limit: batch,
            },
          );
          const last = page[page.length - 1];
          if (last) after = { at: last[field], id: last._id };
          for (const item of page) {
            if (seen.has(item._id)) continue;
            seen.add(item._id);
            queue.push(item);
          }
          if (page.length < batch) done = true;
        } catch (e) {
          failure = e;
        } finally {
          fetching = undefined;
        }
      })();
      return fetching;
    };
    return {
      /** The next item's work, or undefined when nothing is queued now (see `waitFor`). */
      take(): (() => Promise<void>) | undefined {
        if (failure) throw failure;
        const item = queue.shift();
        if (queue.length < concurrency && !done) void fetch();
        return item && (() => guarded(collection, item._id, () => work(item)));
      },
      /**
       * Settles when this kind may have more to take; undefined when it never will. Asked only
       * right after `take()` found the queue empty, which then started a read unless done.
       */
      waitFor: (): Promise<void> | undefined =>
        // Stryker disable next-line LogicalOperator: take() has just started a read whenever the lane is not done, so `fetching` is set here; fetch() is the fallback should that ever change.
        done ? undefined : (fetching ?? fetch()),
    };
  };

  const lanes = [
    lane<OrderDoc & Record<string, unknown>>(
      COLLECTIONS.orders,
      (now) => ({ status: 'NOTPAY', nextCheckAtMs: _.lte(now) }),
      'nextCheckAtMs',
      (order) => checkOrder(deps, order, report),
    ),
    lane<RefundDoc & Record<string, unknown>>(
      COLLECTIONS.refunds,
      (now) => ({ nextCheckAtMs: _.lte(now) }),
      'nextCheckAtMs',
      (refund) => checkRefund(deps, refund, report),
    ),
    lane<OrderDoc & Record<string, unknown>>(
      COLLECTIONS.orders,
      (now) => ({ reservationCheckAtMs: _.lte(now) }),
      'reservationCheckAtMs',
      async (order) => {
        // Read the count only after the await: `x += await f()` reads x first, and another
        // worker's addition made meanwhile would be lost.
        const released = await releaseStrandedReservations(deps, order);
        report.reservationsReleased += released;
      },
    ),
  ];
  // `concurrency` workers take items from the kinds in turn, so a crowd of one kind never
  // starves another, until every kind is done or the budget is spent.
  let turn = 0;
  const nextJob = async (): Promise<(() => Promise<void>) | undefined> => {
    for (;;) {
      for (let k = 0; k < lanes.length; k++) {
        const job = lanes[(turn + k) % lanes.length]!.take();
        if (job) {
          turn = (turn + k + 1) % lanes.length;
          return job;
        }
      }
      const pending = lanes.map((l) => l.waitFor()).filter((p) => p !== undefined);
      if (pending.length === 0) return undefined;
      await Promise.race(pending);
    }
  };
  // A page that cannot be read fails the run, as before; every worker stops first, so no work
  // goes on after the run has answered.
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    try {
      while (!failed && inTime()) {
        const job = await nextJob();
        if (!job) return;
        await job();
      }
    } catch (error) {
      failed ??= { error };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  if (failed) throw failed.error;

  // After the money work, with what is left: a notice waits for the next run, money does not.
  if (sendBudgetMs(deps) >= MIN_SEND_BUDGET_MS) {
    const n = await retryNotices(deps, { budgetMs: sendBudgetMs(deps) });
    report.noticesSent = n.sent;
    report.noticesFailed = n.failed + n.expired;
  }
  if (inTime()) report.nextDueAtMs = await nextDue(deps);
  report.dbRequests = store.requests;
  deps.log('info', 'reconcile.done', { ...report, ms: deps.now() - start });
  return report;
}

/** Moves an item's next check from the value we saw to `nextAtMs`; false when another run has it. */
function claim(
  deps: Deps,
  collection: string,
  item: { _id: string; nextCheckAtMs?: number; checkCount?: number },
  extra: Query,
  nextAtMs: number,
): Promise<boolean> {
  return deps.store.cas(
    collection,
    { _id: item._id, nextCheckAtMs: item.nextCheckAtMs, ...extra },
    { nextCheckAtMs: nextAtMs, checkCount: deps.store.cmd.inc(1) },
  );
}

async function checkOrder(deps: Deps, order: OrderDoc, report: ReconcileReport): Promise<void> {
  const now = deps.now();
  let next = now + gapMs(ORDER_CHECK_GAPS_MS, order.checkCount ?? 0, deps.config.timeScale);
  // Close on time: the order stops being payable then, and closing it needs a look.
  if (now < order.expiresAtMs) next = Math.min(next, order.expiresAtMs);
  // Stryker disable next-line ObjectLiteral: both writes that take an order out of NOTPAY (markPaid, closeLocally) remove nextCheckAtMs in the same update, so the claim's nextCheckAtMs condition already fails for it.
  if (!(await claim(deps, COLLECTIONS.orders, order, { status: 'NOTPAY' }, next))) return;
  report.ordersChecked++;
  const after = await confirmWithQuery(deps, order);
  if (after.status === 'PAID') report.ordersPaid++;
  else if (after.status === 'CLOSED') report.ordersClosed++;
  else if (deps.now() >= order.expiresAtMs || order.cancelledAtMs !== undefined) {
    const r = await expireOrder(deps, after);
    if (r === 'CLOSED') report.ordersClosed++;
    if (r === 'PAID') report.ordersPaid++;
  }
}

async function checkRefund(deps: Deps, refund: RefundDoc, report: ReconcileReport): Promise<void> {
  const { store } = deps;
  const now = deps.now();
  report.refundsChecked++;
  const done = () =>
    store.cas(
      COLLECTIONS.refunds,
      { _id: refund._id, nextCheckAtMs: refund.nextCheckAtMs },
      { nextCheckAtMs: store.cmd.remove() },
    );
  switch (refund.status) {
    case 'APPROVED': {
      // The submit lease is the claim: its CAS decides who sends the refund.
      const claimed = await claimSubmitLease(deps, refund);
      if (!claimed) return;
      const after = await submitRefund(deps, claimed);
      if (after.status !== 'APPROVED') report.refundsSubmitted++;
      return;
    }
    case 'PROCESSING':
    case 'ABNORMAL': {
      // ABNORMAL waits for the merchant; WeChat turns it SUCCESS once it is settled by hand.
      const n = refund.status === 'ABNORMAL' ? Number.MAX_SAFE_INTEGER : (refund.checkCount ?? 0);
      const next = now + gapMs(REFUND_QUERY_GAPS_MS, n, deps.config.timeScale);
      // Stryker disable next-line ObjectLiteral: every step out of PROCESSING or ABNORMAL removes nextCheckAtMs or moves it a day past now (ABNORMAL), so the claim's nextCheckAtMs condition already fails for it.
      if (!(await claim(deps, COLLECTIONS.refunds, refund, { status: refund.status }, next))) return;
      // Through the refund's own provider, whatever new orders use now.
      const info = await providerOf(deps, refund).queryRefund(refund._id);
      const outcome = await applyWeChatRefund(deps, refund, info, 'refundquery');
      if (outcome === 'SUCCESS' || outcome === 'CLOSED' || outcome === 'ABNORMAL') report.refundsFinalized++;
      return;
    }
    case 'REJECTED':
    case 'WITHDRAWN':
      // The rejection's own call released the amount, unless it died first.
      await releaseEnded(deps, refund);
      await done();
      return;
    case 'CLOSED':
      if (refund.successorId) await retryClosed(deps, refund);
      await done();
      return;
    case 'FAILED':
      // A failed refund waits for the merchant (retry or reject); if an answer was ever lost,
      // WeChat may have it after all, and that must be found before anyone rejects it.
      if (refund.hadUnknownOutcome) await askWeChat(deps, refund);
      await done();
      return;
    default:
      await done();
  }
}

/**
 * applyRefund reserves first and creates the refund second, so a crash between the two
 * leaves a reserved entry in the order's refund book with no refund behind it: money held
 * back that nobody can refund or review. Releases such entries; `reservationCheckAtMs` is set
 * later than any applyRefund call can take.
 */
export async function releaseStrandedReservations(deps: Deps, order: OrderDoc): Promise<number> {
  const { store } = deps;
  if (
    !(await store.cas(
      COLLECTIONS.orders,
      { _id: order._id, reservationCheckAtMs: order.reservationCheckAtMs },
      { reservationCheckAtMs: store.cmd.remove() },
    ))
  ) {
    return 0;
  }
  const open = reservedEntries(order);
  if (open.length === 0) return 0;
  const refunds = await store.find<RefundDoc>(
    COLLECTIONS.refunds,
    { _id: store.cmd.in(open.map((e) => e.refundId)) },
    // Stryker disable next-line ObjectLiteral: 100 is also the store's default limit; an order holds fewer open refunds.
    { limit: 100 },
  );
  const known = new Set(refunds.map((r) => r._id));
  let released = 0;
  for (const e of open) {
    if (known.has(e.refundId)) continue;
    if ((await release(deps, order._id, e.refundId, e.fee)) === 'released') {
      released++;
      deps.log('warn', 'refund.stranded_reservation_released', {
        orderId: order._id,
        refundId: e.refundId,
        fee: e.fee,
      });
    }
  }
  return released;
}

/** The earliest scheduled check still ahead, so the merchant can see when reconcile looks next. */
async function nextDue(deps: Deps): Promise<number | null> {
  const { store } = deps;
  const _ = store.cmd;
  const firstOf = async (collection: string, where: Query) =>
    (
      await store.find<{ nextCheckAtMs?: number }>(collection, where, {
        orderBy: [['nextCheckAtMs', 'asc']],
        limit: 1,
      })
    )[0]?.nextCheckAtMs;
  const times = [
    await firstOf(COLLECTIONS.orders, { status: 'NOTPAY', nextCheckAtMs: _.gt(0) }),
    await firstOf(COLLECTIONS.refunds, { nextCheckAtMs: _.gt(0) }),
  ].filter((t): t is number => typeof t === 'number');
  return times.length ? Math.min(...times) : null;
}
