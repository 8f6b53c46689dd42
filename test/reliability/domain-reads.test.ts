/**
 * The smaller calls, in one process (world.ts): the catalogue and its pages, the refund
 * reasons a shopper picks from (and the merchant's rejection texts), one refund's detail for
 * its shopper or an admin, and a refund the merchant made by hand on the merchant platform,
 * recorded on its order once. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { recordExternalRefund } from '../../cloudfunctions/shared/domain/externalrefund';
import { listProducts } from '../../cloudfunctions/shared/domain/products';
import { applicationReason, refundReasons } from '../../cloudfunctions/shared/domain/reasons';
import { refundDetail } from '../../cloudfunctions/shared/domain/refund-detail';
import { applyRefund } from '../../cloudfunctions/shared/domain/refunds';
import {
  ADMIN,
  applied,
  casOn,
  eventsOf,
  logged,
  newRequestId,
  OTHER,
  orderAndPay,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refused,
  SHOPPER,
} from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

describe('the catalogue', () => {
  it('lists what is on sale in the shop’s order, 20 to a page, with an offset cursor', async () => {
    const store = w.deps().store;
    for (let i = 0; i < 23; i++) {
      await store.insert('products', {
        _id: `p${String(i).padStart(2, '0')}`,
        name: `商品${i}`,
        priceFen: 100 + i,
        image: `img${i}`,
        onSale: i !== 5,
        // Two share a sort: then by id.
        sort: i === 3 ? 0 : i,
        ...(i === 1 ? { description: '好茶' } : {}),
      });
    }
    const first = await listProducts(w.deps(), {}, SHOPPER);
    expect(first.items.map((p) => p.id)).toEqual([
      'p00',
      'p03',
      'p01',
      'p02',
      ...Array.from({ length: 17 }, (_, k) => k + 4)
        .filter((i) => i !== 5)
        .map((i) => `p${String(i).padStart(2, '0')}`),
    ]);
    expect(first.items[2]).toEqual({
      id: 'p01',
      name: '商品1',
      priceFen: 101,
      image: 'img1',
      description: '好茶',
    });
    expect(first.items[0]).toEqual({ id: 'p00', name: '商品0', priceFen: 100, image: 'img0' });
    expect(first.nextCursor).toBe('20');
    const second = await listProducts(w.deps(), { cursor: '20' }, SHOPPER);
    expect(second.items.map((p) => p.id)).toEqual(['p21', 'p22']);
    expect(second.nextCursor).toBeNull();
    expect((await listProducts(w.deps(), { cursor: null }, SHOPPER)).items).toHaveLength(20);
    expect((await listProducts(w.deps(), { cursor: '' }, SHOPPER)).items).toHaveLength(20);
    for (const cursor of ['x', '-1', '123456', 20, '1e3'])
      await refused(listProducts(w.deps(), { cursor }, SHOPPER), 'INVALID_INPUT', 'cursor is invalid');
    await refused(
      listProducts(w.deps(), { onSale: false }, SHOPPER),
      'INVALID_INPUT',
      'unexpected field "onSale"',
    );
  });

  it('a page of exactly 20 has no next page', async () => {
    const store = w.deps().store;
    for (let i = 0; i < 20; i++)
      await store.insert('products', {
        _id: `q${i}`,
        name: 'n',
        priceFen: 1,
        image: '',
        onSale: true,
        sort: i,
      });
    expect((await listProducts(w.deps(), {}, SHOPPER)).nextCursor).toBeNull();
  });
});

describe('refund reasons', () => {
  it('a preset code with or without a note; OTHER needs the note; an unknown code names the presets', () => {
    const deps = w.deps();
    expect(applicationReason(deps, { reasonCode: 'QUALITY' })).toEqual({
      reasonCode: 'QUALITY',
      reason: '质量问题',
    });
    expect(applicationReason(deps, { reasonCode: 'QUALITY', reason: ' 破了 ' })).toEqual({
      reasonCode: 'QUALITY',
      reason: '质量问题：破了',
    });
    expect(applicationReason(deps, { reason: '不合适' })).toEqual({ reasonCode: 'OTHER', reason: '不合适' });
    expect(() => applicationReason(deps, { reasonCode: 'OTHER' })).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message: 'reason is required: say why in a few words',
      }),
    );
    expect(() => applicationReason(deps, { reasonCode: 'NOPE' })).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message:
          'reasonCode must be one of NOT_WANTED, WRONG_ITEM, QUALITY, NOT_AS_DESCRIBED, NOT_RECEIVED, SLOW_DELIVERY, OTHER',
      }),
    );
    expect(applicationReason(deps, { reasonCode: 'QUALITY', reason: '很'.repeat(200) }).reason).toHaveLength(
      205,
    );
    expect(() => applicationReason(deps, { reasonCode: 'Q'.repeat(33) })).toThrow(
      expect.objectContaining({ message: 'reasonCode must be at most 32 characters' }),
    );
    expect(() => applicationReason(deps, { reasonCode: 'QUALITY', reason: '很'.repeat(201) })).toThrow(
      expect.objectContaining({ message: 'reason must be at most 200 characters' }),
    );
  });

  it('the list: every preset with OTHER’s note required; the rejection texts for admins only', async () => {
    const shopper = await refundReasons(w.deps(), {}, SHOPPER);
    expect(shopper.apply).toContainEqual({ code: 'QUALITY', label: '质量问题', noteRequired: false });
    expect(shopper.apply.at(-1)).toEqual({ code: 'OTHER', label: '其他', noteRequired: true });
    expect(shopper.apply).toHaveLength(7);
    expect(shopper.reject).toEqual([]);
    const admin = await refundReasons(w.deps(), {}, ADMIN);
    expect(admin.reject).toEqual([...w.config.refunds.rejectReasons]);
    expect(admin.reject.length).toBeGreaterThan(0);
    await refused(refundReasons(w.deps(), { x: 1 }, SHOPPER), 'INVALID_INPUT', 'unexpected field "x"');
    await refused(
      refundReasons(w.deps(), {}, { ...SHOPPER, openid: '' }),
      'UNAUTHENTICATED',
      'call this function from the mini-program',
    );
  });
});

describe('one refund’s detail', () => {
  it('the shopper’s own, without the merchant’s fields; an admin’s, with them; nobody else’s', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = (
      await applyRefund(
        w.deps(),
        { orderId, refundFee: 1000, reason: '不想要了', requestId: newRequestId() },
        SHOPPER,
      )
    ).refund;
    const mine = await refundDetail(w.deps(), { refundId: r.refundId }, SHOPPER);
    expect(mine.refund).toMatchObject({ refundId: r.refundId, status: 'PENDING_REVIEW' });
    expect(mine.refund).not.toHaveProperty('history');
    expect(mine.order.orderId).toBe(orderId);
    const admin = await refundDetail(w.deps(), { refundId: r.refundId }, ADMIN);
    expect(admin.refund).toMatchObject({
      openid: SHOPPER.openid,
      history: [expect.objectContaining({ source: 'apply' })],
    });
    await refused(
      refundDetail(w.deps(), { refundId: r.refundId }, OTHER),
      'FORBIDDEN',
      'this refund belongs to someone else',
    );
    await refused(
      refundDetail(w.deps(), { refundId: r.refundId }, { ...SHOPPER, appid: 'wxanotherapp000001' }),
      'FORBIDDEN',
      'this mini-program is not the one bound to the merchant account',
    );
    await refused(refundDetail(w.deps(), { refundId: 'Rnone' }, ADMIN), 'NOT_FOUND', 'refund not found');
    await refused(refundDetail(w.deps(), { refundId: 'Rnone' }, SHOPPER), 'NOT_FOUND', 'refund not found');
    await refused(
      refundDetail(w.deps(), { refundId: 'R x' }, ADMIN),
      'INVALID_INPUT',
      'refundId has an invalid format',
    );
    await refused(
      refundDetail(w.deps(), { refundId: r.refundId, x: 1 }, ADMIN),
      'INVALID_INPUT',
      'unexpected field "x"',
    );
    // An admin may open it from another mini-program (a notice link in the merchant's own app).
    expect(
      (await refundDetail(w.deps(), { refundId: r.refundId }, { ...ADMIN, appid: 'wxanotherapp000001' }))
        .refund.refundId,
    ).toBe(r.refundId);
  });

  it('a refund whose order is gone is reported as broken data, naming both', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    // Broken data: the refund names an order that does not exist.
    await w.deps().store.cas('refunds', { _id: r.refundId }, { orderId: 'gone-order' });
    await refused(
      refundDetail(w.deps(), { refundId: r.refundId }, ADMIN),
      'INTERNAL',
      `order gone-order of refund ${r.refundId} is missing`,
    );
  });
});

describe('a refund made by hand on the merchant platform', () => {
  const input = (orderId: string, extra = {}) => ({
    refundId: '50300000000000000001',
    orderId,
    refundFee: 700,
    status: 'SUCCESS' as const,
    billDate: '20261129',
    fields: { refund_status: 'SUCCESS' },
    ...extra,
  });

  it('is recorded on its paid order once: counted, listed, its event and log line written', async () => {
    const orderId = await paidOrder(w, 5000);
    expect(await recordExternalRefund(w.deps(), input(orderId))).toBe('RECORDED');
    expect(await recordExternalRefund(w.deps(), input(orderId))).toBe('ALREADY');
    const o = await orderDoc(w, orderId);
    expect(o).toMatchObject({ refundedFee: 700, refundUsedFee: 700, refundCount: 1, updatedAtMs: w.now() });
    expect(o.refundBook['50300000000000000001']).toEqual({
      fee: 700,
      state: 'settled',
      atMs: w.now(),
      external: true,
    });
    expect(o.externalRefunds).toEqual([
      {
        refundId: '50300000000000000001',
        refundFee: 700,
        status: 'SUCCESS',
        billDate: '20261129',
        recordedAtMs: w.now(),
      },
    ]);
    const [event] = await eventsOf(w, '50300000000000000001');
    expect(event).toMatchObject({
      _id: '50300000000000000001:SUCCESS',
      kind: 'refund',
      orderId,
      from: 'EXTERNAL',
      to: 'SUCCESS',
      source: 'refundquery',
      fields: { refund_status: 'SUCCESS' },
    });
    expect(logged(w, 'order.external_refund')).toEqual([
      {
        level: 'warn',
        event: 'order.external_refund',
        fields: {
          orderId,
          refundId: '50300000000000000001',
          refundFee: 700,
          wxStatus: 'SUCCESS',
          billDate: '20261129',
          dbRequests: expect.any(Number),
        },
      },
    ]);
  });

  it('two bill checks recording it at once: once, the loser answers ALREADY; other orders untouched', async () => {
    const bystander = await paidOrder(w, 3000);
    const orderId = await paidOrder(w, 5000);
    const point = pausePoint();
    const first = recordExternalRefund(pauseBefore(w.deps(), casOn('orders'), point), input(orderId));
    await point.arrived;
    expect(await recordExternalRefund(w.deps(), input(orderId))).toBe('RECORDED');
    point.release();
    expect(await first).toBe('ALREADY');
    expect(logged(w, 'order.external_refund')).toHaveLength(1);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 700, refundCount: 1 });
    expect(await orderDoc(w, bystander)).toMatchObject({ refundedFee: 0, refundCount: 0, refundBook: {} });
  });

  it('an order stored before refund books gets its first entry', async () => {
    const orderId = await paidOrder(w, 5000);
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { refundBook: store.cmd.remove() });
    expect(await recordExternalRefund(w.deps(), input(orderId))).toBe('RECORDED');
    expect((await orderDoc(w, orderId)).refundBook['50300000000000000001']).toMatchObject({
      state: 'settled',
    });
  });

  it('CHANGE is recorded as ABNORMAL money; an unpaid or missing order is not touched', async () => {
    const orderId = await paidOrder(w, 5000);
    expect(await recordExternalRefund(w.deps(), input(orderId, { status: 'CHANGE' }))).toBe('RECORDED');
    expect((await eventsOf(w, '50300000000000000001'))[0]).toMatchObject({ to: 'ABNORMAL' });
    const { orderId: unpaid } = await orderAndPay(w);
    expect(await recordExternalRefund(w.deps(), input(unpaid, { refundId: '50300000000000000002' }))).toBe(
      'ORDER_NOT_PAID',
    );
    expect((await orderDoc(w, unpaid)).refundedFee).toBe(0);
    expect(
      await recordExternalRefund(w.deps(), input('20261130nothing', { refundId: '5030000000000000000X' })),
    ).toBe('ORDER_MISSING');
  });
});
