import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  events,
  newRequestId,
  order,
  passTime,
  refund,
  SHOPPER,
  testStack,
  unwrap,
} from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack({ env: { WXPAY_TIMEOUT_MS: '600' } });
});
afterAll(() => stack?.close());
beforeEach(() =>
  stack.simulator.setFaults({
    dropPayNotifies: false,
    timeoutRate: 0,
    refundOutcome: 'SUCCESS',
    refundError: null,
    systemErrorRate: 0,
  }),
);

const reconcile = async () =>
  (
    await stack.runtime.invoke(
      'reconcile',
      { Type: 'Timer', TriggerName: 'reconcileEvery5Min', Time: new Date().toISOString() },
      { SOURCE: 'wx_trigger' },
    )
  ).result as Record<string, number>;

describe('faults', () => {
  it('a dropped pay notify is found by reconcile through orderquery', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'tea-longjing', quantity: 1 }] }, SHOPPER),
    );
    expect(stack.simulator.pay(created.payment as unknown as Record<string, unknown>).errMsg).toBe(
      'requestPayment:ok',
    );
    await stack.simulator.flushNotifies();
    expect((await order(stack, created.orderId)).status).toBe('NOTPAY');
    const report = await reconcile();
    expect(report.ordersPaid).toBeGreaterThanOrEqual(1);
    expect((await order(stack, created.orderId)).status).toBe('PAID');
    const log = await events(stack, created.orderId);
    expect(log).toHaveLength(1);
    expect(log[0]!.source).toBe('orderquery');
  });

  it('WeChat timing out during a refund leaves it APPROVED; reconcile completes it with the same out_refund_no', async () => {
    const orderId = await buyAndPay(stack);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 100, reason: 'timeout', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    stack.simulator.setFaults({ timeoutRate: { '/secapi/pay/refund': 1 } });
    const approved = unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    expect(approved.refund.status).toBe('APPROVED');
    stack.simulator.setFaults({ timeoutRate: 0 });
    // Reconcile looks again after its backoff (1 minute, scaled), first asking refundquery.
    await passTime(60_000);
    await reconcile();
    const r = await refund(stack, applied.refund.refundId);
    // Accepted on resubmission; at this time scale WeChat may even have finished it already.
    expect(['PROCESSING', 'SUCCESS']).toContain(r.status);
    expect(r.submitAttempts).toBe(2);
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    expect((await refund(stack, applied.refund.refundId)).status).toBe('SUCCESS');
    expect(
      stack.simulator.ledger().refunds.filter((x) => x.outRefundNo === applied.refund.refundId),
    ).toHaveLength(1);
    expect((await order(stack, orderId)).refundedFee).toBe(100);
  });

  it('a refund that ends in REFUNDCLOSE becomes CLOSED with the reason and keeps its reservation', async () => {
    stack.simulator.setFaults({ refundOutcome: 'REFUNDCLOSE' });
    const orderId = await buyAndPay(stack);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 500, reason: 'closed', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    const r = await refund(stack, applied.refund.refundId);
    expect(r.status).toBe('CLOSED');
    expect(r.failReason).toContain('REFUNDCLOSE');
    // No money moved: the amount stays reserved for the retry (a new refund) or a rejection.
    expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 500, refundedFee: 0 });
  });

  it('a refund that ends in CHANGE (notify dropped) is found by refundquery: ABNORMAL, counted as refunded', async () => {
    stack.simulator.setFaults({ refundOutcome: 'CHANGE', dropRefundNotifies: true });
    const orderId = await buyAndPay(stack);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 500, reason: 'change', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    await reconcile();
    const r = await refund(stack, applied.refund.refundId);
    expect(r.status).toBe('ABNORMAL');
    expect(r.failReason).toContain('CHANGE');
    // The money left the merchant; it just did not reach the shopper's card.
    expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 0, refundedFee: 500 });
    stack.simulator.setFaults({ dropRefundNotifies: false });
  });

  it('NOTENOUGH refuses the refund at once: FAILED with the reason; the admin can retry it later', async () => {
    const orderId = await buyAndPay(stack);
    const applied = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 300, reason: 'balance', requestId: newRequestId() },
        SHOPPER,
      ),
    );
    stack.simulator.setFaults({ refundError: 'NOTENOUGH' });
    const failed = unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    expect(failed.refund.status).toBe('FAILED');
    expect(failed.refund.failReason).toContain('NOTENOUGH');
    stack.simulator.setFaults({ refundError: null });
    // WeChat wants one order's refund calls a minute apart (scaled here).
    await passTime(60_000);
    const retried = unwrap(
      await stack.call('approveRefund', { refundId: applied.refund.refundId, decision: 'approve' }, ADMIN),
    );
    expect(retried.refund.status).toBe('PROCESSING');
  });

  it('SYSTEMERROR on unifiedorder is retried with the same out_trade_no', async () => {
    stack.simulator.setFaults({ systemErrorNext: 1 });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    expect(stack.simulator.ledger().orders.filter((o) => o.outTradeNo === created.orderId)).toHaveLength(1);
  });

  it('two reconcile runs at once do each thing once', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const c = unwrap(
        await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
      );
      stack.simulator.pay(c.payment as unknown as Record<string, unknown>);
      ids.push(c.orderId);
    }
    await Promise.all([reconcile(), reconcile()]);
    for (const id of ids) {
      expect((await order(stack, id)).status).toBe('PAID');
      expect(await events(stack, id)).toHaveLength(1);
    }
  });
});
