/**
 * Reconcile looks at every order and refund on its own schedule: what it could not finish
 * waits a growing gap, so a crowd of stuck ones never hides a newer one, and a refund that
 * stays PROCESSING for days (bank cards) keeps being asked about, less and less often.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { RECONCILE_BATCH } from '../../cloudfunctions/shared/domain/reconcile';
import { REFUND_QUERY_GAPS_MS } from '../../cloudfunctions/shared/domain/schedule';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, newRequestId, order, passTime, SHOPPER, TEST_TIME_SCALE, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

const reconcile = async () =>
  (await stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' })).result as Record<
    string,
    number | null
  >;

describe('reconcile schedules', () => {
  it('more than a page of old unpaid orders never hides a newer paid one', async () => {
    const stuck: string[] = [];
    for (let i = 0; i < RECONCILE_BATCH + 5; i++) {
      stuck.push(
        unwrap(
          await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, `o_stuck_${i}`),
        ).orderId,
      );
    }
    stack.simulator.setFaults({ dropPayNotifies: true });
    const paid = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    expect(stack.simulator.pay(paid.payment as never).errMsg).toBe('requestPayment:ok');
    stack.simulator.setFaults({ dropPayNotifies: false });

    const started = Date.now();
    // One run reaches every due order, page after page, newest included.
    const first = await reconcile();
    expect(first['ordersPaid']).toBe(1);
    expect((await order(stack, paid.orderId)).status).toBe('PAID');
    // Each stuck one was looked at once and given its next look later: no run queries the same
    // crowd first forever.
    for (const id of [stuck[0]!, stuck.at(-1)!]) {
      const o = await order(stack, id);
      expect(o.checkCount).toBe(1);
      expect(o.nextCheckAtMs!).toBeGreaterThan(started);
    }
    expect(first['nextDueAtMs']).toBeGreaterThan(started);
  }, 120_000);

  it('keeps asking about a refund that stays PROCESSING, with growing gaps', async () => {
    stack.simulator.setFaults({ refundDelayMs: 3_600_000, dropRefundNotifies: true });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 3 }] }, SHOPPER),
    );
    stack.simulator.pay(created.payment as never);
    await stack.simulator.flushNotifies();
    const r = unwrap(
      await stack.call(
        'applyRefund',
        { orderId: created.orderId, refundFee: 2, reason: 'bank card', requestId: newRequestId() },
        SHOPPER,
      ),
    ).refund;
    unwrap(await stack.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN));
    for (let i = 0; i < 5; i++) {
      const doc = (await stack.db.get<RefundDoc>('refunds', r.refundId))!;
      await new Promise((res) => setTimeout(res, Math.max(0, doc.nextCheckAtMs! - Date.now()) + 10));
      const before = Date.now();
      await reconcile();
      const after = (await stack.db.get<RefundDoc>('refunds', r.refundId))!;
      expect(after.status).toBe('PROCESSING');
      // The i-th look schedules the next after the i-th gap of WeChat's growing schedule.
      const gap = REFUND_QUERY_GAPS_MS[i]! * TEST_TIME_SCALE;
      expect(after.nextCheckAtMs!).toBeGreaterThanOrEqual(before + gap - 1);
      expect(after.nextCheckAtMs!).toBeLessThanOrEqual(Date.now() + gap + 1);
    }
    expect((await stack.db.get<RefundDoc>('refunds', r.refundId))!.checkCount).toBe(5);
    stack.simulator.setFaults({ refundDelayMs: null, dropRefundNotifies: false });
    expect(stack.simulator.settleRefund(r.refundId)).toBe(true);
    const doc = (await stack.db.get<RefundDoc>('refunds', r.refundId))!;
    await passTime(Math.max(0, doc.nextCheckAtMs! - Date.now()) / 0.001);
    await reconcile();
    expect((await stack.db.get<RefundDoc>('refunds', r.refundId))!.status).toBe('SUCCESS');
  }, 120_000);
});
