/**
 * The finer rules of applying for a refund, in one process (world.ts), at their exact edges.
 * Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { RefundStatus } from '../../cloudfunctions/shared/contract';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { applyRefund, approveRefund, listRefunds } from '../../cloudfunctions/shared/domain/refunds';
import { withdrawRefund } from '../../cloudfunctions/shared/domain/withdraw';
import { loadNoticeConfig } from '../../cloudfunctions/shared/notices/config';
import type { NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  dieAfter,
  eventsOf,
  logged,
  newRequestId,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  refused,
  refusesBadOrderIds,
  SHOPPER,
  withProvider,
} from './shop';
import { Killed, useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const YEAR_MS = 365 * 24 * 3600_000;

/** The merchant's review of a refund (approveRefund as an admin). */
const review = (deps: Deps, refundId: string, decision: 'approve' | 'reject' | 'resolve', comment?: string) =>
  approveRefund(deps, { refundId, decision, ...(comment ? { comment } : {}) }, ADMIN);

/** An application of 10.00 on a paid 50.00 order, moved straight to `status`. */
async function refundIn(status: RefundStatus): Promise<{ refundId: string }> {
  const r = await applied(w, await paidOrder(w, 5000), 1000);
  await w.deps().store.cas('refunds', { _id: r.refundId }, { status });
  return r;
}

describe('applying for a refund', () => {
  it('is open until exactly a year after WeChat’s time of payment, and closed a millisecond later', async () => {
    const early = await paidOrder(w, 5000);
    const late = await paidOrder(w, 5000);
    const paidAtMs = (await orderDoc(w, early)).paidAtMs!;
    expect((await orderDoc(w, late)).paidAtMs).toBe(paidAtMs);
    w.advance(paidAtMs + YEAR_MS - w.now());
    expect((await applied(w, early, 100)).status).toBe('PENDING_REVIEW');
    w.advance(1);
    await refused(
      applied(w, late, 100),
      'REFUND_NOT_ALLOWED',
      'orders paid more than a year ago cannot be refunded through WeChat Pay',
    );
  });
});

/** Deps whose store counts the writes this invocation makes. */
function countingWrites(): { deps: Deps; writes: () => number } {
  const d = w.deps();
  let n = 0;
  const store = new Proxy(d.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === 'cas' || prop === 'insert') n++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { deps: { ...d, store }, writes: () => n };
}

describe('an application over a limit', () => {
  /**
   * Applies for `refundFee` on a paid order of 5,000 fen whose books say `books`, and expects
   * the refusal from the order as read, before any write. Returns the order's id.
   */
  async function refusedBeforeAnyWrite(
    books: Partial<OrderDoc>,
    refundFee: number,
    code: string,
    message: string,
  ): Promise<string> {
    const orderId = await paidOrder(w, 5000);
    await w.deps().store.cas('orders', { _id: orderId }, books);
    const c = countingWrites();
    await refused(
      applyRefund(c.deps, { orderId, refundFee, reason: '不想要了', requestId: newRequestId() }, SHOPPER),
      code,
      message,
    );
    expect(c.writes()).toBe(0);
    return orderId;
  }

  it('is refused from the order as read, before any write: the amount left, exactly', async () => {
    const orderId = await refusedBeforeAnyWrite(
      { refundUsedFee: 1000 },
      4001,
      'REFUND_EXCEEDS_PAID',
      'at most 4000 fen of this order can still be refunded',
    );
    expect((await applied(w, orderId, 4000)).status).toBe('PENDING_REVIEW');
  });

  it('is refused before any write at WeChat’s fifty refunds per order, exactly', async () => {
    await refusedBeforeAnyWrite(
      { refundCount: 50 },
      100,
      'REFUND_NOT_ALLOWED',
      'WeChat Pay allows at most 50 refunds per order',
    );
  });

  it('is refused before any write at the open applications limit, exactly', async () => {
    const max = w.config.refunds.maxOpenPerOrder;
    await refusedBeforeAnyWrite(
      { refundOpenCount: max },
      100,
      'TOO_MANY_OPEN_REFUNDS',
      `this order already has ${max} refund applications in progress; wait for them to finish`,
    );
  });
});

describe('a reservation', () => {
  it('is checked by reconcile ten minutes later, on the shop’s time scale', async () => {
    const orderId = await paidOrder(w, 5000);
    const d = w.deps();
    const scaled: Deps = { ...d, config: { ...d.config, timeScale: 0.01 } };
    await applyRefund(
      scaled,
      { orderId, refundFee: 100, reason: '不想要了', requestId: newRequestId() },
      SHOPPER,
    );
    expect((await orderDoc(w, orderId)).reservationCheckAtMs).toBe(w.now() + 6000);
  });
});

describe('two tries of one submission (the same requestId)', () => {
  const submission = (orderId: string, refundFee: number, requestId: string) => ({
    orderId,
    refundFee,
    reason: '不想要了',
    requestId,
  });

  it('racing: the one whose reservation lost finds its twin’s, and both answer the same refund', async () => {
    const orderId = await paidOrder(w, 5000);
    const requestId = newRequestId();
    const point = pausePoint();
    // The merchant's template for an application names the product too.
    const env = demoNoticeEnv();
    const { config } = loadNoticeConfig({
      ...env,
      NOTICE_REFUND_APPLIED: `${env['NOTICE_REFUND_APPLIED']} thing5=product`,
    });
    const withNotices = (d: Deps): Deps => ({
      ...d,
      notices: { config, send: async () => ({ ok: true as const }) },
    });
    const slow = applyRefund(
      withNotices(pauseBefore(w.deps(), casOn('orders'), point)),
      submission(orderId, 1000, requestId),
      SHOPPER,
    );
    await point.arrived;
    const fast = await applyRefund(withNotices(w.deps()), submission(orderId, 1000, requestId), SHOPPER);
    w.advance(1000);
    point.release();
    const late = await slow;
    // The first try's refund, as stored: same id, same time of application.
    expect(late.refund).toEqual(fast.refund);
    // Applied once: one log line, one notice to the merchant naming the product.
    expect(logged(w, 'refund.applied')).toHaveLength(1);
    const notices = await w.deps().store.find<NoticeDoc>('notices', {}, { limit: 10 });
    expect(notices.map((n) => n.kind)).toEqual(['refund_applied']);
    expect(JSON.stringify(notices[0]!.data)).toContain('商品p5000');
    const o = await orderDoc(w, orderId);
    expect([o.refundReservedFee, o.refundUsedFee, o.refundCount, o.refundOpenCount]).toEqual([
      1000, 1000, 1, 1,
    ]);
    expect(await w.deps().store.find('refunds', { orderId }, {})).toHaveLength(1);
  });

  it('after the first died and reconcile released its reservation: reserved again only within the limits of that moment', async () => {
    const orderId = await paidOrder(w, 5000);
    const requestId = newRequestId();
    await expect(
      applyRefund(dieAfter(w.deps(), casOn('orders')), submission(orderId, 3000, requestId), SHOPPER),
    ).rejects.toBeInstanceOf(Killed);
    w.advance(10 * 60_000);
    expect((await reconcile(w.deps())).reservationsReleased).toBe(1);
    // The retry read 5,000 left and found its released entry; before it reserves again,
    // another application takes 3,000.
    let casOnOrders = 0;
    const secondCas = (c: { method: string; collection: unknown }) =>
      c.method === 'cas' && c.collection === 'orders' && ++casOnOrders === 2;
    const point = pausePoint();
    const retry = applyRefund(
      pauseBefore(w.deps(), secondCas, point),
      submission(orderId, 3000, requestId),
      SHOPPER,
    );
    await point.arrived;
    await applied(w, orderId, 3000);
    point.release();
    await refused(retry, 'REFUND_EXCEEDS_PAID', 'at most 2000 fen of this order can still be refunded');
    const o = await orderDoc(w, orderId);
    expect([o.refundUsedFee, o.refundReservedFee]).toEqual([3000, 3000]);
  });

  it('after the first died and reconcile released its reservation: the retry reserves it again and is created', async () => {
    const orderId = await paidOrder(w, 5000);
    const requestId = newRequestId();
    await expect(
      applyRefund(dieAfter(w.deps(), casOn('orders')), submission(orderId, 3000, requestId), SHOPPER),
    ).rejects.toBeInstanceOf(Killed);
    w.advance(10 * 60_000);
    await reconcile(w.deps());
    const retried = await applyRefund(w.deps(), submission(orderId, 3000, requestId), SHOPPER);
    expect(retried.refund.status).toBe('PENDING_REVIEW');
    const o = await orderDoc(w, orderId);
    expect(o.refundBook[retried.refund.refundId]).toMatchObject({ fee: 3000, state: 'reserved' });
    expect([o.refundReservedFee, o.refundUsedFee]).toEqual([3000, 3000]);
  });
});

describe('rejecting an application', () => {
  /** Deps whose APIv2 provider counts its refundquery calls. */
  function countingQueries(): { deps: Deps; asked: () => number } {
    let n = 0;
    const base = w.deps().wxpay!.byName.v2!;
    const deps = withProvider(w, {
      queryRefund: (id, o) => {
        n++;
        return base.queryRefund(id, o);
      },
    });
    return { deps, asked: () => n };
  }

  it('asks WeChat first only about a FAILED refund whose answer was once lost', async () => {
    const orderId = await paidOrder(w, 5000);
    const pending = await applied(w, orderId, 1000);
    const failed = await applied(w, orderId, 1000);
    await w
      .deps()
      .store.cas(
        'refunds',
        { _id: failed.refundId },
        { status: 'FAILED', failReason: 'NOTENOUGH: 余额不足' },
      );
    const c = countingQueries();
    await review(c.deps, pending.refundId, 'reject');
    await review(c.deps, failed.refundId, 'reject');
    expect(c.asked()).toBe(0);
    const lost = await applied(w, orderId, 1000);
    await w
      .deps()
      .store.cas('refunds', { _id: lost.refundId }, { status: 'FAILED', hadUnknownOutcome: true });
    await review(c.deps, lost.refundId, 'reject');
    expect(c.asked()).toBe(1);
  });

  it('a CLOSED refund whose earlier answer was lost is rejected without asking WeChat again', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    expect((await review(w.deps(), r.refundId, 'approve')).refund.status).toBe('PROCESSING');
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    expect(await deliver(w)).toEqual(['CLOSED']);
    await w.deps().store.cas('refunds', { _id: r.refundId }, { hadUnknownOutcome: true });
    const c = countingQueries();
    expect((await review(c.deps, r.refundId, 'reject')).refund.status).toBe('REJECTED');
    expect(c.asked()).toBe(0);
  });

  it('clears the failure WeChat gave, records the review as an event and checks the release on the shop’s time scale', async () => {
    const orderId = await paidOrder(w, 5000);
    const failed = await applied(w, orderId, 1000);
    await w
      .deps()
      .store.cas(
        'refunds',
        { _id: failed.refundId },
        { status: 'FAILED', failReason: 'NOTENOUGH: 余额不足' },
      );
    const d = w.deps();
    await review({ ...d, config: { ...d.config, timeScale: 0.01 } }, failed.refundId, 'reject', '已线下处理');
    const stored = await refundDoc(w, failed.refundId);
    expect(stored.status).toBe('REJECTED');
    expect(stored.failReason).toBeUndefined();
    expect(stored.nextCheckAtMs).toBe(w.now() + 6000);
    expect((await eventsOf(w, failed.refundId)).map((e) => [e.kind, e.from, e.to, e.source])).toEqual([
      ['refund', 'FAILED', 'REJECTED', 'review'],
    ]);
  });

  it('that lost to the shopper’s withdrawal answers the refund as it is now', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const point = pausePoint();
    const rejecting = review(pauseBefore(w.deps(), casOn('refunds'), point), r.refundId, 'reject');
    await point.arrived;
    await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER);
    point.release();
    expect((await rejecting).refund.status).toBe('WITHDRAWN');
  });
});

describe('marking an ABNORMAL refund resolved', () => {
  it('records the merchant’s word as an event, once, even when two admins race', async () => {
    const r = await refundIn('ABNORMAL');
    const point = pausePoint();
    const slow = review(pauseBefore(w.deps(), casOn('refunds'), point), r.refundId, 'resolve');
    await point.arrived;
    expect((await review(w.deps(), r.refundId, 'resolve')).refund.status).toBe('SUCCESS');
    point.release();
    expect((await slow).refund.status).toBe('SUCCESS');
    expect(logged(w, 'refund.resolved')).toHaveLength(1);
    expect((await eventsOf(w, r.refundId)).map((e) => [e.kind, e.from, e.to, e.source])).toEqual([
      ['refund', 'ABNORMAL', 'SUCCESS', 'resolve'],
    ]);
  });
});

describe('approving', () => {
  it('a refund WeChat has already paid is answered as it is, with nothing written', async () => {
    const r = await refundIn('SUCCESS');
    const c = countingWrites();
    expect((await review(c.deps, r.refundId, 'approve')).refund.status).toBe('SUCCESS');
    expect(c.writes()).toBe(0);
  });

  it('again, after the approving call died before asking WeChat: the refund is sent, and the approval is not logged a second time', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await expect(review(dieAfter(w.deps(), casOn('refunds')), r.refundId, 'approve')).rejects.toBeInstanceOf(
      Killed,
    );
    expect((await refundDoc(w, r.refundId)).status).toBe('APPROVED');
    expect(logged(w, 'refund.approved')).toHaveLength(0);
    // Once the dead call's lease has run out.
    w.advance(60_000);
    expect((await review(w.deps(), r.refundId, 'approve')).refund.status).toBe('PROCESSING');
    expect(logged(w, 'refund.approved')).toHaveLength(0);
    expect(logged(w, 'refund.processing')).toHaveLength(1);
  });
});

describe('applyRefund’s order id', () => {
  it('is at most 32 letters, digits, "_" or "-", refused before any lookup', async () => {
    await refusesBadOrderIds((orderId) =>
      applyRefund(
        w.deps(),
        { orderId, refundFee: 100, reason: '不想要了', requestId: newRequestId() },
        SHOPPER,
      ),
    );
  });
});

describe('listRefunds', () => {
  it('takes an order id of at most 32 letters, digits, "_" or "-"', async () => {
    await refusesBadOrderIds((orderId) => listRefunds(w.deps(), { orderId }, ADMIN));
  });
});

describe('a refund WeChat refuses twice', () => {
  it('keeps one FAILED event per attempt, each with WeChat’s own reason', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const approve = () => review(w.deps(), r.refundId, 'approve');
    w.faults({ refundError: 'NOTENOUGH' });
    expect((await approve()).refund.status).toBe('FAILED');
    // The merchant approves again later (WeChat takes one refund call per order a minute).
    w.advance(5 * 60_000);
    w.faults({ refundError: 'USER_ACCOUNT_ABNORMAL' });
    expect((await approve()).refund.status).toBe('FAILED');
    w.faults({ refundError: null });
    const failed = (await eventsOf(w, r.refundId)).filter((e) => e.to === 'FAILED');
    expect(failed.map((e) => [e._id, (e.fields as { err_code?: string }).err_code]).sort()).toEqual([
      [`${r.refundId}:FAILED`, 'NOTENOUGH'],
      [`${r.refundId}:FAILED:2`, 'USER_ACCOUNT_ABNORMAL'],
    ]);
  });
});
