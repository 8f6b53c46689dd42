// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApproveRefundResult, ListRefundsResult, Result } from '../../cloudfunctions/shared/contract';
import {
  aPaidOrder,
  aRefund,
  buildMiniprogram,
  deferred,
  FakeWx,
  fail,
  ok,
  PageDriver,
  settle,
} from './harness';

let root: string;
let cleanup: () => void;
beforeAll(() => {
  ({ root, cleanup } = buildMiniprogram());
});
afterAll(() => cleanup());

let wx: FakeWx;
beforeEach(() => {
  wx = new FakeWx();
  wx.install();
});

type Item = ListRefundsResult['items'][number];
const pending: Item = { ...aRefund({ refundId: 'r-1', contact: '13800000000' }), order: aPaidOrder() };
const failed: Item = {
  ...aRefund({ refundId: 'r-9', status: 'FAILED', failReason: 'NOTENOUGH 基本账户余额不足' }),
  order: aPaidOrder(),
};

describe('refund review list', () => {
  it('is refused to a non-admin without asking for refunds', async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: 'shopper' });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#denied')).toBe('仅商家管理员可以查看');
    expect(wx.callsOf('listRefunds')).toEqual([]);
  });

  it('lists pending refunds first, with their order, paged', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listRefunds = (e) =>
      e.cursor
        ? ok({ items: [{ ...pending, refundId: 'r-2' }], nextCursor: null })
        : ok({ items: [pending], nextCursor: 'c' });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(wx.callsOf('listRefunds')).toEqual([{ status: 'PENDING_REVIEW' }]);
    expect(page.pageText).toContain('退 ¥19.90');
    expect(page.pageText).toContain('订单 ¥39.80 · 明前龙井 ×2');

    await page.run('onReachBottom');
    expect(wx.callsOf('listRefunds')).toEqual([
      { status: 'PENDING_REVIEW' },
      { status: 'PENDING_REVIEW', cursor: 'c' },
    ]);
    expect(page.count('.refund')).toBe(2);
  });

  it('switches status tabs and shows an empty state', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listRefunds = (e) => ok({ items: e.status === 'FAILED' ? [failed] : [], nextCursor: null });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#empty')).toBe('暂无退款申请');
    await page.tap('.tab', 1);
    expect(wx.callsOf('listRefunds').at(-1)).toEqual({ status: 'FAILED' });
    expect(page.text('.fail-reason')).toBe('微信支付原因：NOTENOUGH 基本账户余额不足');
    expect(page.text('.todo')).toBe('需要您处理');
  });

  it('shows FORBIDDEN from the backend', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listRefunds = () => fail('FORBIDDEN');
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#error')).toContain('没有权限进行此操作');
  });

  it('opens the detail and hands it the refund with its order, then shows the review result', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listRefunds = () => ok({ items: [pending], nextCursor: null });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    await page.tap('.refund');
    expect(wx.navigations).toEqual([{ method: 'navigateTo', url: '/pages/admin-refund/index?refundId=r-1' }]);
    expect(wx.emitted).toEqual([{ event: 'refund', args: [pending] }]);

    await page.run('onUpdated', { ...pending, status: 'PROCESSING' });
    expect(page.text('.refund-status')).toBe('退款中');
  });
});

/** Opens the detail page the way the list does: the refund arrives on the opener channel. */
async function openDetail(item: Item) {
  const page = PageDriver.open(root, 'admin-refund');
  const listeners: Record<string, (arg: unknown) => void> = {};
  const emittedBack: unknown[] = [];
  page.instance['getOpenerEventChannel'] = () => ({
    on: (event: string, fn: (arg: unknown) => void) => {
      listeners[event] = fn;
    },
    emit: (_event: string, arg: unknown) => emittedBack.push(arg),
  });
  await page.run('onLoad', { refundId: item.refundId });
  listeners['refund']?.(item);
  await settle();
  return { page, emittedBack };
}

describe('refund review detail', () => {
  it('shows the refund with its order', async () => {
    const { page } = await openDetail(pending);
    expect(page.text('#refund-status')).toBe('待审核');
    expect(page.pageText).toContain('联系方式：13800000000');
    expect(page.text('#order')).toContain('明前龙井 × 2');
  });

  it('sends one approve call when the button is tapped twice quickly, and shows the result', async () => {
    const answer = deferred<Result<ApproveRefundResult>>();
    wx.backend.approveRefund = () => answer.promise;
    const { page, emittedBack } = await openDetail(pending);
    await page.type('#comment', '同意');
    page.tapNow('#approve');
    page.tapNow('#approve');
    await settle();
    await page.tap('#approve'); // still pending: a third tap is ignored as well
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-1', decision: 'approve', comment: '同意' }]);

    const processing = aRefund({ refundId: 'r-1', status: 'PROCESSING', comment: '同意' });
    answer.resolve(ok({ refund: processing }));
    await settle();
    expect(page.text('#result')).toBe('已同意，微信支付已受理，退款中');
    expect(page.text('#refund-status')).toBe('退款中');
    expect(page.has('#approve')).toBe(false);
    expect(emittedBack).toEqual([processing]);
  });

  it('rejects with the comment, and asks for one first', async () => {
    wx.backend.approveRefund = (e) =>
      ok({ refund: aRefund({ refundId: e.refundId, status: 'REJECTED', comment: e.comment }) });
    const { page } = await openDetail(pending);
    await page.tap('#reject');
    expect(wx.callsOf('approveRefund')).toEqual([]);
    expect(page.text('#error')).toBe('拒绝时请填写说明，用户会看到');

    await page.type('#comment', '商品已使用');
    await page.tap('#reject');
    expect(wx.callsOf('approveRefund')).toEqual([
      { refundId: 'r-1', decision: 'reject', comment: '商品已使用' },
    ]);
    expect(page.text('#result')).toBe('已拒绝该退款申请');
    expect(page.text('#refund-status')).toBe('已拒绝');
  });

  it('shows a FAILED refund with its reason and retries it with approve, or rejects it', async () => {
    wx.backend.approveRefund = () =>
      ok({ refund: { ...failed, status: 'PROCESSING', failReason: undefined } });
    const { page } = await openDetail(failed);
    expect(page.text('#fail-reason')).toBe('微信支付原因：NOTENOUGH 基本账户余额不足');
    expect(page.text('#guide')).toContain('同一退款单号重新发起');
    expect(page.texts('.action')).toEqual(['重新发起退款', '拒绝']);
    await page.tap('#approve');
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-9', decision: 'approve' }]);
    expect(page.text('#result')).toBe('已同意，微信支付已受理，退款中');
    expect(page.has('#fail-reason')).toBe(false);
  });

  it('shows a backend error and lets the merchant try again', async () => {
    wx.backend.approveRefund = () => fail('INVALID_STATE');
    const { page } = await openDetail(pending);
    await page.tap('#approve');
    expect(wx.modals).toEqual([{ title: '操作失败', content: '状态已变化，请刷新后重试' }]);
    expect(page.text('#error')).toBe('状态已变化，请刷新后重试');
    await page.tap('#approve');
    expect(wx.callsOf('approveRefund')).toHaveLength(2);
  });

  it('says where to come from when opened without a refund', async () => {
    const page = PageDriver.open(root, 'admin-refund');
    await page.run('onLoad', {});
    expect(page.text('#missing')).toBe('请从退款审核列表进入');
  });

  it('retries a CLOSED refund as a new refund and shows the link to the old one', async () => {
    const closed: Item = {
      ...aRefund({ refundId: 'r-closed', status: 'CLOSED', failReason: 'REFUNDCLOSE 退款关闭' }),
      order: aPaidOrder(),
    };
    const successor = aRefund({ refundId: 'r-new', status: 'PROCESSING', predecessorId: 'r-closed' });
    wx.backend.approveRefund = () => ok({ refund: successor });
    const { page, emittedBack } = await openDetail(closed);
    expect(page.text('#guide')).toContain('新的退款单号');
    expect(page.texts('.action')).toEqual(['作为新退款重新发起']);
    await page.tap('#approve');
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-closed', decision: 'approve' }]);
    expect(page.text('#result')).toBe('已作为新退款单 r-new 重新发起，微信支付已受理，退款中');
    expect(page.text('#predecessor')).toBe('重试自已关闭的退款单 r-closed');
    expect(page.text('#refund-status')).toBe('退款中');
    expect(emittedBack).toEqual([successor]);
  });

  it('offers nothing more on a CLOSED refund that was already retried, and names its successor', async () => {
    const { page } = await openDetail({
      ...aRefund({ refundId: 'r-closed', status: 'CLOSED', successorId: 'r-new' }),
      order: aPaidOrder(),
    });
    expect(page.text('#successor')).toBe('已重试为新退款单 r-new');
    expect(page.text('#guide')).toContain('r-new');
    expect(page.count('.action')).toBe(0);
    await page.tap('#successor');
    expect(wx.clipboard).toEqual(['r-new']);
  });

  it('tells where to settle an ABNORMAL refund and marks it resolved once, however often tapped', async () => {
    const answer = deferred<Result<ApproveRefundResult>>();
    wx.backend.approveRefund = () => answer.promise;
    const { page } = await openDetail({
      ...aRefund({ refundId: 'r-ab', status: 'ABNORMAL', failReason: 'CHANGE 退款到银行发现用户的卡作废' }),
      order: aPaidOrder(),
    });
    expect(page.text('#guide')).toContain('商户平台 → 交易中心 → 退款 手动处理');
    expect(page.text('#fail-reason')).toBe('微信支付原因：CHANGE 退款到银行发现用户的卡作废');
    expect(page.texts('.action')).toEqual(['标记已处理']);
    page.tapNow('#resolve');
    page.tapNow('#resolve');
    await settle();
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-ab', decision: 'resolve' }]);
    answer.resolve(ok({ refund: aRefund({ refundId: 'r-ab', status: 'SUCCESS' }) }));
    await settle();
    expect(page.text('#result')).toBe('已标记为已处理，退款完成');
    expect(page.count('.action')).toBe(0);
  });

  it('flags a SUCCESS that WeChat paid after the refund was rejected here', async () => {
    const { page } = await openDetail({
      ...aRefund({ status: 'SUCCESS', flag: 'SUCCESS_AFTER_FINAL', flaggedFrom: 'REJECTED' }),
      order: aPaidOrder(),
    });
    expect(page.text('#flag')).toBe(
      '注意：这笔退款在「已拒绝」之后，微信支付仍退款成功；已计入已退金额，请核对',
    );
    expect(page.count('.action')).toBe(0);
  });

  it("shows the history with each attempt's own reason, and only the current reason on top", async () => {
    const t = (m: number) => Date.UTC(2025, 4, 1, 3, m);
    const { page } = await openDetail({
      ...aRefund({
        status: 'SUCCESS',
        history: [
          { atMs: t(0), status: 'PENDING_REVIEW', source: 'apply' },
          { atMs: t(1), status: 'APPROVED', source: 'review', reason: '同意' },
          { atMs: t(2), status: 'FAILED', source: 'refund', reason: 'NOTENOUGH 基本账户余额不足' },
          { atMs: t(9), status: 'APPROVED', source: 'review' },
          { atMs: t(10), status: 'PROCESSING', source: 'refund' },
          { atMs: t(11), status: 'SUCCESS', source: 'refundnotify' },
        ],
      }),
      order: aPaidOrder(),
    });
    expect(page.has('#fail-reason')).toBe(false);
    expect(page.texts('.history-step')).toEqual([
      '待审核 · 顾客申请2025-05-01 11:00',
      '待退款 · 商家审核2025-05-01 11:01同意',
      '退款失败 · 提交微信退款2025-05-01 11:02NOTENOUGH 基本账户余额不足',
      '待退款 · 商家审核2025-05-01 11:09',
      '退款中 · 提交微信退款2025-05-01 11:10',
      '退款完成 · 退款结果通知2025-05-01 11:11',
    ]);
  });
});

describe('refund review list after a retry as a new refund', () => {
  it('puts the new refund on top and links the closed one to it', async () => {
    const closed: Item = { ...aRefund({ refundId: 'r-closed', status: 'CLOSED' }), order: aPaidOrder() };
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listRefunds = () => ok({ items: [closed], nextCursor: null });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.texts('.tab').slice(0, 4)).toEqual(['待审核', '退款失败', '退款关闭', '退款异常']);
    await page.run(
      'onUpdated',
      aRefund({ refundId: 'r-new', status: 'PROCESSING', predecessorId: 'r-closed' }),
    );
    expect(page.texts('.refund-status')).toEqual(['退款中', '退款关闭']);
    expect(page.text('.successor')).toBe('已重试为新退款单 r-new');
    expect(page.text('.predecessor')).toBe('重试自退款单 r-closed');
    expect(page.pageText).toContain('订单 ¥39.80');
  });
});
