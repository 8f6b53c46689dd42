/**
 * Races that happen in production at once: WeChat's duplicate and out-of-order notifies,
 * refund applications racing each other and the merchant's approval, and reconcile runs
 * overlapping. A payment racing reconcile's close is forced step by step, with database
 * pause points, in order-races.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import type { Stack } from '../../sandbox/stack';
import { ADMIN, newRequestId, testStack, unwrap } from '../integration/support';
import { driveTime, healUntilQuiet, pool, prng, runReconcile, SEED, scaled, summary } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack({
    env: { ORDER_EXPIRE_MINUTES: '5' },
    functionLog: (l) => {
      if (process.env['STACK_LOGS']) console.log(l);
    },
    // Mutation checks point this at a deliberately broken build.
    ...(process.env['RELIABILITY_FUNCTIONS_DIR']
      ? { functionsDir: process.env['RELIABILITY_FUNCTIONS_DIR'] }
      : {}),
  });
});
afterAll(() => stack?.close());

async function newOrder(openid: string, productId = 'chopsticks') {
  return unwrap(await stack.call('createOrder', { items: [{ productId, quantity: 1 }] }, openid));
}

function paidEvents(events: { _id: string }[], id: string) {
  return events.filter((e) => e._id === `${id}:PAID`).length;
}

describe('concurrency', () => {
  it('duplicated and reordered notifies pay each order and finish each refund exactly once', async () => {
    const n = scaled(8, 60);
    stack.simulator.setFaults({ duplicateNotifies: 3, reorderNotifies: true });
    const orders = await Promise.all(Array.from({ length: n }, (_, i) => newOrder(`o_dup_${i}`)));
    for (const o of orders) expect(stack.simulator.pay(o.payment as never).errMsg).toBe('requestPayment:ok');
    stack.simulator.setFaults({ reorderNotifies: false });
    await stack.simulator.flushNotifies();
    await runReconcile(stack);
    const refunds = await Promise.all(
      orders.map(async (o, i) => {
        const r = unwrap(
          await stack.call(
            'applyRefund',
            { orderId: o.orderId, refundFee: 700, reason: 'dup', requestId: newRequestId() },
            `o_dup_${i}`,
          ),
        );
        unwrap(
          await stack.call('approveRefund', { refundId: r.refund.refundId, decision: 'approve' }, ADMIN),
        );
        return r.refund.refundId;
      }),
    );
    stack.simulator.setFaults({ reorderNotifies: true });
    stack.simulator.settleRefunds();
    stack.simulator.setFaults({ reorderNotifies: false, duplicateNotifies: 0 });
    await stack.simulator.flushNotifies();
    await new Promise((r) => setTimeout(r, 100));
    await stack.simulator.flushNotifies();

    const events = await stack.db.all<{ _id: string }>('payment_events');
    let doubled = 0;
    for (const o of orders) {
      const doc = (await stack.db.get<OrderDoc>('orders', o.orderId))!;
      expect(doc).toMatchObject({ status: 'PAID', refundedFee: 700, refundReservedFee: 0 });
      if (paidEvents(events, o.orderId) !== 1) doubled++;
    }
    for (const id of refunds) {
      expect((await stack.db.get<RefundDoc>('refunds', id))!.status).toBe('SUCCESS');
      if (events.filter((e) => e._id === `${id}:SUCCESS`).length !== 1) doubled++;
    }
    const notifies = stack.simulator.notifies();
    summary('duplicate-reorder', {
      orders: n,
      refunds: refunds.length,
      'notifies delivered': notifies.length,
      duplicates: notifies.filter((x) => x.duplicate).length,
      'doubled or lost': doubled,
    });
    expect(doubled).toBe(0);
  });

  it('racing refund applications, reviews and three reconcile runs never refund more than was paid', async () => {
    const rand = prng(SEED + 3);
    const n = scaled(4, 30);
    let applications = 0;
    let reviews = 0;
    const orderIds: string[] = [];
    for (let i = 0; i < n; i++) {
      const openid = `o_refund_race_${i}`;
      const o = await newOrder(openid, 'tea-longjing');
      stack.simulator.pay(o.payment as never);
      orderIds.push(o.orderId);
    }
    await stack.simulator.flushNotifies();
    // A timeout on some refund calls leaves APPROVED refunds for reconcile to pick up.
    stack.simulator.setFaults({ timeoutRate: { '/secapi/pay/refund': 0.3 } });
    await pool(
      4,
      orderIds.map((orderId, i) => async () => {
        const openid = `o_refund_race_${i}`;
        const applied = await Promise.all(
          Array.from({ length: 8 }, () =>
            stack.call(
              'applyRefund',
              {
                orderId,
                refundFee: 500 + Math.floor(rand() * 2500),
                reason: 'race',
                requestId: newRequestId(),
              },
              openid,
            ),
          ),
        );
        applications += applied.length;
        await Promise.all(
          applied.flatMap((a) =>
            a.ok
              ? Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
                  reviews++;
                  const decision = rand() < 0.8 ? 'approve' : 'reject';
                  return stack.call('approveRefund', { refundId: a.data.refund.refundId, decision }, ADMIN);
                })
              : [],
          ),
        );
      }),
    );
    stack.simulator.setFaults({ timeoutRate: 0 });
    await driveTime(stack);
    await Promise.all([runReconcile(stack), runReconcile(stack), runReconcile(stack)]);
    await healUntilQuiet(stack);

    const ledger = stack.simulator.ledger();
    let problems = 0;
    for (const orderId of orderIds) {
      const o = (await stack.db.get<OrderDoc>('orders', orderId))!;
      const rs = await stack.db.all<RefundDoc>('refunds', { orderId });
      const success = rs.filter((r) => r.status === 'SUCCESS').reduce((s, r) => s + r.refundFee, 0);
      const atWx = ledger.refunds
        .filter((w) => w.outTradeNo === orderId)
        .reduce((s, w) => s + w.refundFee, 0);
      const active = rs.filter((r) => r.status !== 'REJECTED').reduce((s, r) => s + r.refundFee, 0);
      if (
        success > o.totalFee ||
        atWx > o.totalFee ||
        o.refundedFee !== success ||
        o.refundUsedFee !== active
      )
        problems++;
      if (o.refundUsedFee > o.totalFee) problems++;
      for (const r of rs) if (['APPROVED', 'PROCESSING'].includes(r.status)) problems++;
      if (
        rs.some(
          (r) => r.submitAttempts > 1 && ledger.refunds.filter((w) => w.outRefundNo === r._id).length > 1,
        )
      )
        problems++;
    }
    summary('refund-races', {
      orders: n,
      applications,
      reviews,
      'reconcile runs at once': 3,
      'over-refunds or mismatches': problems,
    });
    expect(problems).toBe(0);
  });
});
