/**
 * Reconcile's edges in one process (world.ts): a step that fails (counted, logged with what,
 * which and the code, the run going on), a page that cannot be read (the run fails), due items
 * read a page at a time and each taken once, the kinds of work taken in turns, what an order's
 * look finds (closed at WeChat, paid while being closed, a close WeChat does not answer at the
 * very minute of expiry), the CLOSED and FAILED refunds it finishes, a stranded reservation two
 * runs race for, and when it says it looks next. Races are forced with pause points, never
 * timing. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { cancelOrder } from '../../cloudfunctions/shared/domain/cancel';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { type ReconcileReport, reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { loadNoticeConfig } from '../../cloudfunctions/shared/notices/config';
import type { PaymentProvider } from '../../cloudfunctions/shared/providers/port';
import { type FindOptions, type Store, StoreError } from '../../cloudfunctions/shared/store';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  dieAfter,
  failBefore,
  logged,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  SHOPPER,
  stock,
} from './shop';
import { Killed, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 100);
});

const MINUTE = 60_000;
const decide = (refundId: string, decision = 'approve', deps: Deps = w.deps()) =>
  approveRefund(deps, { refundId, decision }, ADMIN).then((r) => r.refund);

let cartSeq = 0;
/** An order nobody pays: due for its first look once the notify grace has passed. */
async function unpaid(
  idSuffix?: string,
  deps: Deps = w.deps(),
): Promise<{ orderId: string; payment: unknown }> {
  const withId = idSuffix === undefined ? deps : { ...deps, random: () => idSuffix };
  const created = await createOrder(withId, { items: [{ productId: 'tea', quantity: ++cartSeq }] }, SHOPPER);
  return { orderId: created.orderId, payment: created.payment };
}

/** An order paid at the cashier and its notify handled with `deps()` (notices wired, say). */
async function orderAndPayWith(deps: () => Deps): Promise<string> {
  const { orderId, payment } = await unpaid();
  expect(w.core.engine.pay(payment as never).errMsg).toBe('requestPayment:ok');
  expect(await deliver(w, deps())).toEqual(['PAID']);
  return orderId;
}

type Call = { method: string; collection: string; where: Record<string, unknown>; options: FindOptions };

/**
 * Deps whose store reports every request to `seen` (which may answer for it: a value, or a
 * rejection) and whose WeChat port reports queries and closes to `wx`.
 */
function watched(
  deps: Deps,
  hooks: {
    seen?: (c: Call) => { answer: unknown } | { reject: unknown } | undefined;
    answered?: (c: Call, out: unknown) => void;
    wx?: (call: 'queryPayment' | 'closePayment' | 'queryRefund', id: string) => Promise<void> | void;
  },
): Deps {
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      if (!['get', 'insert', 'cas', 'find'].includes(String(prop))) return value.bind(target);
      return async (...args: unknown[]) => {
        const call: Call = {
          method: String(prop),
          collection: args[0] as string,
          where: (args[1] ?? {}) as Record<string, unknown>,
          options: (args[2] ?? {}) as FindOptions,
        };
        const out = hooks.seen?.(call);
        if (out && 'answer' in out) return out.answer;
        if (out && 'reject' in out) throw out.reject;
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        hooks.answered?.(call, result);
        return result;
      };
    },
  }) as Store;
  const out: Deps = { ...deps, store };
  if (hooks.wx) {
    const wx = hooks.wx;
    const port = deps.wxpay!.current;
    const current: PaymentProvider = {
      ...port,
      queryPayment: async (id, o) => {
        await wx('queryPayment', id);
        return port.queryPayment(id, o);
      },
      closePayment: async (id) => {
        await wx('closePayment', id);
        return port.closePayment(id);
      },
      queryRefund: async (id, o) => {
        await wx('queryRefund', id);
        return port.queryRefund(id, o);
      },
    };
    out.wxpay = { current, byName: { ...deps.wxpay!.byName, [port.name]: current } };
  }
  return out;
}

const isClaim = (c: Call) => c.method === 'cas' && c.collection === 'orders' && 'nextCheckAtMs' in c.where;
const isReservationCheck = (c: Call) =>
  c.method === 'cas' && c.collection === 'orders' && 'reservationCheckAtMs' in c.where;
/** A page of the unpaid-orders lane (nextDue reads one item, the reservation lane another field). */
const isOrderPage = (c: Call, batch: number) =>
  c.method === 'find' &&
  c.collection === 'orders' &&
  c.options.orderBy?.[0]?.[0] === 'nextCheckAtMs' &&
  c.options.limit === batch;

function doneLine(report: ReconcileReport) {
  return { level: 'info', event: 'reconcile.done', fields: { ...report, ms: 0 } };
}

describe('a step that fails', () => {
  it('is counted and logged with the kind, the item and WeChat’s code; the item waits its gap', async () => {
    const { orderId } = await unpaid();
    w.advance(w.config.reconcile.notifyGraceMs);
    w.faults({ systemErrorRate: 1 });
    const report = await reconcile(w.deps());
    w.faults({ systemErrorRate: 0 });
    expect(report).toMatchObject({
      ordersChecked: 1,
      ordersPaid: 0,
      ordersClosed: 0,
      errors: 1,
      outOfTime: false,
    });
    expect(logged(w, 'reconcile.step_failed')).toEqual([
      {
        level: 'warn',
        event: 'reconcile.step_failed',
        fields: {
          what: 'orders',
          id: orderId,
          code: 'SYSTEMERROR',
          error: expect.objectContaining({ code: expect.stringMatching(/^WXPAY_/) }),
        },
      },
    ]);
    expect(logged(w, 'reconcile.done')).toEqual([doneLine(report)]);
    // Claimed before WeChat was asked: looked at again after its gap, not at once.
    expect(await orderDoc(w, orderId)).toMatchObject({ status: 'NOTPAY', checkCount: 1 });
    expect((await orderDoc(w, orderId)).nextCheckAtMs).toBe(w.now() + MINUTE);
  });

  it('a database error (its code) or a rejection with no error at all: each counted, and the run goes on', async () => {
    const ids = [(await unpaid()).orderId, (await unpaid()).orderId, (await unpaid()).orderId].sort();
    w.advance(w.config.reconcile.notifyGraceMs);
    let claims = 0;
    const deps = watched(w.deps(), {
      seen: (c) => {
        if (!isClaim(c)) return undefined;
        claims++;
        if (claims === 1)
          return { reject: new StoreError('DB_ERROR', 'database update orders failed: reset') };
        if (claims === 2) return { reject: undefined };
        return undefined;
      },
    });
    // One at a time: the items are worked on in the order they are due (then by id).
    const report = await reconcile(deps, { concurrency: 1 });
    expect(report).toMatchObject({ ordersChecked: 1, errors: 2 });
    expect(
      logged(w, 'reconcile.step_failed').map((l) => [l.level, l.fields.what, l.fields.id, l.fields.code]),
    ).toEqual([
      ['warn', 'orders', ids[0], 'DB_ERROR'],
      ['warn', 'orders', ids[1], undefined],
    ]);
    expect((await orderDoc(w, ids[2]!)).checkCount).toBe(1);
    expect((await orderDoc(w, ids[0]!)).checkCount).toBe(0);
  });

  it('a page that cannot be read fails the whole run, which answers nothing', async () => {
    const deps = failBefore(
      w.deps(),
      (c) => c.method === 'find' && c.collection === 'refunds',
      'database query refunds failed: reset',
    );
    await expect(reconcile(deps)).rejects.toMatchObject({ message: 'database query refunds failed: reset' });
    expect(logged(w, 'reconcile.done')).toEqual([]);
  });
});

describe('due items, a page at a time', () => {
  it('reads each page after the last one, by due time then id, until a page is short', async () => {
    // Ids drawn so that each order's id sorts before the one made before it: the database's
    // own order is then not the id order.
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await unpaid('edcba'[i]!.repeat(12))).orderId);
    // Two share a due time, two more share a later one, the last is later still.
    const base = w.now() + w.config.reconcile.notifyGraceMs;
    const dueAt = [base + 1000, base, base + 1000, base, base + 2000];
    for (const [i, id] of ids.entries())
      await w.deps().store.cas('orders', { _id: id }, { nextCheckAtMs: dueAt[i] });
    w.advance(w.config.reconcile.notifyGraceMs + 2000);
    const expected = ids
      .map((id, i) => ({ id, at: dueAt[i]! }))
      .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))
      .map((x) => x.id);
    // Every claim loses (another run's, say): the items stay due, so a page read again would
    // hold them again.
    const pages: string[][] = [];
    let claims = 0;
    const deps = watched(w.deps(), {
      seen: (c) => {
        if (isClaim(c)) {
          claims++;
          return { answer: false };
        }
        if (isOrderPage(c, 2) && pages.length > 5)
          return { reject: new Error('reading the same pages again') };
        return undefined;
      },
      answered: (c, out) => {
        if (isOrderPage(c, 2)) pages.push((out as OrderDoc[]).map((o) => o._id));
      },
    });
    const report = await reconcile(deps, { batch: 2, concurrency: 1 });
    expect(pages).toEqual([expected.slice(0, 2), expected.slice(2, 4), expected.slice(4)]);
    expect(claims).toBe(5);
    expect(report).toMatchObject({ ordersChecked: 0, errors: 0 });
  });

  it('an item that comes due again while the run goes on is not taken twice', async () => {
    const ids = [(await unpaid()).orderId, (await unpaid()).orderId, (await unpaid()).orderId];
    w.advance(w.config.reconcile.notifyGraceMs);
    // Under a time scale (the sandbox's) an order's first gap is 600 ms; WeChat takes a second
    // to answer the first look, so that order is due again when the next page is read.
    let first = true;
    const deps = watched(
      { ...w.deps(), config: { ...w.config, timeScale: 0.01 } },
      {
        wx: (call) => {
          if (call === 'queryPayment' && first) {
            first = false;
            w.advance(1000);
          }
        },
      },
    );
    const run = reconcile(deps, { batch: 2, concurrency: 1 });
    const report = await run;
    expect(report.errors).toBe(0);
    expect(report.ordersChecked).toBe(3);
    for (const id of ids) expect((await orderDoc(w, id)).checkCount).toBe(1);
  });

  it('takes the kinds of work in turns: an unpaid order, a refund, a reservation, and again', async () => {
    const refunds: string[] = [];
    for (const price of [5000, 6000]) {
      const orderId = await paidOrder(w, price);
      const r = await applied(w, orderId, 1000);
      expect((await decide(r.refundId)).status).toBe('PROCESSING');
      refunds.push(r.refundId);
    }
    await unpaid();
    await unpaid();
    // Past the unpaid orders' grace, the refunds' first query and the reservations' check.
    w.advance(11 * MINUTE);
    const calls: string[] = [];
    const deps = watched(w.deps(), {
      seen: (c) => {
        if (isReservationCheck(c)) calls.push('reservation');
        return undefined;
      },
      wx: (call) => {
        if (call === 'queryPayment') calls.push('order');
        if (call === 'queryRefund') calls.push('refund');
      },
    });
    const report = await reconcile(deps, { concurrency: 1 });
    expect(calls).toEqual(['order', 'refund', 'reservation', 'order', 'refund', 'reservation']);
    expect(report).toMatchObject({ ordersChecked: 2, refundsChecked: 2, reservationsReleased: 0, errors: 0 });
  });
});

describe('what a look at an unpaid order finds', () => {
  it('closed at WeChat: closed here too, and counted as closed', async () => {
    const { orderId } = await unpaid();
    w.advance(5 * MINUTE);
    await w.deps().wxpay!.current.closePayment(orderId);
    const report = await reconcile(w.deps());
    expect(report).toMatchObject({ ordersChecked: 1, ordersClosed: 1, ordersPaid: 0 });
    expect((await orderDoc(w, orderId)).status).toBe('CLOSED');
  });

  it('a cancelled order paid just before its close: closeorder says paid, and it is counted as paid', async () => {
    const { orderId, payment } = await unpaid();
    await cancelOrder(w.deps(), { orderId }, SHOPPER);
    expect((await orderDoc(w, orderId)).cancelledAtMs).toBe(w.now());
    w.advance(5 * MINUTE);
    let paid = false;
    const deps = watched(w.deps(), {
      wx: (call) => {
        // The shopper pays at the cashier after the look found it unpaid, before the close.
        if (call === 'closePayment' && !paid) {
          paid = true;
          expect(w.core.engine.pay(payment as never).errMsg).toBe('requestPayment:ok');
        }
      },
    });
    const report = await reconcile(deps);
    expect(paid).toBe(true);
    expect(report).toMatchObject({ ordersChecked: 1, ordersPaid: 1, ordersClosed: 0, errors: 0 });
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
  });

  it('at the very minute it expires it is closed; when WeChat does not answer the close, it is looked at again after its gap', async () => {
    const { orderId } = await unpaid();
    const placed = await orderDoc(w, orderId);
    w.advance(placed.expiresAtMs - w.now());
    const deps = watched(w.deps(), {
      wx: (call) => {
        if (call === 'closePayment') w.faults({ systemErrorRate: 1 });
      },
    });
    const report = await reconcile(deps);
    w.faults({ systemErrorRate: 0 });
    expect(report).toMatchObject({ ordersChecked: 1, ordersClosed: 0, ordersPaid: 0, errors: 0 });
    expect(logged(w, 'order.closeorder_failed').map((l) => l.fields.orderId)).toEqual([orderId]);
    const after = await orderDoc(w, orderId);
    expect(after).toMatchObject({ status: 'NOTPAY', checkCount: 1 });
    expect(after.nextCheckAtMs).toBe(w.now() + MINUTE);
    w.advance(MINUTE);
    expect(await reconcile(w.deps())).toMatchObject({ ordersChecked: 1, ordersClosed: 1 });
  });
});

describe('refunds reconcile finishes', () => {
  it('a CLOSED refund whose retry died after linking: the successor is made, then submitted', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    expect(await deliver(w)).toEqual(['CLOSED']);
    w.advance(MINUTE + 1000);
    await expect(decide(r.refundId, 'approve', dieAfter(w.deps(), casOn('refunds')))).rejects.toBeInstanceOf(
      Killed,
    );
    expect(await w.deps().store.get('refunds', `${r.refundId}_2`)).toBeNull();
    w.advance(10 * MINUTE);
    const first = await reconcile(w.deps());
    expect(first).toMatchObject({ refundsChecked: 1, refundsSubmitted: 0, errors: 0 });
    expect(await refundDoc(w, `${r.refundId}_2`)).toMatchObject({
      status: 'APPROVED',
      predecessorId: r.refundId,
    });
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBeUndefined();
    const second = await reconcile(w.deps());
    expect(second).toMatchObject({ refundsChecked: 1, refundsSubmitted: 1, errors: 0 });
    expect((await refundDoc(w, `${r.refundId}_2`)).status).toBe('PROCESSING');
    expect([...w.core.ledger.refunds.values()].map((x) => x.outRefundNo)).toEqual([
      r.refundId,
      `${r.refundId}_2`,
    ]);
  });

  it('a CLOSED refund nobody chose to retry is never retried by reconcile, even when it carries a check', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    expect(await deliver(w)).toEqual(['CLOSED']);
    // Becoming CLOSED removes the check; a check left on one (by an older version, say) must
    // not turn into a refund the merchant never approved.
    await w.deps().store.cas('refunds', { _id: r.refundId }, { nextCheckAtMs: w.now() });
    const report = await reconcile(w.deps());
    expect(report).toMatchObject({ refundsChecked: 1, refundsSubmitted: 0, errors: 0 });
    const closed = await refundDoc(w, r.refundId);
    expect(closed.status).toBe('CLOSED');
    expect(closed.successorId).toBeUndefined();
    expect(closed.nextCheckAtMs).toBeUndefined();
    expect(await w.deps().store.get('refunds', `${r.refundId}_2`)).toBeNull();
    expect((await orderDoc(w, orderId)).refundBook[r.refundId]?.state).not.toBe('moved');
  });

  it('a FAILED refund is asked about only if an answer was ever lost, and then left to the merchant', async () => {
    // Lost once (no answer), then refused: WeChat may have had it after all.
    const lostOrder = await paidOrder(w, 5000);
    const lost = await applied(w, lostOrder, 1000);
    w.faults({ timeoutRate: 1 });
    expect((await decide(lost.refundId)).status).toBe('APPROVED');
    w.faults({ timeoutRate: 0, refundError: 'NOTENOUGH' });
    w.advance(MINUTE + 1000);
    expect((await decide(lost.refundId)).status).toBe('FAILED');
    // Refused at once, never lost. (Such a refund is not scheduled; given a check, it is not asked about.)
    const plainOrder = await paidOrder(w, 6000);
    const plain = await applied(w, plainOrder, 1000);
    expect((await decide(plain.refundId)).status).toBe('FAILED');
    w.faults({ refundError: null });
    await w.deps().store.cas('refunds', { _id: plain.refundId }, { nextCheckAtMs: w.now() + 10 * MINUTE });
    expect(await refundDoc(w, lost.refundId)).toMatchObject({ hadUnknownOutcome: true });
    expect((await refundDoc(w, plain.refundId)).hadUnknownOutcome).toBeUndefined();
    w.advance(10 * MINUTE);
    const asked: string[] = [];
    const report = await reconcile(
      watched(w.deps(), {
        wx: (call, id) => {
          if (call === 'queryRefund') asked.push(id);
        },
      }),
    );
    expect(asked).toEqual([lost.refundId]);
    expect(report).toMatchObject({ refundsChecked: 2, errors: 0 });
    for (const id of [lost.refundId, plain.refundId]) {
      const r = await refundDoc(w, id);
      expect(r.status).toBe('FAILED');
      expect(r.nextCheckAtMs).toBeUndefined();
    }
  });
});

describe('a stranded reservation', () => {
  it('two runs at once: the one whose check lands releases it, the other stops there', async () => {
    const orderId = await paidOrder(w, 5000);
    await applied(w, orderId, 1000);
    await w.deps().store.cas(
      'orders',
      { _id: orderId },
      {
        'refundBook.Rstranded000000000000000000000': { fee: 700, state: 'reserved', atMs: w.now() },
        refundReservedFee: 1700,
        refundUsedFee: 1700,
        refundOpenCount: 2,
        refundCount: 2,
      },
    );
    w.advance(11 * MINUTE);
    const point = pausePoint();
    const slowCalls: Call[] = [];
    const slow = reconcile(
      pauseBefore(
        watched(w.deps(), {
          seen: (c) => {
            slowCalls.push(c);
            return undefined;
          },
        }),
        (c) => c.method === 'cas' && 'reservationCheckAtMs' in (c.args[1] as object),
        point,
      ),
    );
    await point.arrived;
    expect((await reconcile(w.deps())).reservationsReleased).toBe(1);
    point.release();
    const lost = await slow;
    expect(lost).toMatchObject({ reservationsReleased: 0, errors: 0 });
    // After losing the check it looked no further: no refunds read, nothing released.
    const at = slowCalls.findIndex(isReservationCheck);
    expect(at).toBeGreaterThan(-1);
    expect(slowCalls.slice(at + 1).filter((c) => !(c.method === 'find' && c.options.limit === 1))).toEqual(
      [],
    );
    expect(logged(w, 'refund.stranded_reservation_released')).toEqual([
      {
        level: 'warn',
        event: 'refund.stranded_reservation_released',
        fields: { orderId, refundId: 'Rstranded000000000000000000000', fee: 700 },
      },
    ]);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundReservedFee: 1000, refundOpenCount: 1 });
  });
});

describe('more of what a look finds', () => {
  it('reads the next page only as its last item is taken, while that item is worked on', async () => {
    for (const suffix of ['aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc']) await unpaid(suffix);
    w.advance(w.config.reconcile.notifyGraceMs);
    let pages = 0;
    const seenAtLook: number[] = [];
    const deps = watched(w.deps(), {
      seen: (c) => {
        if (isOrderPage(c, 2)) pages++;
        return undefined;
      },
      wx: (call) => {
        if (call === 'queryPayment') seenAtLook.push(pages);
      },
    });
    expect((await reconcile(deps, { batch: 2, concurrency: 1 })).ordersChecked).toBe(3);
    expect(seenAtLook).toEqual([1, 2, 2]);
  });

  it('works with one worker when told none', async () => {
    await unpaid();
    w.advance(w.config.reconcile.notifyGraceMs);
    expect(await reconcile(w.deps(), { concurrency: 0 })).toMatchObject({ ordersChecked: 1, errors: 0 });
  });

  it('an unpaid order old enough to close but not expired stays open and payable', async () => {
    const { orderId, payment } = await unpaid();
    w.advance(6 * MINUTE);
    expect(await reconcile(w.deps())).toMatchObject({ ordersChecked: 1, ordersClosed: 0, ordersPaid: 0 });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    expect(w.core.engine.pay(payment as never).errMsg).toBe('requestPayment:ok');
  });

  it('the next look at an order never lands after its expiry', async () => {
    // An order payable for 90 s: its first look at 60 s, whose gap would be another minute.
    const short: Deps = { ...w.deps(), config: { ...w.config, orderExpireMs: 90_000 } };
    const { orderId } = await unpaid(undefined, short);
    const placed = await orderDoc(w, orderId);
    w.advance(w.config.reconcile.notifyGraceMs);
    await reconcile(w.deps());
    expect((await orderDoc(w, orderId)).nextCheckAtMs).toBe(placed.expiresAtMs);
  });

  it('an approved refund whose lease is still held is left alone; one still unanswered is not counted as submitted', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundErrorQueue: ['INVALID_REQ_TOO_MUCH'] });
    expect((await decide(r.refundId)).status).toBe('APPROVED');
    const held = await refundDoc(w, r.refundId);
    expect(held.nextCheckAtMs).toBe(held.leaseUntilMs);
    // Due at the very millisecond its lease ends: the lease still holds.
    w.advance(held.nextCheckAtMs! - w.now());
    expect(await reconcile(w.deps())).toMatchObject({ refundsChecked: 1, refundsSubmitted: 0, errors: 0 });
    expect(w.core.ledger.refunds.size).toBe(0);
    w.advance(1000);
    w.faults({ timeoutRate: 1 });
    const unanswered = await reconcile(w.deps());
    w.faults({ timeoutRate: 0 });
    expect(unanswered).toMatchObject({ refundsChecked: 1, refundsSubmitted: 0, errors: 0 });
    expect((await refundDoc(w, r.refundId)).status).toBe('APPROVED');
  });

  it('a refund WeChat is still processing is asked again after 1, then 2 minutes; its end comes from refundquery', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.advance(w.config.reconcile.refundQueryDelayMs);
    expect(await reconcile(w.deps())).toMatchObject({ refundsChecked: 1, refundsFinalized: 0 });
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + MINUTE);
    w.advance(MINUTE);
    await reconcile(w.deps());
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + 2 * MINUTE);
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    w.outbox.length = 0;
    w.advance(2 * MINUTE);
    expect(await reconcile(w.deps())).toMatchObject({ refundsChecked: 1, refundsFinalized: 1 });
    const closed = await refundDoc(w, r.refundId);
    expect(closed.status).toBe('CLOSED');
    expect(closed.history?.at(-1)).toMatchObject({ status: 'CLOSED', source: 'refundquery' });
  });

  it('two runs racing for one refund’s look: WeChat is asked once', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    w.outbox.length = 0;
    w.advance(w.config.reconcile.refundQueryDelayMs);
    let asked = 0;
    const counting = (deps: Deps) =>
      watched(deps, {
        wx: (call) => {
          if (call === 'queryRefund') asked++;
        },
      });
    const point = pausePoint();
    const slow = reconcile(pauseBefore(counting(w.deps()), casOn('refunds'), point));
    await point.arrived;
    expect(await reconcile(counting(w.deps()))).toMatchObject({ refundsFinalized: 1 });
    point.release();
    expect(await slow).toMatchObject({ refundsChecked: 1, refundsFinalized: 0, errors: 0 });
    expect(asked).toBe(1);
    expect((await refundDoc(w, r.refundId)).status).toBe('SUCCESS');
  });

  it('sends the notices left in the outbox with what time is left, and counts those given up', async () => {
    const { config: noticeConfig } = loadNoticeConfig(demoNoticeEnv());
    // Payments booked by a function not allowed to send: their notices wait for reconcile.
    const writeOnly = (): Deps => ({ ...w.deps(), notices: { config: noticeConfig } });
    const withSend = (deps: Deps): Deps => ({
      ...deps,
      notices: { config: noticeConfig, send: async () => ({ ok: true as const }) },
    });
    await orderAndPayWith(writeOnly);
    w.advance(25 * 60 * MINUTE); // that notice is now past its day
    await orderAndPayWith(writeOnly);
    expect(await reconcile(withSend(w.deps()))).toMatchObject({ noticesSent: 1, noticesFailed: 1 });
    // Half a second of sending needs a second left before the call deadline.
    await orderAndPayWith(writeOnly);
    const left = (ms: number): Deps =>
      withSend({ ...w.deps(), budget: { endsAtMs: w.now() + ms + 3000, callDeadlineMs: w.now() + ms } });
    expect(await reconcile(left(999))).toMatchObject({ noticesSent: 0, outOfTime: true });
    expect(await reconcile(left(1000))).toMatchObject({ noticesSent: 1, outOfTime: true });
  });
});

describe('when it looks next, and its time', () => {
  it('says when the earliest scheduled look is, of orders and refunds', async () => {
    const a = (await unpaid()).orderId;
    const b = (await unpaid()).orderId;
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await applied(w, orderId, 500); // a refund with no look scheduled
    const now = w.now();
    await w.deps().store.cas('orders', { _id: a }, { nextCheckAtMs: now + 5 * MINUTE });
    await w.deps().store.cas('orders', { _id: b }, { nextCheckAtMs: now + 3 * MINUTE });
    await w.deps().store.cas('refunds', { _id: r.refundId }, { nextCheckAtMs: now + 2 * MINUTE });
    expect((await reconcile(w.deps())).nextDueAtMs).toBe(now + 2 * MINUTE);
    await w.deps().store.cas('refunds', { _id: r.refundId }, { nextCheckAtMs: now + 4 * MINUTE });
    expect((await reconcile(w.deps())).nextDueAtMs).toBe(now + 3 * MINUTE);
  });

  it('works while more than two seconds are left before the call deadline, and stops at two', async () => {
    const { orderId } = await unpaid();
    w.advance(w.config.reconcile.notifyGraceMs);
    const left = (ms: number): Deps => ({
      ...w.deps(),
      budget: { endsAtMs: w.now() + ms + 3000, callDeadlineMs: w.now() + ms },
    });
    expect(await reconcile(left(2000))).toMatchObject({ ordersChecked: 0, outOfTime: true });
    expect(await reconcile(left(2001))).toMatchObject({ ordersChecked: 1, outOfTime: false });
    expect((await orderDoc(w, orderId)).checkCount).toBe(1);
  });
});
