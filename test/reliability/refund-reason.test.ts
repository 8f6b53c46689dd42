/**
 * A shopper's free-text refund reason travels to WeChat as refund_desc. Whatever they typed,
 * an approved refund must reach WeChat: a control character used to make toXml refuse the
 * request (the refund stayed APPROVED, and every reconcile run failed on it again), and a CR
 * was signed as CR while WeChat's XML parser reads LF (签名错误, FAILED on every retry).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  order,
  refund,
  SHOPPER,
  testStack,
  unwrap,
} from '../integration/support';
import { runReconcile, summary } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

describe('refund reasons', () => {
  it('a reason with CR, control characters and emoji still refunds, once', async () => {
    const reasons = [
      '盖子坏了\r\n请退款',
      'tab\there\u0001\u0007bell',
      `${'a'.repeat(79)}😀 cut inside a pair`,
    ];
    let refunded = 0;
    for (const reason of reasons) {
      const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
      const applied = unwrap(
        await stack.call(
          'applyRefund',
          { orderId, refundFee: 100, reason, requestId: newRequestId() },
          SHOPPER,
        ),
      );
      const approved = await stack.call(
        'approveRefund',
        { refundId: applied.refund.refundId, decision: 'approve' },
        ADMIN,
      );
      expect(approved, JSON.stringify(reason)).toMatchObject({
        ok: true,
        data: { refund: { status: 'PROCESSING' } },
      });
      stack.simulator.settleRefunds();
      await stack.simulator.flushNotifies();
      await runReconcile(stack);
      expect((await refund(stack, applied.refund.refundId)).status).toBe('SUCCESS');
      expect((await order(stack, orderId)).refundedFee).toBe(100);
      refunded++;
    }
    summary('refund-reason', { reasons: reasons.length, refunded, stuck: reasons.length - refunded });
  });
});
