/**
 * The database round trips of every step on APIv3 and cloudPay: the same as APIv2's
 * (test/integration/auth-config.test.ts), since the provider's work (signatures, decryption,
 * cloudPay's confirming query) costs no database request. cloudPay's "pay again" re-enters the
 * order at the platform and gets the same prepay_id back, which is already stored: still 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rfc3339Beijing } from '../../cloudfunctions/shared/providers/time';
import { notifyBodyForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, newRequestId, SHOPPER, testStack } from './support';

for (const provider of ['v3', 'cloudpay'] as const) {
  describe(`database round trips on ${provider}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await testStack({ provider });
    });
    afterAll(() => stack?.close());

    const ctx = (openid: string) => ({
      OPENID: openid,
      APPID: stack.info.merchant.appid,
      SOURCE: 'wx_client',
    });

    /** The pay or refund notify as this provider delivers it, straight to the function. */
    function notify(kind: 'pay' | 'refund', f: { orderId: string; refundId?: string }) {
      const m = stack.info.merchant;
      if (provider === 'cloudpay') {
        const event =
          kind === 'pay'
            ? {
                returnCode: 'SUCCESS',
                resultCode: 'SUCCESS',
                subMchId: m.mchid,
                outTradeNo: f.orderId,
                totalFee: 1,
              }
            : { returnCode: 'SUCCESS', subMchId: m.mchid, outRefundNo: f.refundId, refundStatus: 'SUCCESS' };
        return () =>
          stack.runtime.invoke(kind === 'pay' ? 'payNotify' : 'refundNotify', event, {
            SOURCE: 'wx_paycallback',
          });
      }
      const body =
        kind === 'pay'
          ? notifyBodyForTest(
              'TRANSACTION.SUCCESS',
              {
                mchid: m.mchid,
                appid: m.appid,
                out_trade_no: f.orderId,
                transaction_id: '4200000000000000000000000001',
                trade_state: 'SUCCESS',
                success_time: rfc3339Beijing(Date.now()),
                payer: { openid: SHOPPER },
                amount: { total: 1, payer_total: 1 },
              },
              stack.info.v3!.apiV3Key,
            )
          : notifyBodyForTest(
              'REFUND.SUCCESS',
              {
                mchid: m.mchid,
                out_trade_no: f.orderId,
                out_refund_no: f.refundId,
                refund_id: '50300000000000000000000000001',
                refund_status: 'SUCCESS',
                amount: { total: 1, refund: 1, payer_total: 1, payer_refund: 1 },
              },
              stack.info.v3!.apiV3Key,
            );
      // Signed anew on each delivery, as WeChat signs each attempt.
      return () =>
        stack.runtime.invoke(
          kind === 'pay' ? 'payNotify' : 'refundNotify',
          {
            httpMethod: 'POST',
            body,
            isBase64Encoded: false,
            headers: { ...stack.simulator.v3!.signNotifyForTest(body), 'content-type': 'application/json' },
          },
          { SOURCE: 'wx_http' },
        );
    }

    it('hold APIv2’s counts on every step', async () => {
      const created = await stack.runtime.invoke(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }] },
        ctx(SHOPPER),
      );
      const data = (created.result as { data: { orderId: string; payment: Record<string, unknown> } }).data;
      expect(created.dbRequests).toBe(3); // products, insert order, store prepay_id
      const again = await stack.runtime.invoke('createOrder', { orderId: data.orderId }, ctx(SHOPPER));
      expect((again.result as { ok: boolean }).ok).toBe(true);
      expect(again.dbRequests).toBe(1);

      stack.simulator.setFaults({ dropPayNotifies: true, dropRefundNotifies: true });
      expect(stack.simulator.pay(data.payment).errMsg).toBe('requestPayment:ok');
      const paid = notify('pay', { orderId: data.orderId });
      const first = await paid();
      expect(first.dbRequests).toBe(3); // order, event, CAS
      expect((await paid()).dbRequests).toBe(1);

      const applied = await stack.runtime.invoke(
        'applyRefund',
        { orderId: data.orderId, refundFee: 1, reason: 'db', requestId: newRequestId() },
        ctx(SHOPPER),
      );
      expect(applied.dbRequests).toBe(4);
      const refundId = (applied.result as { data: { refund: { refundId: string } } }).data.refund.refundId;
      const approved = await stack.runtime.invoke(
        'approveRefund',
        { refundId, decision: 'approve' },
        ctx(ADMIN),
      );
      expect(approved.dbRequests).toBe(5);
      stack.simulator.settleRefunds();
      const settled = notify('refund', { orderId: data.orderId, refundId });
      expect((await settled()).dbRequests).toBe(4); // refund, event, settle, CAS
      expect((await settled()).dbRequests).toBe(1);
      stack.simulator.setFaults({ dropPayNotifies: false, dropRefundNotifies: false });
    });
  });
}
