/**
 * A running shop moves from APIv2 to APIv3 (WXPAY_PROVIDER=v3, WXPAY_KEEP_PROVIDERS=v2), the
 * way a merchant does it: new configuration, instances recycled, nothing migrated. Orders made
 * before keep going through APIv2 for good: paid again, notified, refunded, queried by
 * reconcile; new orders go through APIv3. Without APIv2 kept, those orders are refused with a
 * clear configuration error, and cold start names the variables a kept APIv2 still needs.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import { DEFAULT_FAULTS } from '../../sandbox/wxpay';
import {
  ADMIN,
  buyAndPay,
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
  // The simulator speaks both dialects for the same merchant; the functions start on APIv2.
  stack = await testStack({ provider: 'v3', env: { WXPAY_PROVIDER: 'v2' } });
  stack.simulator.setFaults({ ...DEFAULT_FAULTS, refundDelayMs: 3_600_000 });
});
afterAll(() => stack?.close());

const apply = async (orderId: string, refundFee: number) =>
  unwrap(
    await stack.call(
      'applyRefund',
      { orderId, refundFee, reason: '换货', requestId: newRequestId() },
      SHOPPER,
    ),
  ).refund;
const approve = async (refundId: string) =>
  unwrap(await stack.call('approveRefund', { refundId, decision: 'approve' }, ADMIN)).refund;
const reconcile = () => stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' });
/** WeChat's refunds under each API, from its ledger: APIv3's are marked, APIv2's are not. */
const apiOf = (refundId: string) =>
  stack.simulator.ledger().refunds.find((r) => r.outRefundNo === refundId)?.api ?? 'v2';

describe('switching a running shop from APIv2 to APIv3', () => {
  it('keeps every APIv2 order payable again, notified, refunded and reconciled through APIv2', async () => {
    // ---- on APIv2 ----
    const paidEarlier = await buyAndPay(stack); // refunded after the switch
    const unpaid = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    expect(stack.simulator.pay(unpaid.payment as never, 'CANCEL').errMsg).toContain('cancel');
    const pending = await buyAndPay(stack);
    const pendingRefund = await apply(pending, 500); // reviewed after the switch
    const inFlight = await buyAndPay(stack);
    const inFlightRefund = await apply(inFlight, 700);
    expect((await approve(inFlightRefund.refundId)).status).toBe('PROCESSING'); // settles after
    for (const id of [paidEarlier, unpaid.orderId, pending, inFlight])
      expect((await order(stack, id)).provider).toBe('v2');

    // ---- the switch: new configuration, every instance replaced ----
    await stack.runtime.reconfigure({ ...stack.env, WXPAY_PROVIDER: 'v3', WXPAY_KEEP_PROVIDERS: 'v2' });

    // New orders are APIv3's: RSA paySign, JSON notify answered 204. (Two stickers: the same
    // cart as the unpaid order would give that one back, still payable through APIv2.)
    const fresh = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 2 }] }, SHOPPER),
    );
    expect(fresh.payment.signType).toBe('RSA');
    expect(stack.simulator.pay(fresh.payment as never).errMsg).toBe('requestPayment:ok');
    await stack.simulator.flushNotifies();
    expect(await order(stack, fresh.orderId)).toMatchObject({ status: 'PAID', provider: 'v3' });

    // The unpaid APIv2 order is paid again under APIv2, with its own sign type, and its XML
    // notify is still taken.
    const again = unwrap(await stack.call('createOrder', { orderId: unpaid.orderId }, SHOPPER));
    expect(again.payment.signType).toBe(stack.info.merchant.signType);
    expect(again.payment.package).toBe(unpaid.payment.package);
    expect(stack.simulator.pay(again.payment as never).errMsg).toBe('requestPayment:ok');
    await stack.simulator.flushNotifies();
    expect(await order(stack, unpaid.orderId)).toMatchObject({ status: 'PAID', provider: 'v2' });

    // Refunds of APIv2 orders, applied for before or after the switch, go through APIv2.
    const late = await apply(paidEarlier, 1000);
    await passTime(60_000);
    expect((await approve(late.refundId)).status).toBe('PROCESSING');
    expect((await approve(pendingRefund.refundId)).status).toBe('PROCESSING');
    expect(apiOf(late.refundId)).toBe('v2');
    expect(apiOf(pendingRefund.refundId)).toBe('v2');
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    for (const r of [late, pendingRefund, inFlightRefund])
      expect((await refund(stack, r.refundId)).status).toBe('SUCCESS');
    const notifies = stack.simulator.notifies().filter((n) => n.kind === 'refund');
    expect(notifies.every((n) => n.acknowledged)).toBe(true);
    expect(notifies.map((n) => n.transport ?? 'v2').sort()).toEqual(['v2', 'v2', 'v2']);

    // Reconcile asks each refund's own API: an APIv2 refund whose notify is lost is found by
    // APIv2's refundquery, an APIv3 one by APIv3's.
    stack.simulator.setFaults({ dropRefundNotifies: true });
    const v2Lost = await apply(paidEarlier, 100);
    const v3Lost = await apply(fresh.orderId, 1);
    await passTime(60_000);
    await approve(v2Lost.refundId);
    await approve(v3Lost.refundId);
    expect(apiOf(v3Lost.refundId)).toBe('v3');
    stack.simulator.settleRefunds();
    stack.simulator.setFaults({ dropRefundNotifies: false });
    await reconcile();
    expect((await refund(stack, v2Lost.refundId)).status).toBe('SUCCESS');
    expect((await refund(stack, v3Lost.refundId)).status).toBe('SUCCESS');
    expect(await order(stack, paidEarlier)).toMatchObject({ refundedFee: 1100, refundReservedFee: 0 });
  });

  it('without APIv2 kept, an APIv2 order is refused with a configuration error that says what to set', async () => {
    const orderId = await buyAndPay(stack); // made under the configuration of the test above: v3
    const v2Order = (await stack.db.all<{ _id: string }>('orders', { provider: 'v2', status: 'PAID' }))[0]!
      ._id;
    await stack.runtime.reconfigure({ ...stack.env, WXPAY_PROVIDER: 'v3' });
    try {
      const r = await apply(v2Order, 1);
      const refused = await stack.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN);
      expect(refused).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });
      expect(JSON.stringify(refused)).toContain('WXPAY_KEEP_PROVIDERS');
      // Nothing was written or sent: the refund waits for review, its amount still reserved.
      expect((await refund(stack, r.refundId)).status).toBe('PENDING_REVIEW');
      expect(stack.simulator.ledger().refunds.some((w) => w.outRefundNo === r.refundId)).toBe(false);
      // APIv3 orders are unaffected.
      expect((await apply(orderId, 1)).status).toBe('PENDING_REVIEW');
    } finally {
      await stack.runtime.reconfigure({ ...stack.env, WXPAY_PROVIDER: 'v3', WXPAY_KEEP_PROVIDERS: 'v2' });
    }
  });

  it('with APIv2 kept, cold start refuses a configuration that lost its APIv2 key, naming why it is needed', async () => {
    const { WXPAY_API_KEY: _gone, ...rest } = stack.env;
    await stack.runtime.reconfigure({ ...rest, WXPAY_PROVIDER: 'v3', WXPAY_KEEP_PROVIDERS: 'v2' });
    try {
      const r = await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER);
      expect(r).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });
      expect(JSON.stringify(r)).toMatch(/WXPAY_API_KEY is missing.*APIv2 is kept for the orders it made/);
    } finally {
      await stack.runtime.reconfigure({ ...stack.env, WXPAY_PROVIDER: 'v3', WXPAY_KEEP_PROVIDERS: 'v2' });
    }
  });
});

describe('npm start -- --provider v3 on a data folder that took APIv2 orders', () => {
  it('keeps APIv2 for them (WXPAY_KEEP_PROVIDERS, in stack.json) and refunds them through it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'switch-data-'));
    try {
      const before = await testStack({ dataDir });
      let orderId: string;
      try {
        orderId = await buyAndPay(before);
      } finally {
        await before.close();
      }
      const after = await testStack({ dataDir, provider: 'v3' });
      try {
        expect(after.info).toMatchObject({ provider: 'v3', keptProviders: ['v2'] });
        expect(JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8')).keptProviders).toEqual(['v2']);
        expect(after.env['WXPAY_KEEP_PROVIDERS']).toBe('v2');
        const r = unwrap(
          await after.call(
            'applyRefund',
            { orderId, refundFee: 1, reason: 'x', requestId: newRequestId() },
            SHOPPER,
          ),
        ).refund;
        expect(
          unwrap(await after.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN))
            .refund.status,
        ).toBe('PROCESSING');
        after.simulator.settleRefunds();
        await after.simulator.flushNotifies();
        expect((await refund(after, r.refundId)).status).toBe('SUCCESS');
        expect(
          after.simulator.ledger().refunds.find((w) => w.outRefundNo === r.refundId)?.api,
        ).toBeUndefined();
      } finally {
        await after.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
