import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderName } from '../../cloudfunctions/shared/providers/port';
import type { Stack } from '../../sandbox/stack';
import { buildFunctions, type SdkMode } from '../../scripts/build';
import { ADMIN, buyAndPay, events, newRequestId, order, refund, SHOPPER, testStack, unwrap } from './support';

// Every suite runs the default build (wx-server-sdk bundled in); this file also runs the
// external one (wx-server-sdk from node_modules, as after CloudBase's install), so both stay
// correct.
let externalDir: string | undefined;
async function functionsDir(sdk: SdkMode): Promise<string | undefined> {
  if (sdk === 'bundled') return undefined;
  if (!externalDir) {
    externalDir = mkdtempSync(join(tmpdir(), 'external-build-'));
    await buildFunctions({ out: externalDir, sdk: 'external' });
  }
  return externalDir;
}
afterAll(() => {
  if (externalDir) rmSync(externalDir, { recursive: true, force: true });
});

/** What differs by provider, as the shopper's phone and the trade log see it. */
const SEEN: Record<ProviderName, { totalField: string; notifyStatus: number | undefined }> = {
  v2: { totalField: 'total_fee', notifyStatus: 200 },
  v3: { totalField: 'amount.total', notifyStatus: 204 },
  // cloudPay's callbacks are function invocations answered {errcode: 0}: no HTTP status.
  cloudpay: { totalField: 'totalFee', notifyStatus: undefined },
};

for (const [sdk, signType, provider] of [
  ['bundled', 'MD5', 'v2'],
  ['bundled', 'HMAC-SHA256', 'v2'],
  ['external', 'MD5', 'v2'],
  ['external', 'HMAC-SHA256', 'v2'],
  ['bundled', 'RSA', 'v3'],
  ['bundled', 'MD5', 'cloudpay'],
] as const) {
  describe(`the whole flow on ${provider} with ${signType}, wx-server-sdk ${sdk}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      const dir = await functionsDir(sdk);
      stack = await testStack({
        provider,
        ...(provider === 'v2' ? { signType } : {}),
        ...(dir ? { functionsDir: dir } : {}),
      });
    });
    afterAll(() => stack?.close());

    it('create → pay → notify → PAID → apply → approve → refund notify → SUCCESS', async () => {
      const products = unwrap(await stack.call('listProducts', {}, SHOPPER));
      expect(products.items.map((p) => p.id)).toContain('mooncake-box');
      expect(products.items.map((p) => p.id)).not.toContain('retired-mug');

      const created = unwrap(
        await stack.call('createOrder', { items: [{ productId: 'mooncake-box', quantity: 2 }] }, SHOPPER),
      );
      expect(created.totalFee).toBe(25600);
      expect(created.payment.signType).toBe(signType);
      expect(Object.keys(created.payment).sort()).toEqual([
        'nonceStr',
        'package',
        'paySign',
        'signType',
        'timeStamp',
      ]);
      expect((await order(stack, created.orderId)).status).toBe('NOTPAY');

      // The simulator checks the paySign exactly as the WeChat client does.
      expect(stack.simulator.pay(created.payment as unknown as Record<string, unknown>)).toEqual({
        errMsg: 'requestPayment:ok',
      });
      await stack.simulator.flushNotifies();
      const paid = unwrap(await stack.call('queryOrder', { orderId: created.orderId }, SHOPPER));
      expect(paid.order).toMatchObject({ status: 'PAID', refundableFee: 25600, payable: false });
      expect(paid.order.transactionId).toMatch(/^\d{28}$/);
      const notify = stack.simulator.notifies().find((n) => n.kind === 'pay');
      expect(notify).toMatchObject({ acknowledged: true });
      expect(notify?.replyStatus).toBe(SEEN[provider].notifyStatus);

      const applied = unwrap(
        await stack.call(
          'applyRefund',
          {
            orderId: created.orderId,
            refundFee: 12800,
            reason: '多买了一盒',
            contact: '13800000000',
            requestId: newRequestId(),
          },
          SHOPPER,
        ),
      );
      expect(applied.refund.status).toBe('PENDING_REVIEW');
      expect((await order(stack, created.orderId)).refundReservedFee).toBe(12800);

      const approved = unwrap(
        await stack.call(
          'approveRefund',
          { refundId: applied.refund.refundId, decision: 'approve', comment: '同意' },
          ADMIN,
        ),
      );
      expect(approved.refund.status).toBe('PROCESSING');

      stack.simulator.settleRefunds(); // at this time scale it may already have settled by itself
      await stack.simulator.flushNotifies();
      const done = await refund(stack, applied.refund.refundId);
      expect(done.status).toBe('SUCCESS');
      const o = await order(stack, created.orderId);
      expect(o).toMatchObject({ refundedFee: 12800, refundReservedFee: 0, refundUsedFee: 12800 });

      const after = unwrap(await stack.call('queryOrder', { orderId: created.orderId }, SHOPPER));
      expect(after.order.refundableFee).toBe(12800);
      expect(after.refunds.map((r) => r.status)).toEqual(['SUCCESS']);

      const log = await events(stack, created.orderId);
      expect(log.map((e) => e.to)).toEqual(['PAID']);
      // The verified facts, in the provider's own words.
      expect(log[0]!.fields[SEEN[provider].totalField]).toBe('25600');
      expect(log[0]!.fields['transaction_id'] ?? log[0]!.fields['transactionId']).toBe(
        paid.order.transactionId,
      );
      expect(JSON.stringify(log)).not.toContain(stack.info.merchant.apiKey);
      if (stack.info.v3) expect(JSON.stringify(log)).not.toContain(stack.info.v3.apiV3Key);
      expect((await order(stack, created.orderId)).provider).toBe(provider);
      const refundLog = await events(stack, applied.refund.refundId);
      expect(refundLog.map((e) => e.to).sort()).toEqual(['PROCESSING', 'SUCCESS']);
      expect((await refund(stack, applied.refund.refundId)).provider).toBe(provider);
    });

    it('pays again with the same prepay_id after a cancelled payment', async () => {
      const first = unwrap(
        await stack.call('createOrder', { items: [{ productId: 'chopsticks', quantity: 1 }] }, SHOPPER),
      );
      expect(
        stack.simulator.pay(first.payment as unknown as Record<string, unknown>, 'CANCEL').errMsg,
      ).toContain('cancel');
      const q = unwrap(await stack.call('queryOrder', { orderId: first.orderId }, SHOPPER));
      expect(q.order).toMatchObject({ status: 'NOTPAY', payable: true });

      const again = unwrap(await stack.call('createOrder', { orderId: first.orderId }, SHOPPER));
      expect(again.payment.package).toBe(first.payment.package);
      expect(again.payment.paySign).not.toBe(first.payment.paySign);
      expect(stack.simulator.pay(again.payment as unknown as Record<string, unknown>).errMsg).toBe(
        'requestPayment:ok',
      );
      await stack.simulator.flushNotifies();
      expect((await order(stack, first.orderId)).status).toBe('PAID');
      const third = await stack.call('createOrder', { orderId: first.orderId }, SHOPPER);
      expect(third).toMatchObject({ ok: false, error: { code: 'ORDER_NOT_PAYABLE' } });
    });

    it('lists the shopper’s orders newest first, paged by cursor', async () => {
      for (let i = 0; i < 3; i++) await buyAndPay(stack, 'o_pager', 'sticker');
      const all = unwrap(await stack.call('listOrders', {}, 'o_pager'));
      expect(all.items).toHaveLength(3);
      expect(all.items.map((o) => o.createdAtMs)).toEqual(
        [...all.items.map((o) => o.createdAtMs)].sort((a, b) => b - a),
      );
      expect(unwrap(await stack.call('listOrders', { status: 'CLOSED' }, 'o_pager')).items).toEqual([]);
      expect(unwrap(await stack.call('listOrders', {}, SHOPPER)).items.every((o) => o.orderId)).toBe(true);
    });
  });
}
