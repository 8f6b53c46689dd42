/**
 * The daily bill check on APIv3 and cloudPay, through the built runBillCheck: APIv3 reads the
 * merchant's bill through its tradebill (the file checked against the signed SHA1), cloudPay
 * the sub-merchant's bill through cloudPay's downloadBill; a payment whose notify never came
 * is confirmed through the order's own provider and booked once; a refund made on the
 * merchant platform is confirmed through the bill's provider and recorded on its order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunBillCheckResult } from '../../cloudfunctions/shared/contract';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import type { PaymentEventDoc } from '../../cloudfunctions/shared/domain/model';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, buyAndPay, newRequestId, order, refund, SHOPPER, testStack, unwrap } from './support';

const HOUR = 3600_000;
const today = () => billDateOf(Date.now());

for (const provider of ['v3', 'cloudpay'] as const) {
  describe(`bill check (对账) on ${provider}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await testStack({ provider });
    });
    afterAll(() => stack?.close());

    const runCheck = async (): Promise<RunBillCheckResult> => {
      // WeChat's bill of today exists from 10:00 tomorrow.
      stack.simulator.setClockOffset(dayStartMs(today())! + 34.5 * HOUR - Date.now());
      try {
        return unwrap(await stack.call('runBillCheck', { date: today() }, ADMIN));
      } finally {
        stack.simulator.setClockOffset(0);
      }
    };

    it("agrees with the provider's bill, books a payment the notify never told of, once", async () => {
      const paid = await buyAndPay(stack);
      const applied = unwrap(
        await stack.call(
          'applyRefund',
          { orderId: paid, refundFee: 1000, reason: '对账', requestId: newRequestId() },
          SHOPPER,
        ),
      ).refund;
      expect(
        unwrap(await stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN))
          .refund.status,
      ).toBe('PROCESSING');
      stack.simulator.settleRefunds();
      await stack.simulator.flushNotifies();
      expect((await refund(stack, applied.refundId)).status).toBe('SUCCESS');

      // Paid at WeChat, never told: every notify attempt is dropped.
      stack.simulator.setFaults({ dropPayNotifies: true });
      const lost = unwrap(
        await stack.call('createOrder', { items: [{ productId: 'chopsticks', quantity: 1 }] }, SHOPPER),
      );
      expect(stack.simulator.pay(lost.payment as never).errMsg).toBe('requestPayment:ok');
      await stack.simulator.flushNotifies();
      stack.simulator.setFaults({ dropPayNotifies: false });
      expect((await order(stack, lost.orderId)).status).toBe('NOTPAY');

      const first = (await runCheck()).check;
      expect(first).toMatchObject({ status: 'DONE', noBill: false, discrepancyCount: 0 });
      expect(first.totals).toMatchObject({ payments: 2, refunds: 1 });
      expect(first.actions).toEqual([
        expect.objectContaining({ kind: 'BOOKED_PAID', orderId: lost.orderId }),
      ]);
      expect(await order(stack, lost.orderId)).toMatchObject({ status: 'PAID', provider });
      const event = await stack.db.get<PaymentEventDoc>('payment_events', `${lost.orderId}:PAID`);
      expect(event).toMatchObject({ source: 'orderquery' });

      // Again: nothing left to do, nothing booked twice.
      const second = (await runCheck()).check;
      expect(second).toMatchObject({ status: 'DONE', discrepancyCount: 0 });
      expect(await stack.db.count('payment_events', { orderId: lost.orderId })).toBe(1);
    });

    if (provider === 'v3') {
      it('records a refund made on the merchant platform, confirmed through APIv3', async () => {
        const orderId = await buyAndPay(stack);
        const external = stack.simulator.merchantPlatformRefund({ outTradeNo: orderId, refundFee: 500 });
        stack.simulator.settleRefunds();
        const check = (await runCheck()).check;
        expect(check.status).toBe('DONE');
        expect(check.actions).toContainEqual(
          expect.objectContaining({ kind: 'EXTERNAL_REFUND', refundId: external.outRefundNo }),
        );
        expect(await order(stack, orderId)).toMatchObject({ refundedFee: 500, refundUsedFee: 500 });
      });
    }
  });
}
