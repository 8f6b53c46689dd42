/**
 * Refund applications, reviews and withdrawals in one process (world.ts), with the races
 * forced at the database request where they are decided: the reservation's compare-and-set
 * (never more than was paid, never more open applications or refunds than allowed, one per
 * submission), who may decide (the shopper for their own refunds, the merchant's admins for
 * reviews), and withdraw against approve. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { handleRefundNotify } from '../../cloudfunctions/shared/domain/notify';
import {
  applyRefund,
  approveRefund,
  listRefunds,
  refundIdFor,
} from '../../cloudfunctions/shared/domain/refunds';
import { withdrawRefund } from '../../cloudfunctions/shared/domain/withdraw';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import { encryptRefundNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  eventsOf,
  newRequestId,
  OTHER,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  refused,
  SHOPPER,
} from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const DAY = 24 * 3600_000;
const apply = (
  orderId: string,
  refundFee: number,
  requestId = newRequestId(),
  caller: Caller = SHOPPER,
  deps: Deps = w.deps(),
) => applyRefund(deps, { orderId, refundFee, reason: '坏了', requestId }, caller);
const decide = (refundId: string, decision: string, caller: Caller = ADMIN, extra = {}) =>
  approveRefund(w.deps(), { refundId, decision, ...extra }, caller);
const wxRefunds = () => [...w.core.ledger.refunds.values()];

/** Two applications that have both read the order and stop before their reservation. */
async function racingReservations(
  orderId: string,
  fees: [number, number],
  requestIds: [string, string] = [newRequestId(), newRequestId()],
) {
  const points = [pausePoint(), pausePoint()];
  const calls = fees.map((fee, i) =>
    apply(orderId, fee, requestIds[i], SHOPPER, pauseBefore(w.deps(), casOn('orders'), points[i]!)).then(
      (r) => ({ ok: true as const, refund: r.refund }),
      (e: { code: string }) => ({ ok: false as const, code: e.code }),
    ),
  );
  await Promise.all(points.map((p) => p.arrived));
  points[0]!.release();
  const first = await calls[0]!;
  points[1]!.release();
  return [first, await calls[1]!] as const;
}

describe('applying for a refund', () => {
  it('two applications that both fit the order alone but not together: the second reservation is refused', async () => {
    const orderId = await paidOrder(w, 5000);
    const [a, b] = await racingReservations(orderId, [3000, 2500]);
    expect(a).toMatchObject({ ok: true });
    expect(b).toEqual({ ok: false, code: 'REFUND_EXCEEDS_PAID' });
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 3000,
      refundReservedFee: 3000,
      refundOpenCount: 1,
      refundCount: 1,
    });
    expect(await w.deps().store.find('refunds', { orderId }, {})).toHaveLength(1);
  });

  it('two racing applications that exactly use up the order both get their reservation', async () => {
    const orderId = await paidOrder(w, 5000);
    const [a, b] = await racingReservations(orderId, [3000, 2000]);
    expect([a.ok, b.ok]).toEqual([true, true]);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundUsedFee: 5000, refundOpenCount: 2 });
    await refused(
      apply(orderId, 1),
      'REFUND_EXCEEDS_PAID',
      'at most 0 fen of this order can still be refunded',
    );
  });

  it('the last open place and the fiftieth refund are each won by one of two racing applications', async () => {
    const maxOpen = w.config.refunds.maxOpenPerOrder;
    const orderId = await paidOrder(w, 10_000);
    for (let i = 0; i < maxOpen - 1; i++) await apply(orderId, 10);
    const [a, b] = await racingReservations(orderId, [10, 10]);
    expect([a.ok, b]).toEqual([true, { ok: false, code: 'TOO_MANY_OPEN_REFUNDS' }]);
    await refused(
      apply(orderId, 10),
      'TOO_MANY_OPEN_REFUNDS',
      'this order already has 5 refund applications in progress; wait for them to finish',
    );

    const second = await paidOrder(w, 10_000);
    // 49 refunds already made and settled: one more is allowed, then none.
    await w.deps().store.cas('orders', { _id: second }, { refundCount: 49 });
    const [c, d] = await racingReservations(second, [10, 10]);
    expect([c.ok, d]).toEqual([true, { ok: false, code: 'REFUND_NOT_ALLOWED' }]);
    expect(await orderDoc(w, second)).toMatchObject({ refundCount: 50, refundUsedFee: 10 });
  });

  it('a double tap (one requestId) racing itself makes one reservation and one refund', async () => {
    const orderId = await paidOrder(w, 5000);
    const id = newRequestId();
    const [a, b] = await racingReservations(orderId, [1500, 1500], [id, id]);
    expect(a).toMatchObject({ ok: true });
    expect(b).toMatchObject({ ok: true });
    if (a.ok && b.ok) expect(b.refund.refundId).toBe(a.refund.refundId);
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 1500,
      refundOpenCount: 1,
      refundCount: 1,
    });
    expect(await w.deps().store.find('refunds', { orderId }, {})).toHaveLength(1);
    // The same requestId for another amount or order is a new application with a reused id.
    await refused(
      apply(orderId, 1600, id),
      'INVALID_INPUT',
      'requestId was already used for a different application; make a new one per submission',
    );
    const other = await paidOrder(w, 5000);
    await refused(
      apply(other, 1500, id),
      'INVALID_INPUT',
      'requestId was already used for a different application; make a new one per submission',
    );
    expect((await apply(orderId, 1500, id)).refund.refundId).toBe(refundIdFor(SHOPPER.openid!, id));
  });

  it('up to what is left of the order, from its own paid order only, within a year of payment', async () => {
    const orderId = await paidOrder(w, 5000);
    await refused(
      apply(orderId, 100, newRequestId(), OTHER),
      'FORBIDDEN',
      'this order belongs to someone else',
    );
    await refused(
      apply(orderId, 100, newRequestId(), { ...SHOPPER, appid: 'wxanotherapp000001' }),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    await refused(apply('20261130100000nothing000', 100), 'NOT_FOUND', 'order not found');
    await refused(
      apply(orderId, 5001),
      'REFUND_EXCEEDS_PAID',
      'at most 5000 fen of this order can still be refunded',
    );
    const first = await apply(orderId, 4000);
    expect(first.refund).toMatchObject({ status: 'PENDING_REVIEW', refundFee: 4000 });
    await refused(
      apply(orderId, 1001),
      'REFUND_EXCEEDS_PAID',
      'at most 1000 fen of this order can still be refunded',
    );
    await apply(orderId, 1000);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundUsedFee: 5000, refundReservedFee: 5000 });
    const o = await orderDoc(w, orderId);
    expect(o.refundBook[first.refund.refundId]).toMatchObject({ fee: 4000, state: 'reserved' });
    expect(o.reservationCheckAtMs).toBeGreaterThan(w.now());

    await refused(apply(await unpaidOrder(), 100), 'REFUND_NOT_ALLOWED', 'only a paid order can be refunded');
    const old = await paidOrder(w, 5000);
    w.advance(365 * DAY - 60_000);
    expect((await apply(old, 100)).refund.status).toBe('PENDING_REVIEW');
    w.advance(2 * 60_000);
    await refused(
      apply(old, 100),
      'REFUND_NOT_ALLOWED',
      'orders paid more than a year ago cannot be refunded through WeChat Pay',
    );
  });

  it('keeps the shopper’s contact and reason on the refund, for the merchant’s eyes', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applyRefund(
      w.deps(),
      { orderId, refundFee: 100, reason: '少发了一件', contact: '13800000000', requestId: newRequestId() },
      SHOPPER,
    );
    expect(await refundDoc(w, r.refund.refundId)).toMatchObject({
      contact: '13800000000',
      reason: '少发了一件',
      openid: SHOPPER.openid,
      totalFee: 5000,
      history: [{ status: 'PENDING_REVIEW', source: 'apply' }],
    });
  });
});

async function unpaidOrder(): Promise<string> {
  const { createOrder } = await import('../../cloudfunctions/shared/domain/orders');
  const created = await createOrder(w.deps(), { items: [{ productId: 'p5000', quantity: 1 }] }, SHOPPER);
  return created.orderId;
}

describe('reviewing a refund', () => {
  it('is for the merchant’s admins only, and for nobody when no admin is configured', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await refused(decide(r.refundId, 'approve', SHOPPER), 'FORBIDDEN', 'only the merchant may do this');
    await refused(decide(r.refundId, 'reject', SHOPPER), 'FORBIDDEN', 'only the merchant may do this');
    await refused(listRefunds(w.deps(), {}, SHOPPER), 'FORBIDDEN', 'only the merchant may do this');
    const noAdmins: Deps = { ...w.deps(), config: { ...w.config, adminOpenids: new Set() } };
    await refused(
      approveRefund(noAdmins, { refundId: r.refundId, decision: 'approve' }, ADMIN),
      'FORBIDDEN',
      'only the merchant may do this',
    );
    await refused(listRefunds(noAdmins, {}, ADMIN), 'FORBIDDEN', 'only the merchant may do this');
    expect((await refundDoc(w, r.refundId)).status).toBe('PENDING_REVIEW');
    expect(wxRefunds()).toHaveLength(0);
    await refused(decide('Rnothing', 'approve'), 'NOT_FOUND', 'refund not found');
    await refused(
      decide(r.refundId, ''),
      'INVALID_INPUT',
      'decision must be one of approve, reject, resolve',
    );
    await refused(
      approveRefund(w.deps(), { refundId: r.refundId }, ADMIN),
      'INVALID_INPUT',
      'decision is required (approve, reject or resolve)',
    );
  });

  it('approval sends the refund to WeChat once, however many admins click at once', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const points = [pausePoint(), pausePoint()];
    const clicks = points.map((p) =>
      approveRefund(
        pauseBefore(w.deps(), casOn('refunds'), p),
        { refundId: r.refundId, decision: 'approve' },
        ADMIN,
      ),
    );
    await Promise.all(points.map((p) => p.arrived));
    points[0]!.release();
    const first = await clicks[0]!;
    points[1]!.release();
    const second = await clicks[1]!;
    expect(first.refund.status).toBe('PROCESSING');
    expect(['APPROVED', 'PROCESSING']).toContain(second.refund.status);
    expect(wxRefunds()).toHaveLength(1);
    expect(wxRefunds()[0]).toMatchObject({ outRefundNo: r.refundId, refundFee: 1000 });
    expect(await refundDoc(w, r.refundId)).toMatchObject({
      status: 'PROCESSING',
      submitAttempts: 1,
      reviewer: ADMIN.openid,
    });
    // A later click changes nothing.
    expect((await decide(r.refundId, 'approve')).refund.status).toBe('PROCESSING');
    expect(wxRefunds()).toHaveLength(1);
  });

  it('a rejection releases the reservation once, and a rejected or withdrawn refund is never approved', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const rejected = await decide(r.refundId, 'reject', ADMIN, { comment: '请先退货' });
    expect(rejected.refund).toMatchObject({ status: 'REJECTED' });
    expect(await refundDoc(w, r.refundId)).toMatchObject({ comment: '请先退货', reviewer: ADMIN.openid });
    expect(await decide(r.refundId, 'reject')).toMatchObject({ refund: { status: 'REJECTED' } });
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 0,
      refundReservedFee: 0,
      refundCount: 0,
      refundOpenCount: 0,
    });
    await refused(decide(r.refundId, 'approve'), 'INVALID_STATE', 'a rejected refund cannot be approved');
    expect((await eventsOf(w, r.refundId)).map((e) => e.to)).toEqual(['REJECTED']);

    const x = await applied(w, orderId, 700);
    await withdrawRefund(w.deps(), { refundId: x.refundId }, SHOPPER);
    await refused(decide(x.refundId, 'approve'), 'INVALID_STATE', 'a withdrawn refund cannot be approved');
    await refused(
      decide(x.refundId, 'reject'),
      'INVALID_STATE',
      'a refund that is WITHDRAWN cannot be rejected',
    );
    expect(wxRefunds()).toHaveLength(0);
  });

  it('a refund WeChat has is neither rejected nor resolved; an ABNORMAL one is resolved by the merchant', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'approve');
    await refused(
      decide(r.refundId, 'reject'),
      'INVALID_STATE',
      'a refund that is PROCESSING cannot be rejected',
    );
    await refused(
      decide(r.refundId, 'resolve'),
      'INVALID_STATE',
      'only an ABNORMAL refund can be marked resolved, this one is PROCESSING',
    );
    w.core.engine.settleOne(r.refundId, 'CHANGE');
    expect(await deliver(w)).toEqual(['ABNORMAL']);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
    const resolved = await decide(r.refundId, 'resolve', ADMIN, { comment: '已线下转账' });
    expect(resolved.refund.status).toBe('SUCCESS');
    expect(await refundDoc(w, r.refundId)).toMatchObject({
      status: 'SUCCESS',
      comment: '已线下转账',
      reviewer: ADMIN.openid,
    });
    expect((await refundDoc(w, r.refundId)).failReason).toBeUndefined();
    expect((await decide(r.refundId, 'resolve')).refund.status).toBe('SUCCESS');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000 });
    expect((await eventsOf(w, r.refundId)).map((e) => e.to).sort()).toEqual([
      'ABNORMAL',
      'PROCESSING',
      'SUCCESS',
    ]);
  });

  it('a CLOSED refund not retried can be rejected, releasing its amount; an ABNORMAL one is left as it is by approve', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'approve');
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    expect(await deliver(w)).toEqual(['CLOSED']);
    const rejected = await decide(r.refundId, 'reject', ADMIN, { comment: '已线下处理' });
    expect(rejected.refund.status).toBe('REJECTED');
    const stored = await refundDoc(w, r.refundId);
    expect(stored.failReason).toBeUndefined();
    expect(stored.history?.at(-1)).toMatchObject({
      status: 'REJECTED',
      source: 'review',
      reason: '已线下处理',
    });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0 });

    w.advance(2 * 60_000);
    const x = await applied(w, orderId, 500);
    await decide(x.refundId, 'approve');
    w.core.engine.settleOne(x.refundId, 'CHANGE');
    await deliver(w);
    const before = await refundDoc(w, x.refundId);
    expect((await decide(x.refundId, 'approve')).refund.status).toBe('ABNORMAL');
    expect(await refundDoc(w, x.refundId)).toEqual(before);
  });

  it('two withdrawals of one application: both answer WITHDRAWN and the amount is released once', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const point = pausePoint();
    const first = withdrawRefund(
      pauseBefore(w.deps(), casOn('refunds'), point),
      { refundId: r.refundId },
      SHOPPER,
    );
    await point.arrived;
    expect((await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER)).refund.status).toBe(
      'WITHDRAWN',
    );
    point.release();
    expect((await first).refund.status).toBe('WITHDRAWN');
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundReservedFee: 0,
      refundUsedFee: 0,
      refundCount: 0,
    });
  });

  it('lists refunds for the merchant by status and order, with the count waiting for review', async () => {
    const a = await paidOrder(w, 5000);
    const b = await paidOrder(w, 3000);
    const ra = await applied(w, a, 1000);
    w.advance(1000);
    const rb = await applied(w, b, 500);
    w.advance(1000);
    const rc = await applied(w, b, 600);
    await decide(rc.refundId, 'reject');
    const all = await listRefunds(w.deps(), {}, ADMIN);
    expect(all.pendingCount).toBe(2);
    expect(all.items.map((i) => i.refundId).sort()).toEqual([ra.refundId, rb.refundId, rc.refundId].sort());
    expect(all.items.find((i) => i.refundId === rb.refundId)).toMatchObject({ order: { orderId: b } });
    const pending = await listRefunds(w.deps(), { status: 'PENDING_REVIEW', orderId: b }, ADMIN);
    expect(pending.items.map((i) => i.refundId)).toEqual([rb.refundId]);
    const oldest = await listRefunds(w.deps(), { order: 'oldest' }, ADMIN);
    expect(oldest.items.map((i) => i.refundId)).toEqual([ra.refundId, rb.refundId, rc.refundId]);
    const newest = await listRefunds(w.deps(), {}, ADMIN);
    expect(newest.items.map((i) => i.refundId)).toEqual([rc.refundId, rb.refundId, ra.refundId]);
  });
});

describe('withdrawing an application', () => {
  it('is the shopper’s own, and releases the reservation once', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await refused(
      withdrawRefund(w.deps(), { refundId: r.refundId }, OTHER),
      'FORBIDDEN',
      'this refund belongs to someone else',
    );
    await refused(
      withdrawRefund(w.deps(), { refundId: r.refundId }, ADMIN),
      'FORBIDDEN',
      'this refund belongs to someone else',
    );
    await refused(
      withdrawRefund(w.deps(), { refundId: r.refundId }, { ...SHOPPER, appid: 'wxanotherapp000001' }),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    await refused(
      withdrawRefund(w.deps(), { refundId: 'Rnothing' }, SHOPPER),
      'NOT_FOUND',
      'refund not found',
    );
    expect((await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER)).refund.status).toBe(
      'WITHDRAWN',
    );
    expect((await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER)).refund.status).toBe(
      'WITHDRAWN',
    );
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 0,
      refundReservedFee: 0,
      refundOpenCount: 0,
      refundCount: 0,
    });
    expect(await refundDoc(w, r.refundId)).toMatchObject({ status: 'WITHDRAWN', leaseUntilMs: 0 });
    expect((await eventsOf(w, r.refundId)).map((e) => [e.from, e.to])).toEqual([
      ['PENDING_REVIEW', 'WITHDRAWN'],
    ]);
  });

  it('a withdrawal that read PENDING_REVIEW before an approval landed is refused, and the refund goes on', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const point = pausePoint();
    const withdrawal = withdrawRefund(
      pauseBefore(w.deps(), casOn('refunds'), point),
      { refundId: r.refundId },
      SHOPPER,
    );
    await point.arrived;
    expect((await decide(r.refundId, 'approve')).refund.status).toBe('PROCESSING');
    point.release();
    await refused(
      withdrawal,
      'INVALID_STATE',
      'only an application waiting for review can be withdrawn; this one is PROCESSING',
    );
    expect((await refundDoc(w, r.refundId)).status).toBe('PROCESSING');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundReservedFee: 1000, refundUsedFee: 1000 });
    await refused(
      withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER),
      'INVALID_STATE',
      'only an application waiting for review can be withdrawn; this one is PROCESSING',
    );
  });

  it('an approval that read PENDING_REVIEW before a withdrawal landed sends nothing to WeChat', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const point = pausePoint();
    const approval = approveRefund(
      pauseBefore(w.deps(), casOn('refunds'), point),
      { refundId: r.refundId, decision: 'approve' },
      ADMIN,
    );
    await point.arrived;
    await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER);
    point.release();
    expect((await approval).refund.status).toBe('WITHDRAWN');
    expect(wxRefunds()).toHaveLength(0);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundUsedFee: 0, refundReservedFee: 0 });
  });
});

describe('a refund notify about a known refund', () => {
  const keys = { appid: MERCHANT.appid, mchId: MERCHANT.mchId, apiKey: MERCHANT.apiKey };
  async function processing() {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'approve');
    return { orderId, refundId: r.refundId };
  }
  const notify = (body: string) => handleRefundNotify(w.deps(), w.delivery({ kind: 'refund', body }));

  it('refuses one for another order, another amount or another order total, changing nothing', async () => {
    const { orderId, refundId } = await processing();
    const forged = [
      { out_trade_no: '20261130100000nothing000', refund_fee: 1000, total_fee: 5000 },
      { out_trade_no: orderId, refund_fee: 1001, total_fee: 5000 },
      { out_trade_no: orderId, refund_fee: 1000, total_fee: 9999 },
    ];
    for (const f of forged) {
      const r = await notify(
        encryptRefundNotifyForTest(keys, { out_refund_no: refundId, refund_status: 'SUCCESS', ...f }),
      );
      expect(r).toMatchObject({ ok: false, outcome: 'MISMATCH' });
    }
    const wrongKey = encryptRefundNotifyForTest(
      { ...keys, apiKey: 'ANOTHERKEYANOTHERKEYANOTHERKEY01' },
      {
        out_refund_no: refundId,
        out_trade_no: orderId,
        refund_fee: 1000,
        total_fee: 5000,
        refund_status: 'SUCCESS',
      },
    );
    expect((await notify(wrongKey)).ok).toBe(false);
    const otherMerchant = encryptRefundNotifyForTest(
      { ...keys, mchId: '1900000999' },
      {
        out_refund_no: refundId,
        out_trade_no: orderId,
        refund_fee: 1000,
        total_fee: 5000,
        refund_status: 'SUCCESS',
      },
    );
    expect((await notify(otherMerchant)).ok).toBe(false);
    expect((await refundDoc(w, refundId)).status).toBe('PROCESSING');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 0, refundReservedFee: 1000 });
    // The genuine one books it.
    const genuine = encryptRefundNotifyForTest(keys, {
      out_refund_no: refundId,
      out_trade_no: orderId,
      refund_fee: 1000,
      total_fee: 5000,
      refund_status: 'SUCCESS',
    });
    expect(await notify(genuine)).toMatchObject({ ok: true, outcome: 'SUCCESS' });
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundReservedFee: 0,
      refundOpenCount: 0,
    });
  });
});
