/**
 * The refund's exception paths, each as a merchant meets it: WeChat accepting a refund whose
 * answer is lost, closed refunds, rate limits, rejections that die half-way, stale reasons,
 * double taps. Through the real SDK, the emulator, the simulator and the built bundles; each
 * ends by checking the money against WeChat's ledger. Every scenario runs on each provider
 * (APIv2, APIv3, cloudPay): the states and guarantees are the provider's business only in the
 * words WeChat uses.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApproveRefundResult, RefundView } from '../../cloudfunctions/shared/contract';
import type { OrderDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import type { Stack } from '../../sandbox/stack';
import { DEFAULT_FAULTS } from '../../sandbox/wxpay';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  order,
  PROVIDERS,
  passTime,
  ROOMY_LIMITS,
  refund,
  SHOPPER,
  sendRefundNotify,
  testStack,
  unwrap,
  WORDS,
} from './support';

for (const provider of PROVIDERS) {
  describe(`on ${provider}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      // A lost answer costs one WeChat timeout; 1.5 s (a valid production setting) keeps the file fast.
      // One shopper applies for many refunds here; the per-caller limits are tested elsewhere.
      stack = await testStack({ provider, env: { WXPAY_TIMEOUT_MS: '1500', ...ROOMY_LIMITS } });
    });
    afterAll(() => stack?.close());
    beforeEach(() => {
      stack.simulator.setFaults({ ...DEFAULT_FAULTS, refundDelayMs: 3_600_000 });
    });
    const words = WORDS[provider];

    const apply = async (orderId: string, refundFee: number, requestId = newRequestId()) =>
      unwrap(await stack.call('applyRefund', { orderId, refundFee, reason: '不想要了', requestId }, SHOPPER))
        .refund;
    const decide = (refundId: string, decision: 'approve' | 'reject' | 'resolve', comment?: string) =>
      stack.call('approveRefund', { refundId, decision, ...(comment ? { comment } : {}) }, ADMIN);
    const approve = async (refundId: string): Promise<RefundView> =>
      unwrap(await decide(refundId, 'approve')).refund;
    const reconcile = async () =>
      (await stack.runtime.invoke('reconcile', { Type: 'Timer' }, { SOURCE: 'wx_trigger' })).result as Record<
        string,
        number
      >;
    /** WeChat finishes the refund and its notify is delivered. */
    async function wechatSettles(
      refundId: string,
      outcome: 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE' = 'SUCCESS',
    ) {
      expect(stack.simulator.settleRefund(refundId, outcome)).toBe(true);
      await stack.simulator.flushNotifies();
    }

    /** For every order touched: WeChat's money equals ours, and nothing is reserved beyond the total. */
    async function expectBooksMatchWeChat(orderIds: string[]) {
      const ledger = stack.simulator.ledger();
      for (const id of orderIds) {
        const o = await order(stack, id);
        const moved = ledger.refunds
          .filter((w) => w.outTradeNo === id && (w.status === 'SUCCESS' || w.status === 'CHANGE'))
          .reduce((a, w) => a + w.refundFee, 0);
        expect(o.refundedFee, `refunded on ${id}`).toBe(moved);
        expect(o.refundReservedFee + o.refundedFee).toBeLessThanOrEqual(o.totalFee);
        expect(o.refundUsedFee).toBe(o.refundReservedFee + o.refundedFee);
        const paidAtWx = new Set(
          ledger.refunds
            .filter((w) => w.status === 'SUCCESS' || w.status === 'CHANGE')
            .map((w) => w.outRefundNo),
        );
        for (const r of await stack.db.all<RefundDoc>('refunds', { orderId: id })) {
          if (paidAtWx.has(r._id)) expect(['SUCCESS', 'ABNORMAL'], `${r._id}`).toContain(r.status);
        }
      }
    }

    describe('1. a refund WeChat accepted but whose answer was lost', () => {
      it('is found by refundquery before any resubmission, can never be rejected, and is booked once', async () => {
        const orderId = await buyAndPay(stack); // ¥68.00
        const r = await apply(orderId, 6800);
        // WeChat accepts; the answer never comes back.
        stack.simulator.setFaults({ hangAfterEffectRate: { '/secapi/pay/refund': 1 } });
        expect((await approve(r.refundId)).status).toBe('APPROVED');
        // Had it been resubmitted, this definitive refusal would have made it FAILED.
        stack.simulator.setFaults({
          hangAfterEffectRate: 0,
          refundErrorQueue: ['NOTENOUGH'],
          refundErrorOnRepeat: true,
        });
        await passTime(60_000);
        expect((await approve(r.refundId)).status).toBe('PROCESSING');
        expect(await decide(r.refundId, 'reject')).toMatchObject({
          ok: false,
          error: { code: 'INVALID_STATE' },
        });
        await wechatSettles(r.refundId);
        expect((await refund(stack, r.refundId)).status).toBe('SUCCESS');
        // The shopper cannot be paid a second time for the same money.
        expect(
          await stack.call(
            'applyRefund',
            { orderId, refundFee: 1, reason: 'again', requestId: newRequestId() },
            SHOPPER,
          ),
        ).toMatchObject({ ok: false, error: { code: 'REFUND_EXCEEDS_PAID' } });
        expect(stack.simulator.ledger().refunds.filter((w) => w.outTradeNo === orderId)).toHaveLength(1);
        await expectBooksMatchWeChat([orderId]);
      });

      it('a verified SUCCESS for a refund we had rejected is booked, flagged and acknowledged', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 1000);
        expect((await approve(r.refundId)).status).toBe('PROCESSING');
        // Our books say REJECTED with its amount released (what a lost answer used to lead to).
        const _ = stack.db.command;
        await stack.db.raw.collection('refunds').doc(r.refundId).update({ status: 'REJECTED' });
        await stack.db.raw
          .collection('orders')
          .doc(orderId)
          .update({
            [`refundBook.${r.refundId}.state`]: 'released',
            refundReservedFee: _.inc(-1000),
            refundUsedFee: _.inc(-1000),
            refundOpenCount: _.inc(-1),
          });
        await wechatSettles(r.refundId);
        const booked = await refund(stack, r.refundId);
        expect(booked).toMatchObject({
          status: 'SUCCESS',
          flag: 'SUCCESS_AFTER_FINAL',
          flaggedFrom: 'REJECTED',
        });
        expect(
          stack.simulator
            .notifies()
            .filter((n) => n.kind === 'refund')
            .at(-1)?.acknowledged,
        ).toBe(true);
        await expectBooksMatchWeChat([orderId]);
        const admin = unwrap(await stack.call('listRefunds', { status: 'SUCCESS' }, ADMIN)).items.find(
          (x) => x.refundId === r.refundId,
        );
        expect(admin).toMatchObject({ flag: 'SUCCESS_AFTER_FINAL', flaggedFrom: 'REJECTED' });
      });
    });

    describe('2. a refund WeChat closed (REFUNDCLOSE)', () => {
      it('is retried as a new refund with a new out_refund_no that takes over the reservation, once', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 2000);
        await approve(r.refundId);
        await wechatSettles(r.refundId, 'REFUNDCLOSE');
        const closed = await refund(stack, r.refundId);
        expect(closed).toMatchObject({ status: 'CLOSED' });
        expect(closed.failReason).toContain(words.closed);
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 2000, refundedFee: 0 });

        await passTime(60_000);
        // Two admins click retry at once: one successor.
        const [a, b] = await Promise.all([decide(r.refundId, 'approve'), decide(r.refundId, 'approve')]);
        const successors = new Set([unwrap(a).refund.refundId, unwrap(b).refund.refundId]);
        expect(successors.size).toBe(1);
        const successorId = [...successors][0]!;
        expect(successorId).not.toBe(r.refundId);
        const s = await refund(stack, successorId);
        expect(s).toMatchObject({ predecessorId: r.refundId, refundFee: 2000, status: 'PROCESSING' });
        expect((await refund(stack, r.refundId)).successorId).toBe(successorId);
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 2000, refundOpenCount: 1 });
        await wechatSettles(successorId);
        expect((await refund(stack, successorId)).status).toBe('SUCCESS');
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 0, refundedFee: 2000 });
        expect(
          stack.simulator
            .ledger()
            .refunds.filter((w) => w.outTradeNo === orderId)
            .map((w) => w.status),
        ).toEqual(['REFUNDCLOSE', 'SUCCESS']);
        await expectBooksMatchWeChat([orderId]);
      });

      it('can be rejected instead, which frees its amount', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 500);
        await approve(r.refundId);
        await wechatSettles(r.refundId, 'REFUNDCLOSE');
        expect(unwrap(await decide(r.refundId, 'reject', '已线下退款')).refund.status).toBe('REJECTED');
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 0, refundUsedFee: 0 });
        await expectBooksMatchWeChat([orderId]);
      });
    });

    describe('3. rate limits', () => {
      it('FREQUENCY_LIMITED and INVALID_REQ_TOO_MUCH leave the refund APPROVED, and reconcile sends it later', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 300);
        stack.simulator.setFaults({ refundErrorQueue: ['FREQUENCY_LIMITED', 'INVALID_REQ_TOO_MUCH'] });
        const first = unwrap(await decide(r.refundId, 'approve')).refund as ApproveRefundResult['refund'];
        expect(first.status).toBe('APPROVED');
        expect(first.history?.at(-1)?.reason).toContain('FREQUENCY_LIMITED');
        // Not before a minute has passed (scaled): an immediate retry waits its turn.
        expect((await approve(r.refundId)).status).toBe('APPROVED');
        await passTime(60_000);
        await reconcile();
        expect((await refund(stack, r.refundId)).status).toBe('APPROVED');
        await passTime(60_000);
        await reconcile();
        expect((await refund(stack, r.refundId)).status).toBe('PROCESSING');
        expect(stack.simulator.ledger().refunds.filter((w) => w.outRefundNo === r.refundId)).toHaveLength(1);
      });

      it('reconcile sends two approved refunds of one order at least a minute apart', async () => {
        const orderId = await buyAndPay(stack);
        const r1 = await apply(orderId, 100);
        const r2 = await apply(orderId, 200);
        // Both approved while WeChat is unreachable: both wait for reconcile.
        stack.simulator.setFaults({ timeoutRate: { '/secapi/pay/refund': 1 } });
        await Promise.all([approve(r1.refundId), approve(r2.refundId)]);
        stack.simulator.setFaults({ timeoutRate: 0 });
        for (let i = 0; i < 6; i++) {
          await passTime(60_000);
          await reconcile();
        }
        const made = stack.simulator.ledger().refunds.filter((w) => w.outTradeNo === orderId);
        expect(made).toHaveLength(2);
        // The simulator refuses a second one within the minute (FREQUENCY_LIMITED); both went through.
        expect(Math.abs(made[1]!.createdAtMs - made[0]!.createdAtMs)).toBeGreaterThanOrEqual(60);
        // …and the shop never asked too early: WeChat never had to say FREQUENCY_LIMITED.
        for (const id of [r1.refundId, r2.refundId])
          expect(JSON.stringify((await refund(stack, id)).history)).not.toContain('FREQUENCY_LIMITED');
      });
    });

    describe('5. a rejection that dies half-way', () => {
      it('is finished by the next click, or by reconcile, releasing the amount once', async () => {
        const orderId = await buyAndPay(stack);
        const byClick = await apply(orderId, 700);
        const byTimer = await apply(orderId, 800);
        // The rejection's first write happened; its function died before the release.
        for (const id of [byClick.refundId, byTimer.refundId]) {
          await stack.db.raw
            .collection('refunds')
            .doc(id)
            .update({ status: 'REJECTED', nextCheckAtMs: Date.now() });
        }
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 1500 });
        expect(unwrap(await decide(byClick.refundId, 'reject')).refund.status).toBe('REJECTED');
        expect((await order(stack, orderId)).refundReservedFee).toBe(800);
        await reconcile();
        await reconcile();
        expect(await order(stack, orderId)).toMatchObject({
          refundReservedFee: 0,
          refundUsedFee: 0,
          refundCount: 0,
        });
        expect(unwrap(await decide(byClick.refundId, 'reject')).refund.status).toBe('REJECTED');
        expect((await order(stack, orderId)).refundUsedFee).toBe(0);
      });
    });

    describe('8. a double-tapped refund form', () => {
      it('the same requestId makes one refund, however often and however concurrently it is sent', async () => {
        const orderId = await buyAndPay(stack);
        const requestId = newRequestId();
        const results = await Promise.all(
          Array.from({ length: 10 }, () =>
            stack.call('applyRefund', { orderId, refundFee: 1000, reason: '买错了', requestId }, SHOPPER),
          ),
        );
        const ids = new Set(results.map((r) => unwrap(r).refund.refundId));
        expect(ids.size).toBe(1);
        expect(await stack.db.count('refunds', { orderId })).toBe(1);
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 1000, refundCount: 1 });
        // A retry after the first call timed out on the phone: the same refund again.
        expect((await apply(orderId, 1000, requestId)).refundId).toBe([...ids][0]);
        expect(
          await stack.call('applyRefund', { orderId, refundFee: 999, reason: 'x', requestId }, SHOPPER),
        ).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
        expect(
          await stack.call('applyRefund', { orderId, refundFee: 1, reason: 'x' } as never, SHOPPER),
        ).toMatchObject({
          ok: false,
          error: { code: 'INVALID_INPUT' },
        });
      });
    });

    describe('9. reasons', () => {
      it('belong to their attempt: a retried refund drops the old red reason, the history keeps it, the shopper never sees it', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 400);
        stack.simulator.setFaults({ refundErrorQueue: ['NOTENOUGH'] });
        const failed = await approve(r.refundId);
        expect(failed.status).toBe('FAILED');
        expect(failed.failReason).toContain(words.notEnough);
        const shopperView = unwrap(await stack.call('queryOrder', { orderId }, SHOPPER)).refunds[0]!;
        expect(shopperView.status).toBe('FAILED');
        expect(shopperView.failReason).toBeUndefined();
        expect(JSON.stringify(shopperView)).not.toContain('余额');
        await passTime(60_000);
        const retried = await approve(r.refundId);
        expect(retried.status).toBe('PROCESSING');
        expect(retried.failReason).toBeUndefined();
        expect(retried.history?.map((h) => h.status)).toEqual([
          'PENDING_REVIEW',
          'APPROVED',
          'FAILED',
          'APPROVED',
          'PROCESSING',
        ]);
        expect(retried.history?.find((h) => h.status === 'FAILED')?.reason).toContain(words.notEnough);
        const events = await stack.db.all<{ _id: string; fields: Record<string, string> }>('payment_events', {
          refundId: r.refundId,
        });
        expect(events.find((e) => e._id === `${r.refundId}:FAILED`)?.fields['err_code']).toBe(
          words.notEnough,
        );
      });
    });

    describe('10. limits and identity', () => {
      it('rejected applications give their place back; at most five open ones per order', async () => {
        const orderId = await buyAndPay(stack); // 6800 fen
        for (let i = 0; i < 12; i++) {
          const r = await apply(orderId, 1);
          unwrap(await decide(r.refundId, 'reject'));
        }
        expect(await order(stack, orderId)).toMatchObject({
          refundCount: 0,
          refundOpenCount: 0,
          refundUsedFee: 0,
        });
        for (let i = 0; i < 5; i++) await apply(orderId, 1);
        expect(
          await stack.call(
            'applyRefund',
            { orderId, refundFee: 1, reason: 'x', requestId: newRequestId() },
            SHOPPER,
          ),
        ).toMatchObject({ ok: false, error: { code: 'TOO_MANY_OPEN_REFUNDS' } });
      });

      it('records WeChat’s time of payment (time_end), and refuses a caller from another mini-program', async () => {
        const orderId = await buyAndPay(stack);
        const wx = stack.simulator.ledger().orders.find((o) => o.outTradeNo === orderId)!;
        // time_end has whole seconds.
        expect((await order(stack, orderId)).paidAtMs).toBe(Math.floor(wx.paidAtMs! / 1000) * 1000);
        const foreign = await stack.runtime.invoke(
          'createOrder',
          { items: [{ productId: 'sticker', quantity: 1 }] },
          { OPENID: SHOPPER, APPID: 'wx0000000000000000', SOURCE: 'wx_client' },
        );
        expect(foreign.result).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
      });
    });

    describe('ABNORMAL (CHANGE)', () => {
      it('counts as refunded, and the merchant marks it resolved after fixing it on the merchant platform', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 900);
        await approve(r.refundId);
        await wechatSettles(r.refundId, 'CHANGE');
        expect(await refund(stack, r.refundId)).toMatchObject({ status: 'ABNORMAL' });
        expect(await order(stack, orderId)).toMatchObject({ refundReservedFee: 0, refundedFee: 900 });
        expect(await decide(r.refundId, 'reject')).toMatchObject({
          ok: false,
          error: { code: 'INVALID_STATE' },
        });
        const resolved = unwrap(await decide(r.refundId, 'resolve', '已在商户平台退至银行卡')).refund;
        expect(resolved).toMatchObject({ status: 'SUCCESS' });
        expect(resolved.history?.at(-1)).toMatchObject({ status: 'SUCCESS', source: 'resolve' });
        expect(await order(stack, orderId)).toMatchObject({ refundedFee: 900 });
        await expectBooksMatchWeChat([orderId]);
      });
    });

    describe('duplicated and late refund notifies', () => {
      it('a SUCCESS notify replayed after the refund was closed and retried books the money once, flagged (cloudPay: its query decides)', async () => {
        const orderId = await buyAndPay(stack);
        const r = await apply(orderId, 1200);
        await approve(r.refundId);
        await wechatSettles(r.refundId, 'REFUNDCLOSE');
        await passTime(60_000);
        const successorId = (await approve(r.refundId)).refundId;
        // A SUCCESS for the closed one, made with the merchant's keys (WeChat's word wins).
        const late = {
          out_refund_no: r.refundId,
          out_trade_no: orderId,
          refund_fee: 1200,
          total_fee: 6800,
          refund_status: 'SUCCESS' as const,
        };
        // Acknowledged every time: APIv2 and APIv3 book it once; cloudPay's callbacks are unsigned,
        // so queryRefund decides, and WeChat says the refund was closed.
        for (let i = 0; i < 3; i++) expect((await sendRefundNotify(stack, late)).ok).toBe(true);
        const o: OrderDoc = await order(stack, orderId);
        if (provider === 'cloudpay') {
          expect(await refund(stack, r.refundId)).toMatchObject({ status: 'CLOSED' });
          expect((await refund(stack, r.refundId)).flag).toBeUndefined();
          expect(o).toMatchObject({ refundedFee: 0, refundReservedFee: 1200 });
        } else {
          expect(await refund(stack, r.refundId)).toMatchObject({
            status: 'SUCCESS',
            flag: 'SUCCESS_AFTER_FINAL',
          });
          // Booked once; the successor still holds its own reservation.
          expect(o).toMatchObject({ refundedFee: 1200, refundReservedFee: 1200 });
        }
        expect(o.refundBook[successorId]?.state).toBe('reserved');
      });
    });
  });
}
