/**
 * Reconcile in one process (world.ts): what it finds when a notify never came or a call
 * died, the schedule each item carries, and its claim, a compare-and-set on the item's next
 * check, forced between two runs. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import {
  ADMIN,
  applied,
  casOn,
  orderAndPay,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  SHOPPER,
} from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const MINUTE = 60_000;
const approve = (refundId: string) => approveRefund(w.deps(), { refundId, decision: 'approve' }, ADMIN);

describe('reconcile', () => {
  it('books a payment whose notify never came, once the grace has passed, and stops looking', async () => {
    const { orderId } = await orderAndPay(w, 3000);
    w.outbox.length = 0;
    const placed = await orderDoc(w, orderId);
    expect(placed.nextCheckAtMs).toBe(placed.createdAtMs + w.config.reconcile.notifyGraceMs);
    expect((await reconcile(w.deps())).ordersChecked).toBe(0);
    w.advance(w.config.reconcile.notifyGraceMs);
    const report = await reconcile(w.deps());
    expect(report).toMatchObject({ ordersChecked: 1, ordersPaid: 1, ordersClosed: 0, errors: 0 });
    const paid = await orderDoc(w, orderId);
    expect(paid.status).toBe('PAID');
    expect(paid.nextCheckAtMs).toBeUndefined();
    expect(report.nextDueAtMs).toBeNull();
  });

  it('an unpaid order is looked at on its growing schedule, then closed when it expires', async () => {
    const { orderId } = await (async () => {
      const o = await orderAndPay(w, 3000);
      return o;
    })();
    // Paid at the cashier? No: this one is left unpaid at WeChat.
    w.outbox.length = 0;
    w.core.ledger.clear();
    await w.deps().store.cas('orders', { _id: orderId }, { status: 'NOTPAY', prepayId: null });
    w.advance(w.config.reconcile.notifyGraceMs);
    const first = await reconcile(w.deps());
    expect(first).toMatchObject({ ordersChecked: 1, ordersPaid: 0, ordersClosed: 0 });
    const o1 = await orderDoc(w, orderId);
    expect(o1).toMatchObject({ status: 'NOTPAY', checkCount: 1 });
    expect(o1.nextCheckAtMs).toBe(w.now() + MINUTE);
    expect(first.nextDueAtMs).toBe(w.now() + MINUTE);
    expect((await reconcile(w.deps())).ordersChecked).toBe(0);
    w.advance(MINUTE);
    await reconcile(w.deps());
    expect((await orderDoc(w, orderId)).nextCheckAtMs).toBe(w.now() + 2 * MINUTE);
    // The look never lands after the order's expiry: it closes on time.
    w.advance(w.config.orderExpireMs);
    const last = await reconcile(w.deps());
    expect(last.ordersClosed).toBe(1);
    expect((await orderDoc(w, orderId)).status).toBe('CLOSED');
  });

  it('two runs that read the same due order: only the one whose claim lands asks WeChat', async () => {
    // Paid at WeChat, and an order nobody paid: both due, one run holds before its first claim.
    const { orderId: paid } = await orderAndPay(w, 3000);
    w.outbox.length = 0;
    const unpaid = (await createOrder(w.deps(), { items: [{ productId: 'p3000', quantity: 2 }] }, SHOPPER))
      .orderId;
    w.advance(w.config.reconcile.notifyGraceMs);
    const point = pausePoint();
    const slow = reconcile(pauseBefore(w.deps(), casOn('orders'), point), { concurrency: 1 });
    await point.arrived;
    w.advance(1000);
    const fast = await reconcile(w.deps());
    expect(fast).toMatchObject({ ordersChecked: 2, ordersPaid: 1 });
    point.release();
    expect(await slow).toMatchObject({ ordersChecked: 0, ordersPaid: 0 });
    expect((await orderDoc(w, paid)).checkCount).toBe(1);
    expect((await orderDoc(w, unpaid)).checkCount).toBe(1);
  });

  it('finishes a refund whose notify never came, and keeps a daily look at an ABNORMAL one', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await approve(a.refundId);
    w.core.engine.settleOne(a.refundId, 'SUCCESS');
    w.outbox.length = 0;
    const processing = await refundDoc(w, a.refundId);
    expect(processing.nextCheckAtMs).toBe(w.now() + w.config.reconcile.refundQueryDelayMs);
    w.advance(w.config.reconcile.refundQueryDelayMs);
    const r1 = await reconcile(w.deps());
    expect(r1).toMatchObject({ refundsChecked: 1, refundsFinalized: 1 });
    expect((await refundDoc(w, a.refundId)).status).toBe('SUCCESS');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });

    w.advance(2 * MINUTE);
    const b = await applied(w, orderId, 500);
    await approve(b.refundId);
    w.core.engine.settleOne(b.refundId, 'CHANGE');
    w.outbox.length = 0;
    w.advance(w.config.reconcile.refundQueryDelayMs);
    expect((await reconcile(w.deps())).refundsFinalized).toBe(1);
    const abnormal = await refundDoc(w, b.refundId);
    expect(abnormal.status).toBe('ABNORMAL');
    expect(abnormal.nextCheckAtMs).toBe(w.now() + 24 * 60 * MINUTE);
    w.advance(24 * 60 * MINUTE);
    const daily = await reconcile(w.deps());
    expect(daily).toMatchObject({ refundsChecked: 1, refundsFinalized: 0 });
    expect((await refundDoc(w, b.refundId)).nextCheckAtMs).toBe(w.now() + 24 * 60 * MINUTE);
  });

  it('submits an approved refund whose call got no answer, asking WeChat first', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    expect((await approve(r.refundId)).refund.status).toBe('APPROVED');
    w.faults({ timeoutRate: 0 });
    w.advance(MINUTE + 1000);
    const report = await reconcile(w.deps());
    expect(report).toMatchObject({ refundsChecked: 1, refundsSubmitted: 1 });
    expect((await refundDoc(w, r.refundId)).status).toBe('PROCESSING');
    expect([...w.core.ledger.refunds.values()]).toHaveLength(1);
  });

  it('releases a reservation no refund was ever created for, and leaves one with its refund alone', async () => {
    const orderId = await paidOrder(w, 5000);
    const kept = await applied(w, orderId, 1000);
    // A second application died between its reservation and its refund.
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
    const report = await reconcile(w.deps());
    expect(report.reservationsReleased).toBe(1);
    const o = await orderDoc(w, orderId);
    expect(o).toMatchObject({
      refundReservedFee: 1000,
      refundUsedFee: 1000,
      refundOpenCount: 1,
      refundCount: 1,
    });
    expect(o.refundBook[kept.refundId]?.state).toBe('reserved');
    expect(o.refundBook['Rstranded000000000000000000000']?.state).toBe('released');
    expect(o.reservationCheckAtMs).toBeUndefined();
    expect((await reconcile(w.deps())).reservationsReleased).toBe(0);
  });

  it('stops starting work when its time is spent, and says so', async () => {
    const { orderId } = await orderAndPay(w, 3000);
    w.outbox.length = 0;
    w.advance(w.config.reconcile.notifyGraceMs);
    const spent: Deps = { ...w.deps(), budget: { endsAtMs: w.now() + 1000, callDeadlineMs: w.now() + 1000 } };
    const report = await reconcile(spent);
    expect(report).toMatchObject({ ordersChecked: 0, outOfTime: true, nextDueAtMs: null });
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });
});
