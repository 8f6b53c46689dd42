/**
 * The notices of orders paid through APIv3 and cloudPay, end to end (APIv2's are in
 * transitions.test.ts): a notice is written from the stored order and refund, never from what
 * one provider's notify carries, so each provider's payments, failures, closes and completions
 * reach the same people with the same words.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { DEMO_TEMPLATE_IDS as T } from '../../sandbox/notice-templates';
import type { Stack } from '../../sandbox/stack';
import type { InboxMessage } from '../../sandbox/tcb/subscribe';
import { type SubscribeControl, subscribeControl } from '../../sandbox/tcb/subscribe-client';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  order,
  passTime,
  refund,
  testStack,
  unwrap,
} from '../integration/support';
import { runReconcile } from '../reliability/support';

for (const provider of ['v3', 'cloudpay'] as const) {
  describe(`notices on ${provider}`, () => {
    let stack: Stack;
    let control: SubscribeControl;
    beforeAll(async () => {
      stack = await testStack({ provider });
      control = subscribeControl(stack.info.tcbServiceUrl);
    });
    afterAll(() => stack?.close());

    let seq = 0;
    const newShopper = () => `o_${provider}_shopper_${++seq}_${Date.now().toString(36)}`;
    const inbox = async (openid: string, templateId: string, id: string): Promise<InboxMessage[]> =>
      (await control.inbox(openid)).filter(
        (m) => m.templateId === templateId && Object.values(m.data).includes(id),
      );
    const notices = (where: Record<string, unknown>) => stack.db.all<NoticeDoc>('notices', where);
    const apply = async (shopper: string, orderId: string, refundFee: number) =>
      unwrap(
        await stack.call(
          'applyRefund',
          { orderId, refundFee, reason: '买错了规格', requestId: newRequestId() },
          shopper,
        ),
      ).refund;
    const approve = async (refundId: string) =>
      unwrap(await stack.call('approveRefund', { refundId, decision: 'approve' }, ADMIN)).refund;

    it('a payment, a refused refund, its retry and its completion reach the admin and the shopper once each', async () => {
      const shopper = newShopper();
      await control.grant(ADMIN, T.newOrder, 3);
      await control.grant(ADMIN, T.refundApplied, 3);
      await control.grant(ADMIN, T.refundAttention, 3);
      await control.grant(shopper, T.refundReview, 3);
      await control.grant(shopper, T.refundResult, 3);

      const orderId = await buyAndPay(stack, shopper, 'tea-longjing');
      const paid = await order(stack, orderId);
      expect(paid).toMatchObject({ status: 'PAID', provider });
      const newOrder = await inbox(ADMIN, T.newOrder, orderId);
      expect(newOrder).toHaveLength(1);
      expect(newOrder[0]!.data).toMatchObject({ character_string1: orderId, amount3: '68.00元' });
      expect(newOrder[0]!.text).toContain('商品名称：西湖龙井');

      const applied = await apply(shopper, orderId, 6800);
      expect(await inbox(ADMIN, T.refundApplied, orderId)).toHaveLength(1);

      // WeChat refuses (the balance); reconcile renders and sends the 退款待处理 approveRefund left.
      stack.simulator.setFaults({ refundErrorQueue: ['NOTENOUGH'] });
      expect((await approve(applied.refundId)).status).toBe('FAILED');
      await runReconcile(stack);
      const attention = await inbox(ADMIN, T.refundAttention, applied.refundId);
      expect(attention).toHaveLength(1);
      expect(attention[0]!.data).toMatchObject({
        character_string1: applied.refundId,
        amount2: '68.00元',
        phrase3: '退款失败',
      });
      expect(String(attention[0]!.data['thing4'])).toContain('余额不足');

      await passTime(60_000); // WeChat's minute between refund calls of one order
      expect((await approve(applied.refundId)).status).toBe('PROCESSING');
      stack.simulator.settleRefunds();
      await stack.simulator.flushNotifies();
      expect((await refund(stack, applied.refundId)).status).toBe('SUCCESS');
      await runReconcile(stack);

      expect((await inbox(shopper, T.refundReview, orderId)).map((m) => m.data['phrase3'])).toEqual([
        '已同意',
      ]);
      expect((await inbox(shopper, T.refundResult, orderId)).map((m) => m.data['phrase3'])).toEqual([
        '退款完成',
      ]);
      expect(await notices({ kind: 'refund_completed', subject: applied.refundId })).toMatchObject([
        { touser: shopper, status: 'SENT', attempts: 1 },
      ]);
      // The shopper never hears WeChat's reason, whatever words the provider used.
      expect((await control.inbox(shopper)).map((m) => m.text).join('\n')).not.toContain('余额');
    });

    it('WeChat closing a refund tells the admin and the shopper', async () => {
      const shopper = newShopper();
      await control.grant(ADMIN, T.refundAttention, 3);
      await control.grant(shopper, T.refundResult, 3);
      const orderId = await buyAndPay(stack, shopper, 'chopsticks');
      const applied = await apply(shopper, orderId, 1990);
      expect((await approve(applied.refundId)).status).toBe('PROCESSING');
      expect(stack.simulator.settleRefund(applied.refundId, 'REFUNDCLOSE')).toBe(true);
      await stack.simulator.flushNotifies();
      expect((await refund(stack, applied.refundId)).status).toBe('CLOSED');
      await runReconcile(stack);

      expect((await inbox(shopper, T.refundResult, orderId)).map((m) => m.data['phrase3'])).toEqual([
        '退款关闭',
      ]);
      const got = await inbox(ADMIN, T.refundAttention, applied.refundId);
      expect(got.map((m) => [m.data['phrase3'], m.data['thing4']])).toEqual([
        ['退款关闭', '微信关闭了退款，未退回资金，可重新发起'],
      ]);
    });
  });
}
