import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  order,
  ROOMY_LIMITS,
  refund,
  SHOPPER,
  testStack,
  unwrap,
} from './support';

let stack: Stack;
beforeAll(async () => {
  // 20 concurrent applications of one shopper: the per-caller limit would refuse half.
  stack = await testStack({ env: ROOMY_LIMITS });
});
afterAll(() => stack?.close());

describe('refund races', () => {
  it('concurrent applications never reserve more than was paid', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing'); // 6800 fen
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        stack.call(
          'applyRefund',
          { orderId, refundFee: 2000 + i, reason: 'race', requestId: newRequestId() },
          SHOPPER,
        ),
      ),
    );
    const ok = results.filter((r) => r.ok);
    const refused = results.filter((r) => !r.ok);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(ok.length).toBeLessThanOrEqual(3);
    for (const r of refused) expect(r).toMatchObject({ ok: false, error: { code: 'REFUND_EXCEEDS_PAID' } });
    const o = await order(stack, orderId);
    const reservedSum = ok.reduce((s, r) => s + (r.ok ? r.data.refund.refundFee : 0), 0);
    expect(o.refundReservedFee).toBe(reservedSum);
    expect(o.refundUsedFee).toBeLessThanOrEqual(o.totalFee);
    expect(await stack.db.count('refunds', { orderId })).toBe(ok.length);
  });

  it('20 concurrent approvals of one refund make one refund request to WeChat', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'chopsticks');
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 1990, reason: 'double click', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    const refundId = applied.refund.refundId;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => stack.call('approveRefund', { refundId, decision: 'approve' }, ADMIN)),
    );
    expect(answers.every((a) => a.ok)).toBe(true);
    const r = await refund(stack, refundId);
    expect(r.status).toBe('PROCESSING');
    expect(r.submitAttempts).toBe(1);
    expect(stack.simulator.ledger().refunds.filter((x) => x.outRefundNo === refundId)).toHaveLength(1);
  });

  it('reject releases the reservation, and a rejected refund cannot be approved', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'sticker');
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 1, reason: 'no', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    const rejected = unwrap(
      await stack.call(
        'approveRefund',
        { refundId: applied.refund.refundId, decision: 'reject', comment: '已发货' },
        ADMIN,
      ),
    );
    expect(rejected.refund).toMatchObject({ status: 'REJECTED', comment: '已发货' });
    expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0 });
    // A second reject (double click) releases nothing more.
    unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'reject' }, ADMIN),
    );
    expect((await order(stack, orderId)).refundUsedFee).toBe(0);
    const approve = await stack.call(
      'approveRefund',
      { refundId: applied.refund.refundId, decision: 'approve' },
      ADMIN,
    );
    expect(approve).toMatchObject({ ok: false, error: { code: 'INVALID_STATE' } });
    // The amount can be applied for again.
    unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 1, reason: 'again', requestId: newRequestId() },
        SHOPPER,
      ),
    );
  });

  it('lists refunds for the merchant, newest first, with their orders', async () => {
    const list = unwrap(await stack.call('listRefunds', {}, ADMIN));
    expect(list.items.length).toBeGreaterThan(0);
    expect(list.items[0]!.order?.orderId).toBe(list.items[0]!.orderId);
    expect(list.items[0]!.openid).toBe(SHOPPER);
    const pending = unwrap(await stack.call('listRefunds', { status: 'PENDING_REVIEW' }, ADMIN));
    expect(pending.items.every((r) => r.status === 'PENDING_REVIEW')).toBe(true);
  });
});
