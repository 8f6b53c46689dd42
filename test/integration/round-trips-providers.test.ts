/**
 * The database round trips of every step on APIv3 and cloudPay: the same as APIv2's
 * (test/integration/auth-config.test.ts), since the provider's work (signatures, decryption,
 * cloudPay's confirming query) costs no database request. cloudPay's "pay again" re-enters the
 * order at the platform and gets the same prepay_id back, which is already stored; that
 * WeChat call is counted against the shopper's createOrder limit: 2.
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
    function notify(kind: 'pay' | 'refund', f: { orderId: string; refundId?: string; openid?: string }) {
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
                payer: { openid: f.openid ?? SHOPPER },
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
      // A shopper new to the shop: the first limited call creates their limits document.
      const shopper = `o_round_trips_${provider}`;
      const firstCall = await stack.runtime.invoke('listProducts', {}, ctx(shopper));
      expect(firstCall.dbRequests).toBe(4); // limits: update (no document yet), read, insert; products
      const created = await stack.runtime.invoke(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }] },
        ctx(shopper),
      );
      const data = (created.result as { data: { orderId: string; payment: Record<string, unknown> } }).data;
      expect(created.dbRequests).toBe(4); // limits, products, insert order, store prepay_id
      const again = await stack.runtime.invoke('createOrder', { orderId: data.orderId }, ctx(shopper));
      expect((again.result as { ok: boolean }).ok).toBe(true);
      // APIv3 re-signs the stored prepay_id (not counted); cloudPay cannot sign by itself and
      // re-enters the order at WeChat, a call counted like any other, which gives the same
      // prepay_id back (already stored).
      expect(again.dbRequests).toBe(provider === 'cloudpay' ? 2 : 1);
      const sameCart = await stack.runtime.invoke(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }] },
        ctx(shopper),
      );
      expect((sameCart.result as { data: { orderId: string } }).data.orderId).toBe(data.orderId);
      expect(sameCart.dbRequests).toBe(4); // limits update (same cart), read, the call counted, the order

      stack.simulator.setFaults({ dropPayNotifies: true, dropRefundNotifies: true });
      expect(stack.simulator.pay(data.payment).errMsg).toBe('requestPayment:ok');
      const paid = notify('pay', { orderId: data.orderId, openid: shopper });
      const first = await paid();
      expect(first.dbRequests).toBe(5); // order, event, CAS; the admin's notice: insert, WeChat's answer
      expect((await paid()).dbRequests).toBe(1);

      const applied = await stack.runtime.invoke(
        'applyRefund',
        { orderId: data.orderId, refundFee: 1, reason: 'db', requestId: newRequestId() },
        ctx(shopper),
      );
      expect(applied.dbRequests).toBe(7); // limits, the requestId's refund, order, reserve, insert; notice insert, answer
      const refundId = (applied.result as { data: { refund: { refundId: string } } }).data.refund.refundId;
      const approved = await stack.runtime.invoke(
        'approveRefund',
        { refundId, decision: 'approve' },
        ctx(ADMIN),
      );
      // refund, claim, the order's refund slot taken and held past the answer, PROCESSING, event;
      // the shopper's notice: insert, answer
      expect(approved.dbRequests).toBe(8);
      stack.simulator.settleRefunds();
      const settled = notify('refund', { orderId: data.orderId, refundId });
      expect((await settled()).dbRequests).toBe(6); // refund, event, settle, CAS; the shopper's notice: insert, answer
      expect((await settled()).dbRequests).toBe(1);
      stack.simulator.setFaults({ dropPayNotifies: false, dropRefundNotifies: false });
    });
  });
}
