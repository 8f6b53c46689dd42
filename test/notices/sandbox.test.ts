/**
 * Notices in the assembled sandbox: the built noticeTemplates bundle tells each caller which
 * templates to ask for, the mini-program side accepts them, and a notice sent through the real
 * SDK lands in the inbox the console reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notify } from '../../cloudfunctions/shared/notices/outbox';
import { sdkSubscribeSender } from '../../cloudfunctions/shared/runtime/subscribe';
import { DEMO_TEMPLATE_IDS as T } from '../../sandbox/notice-templates';
import type { Stack } from '../../sandbox/stack';
import { connectSdk } from '../emulator/sdk';
import { ADMIN, SHOPPER, testStack, unwrap } from '../integration/support';
import { noticeDeps, subscribeControl, waitForInbox } from './support';

let stack: Stack;
beforeAll(async () => {
  stack = await testStack();
});
afterAll(() => stack?.close());

describe('noticeTemplates', () => {
  it('offers a shopper the refund templates, each once, and no merchant ones', async () => {
    expect(unwrap(await stack.call('noticeTemplates', {}, SHOPPER))).toEqual({
      shopper: [
        { templateId: T.refundReview, title: '退款审核通过、退款被拒绝' },
        { templateId: T.refundResult, title: '退款完成、退款关闭' },
      ],
      admin: [],
    });
  });

  it('offers an admin the merchant’s templates as well', async () => {
    const { admin } = unwrap(await stack.call('noticeTemplates', {}, ADMIN));
    expect(admin).toEqual([
      { templateId: T.newOrder, title: '新订单' },
      { templateId: T.refundApplied, title: '退款申请' },
      { templateId: T.refundAttention, title: '退款待处理' },
      { templateId: T.billMismatch, title: '对账异常' },
    ]);
  });

  it('refuses a caller without an openid', async () => {
    const out = await stack.runtime.invoke('noticeTemplates', {}, { SOURCE: 'wx_client' });
    expect((out.result as { ok: boolean }).ok).toBe(false);
  });
});

describe('the sandbox’s inboxes', () => {
  it('deliver what the merchant accepted, through the real SDK, as the phone shows it', async () => {
    const control = subscribeControl(stack.info.tcbServiceUrl);
    const { admin } = unwrap(await stack.call('noticeTemplates', {}, ADMIN));
    const prompt = await control.request(
      ADMIN,
      admin.slice(0, 3).map((o) => o.templateId),
    );
    expect(prompt).toMatchObject({ errMsg: 'requestSubscribeMessage:ok', [T.refundApplied]: 'accept' });

    const sdk = connectSdk(stack.info.tcbServiceUrl);
    const deps = noticeDeps({
      db: sdk.db,
      send: sdkSubscribeSender(sdk.cloud),
      now: Date.now,
      admins: [ADMIN],
    });
    const r = await notify(deps, {
      kind: 'refund_applied',
      subject: 'R20250501100000sandbox01',
      data: {
        refundId: 'R20250501100000sandbox01',
        orderId: 'O20250501100000sandbox01',
        refundFee: 6800,
        status: 'PENDING_REVIEW',
        reason: '买错了规格',
        atMs: Date.UTC(2025, 4, 1, 2, 30),
      },
    });
    expect(r).toMatchObject({ written: 1, sent: 1 });

    const inbox = await waitForInbox(control, ADMIN, 1);
    expect(inbox.map((m) => m.text)).toEqual([
      '退款申请通知\n订单编号：O20250501100000sandbox01\n退款金额：68.00元\n退款原因：买错了规格\n申请时间：2025年5月1日 10:30',
    ]);
    // The refund itself opens, loaded by its id.
    expect(inbox[0]!.page).toBe('pages/admin-refund/index?refundId=R20250501100000sandbox01');
    expect(await stack.db.get('notices', `refund_applied:R20250501100000sandbox01:${ADMIN}`)).toMatchObject({
      status: 'SENT',
    });
  });
});

describe('configuration', () => {
  it('answers CONFIG_INVALID, naming the variable, when a notice template is miswritten', async () => {
    const bad = await testStack({ env: { NOTICE_ORDER_PAID: 'short thing1=nothing' } });
    try {
      const out = await bad.call('noticeTemplates', {}, SHOPPER);
      expect(out).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });
      expect(JSON.stringify(out)).toContain('NOTICE_ORDER_PAID must start with the template id');
    } finally {
      await bad.close();
    }
  });
});
