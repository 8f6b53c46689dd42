/**
 * Service-provider mode (服务商) on APIv2, set up by configuration alone (WXPAY_SUB_MCHID,
 * WXPAY_SUB_APPID): the whole flow for the sub-merchant's own mini-program, and its notifies
 * held to the sub-merchant like to the merchant. A provider signs every sub-merchant's
 * messages with the same key, so a notify for another sub-merchant is genuinely signed: only
 * the sub_mch_id (against the configuration and against the order) tells it apart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import {
  handlePayNotify,
  handleRefundNotify,
  httpNotification,
} from '../../cloudfunctions/shared/domain/notify';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import { MERCHANT, SUB_MERCHANT, startWorld, type World } from './world';

let w: World;
beforeAll(async () => {
  w = await startWorld({ partner: true });
  await w.reset();
  await w.deps().store.insert('products', {
    _id: 'tea',
    name: '茶',
    priceFen: 6800,
    image: '',
    onSale: true,
    sort: 1,
  });
}, 120_000);
afterAll(() => w?.close());

// Payers and callers are users of the sub-merchant's mini-program.
const caller = (openid: string): Caller => ({
  openid,
  appid: SUB_MERCHANT.subAppid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
});

async function deliverAll(): Promise<boolean[]> {
  const out: boolean[] = [];
  for (const n of w.outbox.splice(0)) {
    const reply = await handlePayNotify(w.deps(), w.delivery(n));
    out.push(reply.ok);
  }
  return out;
}

/** A pay notify signed with the provider's key (as WeChat signs every sub-merchant's). */
function providerSigned(orderId: string, subMchId: string): string {
  return signPayNotifyForTest(
    { appid: MERCHANT.appid, mchId: MERCHANT.mchId, apiKey: MERCHANT.apiKey, signType: 'HMAC-SHA256' },
    {
      out_trade_no: orderId,
      total_fee: 6800,
      sub_mch_id: subMchId,
      sub_appid: SUB_MERCHANT.subAppid,
      sub_openid: 'o_sub_shopper',
    },
  );
}

describe('service-provider mode on APIv2', () => {
  it('pays and refunds for the sub-merchant: sub_mch_id on every request, sub_openid, paySign under sub_appid', async () => {
    const created = await createOrder(
      w.deps(),
      { items: [{ productId: 'tea', quantity: 1 }] },
      caller('o_sub_shopper'),
    );
    const stored = (await w.deps().store.get<OrderDoc>('orders', created.orderId))!;
    expect(stored).toMatchObject({ provider: 'v2', subMchId: SUB_MERCHANT.subMchId });
    // WeChat keeps it under the sub-merchant, with the payer under the sub-appid.
    const atWx = [...w.core.ledger.orders.values()].find((o) => o.outTradeNo === created.orderId)!;
    expect(atWx.mchId).toBe(`${MERCHANT.mchId}/${SUB_MERCHANT.subMchId}`);
    expect(atWx.request['sub_openid']).toBe('o_sub_shopper');
    // The phone checks the paySign against the sub-appid.
    expect(w.core.engine.pay(created.payment as never).errMsg).toBe('requestPayment:ok');
    expect(await deliverAll()).toEqual([true]);
    expect((await w.deps().store.get<OrderDoc>('orders', created.orderId))?.status).toBe('PAID');

    const applied = await applyRefund(
      w.deps(),
      { orderId: created.orderId, refundFee: 1000, reason: 'x', requestId: 'partner-refund-1' },
      caller('o_sub_shopper'),
    );
    const admin: Caller = {
      openid: 'o_admin',
      appid: SUB_MERCHANT.subAppid,
      clientIp: '127.0.0.1',
      source: 'wx_client',
    };
    const approved = await approveRefund(
      w.deps(),
      { refundId: applied.refund.refundId, decision: 'approve' },
      admin,
    );
    expect(approved.refund.status).toBe('PROCESSING');
    w.core.engine.settleAll();
    for (const n of w.outbox.splice(0))
      expect((await handleRefundNotify(w.deps(), w.delivery(n))).ok).toBe(true);
    expect((await w.deps().store.get<RefundDoc>('refunds', applied.refund.refundId))?.status).toBe('SUCCESS');
  });

  it('refuses a genuinely signed notify for another sub-merchant of the provider, changing nothing', async () => {
    const created = await createOrder(
      w.deps(),
      { items: [{ productId: 'tea', quantity: 1 }] },
      caller('o_sub_shopper'),
    );
    const before = await w.deps().store.get<OrderDoc>('orders', created.orderId);
    const other = await handlePayNotify(
      w.deps(),
      httpNotification(providerSigned(created.orderId, '1900000129')),
    );
    expect(other).toMatchObject({ ok: false, outcome: 'MERCHANT_MISMATCH' });
    expect(await w.deps().store.get<OrderDoc>('orders', created.orderId)).toEqual(before);
  });

  it("holds the notify's sub_mch_id against the order's own, like mch_id", async () => {
    const created = await createOrder(
      w.deps(),
      { items: [{ productId: 'tea', quantity: 1 }] },
      caller('o_sub_shopper'),
    );
    // An order made for another sub-merchant (before the configuration changed to this one).
    await w.deps().store.cas('orders', { _id: created.orderId }, { subMchId: '1900000129' });
    const before = await w.deps().store.get<OrderDoc>('orders', created.orderId);
    const r = await handlePayNotify(
      w.deps(),
      httpNotification(providerSigned(created.orderId, SUB_MERCHANT.subMchId)),
    );
    expect(r).toMatchObject({ ok: false, outcome: 'SUB_MERCHANT_MISMATCH' });
    expect(await w.deps().store.get<OrderDoc>('orders', created.orderId)).toEqual(before);
    // The same notify for an order of this sub-merchant is taken.
    await w.deps().store.cas('orders', { _id: created.orderId }, { subMchId: SUB_MERCHANT.subMchId });
    expect(
      (
        await handlePayNotify(
          w.deps(),
          httpNotification(providerSigned(created.orderId, SUB_MERCHANT.subMchId)),
        )
      ).ok,
    ).toBe(true);
  });

  it("refuses callers of the provider's own mini-program: the shop is the sub-merchant's", async () => {
    await expect(
      createOrder(
        w.deps(),
        { items: [{ productId: 'tea', quantity: 1 }] },
        { ...caller('o_sub_shopper'), appid: MERCHANT.appid },
      ),
    ).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });
});
