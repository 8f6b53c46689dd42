/**
 * The order's refund book step by step, in one process (world.ts): each step's answer when
 * the entry is not where the step expects it (already done, settled, released, moved, or not
 * there at all), the late booking of money WeChat returned after we let the refund go, with
 * its log line, and the list of entries still holding money. Runs under `npm test` and
 * `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { move, release, reservedEntries, settle } from '../../cloudfunctions/shared/domain/refund-book';
import { applied, logged, orderDoc, paidOrder } from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

describe('the refund book', () => {
  it('settle: once, then already; money for a released entry is booked late and logged; no entry is an error', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 700);
    expect(await settle(w.deps(), orderId, a.refundId, 1000)).toBe('settled');
    expect(await settle(w.deps(), orderId, a.refundId, 1000)).toBe('already');
    expect(await release(w.deps(), orderId, b.refundId, 700)).toBe('released');
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 1000,
      refundedFee: 1000,
      refundReservedFee: 0,
    });
    w.advance(1000);
    expect(await settle(w.deps(), orderId, b.refundId, 700)).toBe('late');
    const o = await orderDoc(w, orderId);
    expect(o.refundBook[b.refundId]).toEqual({ fee: 700, state: 'settled', late: true, atMs: w.now() });
    expect(o).toMatchObject({
      refundUsedFee: 1700,
      refundedFee: 1700,
      refundReservedFee: 0,
      updatedAtMs: w.now(),
    });
    expect(logged(w, 'refund.settled_late')).toEqual([
      { level: 'warn', event: 'refund.settled_late', fields: { orderId, refundId: b.refundId, fee: 700 } },
    ]);
    await expect(settle(w.deps(), orderId, 'Rnone', 1)).rejects.toMatchObject({
      code: 'REFUND_BOOK_MISSING',
      message: `order ${orderId} has no refund book entry for Rnone`,
    });
  });

  it('release: once, then already; a settled or moved entry says so; no entry is missing', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 500);
    const c = await applied(w, orderId, 300);
    expect(await release(w.deps(), orderId, a.refundId, 1000)).toBe('released');
    expect((await orderDoc(w, orderId)).refundBook[a.refundId]).toEqual({
      fee: 1000,
      state: 'released',
      atMs: w.now(),
    });
    expect(await release(w.deps(), orderId, a.refundId, 1000)).toBe('already');
    expect(await settle(w.deps(), orderId, b.refundId, 500)).toBe('settled');
    expect(await release(w.deps(), orderId, b.refundId, 500)).toBe('settled');
    expect(await move(w.deps(), orderId, c.refundId, `${c.refundId}_2`, 300)).toBe('moved');
    expect(await release(w.deps(), orderId, c.refundId, 300)).toBe('moved');
    expect(await release(w.deps(), orderId, 'Rnone', 1)).toBe('missing');
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 800,
      refundReservedFee: 300,
      refundedFee: 500,
      refundCount: 2,
      refundOpenCount: 1,
    });
  });

  it('move: once to one successor, then already; not to another; settled, released or absent say so', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 500);
    expect(await move(w.deps(), orderId, a.refundId, 'S1', 1000)).toBe('moved');
    const o = await orderDoc(w, orderId);
    expect(o.refundBook[a.refundId]).toEqual({ fee: 1000, state: 'moved', to: 'S1', atMs: w.now() });
    expect(o.refundBook['S1']).toEqual({ fee: 1000, state: 'reserved', atMs: w.now() });
    expect(await move(w.deps(), orderId, a.refundId, 'S1', 1000)).toBe('already');
    expect(await move(w.deps(), orderId, a.refundId, 'S2', 1000)).toBe('missing');
    expect(await settle(w.deps(), orderId, 'S1', 1000)).toBe('settled');
    expect(await move(w.deps(), orderId, 'S1', 'S1_2', 1000)).toBe('settled');
    expect(await release(w.deps(), orderId, b.refundId, 500)).toBe('released');
    expect(await move(w.deps(), orderId, b.refundId, 'S3', 500)).toBe('released');
    expect(await move(w.deps(), orderId, 'Rnone', 'S4', 1)).toBe('missing');
    // Moved to S1: a move of it to another entry that exists is not that move done already.
    const e = await applied(w, orderId, 50);
    expect(await move(w.deps(), orderId, a.refundId, e.refundId, 1000)).toBe('missing');
    // A successor that already holds an entry is never overwritten.
    const c = await applied(w, orderId, 200);
    const d = await applied(w, orderId, 100);
    expect(await move(w.deps(), orderId, c.refundId, d.refundId, 200)).toBe('missing');
    expect((await orderDoc(w, orderId)).refundBook[d.refundId]).toMatchObject({
      fee: 100,
      state: 'reserved',
    });
  });

  it('the entries still holding money', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 500);
    const c = await applied(w, orderId, 300);
    await release(w.deps(), orderId, b.refundId, 500);
    await settle(w.deps(), orderId, c.refundId, 300);
    expect(reservedEntries(await orderDoc(w, orderId))).toEqual([{ refundId: a.refundId, fee: 1000 }]);
    expect(reservedEntries({ ...(await orderDoc(w, orderId)), refundBook: undefined as never })).toEqual([]);
  });
});

describe('the refund book of an order that has none', () => {
  it('money for a moved entry is booked late too', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    expect(await move(w.deps(), orderId, a.refundId, 'S1', 1000)).toBe('moved');
    expect(await settle(w.deps(), orderId, a.refundId, 1000)).toBe('late');
    expect((await orderDoc(w, orderId)).refundBook[a.refundId]).toMatchObject({
      state: 'settled',
      late: true,
    });
  });

  it('an order stored before refund books, or no order at all: each step says missing', async () => {
    const orderId = await paidOrder(w, 5000);
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { refundBook: store.cmd.remove() });
    expect((await orderDoc(w, orderId)).refundBook).toBeUndefined();
    await expect(settle(w.deps(), orderId, 'R1', 1)).rejects.toMatchObject({ code: 'REFUND_BOOK_MISSING' });
    expect(await release(w.deps(), orderId, 'R1', 1)).toBe('missing');
    expect(await move(w.deps(), orderId, 'R1', 'R1_2', 1)).toBe('missing');
    await expect(settle(w.deps(), 'no-order', 'R1', 1)).rejects.toMatchObject({
      code: 'REFUND_BOOK_MISSING',
      message: 'order no-order has no refund book entry for R1',
    });
    expect(await release(w.deps(), 'no-order', 'R1', 1)).toBe('missing');
    expect(await move(w.deps(), 'no-order', 'R1', 'R1_2', 1)).toBe('missing');
  });
});
