/**
 * The notices of each transition, end to end: the built bundles in the sandbox runtime, the
 * real wx-server-sdk, the CloudBase emulator's subscribeMessage.send and inboxes, the WeChat
 * Pay simulator. The mini-program side (subscribe prompts, acceptances) is played through
 * the emulator's control routes, as the console does.
 *
 * Fault model: duplicate and concurrent pay notifies, concurrent approvals (double clicks,
 * two admins), WeChat refusing a refund and the merchant retrying it, a shopper who refused
 * the subscription, WeChat's subscribe API failing transiently or answering slowly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import type { NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { shapeValue } from '../../cloudfunctions/shared/notices/rules';
import { DEMO_TEMPLATE_IDS as T } from '../../sandbox/notice-templates';
import type { Stack } from '../../sandbox/stack';
import type { InboxMessage } from '../../sandbox/tcb/subscribe';
import { type SubscribeControl, subscribeControl } from '../../sandbox/tcb/subscribe-client';
import {
  ADMIN,
  buyAndPay,
  isSuccessXml,
  newRequestId,
  order,
  passTime,
  payNotifyFor,
  postHttp,
  refund,
  testStack,
  unwrap,
} from '../integration/support';
import { runReconcile } from '../reliability/support';

const ADMIN_TWO = 'o_admin_two';
const ADMINS = [ADMIN, ADMIN_TWO];

let stack: Stack;
let control: SubscribeControl;
beforeAll(async () => {
  stack = await testStack({ env: { ADMIN_OPENIDS: ADMINS.join(',') } });
  control = subscribeControl(stack.info.tcbServiceUrl);
});
afterAll(() => stack?.close());

let seq = 0;
/** A shopper of this test only: acceptances and inboxes never carry over between tests. */
function newShopper(): string {
  return `o_shopper_t${++seq}_${Date.now().toString(36)}`;
}

/** The messages of one template in `openid`'s 服务通知 that concern `id` (an order or refund). */
async function inbox(openid: string, templateId: string, id: string): Promise<InboxMessage[]> {
  return (await control.inbox(openid)).filter(
    (m) => m.templateId === templateId && Object.values(m.data).includes(id),
  );
}

async function notices(where: Record<string, unknown>): Promise<NoticeDoc[]> {
  return stack.db.all<NoticeDoc>('notices', where);
}

async function apply(shopper: string, orderId: string, refundFee: number, reason = '买错了规格') {
  return unwrap(
    await stack.call('applyRefund', { orderId, refundFee, reason, requestId: newRequestId() }, shopper),
  ).refund;
}

describe('exactly once per transition', () => {
  it('50 duplicate pay notifies give each admin one "new order" notice', async () => {
    for (const a of ADMINS) await control.grant(a, T.newOrder, 3);
    const shopper = newShopper();
    stack.simulator.setFaults({ dropPayNotifies: true });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'chopsticks', quantity: 2 }] }, shopper),
    );
    stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
    stack.simulator.setFaults({ dropPayNotifies: false });
    const body = payNotifyFor(stack, {
      out_trade_no: created.orderId,
      total_fee: created.totalFee,
      openid: shopper,
    });

    const replies = await Promise.all(Array.from({ length: 50 }, () => postHttp(stack, '/pay/notify', body)));
    expect(replies.every((r) => r.status === 200 && isSuccessXml(r.text))).toBe(true);
    expect((await order(stack, created.orderId)).status).toBe('PAID');

    for (const admin of ADMINS) {
      const got = await inbox(admin, T.newOrder, created.orderId);
      expect(got).toHaveLength(1);
      expect(got[0]!.text).toBe(
        `新订单通知\n订单编号：${created.orderId}\n商品名称：竹筷五双 Bamboo chopsti…\n订单金额：39.80元\n支付时间：${got[0]!.data['time4']}`,
      );
      expect((await control.acceptances(admin))[T.newOrder]).toBe(2);
    }
    const docs = await notices({ kind: 'order_paid', subject: created.orderId });
    expect(docs.map((d) => [d.touser, d.status, d.attempts]).sort()).toEqual(
      ADMINS.map((a) => [a, 'SENT', 1]).sort(),
    );
  });

  it('20 concurrent approvals give the shopper one "approved" notice', async () => {
    const shopper = newShopper();
    await control.grant(shopper, T.refundReview, 5);
    const orderId = await buyAndPay(stack, shopper, 'chopsticks');
    const applied = await apply(shopper, orderId, 1990);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN),
      ),
    );
    expect(answers.every((a) => a.ok)).toBe(true);

    const got = await inbox(shopper, T.refundReview, orderId);
    expect(got.map((m) => m.data['phrase3'])).toEqual(['已同意']);
    expect(await notices({ kind: 'refund_approved', subject: applied.refundId })).toMatchObject([
      { touser: shopper, status: 'SENT', attempts: 1 },
    ]);
    expect((await control.acceptances(shopper))[T.refundReview]).toBe(4);
  });

  it('a refund that fails, fails again when retried, then succeeds gives one "needs handling" per admin and one "completed"', async () => {
    const shopper = newShopper();
    await control.grant(shopper, T.refundReview, 5);
    await control.grant(shopper, T.refundResult, 5);
    for (const a of ADMINS) await control.grant(a, T.refundAttention, 5);
    const orderId = await buyAndPay(stack, shopper, 'tea-longjing');
    const applied = await apply(shopper, orderId, 6800);
    const approve = () =>
      stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN);

    stack.simulator.setFaults({ refundErrorQueue: ['NOTENOUGH', 'NOTENOUGH'] });
    expect(unwrap(await approve()).refund.status).toBe('FAILED');
    // approveRefund holds no 退款待处理 template (its variables are the certificate's): it left
    // the notice for reconcile, which renders and sends it.
    const left = await notices({ kind: 'refund_attention', deferred: true });
    expect(
      left.filter((d) => d.facts && 'refundId' in d.facts && d.facts.refundId === applied.refundId),
    ).toHaveLength(2);
    await runReconcile(stack);

    await passTime(60_000); // WeChat's minute between refund calls of one order
    expect(unwrap(await approve()).refund.status).toBe('FAILED');
    await runReconcile(stack);
    await passTime(60_000);
    expect(unwrap(await approve()).refund.status).toBe('PROCESSING');
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    expect((await refund(stack, applied.refundId)).status).toBe('SUCCESS');
    await runReconcile(stack);
    await runReconcile(stack);

    for (const admin of ADMINS) {
      const got = await inbox(admin, T.refundAttention, applied.refundId);
      expect(got).toHaveLength(1);
      expect(got[0]!.data).toMatchObject({
        character_string1: applied.refundId,
        amount2: '68.00元',
        phrase3: '退款失败',
        thing4: '基本账户余额不足，请充值后重新发起',
      });
    }
    expect((await inbox(shopper, T.refundResult, orderId)).map((m) => m.data['phrase3'])).toEqual([
      '退款完成',
    ]);
    expect((await inbox(shopper, T.refundReview, orderId)).map((m) => m.data['phrase3'])).toEqual(['已同意']);
    // The shopper never hears WeChat's reason.
    const all = (await control.inbox(shopper)).map((m) => m.text).join('\n');
    expect(all).not.toContain('余额');
  });
});

describe('failures never stop the money', () => {
  it('a shopper who refused the subscription gets nothing; the refund completes and the outbox shows 43101 once', async () => {
    const shopper = newShopper();
    expect(await control.request(shopper, [T.refundReview, T.refundResult], 'reject')).toMatchObject({
      [T.refundReview]: 'reject',
      [T.refundResult]: 'reject',
    });
    const orderId = await buyAndPay(stack, shopper, 'chopsticks');
    const applied = await apply(shopper, orderId, 1990);
    unwrap(await stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN));
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    await runReconcile(stack);
    await passTime(3600_000);
    await runReconcile(stack);

    expect((await refund(stack, applied.refundId)).status).toBe('SUCCESS');
    expect((await order(stack, orderId)).refundedFee).toBe(1990);
    expect(await control.inbox(shopper)).toEqual([]);
    const docs = await notices({ touser: shopper });
    expect(docs.map((d) => [d.kind, d.status, d.errCode, d.attempts, d.failures.length]).sort()).toEqual([
      ['refund_approved', 'FAILED', 43101, 1, 1],
      ['refund_completed', 'FAILED', 43101, 1, 1],
    ]);
  });

  it('a notice whose send fails transiently is delivered by a later reconcile, once', async () => {
    for (const a of ADMINS) await control.grant(a, T.refundApplied, 2);
    const shopper = newShopper();
    const orderId = await buyAndPay(stack, shopper, 'tea-longjing');
    await control.faults({ failNext: 2, errcode: -1, errmsg: 'system error' });
    const applied = await apply(shopper, orderId, 500, '不想要了');
    const pending = await notices({ kind: 'refund_applied', subject: applied.refundId });
    expect(pending.map((d) => [d.status, d.errCode])).toEqual([
      ['PENDING', -1],
      ['PENDING', -1],
    ]);

    await passTime(60_000); // the first retry's wait
    expect(await runReconcile(stack)).toMatchObject({ noticesSent: 2 });
    expect(await runReconcile(stack)).toMatchObject({ noticesSent: 0 });
    for (const admin of ADMINS) {
      const got = await inbox(admin, T.refundApplied, orderId);
      expect(got.map((m) => m.data['thing3'])).toEqual(['不想要了']);
    }
    const sent = await notices({ kind: 'refund_applied', subject: applied.refundId });
    expect(sent.map((d) => [d.status, d.attempts, d.failures.length])).toEqual([
      ['SENT', 2, 1],
      ['SENT', 2, 1],
    ]);
  });

  it('a slow subscribe API does not hold the pay notify reply: it answers within its budget', async () => {
    for (const a of ADMINS) await control.grant(a, T.newOrder, 1);
    const shopper = newShopper();
    stack.simulator.setFaults({ dropPayNotifies: true });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, shopper),
    );
    stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
    stack.simulator.setFaults({ dropPayNotifies: false });
    const body = payNotifyFor(stack, { out_trade_no: created.orderId, total_fee: 1, openid: shopper });
    // Warm instance first, so the time measured is the handler's.
    await postHttp(stack, '/pay/notify', payNotifyFor(stack, { out_trade_no: 'nosuchorder', total_fee: 1 }));
    await control.faults({ delayMs: 3_000 });
    try {
      const started = Date.now();
      const reply = await postHttp(stack, '/pay/notify', body);
      const ms = Date.now() - started;
      expect(isSuccessXml(reply.text)).toBe(true);
      // payNotify has 5 s; a send may take half of what is left before its call deadline.
      expect(ms).toBeLessThan(2_500);
      expect((await order(stack, created.orderId)).status).toBe('PAID');
      // The answer that came after the reply is still recorded by the instance.
      let docs: NoticeDoc[] = [];
      for (let i = 0; i < 100; i++) {
        docs = await notices({ kind: 'order_paid', subject: created.orderId });
        if (docs.every((d) => d.status === 'SENT')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(docs.map((d) => [d.status, d.attempts])).toEqual([
        ['SENT', 1],
        ['SENT', 1],
      ]);
    } finally {
      await control.faults({ delayMs: 0 });
    }
  });
});

describe('what each side hears', () => {
  it('a rejection reaches the shopper with the merchant’s comment, and frees nothing twice', async () => {
    const shopper = newShopper();
    await control.grant(shopper, T.refundReview, 2);
    const orderId = await buyAndPay(stack, shopper, 'chopsticks');
    const applied = await apply(shopper, orderId, 1990);
    for (let i = 0; i < 2; i++) {
      unwrap(
        await stack.call(
          'approveRefund',
          { refundId: applied.refundId, decision: 'reject', comment: '商品已拆封\n不支持退款' },
          ADMIN,
        ),
      );
    }
    const got = await inbox(shopper, T.refundReview, orderId);
    expect(got.map((m) => [m.data['phrase3'], m.data['thing4']])).toEqual([
      ['已拒绝', '商品已拆封 不支持退款'],
    ]);
  });

  it('WeChat closing a refund tells the admins and the shopper; retried, it completes with one more notice', async () => {
    const shopper = newShopper();
    await control.grant(shopper, T.refundResult, 3);
    await control.grant(shopper, T.refundReview, 3);
    for (const a of ADMINS) await control.grant(a, T.refundAttention, 3);
    const orderId = await buyAndPay(stack, shopper, 'chopsticks');
    const applied = await apply(shopper, orderId, 1990);
    unwrap(await stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN));
    expect(stack.simulator.settleRefund(applied.refundId, 'REFUNDCLOSE')).toBe(true);
    await stack.simulator.flushNotifies();
    expect((await refund(stack, applied.refundId)).status).toBe('CLOSED');

    await passTime(60_000);
    const retried = unwrap(
      await stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN),
    );
    const successorId = (await refund(stack, applied.refundId)).successorId!;
    expect(retried.refund.refundId).toBe(successorId);
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    await runReconcile(stack);

    expect((await inbox(shopper, T.refundResult, orderId)).map((m) => m.data['phrase3'])).toEqual([
      '退款关闭',
      '退款完成',
    ]);
    for (const admin of ADMINS) {
      const got = await inbox(admin, T.refundAttention, applied.refundId);
      expect(got.map((m) => [m.data['phrase3'], m.data['thing4']])).toEqual([
        ['退款关闭', '微信关闭了退款，未退回资金，可重新发起'],
      ]);
    }
  });

  it('an ABNORMAL refund needs the merchant; marked resolved, the shopper hears it completed', async () => {
    const shopper = newShopper();
    await control.grant(shopper, T.refundResult, 2);
    for (const a of ADMINS) await control.grant(a, T.refundAttention, 2);
    const orderId = await buyAndPay(stack, shopper, 'chopsticks');
    const applied = await apply(shopper, orderId, 1990);
    unwrap(await stack.call('approveRefund', { refundId: applied.refundId, decision: 'approve' }, ADMIN));
    stack.simulator.settleRefund(applied.refundId, 'CHANGE');
    await stack.simulator.flushNotifies();
    expect((await refund(stack, applied.refundId)).status).toBe('ABNORMAL');
    for (const admin of ADMINS) {
      const got = await inbox(admin, T.refundAttention, applied.refundId);
      expect(got.map((m) => m.data['phrase3'])).toEqual(['退款异常']);
    }
    expect(await inbox(shopper, T.refundResult, orderId)).toEqual([]);

    unwrap(
      await stack.call(
        'approveRefund',
        { refundId: applied.refundId, decision: 'resolve', comment: '已线下转账' },
        ADMIN,
      ),
    );
    await runReconcile(stack);
    expect((await inbox(shopper, T.refundResult, orderId)).map((m) => m.data['phrase3'])).toEqual([
      '退款完成',
    ]);
  });

  it('a long product name with emoji reaches the merchant cut to its field, never refused by WeChat', async () => {
    await stack.db.raw.collection('products').add({
      _id: 'gift-box-emoji',
      name: '🎁🎁 中秋特惠 广式月饼礼盒 Mooncakes 八只装',
      priceFen: 100,
      image: '',
      onSale: true,
      sort: 99,
    });
    for (const a of ADMINS) await control.grant(a, T.newOrder, 1);
    const shopper = newShopper();
    const orderId = await buyAndPay(stack, shopper, 'gift-box-emoji', 3);
    const [msg] = await inbox(ADMIN, T.newOrder, orderId);
    expect(msg!.data['thing2']).toBe('🎁🎁 中秋特惠 广式月饼礼盒 Mo…');
    expect(msg!.data['thing2']!.length).toBe(20);
    expect(msg!.data['amount3']).toBe('3.00元');
  });
});

describe('the daily bill check', () => {
  it('tells every admin once per day that it found differences, however often the day is checked', async () => {
    for (const a of ADMINS) await control.grant(a, T.billMismatch, 3);
    const shopper = newShopper();
    const orderId = await buyAndPay(stack, shopper, 'chopsticks');
    const paid = await order(stack, orderId);
    // An amount edited in the database: a difference the check reports and leaves to a person.
    await stack.db.raw
      .collection('orders')
      .doc(orderId)
      .update({ totalFee: paid.totalFee + 1 });
    const billDate = billDateOf(Date.now());
    // WeChat's clock at 10:30 tomorrow, when today's bill exists.
    stack.simulator.setClockOffset(dayStartMs(billDate)! + 34.5 * 3600_000 - Date.now());
    try {
      const first = unwrap(await stack.call('runBillCheck', { date: billDate }, ADMIN)).check;
      expect(first.discrepancyCount).toBeGreaterThanOrEqual(1);
      unwrap(await stack.call('runBillCheck', { date: billDate }, ADMIN));
      for (const admin of ADMINS) {
        const got = (await control.inbox(admin)).filter((m) => m.templateId === T.billMismatch);
        expect(got.map((m) => m.data)).toEqual([
          {
            date1: shapeValue('date', { kind: 'date', ms: dayStartMs(billDate)! }),
            number2: String(first.discrepancyCount),
            thing3: '请在控制台查看对账差异',
          },
        ]);
      }
      expect(await notices({ kind: 'bill_mismatch' })).toHaveLength(ADMINS.length);
    } finally {
      stack.simulator.setClockOffset(0);
    }
  });
});
