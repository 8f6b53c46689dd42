/**
 * The log line each shopper and merchant action leaves, in one process (world.ts): what an
 * operator reads in the function logs when a shopper cancels, applies for or withdraws a
 * refund, and when the merchant approves, rejects or resolves one, including a release that
 * finds the money already paid out. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { cancelOrder } from '../../cloudfunctions/shared/domain/cancel';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { move } from '../../cloudfunctions/shared/domain/refund-book';
import { approveRefund, releaseEnded } from '../../cloudfunctions/shared/domain/refunds';
import { withdrawRefund } from '../../cloudfunctions/shared/domain/withdraw';
import {
  ADMIN,
  applied,
  deliver,
  eventsOf,
  logged,
  orderAndPay,
  orderDoc,
  paidOrder,
  refundDoc,
  refused,
  SHOPPER,
  stock,
} from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 1200);
});

const MINUTE = 60_000;
const decide = (refundId: string, decision: string, comment?: string) =>
  approveRefund(w.deps(), { refundId, decision, ...(comment ? { comment } : {}) }, ADMIN).then(
    (r) => r.refund,
  );

describe('a shopper’s cancel', () => {
  it('order.cancelled once; past WeChat’s five minutes the close is tried in the same call', async () => {
    const created = await createOrder(w.deps(), { items: [{ productId: 'tea', quantity: 1 }] }, SHOPPER);
    w.advance(6 * MINUTE);
    w.faults({ systemErrorRate: 1 });
    expect((await cancelOrder(w.deps(), { orderId: created.orderId }, SHOPPER)).outcome).toBe('CLOSING');
    w.faults({ systemErrorRate: 0 });
    expect(logged(w, 'order.cancelled')).toEqual([
      {
        level: 'info',
        event: 'order.cancelled',
        fields: { orderId: created.orderId, dbRequests: expect.any(Number) },
      },
    ]);
    // Past WeChat's five minutes, reconcile may close it at once.
    expect(await orderDoc(w, created.orderId)).toMatchObject({
      cancelledAtMs: w.now(),
      updatedAtMs: w.now(),
      nextCheckAtMs: w.now(),
    });
    // The repeat closes it and is not a second cancel.
    expect((await cancelOrder(w.deps(), { orderId: created.orderId }, SHOPPER)).outcome).toBe('CLOSED');
    expect(logged(w, 'order.cancelled')).toHaveLength(1);
  });

  it('closeorder says ORDERPAID and orderquery does not answer: order.cancel_close_deferred, the payment found later', async () => {
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    w.advance(6 * MINUTE);
    w.faults({ systemErrorRate: { '/pay/orderquery': 1 } });
    expect((await cancelOrder(w.deps(), { orderId }, SHOPPER)).outcome).toBe('CLOSING');
    w.faults({ systemErrorRate: 0 });
    expect(logged(w, 'order.cancel_close_deferred')).toEqual([
      { level: 'warn', event: 'order.cancel_close_deferred', fields: { orderId, code: 'WXPAY_UNAVAILABLE' } },
    ]);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    expect((await cancelOrder(w.deps(), { orderId }, SHOPPER)).outcome).toBe('PAID');
  });
});

describe('a shopper’s refund', () => {
  it('refund.applied with the amount; refund.withdrawn and refund.reservation_released on withdrawal', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    expect(logged(w, 'refund.applied')).toEqual([
      {
        level: 'info',
        event: 'refund.applied',
        fields: {
          refundId: r.refundId,
          orderId,
          refundFee: 1000,
          to: 'PENDING_REVIEW',
          dbRequests: expect.any(Number),
        },
      },
    ]);
    await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER);
    expect(logged(w, 'refund.withdrawn')).toEqual([
      {
        level: 'info',
        event: 'refund.withdrawn',
        fields: {
          refundId: r.refundId,
          orderId,
          from: 'PENDING_REVIEW',
          to: 'WITHDRAWN',
          dbRequests: expect.any(Number),
        },
      },
    ]);
    expect(logged(w, 'refund.reservation_released')).toEqual([
      {
        level: 'info',
        event: 'refund.reservation_released',
        fields: { refundId: r.refundId, orderId, fee: 1000, dbRequests: expect.any(Number) },
      },
    ]);
    // Reconcile checks the release happened ten minutes on; the withdrawal ended the refund now.
    expect(await refundDoc(w, r.refundId)).toMatchObject({
      finishedAtMs: w.now(),
      nextCheckAtMs: w.now() + 10 * MINUTE,
    });
    expect((await refundDoc(w, r.refundId)).history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'WITHDRAWN',
      source: 'withdraw',
    });
  });
});

describe('the merchant’s review', () => {
  it('refund.approved then refund.processing; refund.rejected with its comment kept', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId, 'approve');
    expect(logged(w, 'refund.approved')).toEqual([
      {
        level: 'info',
        event: 'refund.approved',
        fields: {
          refundId: a.refundId,
          from: 'PENDING_REVIEW',
          to: 'APPROVED',
          dbRequests: expect.any(Number),
        },
      },
    ]);
    const b = await applied(w, orderId, 500);
    const rejected = await decide(b.refundId, 'reject', '已发货，不能退');
    expect(rejected.status).toBe('REJECTED');
    expect(logged(w, 'refund.rejected')).toEqual([
      {
        level: 'info',
        event: 'refund.rejected',
        fields: {
          refundId: b.refundId,
          from: 'PENDING_REVIEW',
          to: 'REJECTED',
          dbRequests: expect.any(Number),
        },
      },
    ]);
    const stored = await refundDoc(w, b.refundId);
    expect(stored).toMatchObject({
      reviewer: ADMIN.openid,
      comment: '已发货，不能退',
      reviewedAtMs: w.now(),
      finishedAtMs: w.now(),
      leaseUntilMs: 0,
      nextCheckAtMs: w.now() + 10 * MINUTE,
    });
    expect(stored.history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'REJECTED',
      source: 'review',
      reason: '已发货，不能退',
    });
  });

  it('refund.resolved for an ABNORMAL refund settled by hand, with the merchant’s word', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'approve');
    w.core.engine.settleOne(r.refundId, 'CHANGE');
    expect(await deliver(w)).toEqual(['ABNORMAL']);
    expect((await decide(r.refundId, 'resolve')).status).toBe('SUCCESS');
    expect(logged(w, 'refund.resolved')).toEqual([
      {
        level: 'info',
        event: 'refund.resolved',
        fields: { refundId: r.refundId, from: 'ABNORMAL', to: 'SUCCESS' },
      },
    ]);
    const done = await refundDoc(w, r.refundId);
    expect(done.history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'SUCCESS',
      source: 'resolve',
      reason: 'resolved on the merchant platform',
    });
    expect(done).toMatchObject({ reviewer: ADMIN.openid, finishedAtMs: w.now() });
    expect(done.failReason).toBeUndefined();
    expect(done.nextCheckAtMs).toBeUndefined();
  });

  it('a release that finds the money already paid out: refund.release_skipped, nothing given back', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'approve');
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    await releaseEnded(w.deps(), await refundDoc(w, r.refundId));
    expect(logged(w, 'refund.release_skipped')).toEqual([
      {
        level: 'warn',
        event: 'refund.release_skipped',
        fields: { refundId: r.refundId, orderId, result: 'settled' },
      },
    ]);
    expect(logged(w, 'refund.reservation_released')).toEqual([]);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundUsedFee: 1000 });
    // Released twice: the second finds it released already and says nothing.
    const b = await applied(w, orderId, 500);
    await decide(b.refundId, 'reject');
    await releaseEnded(w.deps(), await refundDoc(w, b.refundId));
    expect(logged(w, 'refund.release_skipped')).toHaveLength(1);
    expect(logged(w, 'refund.reservation_released')).toHaveLength(1);
    // An entry that is not there at all is reported too; a moved one is not the release's business.
    const c = await applied(w, orderId, 300);
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { [`refundBook.${c.refundId}`]: store.cmd.remove() });
    await releaseEnded(w.deps(), await refundDoc(w, c.refundId));
    expect(logged(w, 'refund.release_skipped').at(-1)).toEqual({
      level: 'warn',
      event: 'refund.release_skipped',
      fields: { refundId: c.refundId, orderId, result: 'missing' },
    });
    const d = await applied(w, orderId, 200);
    await move(w.deps(), orderId, d.refundId, `${d.refundId}_2`, 200);
    await releaseEnded(w.deps(), await refundDoc(w, d.refundId));
    expect(logged(w, 'refund.release_skipped')).toHaveLength(2);
  });
});

describe('cancel and withdraw, the rest', () => {
  it('a malformed id is refused in words', async () => {
    await refused(
      cancelOrder(w.deps(), { orderId: 'a b' }, SHOPPER),
      'INVALID_INPUT',
      'orderId has an invalid format',
    );
    await refused(
      cancelOrder(w.deps(), { orderId: 'x'.repeat(33) }, SHOPPER),
      'INVALID_INPUT',
      'orderId must be at most 32 characters',
    );
    await refused(
      withdrawRefund(w.deps(), { refundId: 'a b' }, SHOPPER),
      'INVALID_INPUT',
      'refundId has an invalid format',
    );
  });

  it('cancelling a paid order asks WeChat nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    w.advance(6 * MINUTE);
    w.faults({ systemErrorRate: 1 });
    expect((await cancelOrder(w.deps(), { orderId }, SHOPPER)).outcome).toBe('PAID');
    w.faults({ systemErrorRate: 0 });
    expect(logged(w, 'order.closeorder_failed')).toEqual([]);
    expect(logged(w, 'order.cancelled')).toEqual([]);
  });

  it('an error that is not WeChat’s reaches the shopper as it is; the order stays cancelled', async () => {
    // Paid at WeChat with the notify lost: closeorder answers ORDERPAID, and the query after it breaks.
    const { orderId } = await orderAndPay(w);
    w.outbox.length = 0;
    w.advance(6 * MINUTE);
    const deps = w.deps();
    const v2 = deps.wxpay!.byName.v2!;
    const broken = Object.create(v2, {
      queryPayment: { value: async () => Promise.reject(new Error('bug')) },
    });
    await expect(
      cancelOrder({ ...deps, wxpay: { current: broken, byName: { v2: broken } } }, { orderId }, SHOPPER),
    ).rejects.toThrow('bug');
    expect((await orderDoc(w, orderId)).cancelledAtMs).toBe(w.now());
  });

  it('in a sandbox with a time scale, the close and the release checks come sooner by it', async () => {
    const scaled = () => ({ ...w.deps(), config: { ...w.config, timeScale: 0.5 } });
    const created = await createOrder(w.deps(), { items: [{ productId: 'tea', quantity: 1 }] }, SHOPPER);
    const made = w.now();
    await cancelOrder(scaled(), { orderId: created.orderId }, SHOPPER);
    expect((await orderDoc(w, created.orderId)).nextCheckAtMs).toBe(made + 2.5 * MINUTE);
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await withdrawRefund(scaled(), { refundId: r.refundId }, SHOPPER);
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + 5 * MINUTE);
    const [event] = await eventsOf(w, r.refundId);
    expect(event).toMatchObject({
      _id: `${r.refundId}:WITHDRAWN`,
      kind: 'refund',
      orderId,
      refundId: r.refundId,
      from: 'PENDING_REVIEW',
      to: 'WITHDRAWN',
      source: 'withdraw',
      fields: {},
    });
  });
});
