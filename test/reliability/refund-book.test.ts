/**
 * The refund book's exactly-once rules with the interleavings forced, not hoped for: an
 * application killed between its reservation and its insert and then retried; a settle and
 * a release of one refund in both orders; a crash between a rejection (or a withdrawal) and
 * its release.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { OrderDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { handlePayNotify } from '../../cloudfunctions/shared/domain/notify';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { release, settle } from '../../cloudfunctions/shared/domain/refund-book';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { withdrawRefund } from '../../cloudfunctions/shared/domain/withdraw';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import { Killed, MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const SHOPPER: Caller = {
  openid: 'o_book',
  appid: MERCHANT.appid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
};
const ADMIN: Caller = { ...SHOPPER, openid: 'o_admin' };

async function paidOrder(priceFen = 5000): Promise<string> {
  const d = w.deps();
  await d.store.insert('products', { _id: 'p', name: '茶', priceFen, image: '', onSale: true, sort: 0 });
  const created = await createOrder(w.deps(), { items: [{ productId: 'p', quantity: 1 }] }, SHOPPER);
  expect(w.core.engine.pay(created.payment as never).errMsg).toBe('requestPayment:ok');
  for (const n of w.outbox.splice(0)) await handlePayNotify(w.deps(), w.delivery(n));
  return created.orderId;
}
const orderDoc = async (id: string) => (await w.deps().store.get<OrderDoc>('orders', id))!;
const apply = (orderId: string, refundFee: number, requestId: string, deps = w.deps()) =>
  applyRefund(deps, { orderId, refundFee, reason: 'x', requestId }, SHOPPER);

describe('applyRefund with one requestId', () => {
  it('a retry after the first call died between reserving and creating makes one reservation and one refund', async () => {
    const orderId = await paidOrder();
    // get refund, get order, reserve (lands), insert: killed before the insert lands.
    await expect(
      apply(orderId, 1000, 'req-00000001', w.deps({ afterRequests: 4, landed: false })),
    ).rejects.toBeInstanceOf(Killed);
    expect(await orderDoc(orderId)).toMatchObject({ refundReservedFee: 1000, refundOpenCount: 1 });
    const retried = await apply(orderId, 1000, 'req-00000001');
    expect(await orderDoc(orderId)).toMatchObject({
      refundReservedFee: 1000,
      refundUsedFee: 1000,
      refundOpenCount: 1,
    });
    expect(await w.deps().store.find('refunds', { orderId }, {})).toHaveLength(1);
    expect(retried.refund.status).toBe('PENDING_REVIEW');
  });

  it('a retry after reconcile released that stranded reservation reserves again, so the refund is covered', async () => {
    const orderId = await paidOrder();
    await expect(
      apply(orderId, 1000, 'req-00000002', w.deps({ afterRequests: 4, landed: false })),
    ).rejects.toBeInstanceOf(Killed);
    w.advance(11 * 60_000);
    expect((await reconcile(w.deps())).reservationsReleased).toBe(1);
    expect((await orderDoc(orderId)).refundReservedFee).toBe(0);
    const retried = await apply(orderId, 1000, 'req-00000002');
    const o = await orderDoc(orderId);
    expect(o).toMatchObject({ refundReservedFee: 1000, refundUsedFee: 1000, refundOpenCount: 1 });
    expect(o.refundBook[retried.refund.refundId]?.state).toBe('reserved');
  });
});

describe('settle and release of one refund', () => {
  it('settle first: the release finds it settled and moves nothing', async () => {
    const orderId = await paidOrder();
    const r = (await apply(orderId, 700, 'req-00000003')).refund;
    expect(await settle(w.deps(), orderId, r.refundId, 700)).toBe('settled');
    expect(await release(w.deps(), orderId, r.refundId, 700)).toBe('settled');
    expect(await orderDoc(orderId)).toMatchObject({
      refundedFee: 700,
      refundReservedFee: 0,
      refundUsedFee: 700,
    });
  });

  it('release first: WeChat’s later SUCCESS is booked late, once, and the totals stay whole', async () => {
    const orderId = await paidOrder();
    const r = (await apply(orderId, 700, 'req-00000004')).refund;
    expect(await release(w.deps(), orderId, r.refundId, 700)).toBe('released');
    expect(await settle(w.deps(), orderId, r.refundId, 700)).toBe('late');
    expect(await settle(w.deps(), orderId, r.refundId, 700)).toBe('already');
    expect(await orderDoc(orderId)).toMatchObject({
      refundedFee: 700,
      refundReservedFee: 0,
      refundUsedFee: 700,
    });
  });

  it('a rejection killed after its status write is released by reconcile, once', async () => {
    const orderId = await paidOrder();
    const r = (await apply(orderId, 600, 'req-00000005')).refund;
    // get refund, status CAS (lands), release: killed before it lands.
    await expect(
      approveRefund(
        w.deps({ afterRequests: 3, landed: false }),
        { refundId: r.refundId, decision: 'reject' },
        ADMIN,
      ),
    ).rejects.toBeInstanceOf(Killed);
    expect((await w.deps().store.get<RefundDoc>('refunds', r.refundId))?.status).toBe('REJECTED');
    expect((await orderDoc(orderId)).refundReservedFee).toBe(600);
    w.advance(11 * 60_000);
    await reconcile(w.deps());
    await reconcile(w.deps());
    expect(await orderDoc(orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0, refundCount: 0 });
  });

  it('a withdrawal killed after its status write is released by reconcile, once', async () => {
    const orderId = await paidOrder();
    const r = (await apply(orderId, 800, 'req-00000006')).refund;
    // get refund, status CAS (lands), release: killed before it lands.
    await expect(
      withdrawRefund(w.deps({ afterRequests: 3, landed: false }), { refundId: r.refundId }, SHOPPER),
    ).rejects.toBeInstanceOf(Killed);
    expect((await w.deps().store.get<RefundDoc>('refunds', r.refundId))?.status).toBe('WITHDRAWN');
    expect((await orderDoc(orderId)).refundReservedFee).toBe(800);
    w.advance(11 * 60_000);
    await reconcile(w.deps());
    await reconcile(w.deps());
    expect((await orderDoc(orderId)).refundReservedFee).toBe(0);
    // The shopper's retry after the lost answer finds it done and releases nothing more.
    expect((await withdrawRefund(w.deps(), { refundId: r.refundId }, SHOPPER)).refund.status).toBe(
      'WITHDRAWN',
    );
    expect(await orderDoc(orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0, refundCount: 0 });
    expect((await orderDoc(orderId)).refundBook[r.refundId]?.state).toBe('released');
  });
});
