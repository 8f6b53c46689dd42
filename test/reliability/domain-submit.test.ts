/**
 * Sending approved refunds to WeChat and booking WeChat's word, in one process (world.ts):
 * the submit lease, the order's one-minute refund slot, a lost answer asked about before any
 * retry, WeChat's refusals and rate limits, a CLOSED refund retried under a new number, and
 * money WeChat returned for a refund we had already let go of. Runs under `npm test` and
 * `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { handleRefundNotify } from '../../cloudfunctions/shared/domain/notify';
import { reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { applyWeChatRefund } from '../../cloudfunctions/shared/domain/refund-outcome';
import { successorIdOf } from '../../cloudfunctions/shared/domain/refund-submit';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  dieAfter,
  eventsOf,
  newRequestId,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  refused,
  SHOPPER,
} from './shop';
import { Killed, useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const MINUTE = 60_000;
const decide = (refundId: string, decision = 'approve', extra = {}) =>
  approveRefund(w.deps(), { refundId, decision, ...extra }, ADMIN).then((r) => r.refund);
const wxRefunds = () => [...w.core.ledger.refunds.values()];
const reasons = (r: RefundDoc) => (r.history ?? []).map((h) => h.reason ?? '').join(' | ');

describe('one refund call at a time', () => {
  it('two refunds of one order approved together: the second waits out WeChat’s minute, then goes', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 2000);
    expect((await decide(a.refundId)).status).toBe('PROCESSING');
    w.advance(5000);
    const waiting = await decide(b.refundId);
    expect(waiting.status).toBe('APPROVED');
    expect(wxRefunds()).toHaveLength(1);
    const stored = await refundDoc(w, b.refundId);
    expect(stored.nextCheckAtMs).toBe(w.now() + w.config.refunds.spacingMs);
    expect(stored.leaseUntilMs).toBe(w.now() + w.config.refunds.spacingMs);
    // Another click inside the minute changes nothing.
    expect((await decide(b.refundId)).status).toBe('APPROVED');
    expect(wxRefunds()).toHaveLength(1);
    w.advance(MINUTE + 1000);
    expect((await decide(b.refundId)).status).toBe('PROCESSING');
    expect(wxRefunds()).toHaveLength(2);
    // WeChat never had to say FREQUENCY_LIMITED.
    expect(reasons(await refundDoc(w, b.refundId))).not.toMatch(/FREQUENCY/);
  });

  it('a click while another admin’s call is in flight neither calls WeChat nor counts an attempt', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const point = pausePoint();
    // The first admin has the lease and stops before taking the order's slot.
    const first = approveRefund(
      pauseBefore(w.deps(), casOn('orders'), point),
      { refundId: r.refundId, decision: 'approve' },
      ADMIN,
    );
    await point.arrived;
    const stored = await refundDoc(w, r.refundId);
    expect(stored).toMatchObject({ status: 'APPROVED', submitAttempts: 1 });
    expect((await decide(r.refundId)).status).toBe('APPROVED');
    expect(await refundDoc(w, r.refundId)).toMatchObject({
      submitAttempts: 1,
      leaseUntilMs: stored.leaseUntilMs,
      nextCheckAtMs: stored.nextCheckAtMs,
    });
    point.release();
    expect((await first).refund.status).toBe('PROCESSING');
    expect(wxRefunds()).toHaveLength(1);
    expect(await refundDoc(w, r.refundId)).toMatchObject({ submitAttempts: 1, leaseUntilMs: 0 });
  });
});

describe('what WeChat answers to a refund call', () => {
  it('a lost answer: the retry asks refundquery first and finds the refund accepted, with no second call', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ hangAfterEffectRate: 1 });
    expect((await decide(r.refundId)).status).toBe('APPROVED');
    w.faults({ hangAfterEffectRate: 0 });
    const unknown = await refundDoc(w, r.refundId);
    expect(unknown).toMatchObject({
      status: 'APPROVED',
      outcomeUnknown: true,
      hadUnknownOutcome: true,
      leaseUntilMs: 0,
    });
    expect(unknown.nextCheckAtMs).toBe(w.now() + MINUTE);
    expect(wxRefunds()).toHaveLength(1);
    // WeChat would now refuse a repeat: it must not be asked again.
    w.faults({ refundError: 'NOTENOUGH', refundErrorOnRepeat: true });
    const after = await decide(r.refundId);
    w.faults({ refundError: null, refundErrorOnRepeat: false });
    expect(after.status).toBe('PROCESSING');
    expect(await refundDoc(w, r.refundId)).toMatchObject({ status: 'PROCESSING', outcomeUnknown: false });
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
  });

  it('a refusal is FAILED with WeChat’s reason and keeps the reservation; approved again it goes through', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundError: 'NOTENOUGH' });
    const failed = await decide(r.refundId);
    w.faults({ refundError: null });
    expect(failed.status).toBe('FAILED');
    const stored = await refundDoc(w, r.refundId);
    expect(stored.failReason).toMatch(/NOTENOUGH/);
    expect(stored).toMatchObject({ leaseUntilMs: 0, outcomeUnknown: false });
    expect(stored.nextCheckAtMs).toBeUndefined();
    expect(await orderDoc(w, orderId)).toMatchObject({ refundReservedFee: 1000, refundUsedFee: 1000 });
    expect((await eventsOf(w, r.refundId)).map((e) => [e.from, e.to])).toEqual([['APPROVED', 'FAILED']]);
    w.advance(MINUTE + 1000);
    expect((await decide(r.refundId)).status).toBe('PROCESSING');
    expect((await refundDoc(w, r.refundId)).failReason).toBeUndefined();
  });

  it('a refusal after an earlier lost answer is looked at again, and rejecting it asks WeChat first', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    expect((await decide(r.refundId)).status).toBe('APPROVED');
    w.faults({ timeoutRate: 0, refundError: 'NOTENOUGH' });
    w.advance(MINUTE + 1000);
    expect((await decide(r.refundId)).status).toBe('FAILED');
    w.faults({ refundError: null });
    const failed = await refundDoc(w, r.refundId);
    expect(failed).toMatchObject({ hadUnknownOutcome: true });
    expect(failed.nextCheckAtMs).toBe(w.now() + 10 * MINUTE);
    w.faults({ systemErrorRate: 1 });
    await refused(
      decide(r.refundId, 'reject'),
      'WXPAY_UNAVAILABLE',
      'WeChat Pay could not confirm this refund was never accepted; try again',
    );
    w.faults({ systemErrorRate: 0 });
    expect((await refundDoc(w, r.refundId)).status).toBe('FAILED');
    expect((await decide(r.refundId, 'reject')).status).toBe('REJECTED');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0 });
  });

  it('a rate limit keeps the refund APPROVED for a minute, with WeChat’s code in its history', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundErrorQueue: ['INVALID_REQ_TOO_MUCH'] });
    expect((await decide(r.refundId)).status).toBe('APPROVED');
    const stored = await refundDoc(w, r.refundId);
    expect(reasons(stored)).toMatch(/INVALID_REQ_TOO_MUCH/);
    expect(stored.leaseUntilMs).toBe(w.now() + MINUTE);
    expect(stored.nextCheckAtMs).toBe(w.now() + MINUTE);
    expect(stored.outcomeUnknown).toBeUndefined();
    w.advance(MINUTE + 1000);
    await reconcile(w.deps());
    expect((await refundDoc(w, r.refundId)).status).toBe('PROCESSING');
  });
});

describe('WeChat’s word on a refund', () => {
  it('REFUNDCLOSE: CLOSED with the reservation held; approved again it is retried under a new number that takes it over', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    expect(await deliver(w)).toEqual(['CLOSED']);
    const closed = await refundDoc(w, r.refundId);
    expect(closed).toMatchObject({ status: 'CLOSED', leaseUntilMs: 0 });
    expect(closed.failReason).toMatch(/REFUNDCLOSE/);
    expect((await orderDoc(w, orderId)).refundBook[r.refundId]?.state).toBe('reserved');
    w.advance(MINUTE + 1000);
    const retried = await decide(r.refundId);
    expect(retried).toMatchObject({ refundId: `${r.refundId}_2`, status: 'PROCESSING' });
    const o = await orderDoc(w, orderId);
    expect(o.refundBook[r.refundId]).toMatchObject({ state: 'moved', to: `${r.refundId}_2` });
    expect(o.refundBook[`${r.refundId}_2`]).toMatchObject({ state: 'reserved', fee: 1000 });
    expect(o).toMatchObject({ refundReservedFee: 1000, refundUsedFee: 1000 });
    // Another click on the old one finds the successor, and nothing is sent twice.
    expect((await decide(r.refundId)).refundId).toBe(`${r.refundId}_2`);
    expect(
      wxRefunds()
        .map((x) => x.outRefundNo)
        .sort(),
    ).toEqual([r.refundId, `${r.refundId}_2`].sort());
    w.core.engine.settleOne(`${r.refundId}_2`, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundReservedFee: 0,
      refundUsedFee: 1000,
    });
    // Closed and retried: no longer the merchant's to reject.
    expect((await decide(r.refundId, 'reject')).status).toBe('CLOSED');
  });

  it('a refund notify that dies right after booking the money has recorded the event; the retry finishes once', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    const [sent] = w.outbox.splice(0);
    await expect(
      handleRefundNotify(dieAfter(w.deps(), casOn('orders')), w.delivery(sent!)),
    ).rejects.toBeInstanceOf(Killed);
    expect((await eventsOf(w, r.refundId)).map((e) => e.to).sort()).toEqual(['PROCESSING', 'SUCCESS']);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
    expect((await refundDoc(w, r.refundId)).status).toBe('PROCESSING');
    expect((await handleRefundNotify(w.deps(), w.delivery(sent!))).outcome).toBe('SUCCESS');
    expect((await handleRefundNotify(w.deps(), w.delivery(sent!))).outcome).toBe('ALREADY');
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundReservedFee: 0,
      refundUsedFee: 1000,
    });
    expect((await refundDoc(w, r.refundId)).flag).toBeUndefined();
  });

  it('SUCCESS for a refund we had rejected is booked late and flagged, once', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'reject');
    const rejected = await refundDoc(w, r.refundId);
    const facts = {
      status: 'SUCCESS' as const,
      outTradeNo: orderId,
      refundFen: 1000,
      totalFen: 5000,
      refundId: '50000000000000000001',
      record: {},
    };
    expect(await applyWeChatRefund(w.deps(), rejected, facts, 'refundquery')).toBe('SUCCESS');
    const after = await refundDoc(w, r.refundId);
    expect(after).toMatchObject({ status: 'SUCCESS', flag: 'SUCCESS_AFTER_FINAL', flaggedFrom: 'REJECTED' });
    expect(after.wxRefundId).toBe('50000000000000000001');
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundUsedFee: 1000,
      refundReservedFee: 0,
    });
    expect(await applyWeChatRefund(w.deps(), after, facts, 'refundquery')).toBe('ALREADY');
    expect(await applyWeChatRefund(w.deps(), after, { ...facts, refundFen: 999 }, 'refundquery')).toBe(
      'MISMATCH',
    );
    expect(await applyWeChatRefund(w.deps(), after, { ...facts, status: 'CLOSED' }, 'refundquery')).toBe(
      'IGNORED',
    );
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundUsedFee: 1000 });
  });

  it('SUCCESS for a refund in progress is booked once, unflagged, and a PROCESSING notify changes nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const processing = await decide(r.refundId);
    const facts = { outTradeNo: orderId, refundFen: 1000, refundId: 'wx1', record: {} };
    expect(
      await applyWeChatRefund(
        w.deps(),
        await refundDoc(w, r.refundId),
        { ...facts, status: 'PROCESSING' },
        'refundnotify',
      ),
    ).toBe('STILL_PROCESSING');
    expect(processing.status).toBe('PROCESSING');
    const done = await applyWeChatRefund(
      w.deps(),
      await refundDoc(w, r.refundId),
      { ...facts, status: 'SUCCESS' },
      'refundnotify',
    );
    expect(done).toBe('SUCCESS');
    const after = await refundDoc(w, r.refundId);
    expect(after.flag).toBeUndefined();
    expect(after.nextCheckAtMs).toBeUndefined();
    expect(after.finishedAtMs).toBe(w.now());
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundReservedFee: 0,
      refundOpenCount: 0,
    });
    expect((await eventsOf(w, r.refundId)).map((e) => e.to).sort()).toEqual(['PROCESSING', 'SUCCESS']);
  });
});

describe('the rest of WeChat’s word', () => {
  const facts = (orderId: string, status: 'SUCCESS' | 'PROCESSING' | 'CLOSED' | 'ABNORMAL') => ({
    status,
    outTradeNo: orderId,
    refundFen: 1000,
    refundId: 'wx2',
    record: {},
  });

  it('sends the shopper’s reason as refund_desc without control characters, cut at 80 characters', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applyRefund(
      w.deps(),
      { orderId, refundFee: 1000, reason: `坏了\r\n${'很'.repeat(100)}`, requestId: newRequestId() },
      SHOPPER,
    );
    await decide(r.refund.refundId);
    const sent = wxRefunds()[0]!.refundDesc!;
    expect(sent.startsWith('坏了 很')).toBe(true);
    expect(Array.from(sent)).toHaveLength(80);
  });

  it('no answer twice: the retry gaps grow, one minute then two', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    await decide(r.refundId);
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + MINUTE);
    w.advance(MINUTE + 1000);
    await decide(r.refundId);
    w.faults({ timeoutRate: 0 });
    expect(await refundDoc(w, r.refundId)).toMatchObject({ status: 'APPROVED', submitAttempts: 2 });
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + 2 * MINUTE);
  });

  it('refundquery’s PROCESSING moves an APPROVED or FAILED refund on; CLOSED after a rejection changes nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await approveRefund(w.deps(), { refundId: a.refundId, decision: 'reject' }, ADMIN);
    expect(
      await applyWeChatRefund(
        w.deps(),
        await refundDoc(w, a.refundId),
        facts(orderId, 'CLOSED'),
        'refundquery',
      ),
    ).toBe('ALREADY');
    expect((await refundDoc(w, a.refundId)).status).toBe('REJECTED');
    expect(
      await applyWeChatRefund(
        w.deps(),
        await refundDoc(w, a.refundId),
        facts(orderId, 'PROCESSING'),
        'refundquery',
      ),
    ).toBe('IGNORED');

    const b = await applied(w, orderId, 1000);
    w.faults({ refundError: 'NOTENOUGH' });
    await decide(b.refundId);
    w.faults({ refundError: null });
    const failed = await refundDoc(w, b.refundId);
    expect(failed.status).toBe('FAILED');
    expect(await applyWeChatRefund(w.deps(), failed, facts(orderId, 'PROCESSING'), 'refundquery')).toBe(
      'PROCESSING',
    );
    const moved = await refundDoc(w, b.refundId);
    expect(moved).toMatchObject({ status: 'PROCESSING', wxRefundId: 'wx2', leaseUntilMs: 0, checkCount: 0 });
    expect(moved.failReason).toBeUndefined();
    expect(moved.nextCheckAtMs).toBe(w.now() + w.config.reconcile.refundQueryDelayMs);
    expect(await applyWeChatRefund(w.deps(), moved, facts(orderId, 'PROCESSING'), 'refundquery')).toBe(
      'ALREADY',
    );
  });

  it('an ABNORMAL refund WeChat later reports SUCCESS is finished without booking the money twice', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'CHANGE');
    expect(await deliver(w)).toEqual(['ABNORMAL']);
    const abnormal = await refundDoc(w, r.refundId);
    expect(abnormal.failReason).toMatch(/^CHANGE/);
    expect(await applyWeChatRefund(w.deps(), abnormal, facts(orderId, 'ABNORMAL'), 'refundquery')).toBe(
      'ALREADY',
    );
    expect(await applyWeChatRefund(w.deps(), abnormal, facts(orderId, 'CLOSED'), 'refundquery')).toBe(
      'IGNORED',
    );
    expect(await applyWeChatRefund(w.deps(), abnormal, facts(orderId, 'SUCCESS'), 'refundquery')).toBe(
      'SUCCESS',
    );
    const done = await refundDoc(w, r.refundId);
    expect(done).toMatchObject({ status: 'SUCCESS' });
    expect(done.flag).toBeUndefined();
    expect(done.failReason).toBeUndefined();
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundedFee: 1000,
      refundUsedFee: 1000,
      refundReservedFee: 0,
    });
  });

  it('numbers a retried refund’s successors _2, _3, …', () => {
    expect(successorIdOf('Rabc')).toBe('Rabc_2');
    expect(successorIdOf('Rabc_2')).toBe('Rabc_3');
    expect(successorIdOf('Rabc_9')).toBe('Rabc_10');
    expect(successorIdOf('Rabc_10')).toBe('Rabc_11');
    // Only a whole trailing number is a successor's.
    expect(successorIdOf('Rabc_2x')).toBe('Rabc_2x_2');
  });
});
