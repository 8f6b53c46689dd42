/**
 * WeChat's word on a refund as the merchant and the operator read it, in one process
 * (world.ts): the log line of each outcome (booked, flagged, closed, contradicting a final
 * state), the reasons in the provider's own words, the daily look at an ABNORMAL refund, and
 * WeChat's refund id kept when a later message leaves it out. Runs under `npm test` and
 * `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { applyWeChatRefund, type RefundFacts } from '../../cloudfunctions/shared/domain/refund-outcome';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { withdrawRefund } from '../../cloudfunctions/shared/domain/withdraw';
import {
  ADMIN,
  alwaysLosing,
  applied,
  casOn,
  deliver,
  eventsOf,
  logged,
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
const DAY = 24 * 60 * MINUTE;
const decide = (refundId: string, decision = 'approve') =>
  approveRefund(w.deps(), { refundId, decision }, ADMIN).then((r) => r.refund);
const facts = (
  r: RefundDoc,
  status: RefundFacts['status'],
  extra: Partial<RefundFacts> = {},
): RefundFacts => ({
  status,
  outTradeNo: r.orderId,
  refundFen: r.refundFee,
  refundId: 'wx-refund-1',
  record: { refund_status: status },
  ...extra,
});
const apply = async (refundId: string, status: RefundFacts['status'], extra: Partial<RefundFacts> = {}) => {
  const r = await refundDoc(w, refundId);
  return applyWeChatRefund(w.deps(), r, facts(r, status, extra), 'refundquery');
};
const common = (r: RefundDoc, from: string, to: string) => ({
  refundId: r._id,
  orderId: r.orderId,
  from,
  to,
  source: 'refundquery',
  dbRequests: expect.any(Number),
});

describe('WeChat’s word, as logged', () => {
  it('SUCCESS of a refund in progress: refund.success (info), WeChat’s refund id kept', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    const r = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'SUCCESS')).toBe('SUCCESS');
    expect(logged(w, 'refund.success')).toEqual([
      { level: 'info', event: 'refund.success', fields: common(r, 'PROCESSING', 'SUCCESS') },
    ]);
    const done = await refundDoc(w, a.refundId);
    expect(done).toMatchObject({
      status: 'SUCCESS',
      wxRefundId: 'wx-refund-1',
      leaseUntilMs: 0,
      finishedAtMs: w.now(),
    });
    expect(done.history?.at(-1)).toEqual({ atMs: w.now(), status: 'SUCCESS', source: 'refundquery' });
    const [event] = (await eventsOf(w, a.refundId)).filter((e) => e.to === 'SUCCESS');
    expect(event).toMatchObject({
      kind: 'refund',
      orderId,
      refundId: a.refundId,
      from: 'PROCESSING',
      to: 'SUCCESS',
      source: 'refundquery',
      fields: { refund_status: 'SUCCESS' },
    });
  });

  it('SUCCESS of a refund we had rejected: refund.success as a warning, flagged', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId, 'reject');
    const r = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'SUCCESS')).toBe('SUCCESS');
    expect(logged(w, 'refund.success')).toEqual([
      {
        level: 'warn',
        event: 'refund.success',
        fields: { ...common(r, 'REJECTED', 'SUCCESS'), flag: 'SUCCESS_AFTER_FINAL' },
      },
    ]);
  });

  it('SUCCESS of a refund still waiting for review is flagged too: we had not let it go to WeChat', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    expect(await apply(a.refundId, 'SUCCESS')).toBe('SUCCESS');
    expect(await refundDoc(w, a.refundId)).toMatchObject({
      flag: 'SUCCESS_AFTER_FINAL',
      flaggedFrom: 'PENDING_REVIEW',
    });
    // The reservation was still held: settled, not booked late.
    expect((await orderDoc(w, orderId)).refundBook[a.refundId]).toMatchObject({ state: 'settled' });
    expect((await orderDoc(w, orderId)).refundBook[a.refundId]?.late).toBeUndefined();
  });

  it('ABNORMAL (CHANGE): refund.abnormal, the reason in APIv2’s words, looked at again daily', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    const r = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'ABNORMAL')).toBe('ABNORMAL');
    expect(logged(w, 'refund.abnormal')).toEqual([
      { level: 'info', event: 'refund.abnormal', fields: common(r, 'PROCESSING', 'ABNORMAL') },
    ]);
    const stored = await refundDoc(w, a.refundId);
    const reason = 'CHANGE: 退款异常，资金已从商户退出但未能到达用户账户，需到商户平台 交易中心 手动处理';
    expect(stored).toMatchObject({ status: 'ABNORMAL', failReason: reason, nextCheckAtMs: w.now() + DAY });
    expect(stored.finishedAtMs).toBeUndefined();
    expect(stored.history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'ABNORMAL',
      source: 'refundquery',
      reason,
    });
    // The money left the merchant: it is booked.
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
    // ABNORMAL again, or a CLOSED after it, contradicts nothing we can change.
    expect(await apply(a.refundId, 'CLOSED')).toBe('IGNORED');
    expect(logged(w, 'refund.contradicts_final')).toEqual([
      {
        level: 'error',
        event: 'refund.contradicts_final',
        fields: { ...common(stored, 'ABNORMAL', 'CLOSED'), wxStatus: 'CLOSED' },
      },
    ]);
  });

  it('CLOSED (REFUNDCLOSE): refund.closed, in APIv2’s words; an APIv3 refund’s reasons use APIv3’s', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    const r = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'CLOSED', { refundId: '' })).toBe('CLOSED');
    expect(logged(w, 'refund.closed')).toEqual([
      { level: 'warn', event: 'refund.closed', fields: common(r, 'PROCESSING', 'CLOSED') },
    ]);
    const closed = await refundDoc(w, a.refundId);
    const reason = 'REFUNDCLOSE: 退款关闭，没有资金退回；可重新发起（新的退款单号）';
    expect(closed).toMatchObject({ status: 'CLOSED', failReason: reason, leaseUntilMs: 0 });
    // WeChat's refund id from the acceptance is kept when this message has none.
    expect(closed.wxRefundId).toBe(r.wxRefundId);
    expect(closed.wxRefundId).toMatch(/./);
    expect(closed.nextCheckAtMs).toBeUndefined();
    expect(closed.history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'CLOSED',
      source: 'refundquery',
      reason,
    });
    const [event] = (await eventsOf(w, a.refundId)).filter((e) => e.to === 'CLOSED');
    expect(event).toMatchObject({
      kind: 'refund',
      from: 'PROCESSING',
      source: 'refundquery',
      fields: { refund_status: 'CLOSED' },
    });

    const b = await applied(w, orderId, 500);
    await decide(b.refundId);
    await w.deps().store.cas('refunds', { _id: b.refundId }, { provider: 'v3' });
    expect(await apply(b.refundId, 'CLOSED')).toBe('CLOSED');
    expect((await refundDoc(w, b.refundId)).failReason).toBe(
      'CLOSED: 退款关闭，没有资金退回；可重新发起（新的退款单号）',
    );
    const c = await applied(w, orderId, 500);
    await decide(c.refundId);
    await w.deps().store.cas('refunds', { _id: c.refundId }, { provider: 'v3' });
    expect(await apply(c.refundId, 'ABNORMAL')).toBe('ABNORMAL');
    expect((await refundDoc(w, c.refundId)).failReason).toMatch(/^ABNORMAL: 退款异常/);
  });

  it('SUCCESS contradicted by ABNORMAL or CLOSED later: ignored and logged; PROCESSING after an end too', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    expect(await apply(a.refundId, 'SUCCESS')).toBe('SUCCESS');
    const done = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'ABNORMAL')).toBe('IGNORED');
    expect(await apply(a.refundId, 'CLOSED')).toBe('IGNORED');
    expect(logged(w, 'refund.contradicts_final').map((l) => l.fields['wxStatus'])).toEqual([
      'ABNORMAL',
      'CLOSED',
    ]);
    expect(logged(w, 'refund.contradicts_final')[0]).toMatchObject({
      level: 'error',
      fields: common(done, 'SUCCESS', 'ABNORMAL'),
    });
    expect(await apply(a.refundId, 'PROCESSING')).toBe('IGNORED');
    expect(logged(w, 'refund.processing_after_final')).toEqual([
      {
        level: 'error',
        event: 'refund.processing_after_final',
        fields: common(done, 'SUCCESS', 'PROCESSING'),
      },
    ]);
    expect(await refundDoc(w, a.refundId)).toEqual(done);
    // PROCESSING for a refund in progress is simply so, and not logged.
    const b = await applied(w, orderId, 500);
    w.advance(MINUTE + 1000);
    expect((await decide(b.refundId)).status).toBe('PROCESSING');
    expect(await apply(b.refundId, 'PROCESSING')).toBe('ALREADY');
    expect(logged(w, 'refund.processing_after_final')).toHaveLength(1);
  });

  it('PROCESSING found by refundquery for an approved refund: refund.processing, its event, its first submit time kept', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    await decide(a.refundId);
    w.faults({ timeoutRate: 0 });
    const r = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'PROCESSING')).toBe('PROCESSING');
    expect(logged(w, 'refund.processing')).toEqual([
      { level: 'info', event: 'refund.processing', fields: common(r, 'APPROVED', 'PROCESSING') },
    ]);
    expect(await refundDoc(w, a.refundId)).toMatchObject({
      submittedAtMs: w.now(),
      wxRefundId: 'wx-refund-1',
      outcomeUnknown: false,
    });
    const [event] = await eventsOf(w, a.refundId);
    expect(event).toMatchObject({
      kind: 'refund',
      from: 'APPROVED',
      to: 'PROCESSING',
      source: 'refundquery',
    });
    expect((await refundDoc(w, a.refundId)).history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'PROCESSING',
      source: 'refundquery',
    });
  });

  it('a message about another order, amount or total is refused and logged with what it said', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const r = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'SUCCESS', { outTradeNo: 'another' })).toBe('MISMATCH');
    expect(await apply(a.refundId, 'SUCCESS', { refundFen: 999 })).toBe('MISMATCH');
    expect(await apply(a.refundId, 'SUCCESS', { totalFen: 4999 })).toBe('MISMATCH');
    expect(await apply(a.refundId, 'SUCCESS', { totalFen: 5000, record: { mark: 'ok' } })).toBe('SUCCESS');
    expect(logged(w, 'refund.mismatch')).toEqual(
      [1, 2, 3].map(() => ({
        level: 'error',
        event: 'refund.mismatch',
        fields: { refundId: r._id, source: 'refundquery', got: { refund_status: 'SUCCESS' } },
      })),
    );
  });

  it('CLOSED for a refund the shopper withdrew: so it is, nothing to do', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await withdrawRefund(w.deps(), { refundId: a.refundId }, SHOPPER);
    const before = await refundDoc(w, a.refundId);
    expect(await apply(a.refundId, 'CLOSED')).toBe('ALREADY');
    expect(await refundDoc(w, a.refundId)).toEqual(before);
  });

  it('CLOSED for a refund WeChat never gave an id keeps none', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    await decide(a.refundId);
    w.faults({ timeoutRate: 0 });
    expect(await apply(a.refundId, 'CLOSED', { refundId: '' })).toBe('CLOSED');
    expect((await refundDoc(w, a.refundId)).wxRefundId).toBe('');
  });

  it('WeChat’s word landing while another is being written is applied to the state it is really in', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    const point = pausePoint();
    const r = await refundDoc(w, a.refundId);
    // A CLOSED read from refundquery stops before its write; SUCCESS lands meanwhile.
    const closing = applyWeChatRefund(
      pauseBefore(w.deps(), casOn('refunds'), point),
      r,
      facts(r, 'CLOSED'),
      'refundquery',
    );
    await point.arrived;
    expect(await apply(a.refundId, 'SUCCESS')).toBe('SUCCESS');
    point.release();
    expect(await closing).toBe('IGNORED');
    expect((await eventsOf(w, a.refundId)).map((e) => e.to).sort()).toEqual(['PROCESSING', 'SUCCESS']);
    expect(logged(w, 'refund.closed')).toEqual([]);

    // The same for a PROCESSING found by refundquery while the refusal's answer lands.
    const b = await applied(w, orderId, 500);
    w.advance(61_000);
    w.faults({ timeoutRate: 1 });
    await decide(b.refundId);
    w.faults({ timeoutRate: 0 });
    const rb = await refundDoc(w, b.refundId);
    const point2 = pausePoint();
    const found = applyWeChatRefund(
      pauseBefore(w.deps(), casOn('refunds'), point2),
      rb,
      facts(rb, 'PROCESSING'),
      'refundquery',
    );
    await point2.arrived;
    expect(await apply(b.refundId, 'CLOSED')).toBe('CLOSED');
    point2.release();
    expect(await found).toBe('IGNORED');
    expect((await eventsOf(w, b.refundId)).map((e) => e.to)).toEqual(['CLOSED']);
  });

  it('a PROCESSING notify changes nothing, whatever it names', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const r = await refundDoc(w, a.refundId);
    expect(
      await applyWeChatRefund(w.deps(), r, facts(r, 'PROCESSING', { outTradeNo: 'another' }), 'refundnotify'),
    ).toBe('STILL_PROCESSING');
    expect(logged(w, 'refund.mismatch')).toEqual([]);
    expect(await refundDoc(w, a.refundId)).toEqual(r);
  });
});

describe('WeChat’s word through the notify', () => {
  it('a refund notify books SUCCESS with source refundnotify', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    w.core.engine.settleOne(a.refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    expect(logged(w, 'refund.success')[0]?.fields['source']).toBe('refundnotify');
    expect((await refundDoc(w, a.refundId)).history?.at(-1)).toMatchObject({ source: 'refundnotify' });
  });
});

describe('a refund that keeps changing under WeChat’s word', () => {
  it('is tried four times, then fails loudly; the money is booked once and the retry finishes it', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    await decide(a.refundId);
    const r = await refundDoc(w, a.refundId);
    const losing = alwaysLosing(w.deps(), 'refunds');
    await expect(applyWeChatRefund(losing.deps, r, facts(r, 'SUCCESS'), 'refundquery')).rejects.toThrow(
      `refund ${a.refundId} kept changing while applying WeChat's SUCCESS`,
    );
    expect(losing.attempts()).toBe(4);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
    expect(await apply(a.refundId, 'SUCCESS')).toBe('SUCCESS');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
  });
});
