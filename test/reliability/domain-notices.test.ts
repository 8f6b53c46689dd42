/**
 * Who hears of each stored change (服务通知), in one process (world.ts) with the notices wired
 * as a function that may send: the merchant of a payment and of an application, the shopper
 * of a review and of WeChat's word, the merchant again when WeChat refuses a refund. Each
 * notice is read back from the outbox the functions write. Runs under `npm test` and
 * `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { applyWeChatRefund } from '../../cloudfunctions/shared/domain/refund-outcome';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { loadNoticeConfig } from '../../cloudfunctions/shared/notices/config';
import type { NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import { ADMIN, applied, deliver, orderAndPay, paidOrder, SHOPPER } from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const { config: noticeConfig } = loadNoticeConfig(demoNoticeEnv());
const withNotices = (): Deps => ({
  ...w.deps(),
  notices: { config: noticeConfig, send: async () => ({ ok: true as const }) },
});
const decide = (refundId: string, decision: string, extra = {}) =>
  approveRefund(withNotices(), { refundId, decision, ...extra }, ADMIN).then((r) => r.refund);
/** The notices written so far, as `kind subject → recipient`. */
const told = async () =>
  (await w.deps().store.find<NoticeDoc>('notices', {}, { limit: 100 }))
    .map((n) => `${n.kind} ${n.subject} → ${n.touser}`)
    .sort();

describe('who hears of what', () => {
  it('a payment: the merchant, once', async () => {
    const { orderId } = await orderAndPay(w);
    expect(await deliver(w, withNotices())).toEqual(['PAID']);
    expect(await told()).toEqual([`order_paid ${orderId} → ${ADMIN.openid}`]);
  });

  it('an application, its approval and WeChat’s SUCCESS: the merchant, then the shopper twice', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    // applied() wires no notices: the application's own is written by applyRefund below.
    const second = (
      await applyRefund(
        withNotices(),
        { orderId, refundFee: 500, reason: '不想要了', requestId: 'req-notices-1' },
        SHOPPER,
      )
    ).refund;
    expect(await told()).toEqual([`refund_applied ${second.refundId} → ${ADMIN.openid}`]);
    await decide(r.refundId, 'approve');
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    expect(await deliver(w, withNotices())).toEqual(['SUCCESS']);
    expect(await told()).toEqual(
      [
        `refund_applied ${second.refundId} → ${ADMIN.openid}`,
        `refund_approved ${r.refundId} → ${SHOPPER.openid}`,
        `refund_completed ${r.refundId} → ${SHOPPER.openid}`,
      ].sort(),
    );
  });

  it('a refusal by WeChat: the merchant, under the refund’s FAILED; a rejection: the shopper', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundError: 'NOTENOUGH' });
    expect((await decide(r.refundId, 'approve')).status).toBe('FAILED');
    w.faults({ refundError: null });
    expect(await told()).toContain(`refund_attention ${r.refundId}:FAILED → ${ADMIN.openid}`);
    expect((await decide(r.refundId, 'reject', { comment: '余额不足' })).status).toBe('REJECTED');
    expect(await told()).toContain(`refund_rejected ${r.refundId} → ${SHOPPER.openid}`);
  });

  it('CLOSED by WeChat and an ABNORMAL one resolved: the merchant and the shopper hear each', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 500);
    await decide(a.refundId, 'approve');
    w.core.engine.settleOne(a.refundId, 'REFUNDCLOSE');
    expect(await deliver(w, withNotices())).toEqual(['CLOSED']);
    w.advance(61_000);
    await decide(b.refundId, 'approve');
    w.core.engine.settleOne(b.refundId, 'CHANGE');
    expect(await deliver(w, withNotices())).toEqual(['ABNORMAL']);
    expect((await decide(b.refundId, 'resolve')).status).toBe('SUCCESS');
    const all = await told();
    expect(all).toContain(`refund_closed ${a.refundId} → ${SHOPPER.openid}`);
    expect(all).toContain(`refund_attention ${a.refundId}:CLOSED → ${ADMIN.openid}`);
    expect(all).toContain(`refund_attention ${b.refundId}:ABNORMAL → ${ADMIN.openid}`);
    expect(all).toContain(`refund_completed ${b.refundId} → ${SHOPPER.openid}`);
  });
});

describe('a refund WeChat paid after we let it go', () => {
  it('the merchant is told once, when the money is first seen; SUCCESS after its ABNORMAL adds no second warning', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    await decide(r.refundId, 'reject');
    const facts = (status: 'ABNORMAL' | 'SUCCESS') => ({
      status,
      outTradeNo: orderId,
      refundFen: 1000,
      refundId: 'wx-late',
      record: {},
    });
    const rejected = await w.deps().store.get<RefundDoc>('refunds', r.refundId);
    expect(await applyWeChatRefund(withNotices(), rejected!, facts('ABNORMAL'), 'refundquery')).toBe(
      'ABNORMAL',
    );
    const attention = async () => (await told()).filter((n) => n.startsWith('refund_attention'));
    const afterAbnormal = await attention();
    expect(afterAbnormal.length).toBeGreaterThan(0);
    const abnormal = await w.deps().store.get<RefundDoc>('refunds', r.refundId);
    expect(abnormal).toMatchObject({ flag: 'SUCCESS_AFTER_FINAL' });
    expect(await applyWeChatRefund(withNotices(), abnormal!, facts('SUCCESS'), 'refundquery')).toBe(
      'SUCCESS',
    );
    expect(await attention()).toEqual(afterAbnormal);
  });
});
