/**
 * withdrawRefund through the stack: a pending application is taken back, its amount released
 * exactly as a rejection releases it, and of a withdrawal and an approval of one refund
 * exactly one wins. The races are forced: the emulator holds one side's status write while
 * the other side runs to the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, buyAndPay, newRequestId, OTHER, order, refund, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

async function apply(orderId: string, refundFee: number) {
  return unwrap(
    await stack.call(
      'applyRefund',
      { orderId, refundFee, reasonCode: 'NOT_WANTED', requestId: newRequestId() },
      SHOPPER,
    ),
  ).refund;
}
const atWeChat = (refundId: string) =>
  stack.simulator.ledger().refunds.filter((r) => r.outRefundNo === refundId);
const eventsOf = (refundId: string) =>
  stack.db.all<{ _id: string }>('payment_events', { refundId }).then((e) => e.map((x) => x._id).sort());

/** The status write of one refund that moves it to `to`. */
const statusWrite = (refundId: string, to: string) => ({
  collection: 'refunds',
  op: 'update' as const,
  where: { _id: refundId },
  data: { status: to },
});

describe('withdrawRefund', () => {
  it('takes back a pending application: WITHDRAWN, its amount refundable again, and a repeat changes nothing', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing'); // 6800 fen
    const r = await apply(orderId, 2500);
    expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 2500, refundUsedFee: 2500 });

    const out = unwrap(await stack.call('withdrawRefund', { refundId: r.refundId }, SHOPPER));
    expect(out.refund).toMatchObject({ refundId: r.refundId, status: 'WITHDRAWN' });
    expect(out.refund.finishedAtMs).toBeGreaterThan(0);
    expect(out.refund.history).toBeUndefined(); // the shopper's view
    const doc = await order(stack, orderId);
    expect(doc).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0, refundCount: 0, refundOpenCount: 0 });
    expect(doc.refundBook[r.refundId]?.state).toBe('released');
    const stored = await refund(stack, r.refundId);
    expect(stored.history.map((h) => [h.status, h.source])).toEqual([
      ['PENDING_REVIEW', 'apply'],
      ['WITHDRAWN', 'withdraw'],
    ]);
    expect(await eventsOf(r.refundId)).toEqual([`${r.refundId}:WITHDRAWN`]);

    const again = unwrap(await stack.call('withdrawRefund', { refundId: r.refundId }, SHOPPER));
    expect(again.refund.status).toBe('WITHDRAWN');
    expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0 });
    // The whole amount can be applied for again.
    expect((await apply(orderId, 6800)).status).toBe('PENDING_REVIEW');
    expect(atWeChat(r.refundId)).toEqual([]);
  });

  it('only a pending application: an approved one cannot be withdrawn, a withdrawn one cannot be approved', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'chopsticks');
    const approved = await apply(orderId, 500);
    unwrap(await stack.call('approveRefund', { refundId: approved.refundId, decision: 'approve' }, ADMIN));
    expect(await stack.call('withdrawRefund', { refundId: approved.refundId }, SHOPPER)).toMatchObject({
      ok: false,
      error: { code: 'INVALID_STATE' },
    });
    expect((await refund(stack, approved.refundId)).status).toBe('PROCESSING');

    const withdrawn = await apply(orderId, 400);
    unwrap(await stack.call('withdrawRefund', { refundId: withdrawn.refundId }, SHOPPER));
    expect(
      await stack.call('approveRefund', { refundId: withdrawn.refundId, decision: 'approve' }, ADMIN),
    ).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    expect(atWeChat(withdrawn.refundId)).toEqual([]);
  });

  it('is the applicant’s only: another shopper and the merchant are refused, nothing moves', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'sticker'); // 1 fen
    const r = await apply(orderId, 1);
    for (const who of [OTHER, ADMIN]) {
      expect(await stack.call('withdrawRefund', { refundId: r.refundId }, who)).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN' },
      });
    }
    expect(await stack.call('withdrawRefund', { refundId: 'Rnosuchrefund' }, SHOPPER)).toMatchObject({
      ok: false,
      error: { code: 'NOT_FOUND' },
    });
    expect((await refund(stack, r.refundId)).status).toBe('PENDING_REVIEW');
    expect((await order(stack, orderId)).refundReservedFee).toBe(1);
  });

  it('withdraw wins against an approval held before its write: the approval finds it WITHDRAWN and sends nothing', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const r = await apply(orderId, 1200);
    const write = stack.emulator.faults.pause(statusWrite(r.refundId, 'APPROVED'));
    const approving = stack.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN);
    const held = await write.reached();
    const withdrawn = unwrap(await stack.call('withdrawRefund', { refundId: r.refundId }, SHOPPER));
    expect(withdrawn.refund.status).toBe('WITHDRAWN');
    held.release();
    const approved = unwrap(await approving);
    expect(approved.refund.status).toBe('WITHDRAWN');
    expect(atWeChat(r.refundId)).toEqual([]);
    const doc = await order(stack, orderId);
    expect(doc).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0, refundedFee: 0 });
    expect(doc.refundBook[r.refundId]?.state).toBe('released');
  });

  it('approve wins against a withdrawal held before its write: the withdrawal is refused and the money goes out once', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const r = await apply(orderId, 1300);
    const write = stack.emulator.faults.pause(statusWrite(r.refundId, 'WITHDRAWN'));
    const withdrawing = stack.call('withdrawRefund', { refundId: r.refundId }, SHOPPER);
    const held = await write.reached();
    const approved = unwrap(
      await stack.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN),
    );
    expect(approved.refund.status).toBe('PROCESSING');
    held.release();
    expect(await withdrawing).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    expect((await order(stack, orderId)).refundBook[r.refundId]?.state).toBe('reserved');

    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    expect((await refund(stack, r.refundId)).status).toBe('SUCCESS');
    const doc = await order(stack, orderId);
    expect(doc).toMatchObject({ refundReservedFee: 0, refundedFee: 1300, refundUsedFee: 1300 });
    expect(doc.refundBook[r.refundId]?.state).toBe('settled');
    expect(atWeChat(r.refundId)).toHaveLength(1);
    expect(await eventsOf(r.refundId)).not.toContain(`${r.refundId}:WITHDRAWN`);
  });
});
