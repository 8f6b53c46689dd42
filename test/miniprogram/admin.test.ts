// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type {
  ApproveRefundResult,
  GetRefundResult,
  ListRefundsResult,
  Result,
} from '../../cloudfunctions/shared/contract';
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
  const page0 = (items: Item[], over: Partial<ListRefundsResult> = {}): Result<ListRefundsResult> =>
    ok({
      items,
      nextCursor: null,
      pendingCount: items.filter((i) => i.status === 'PENDING_REVIEW').length,
      ...over,
    });

  beforeEach(() => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
  });

  it('is refused to a non-admin without asking for refunds', async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: 'shopper' });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#denied')).toBe('仅商家管理员可以查看');
    expect(wx.callsOf('listRefunds')).toEqual([]);
  });

  it('works the pending queue oldest first, with its order, paged', async () => {
    wx.backend.listRefunds = (e) =>
      e.cursor
        ? page0([{ ...pending, refundId: 'r-2' }], { pendingCount: 2 })
        : page0([pending], { nextCursor: 'c', pendingCount: 2 });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(wx.callsOf('listRefunds')).toEqual([{ status: 'PENDING_REVIEW', order: 'oldest' }]);
    expect(page.text('#sort')).toBe('最早申请优先');
    expect(page.pageText).toContain('退 ¥19.90');
    expect(page.pageText).toContain('订单 ¥39.80 · 明前龙井 ×2');

    await page.run('onReachBottom');
    expect(wx.callsOf('listRefunds')).toEqual([
      { status: 'PENDING_REVIEW', order: 'oldest' },
      { status: 'PENDING_REVIEW', order: 'oldest', cursor: 'c' },
    ]);
    expect(page.count('.refund')).toBe(2);
  });

  it('shows how many wait for review, on the tab and above the list, whatever tab is open', async () => {
    wx.backend.listRefunds = (e) =>
      e.status === 'FAILED' ? page0([failed], { pendingCount: 7 }) : page0([], { pendingCount: 7 });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#pending-count')).toBe('7');
    expect(page.pageText).toContain('待审核 7 笔');
    await page.tap('.tab', 1);
    expect(page.text('#pending-count')).toBe('7');
  });

  it('shows how long each pending application has waited', async () => {
    const waiting: Item = { ...pending, createdAtMs: Date.now() - 3 * 3_600_000 - 60_000 };
    wx.backend.listRefunds = () => page0([waiting]);
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('.waited')).toBe('已等待 3 小时');
  });

  it('switches to newest first and back, from the first page each time', async () => {
    wx.backend.listRefunds = () => page0([pending]);
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    await page.tap('#sort');
    expect(page.text('#sort')).toBe('最新申请优先');
    await page.tap('#sort');
    expect(wx.callsOf('listRefunds')).toEqual([
      { status: 'PENDING_REVIEW', order: 'oldest' },
      { status: 'PENDING_REVIEW', order: 'newest' },
      { status: 'PENDING_REVIEW', order: 'oldest' },
    ]);
  });

  it('searches by order number across every state, and clears the search', async () => {
    wx.backend.listRefunds = (e) => (e.orderId === 'o-1001' ? page0([failed]) : page0([pending]));
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    await page.type('#search', ' o-1001 ');
    await page.tap('#search-go');
    expect(wx.callsOf('listRefunds').at(-1)).toEqual({ orderId: 'o-1001', order: 'oldest' });
    expect(page.text('#search-result')).toBe('订单 o-1001 的退款');
    expect(page.texts('.refund-status')).toEqual(['退款失败']);

    await page.tap('#search-clear');
    expect(wx.callsOf('listRefunds').at(-1)).toEqual({ status: 'PENDING_REVIEW', order: 'oldest' });
    expect(page.has('#search-result')).toBe(false);

    await page.type('#search', '订单 1001');
    await page.tap('#search-go');
    expect(page.text('#error')).toContain('订单号由字母、数字');
    expect(wx.callsOf('listRefunds')).toHaveLength(3);
  });

  it('switches status tabs and shows an empty state', async () => {
    wx.backend.listRefunds = (e) => page0(e.status === 'FAILED' ? [failed] : []);
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#empty')).toBe('暂无退款申请');
    await page.tap('.tab', 1);
    expect(wx.callsOf('listRefunds').at(-1)).toEqual({ status: 'FAILED', order: 'oldest' });
    expect(page.text('.fail-reason')).toBe('微信支付原因：NOTENOUGH 基本账户余额不足');
    expect(page.text('.todo')).toBe('需要您处理');
  });

  it('shows FORBIDDEN from the backend', async () => {
    wx.backend.listRefunds = () => fail('FORBIDDEN');
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#error')).toContain('没有权限进行此操作');
  });

  it('opens the detail by refund id, then shows the review result it hands back', async () => {
    wx.backend.listRefunds = () => page0([pending]);
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    await page.tap('.refund');
    expect(wx.navigations).toEqual([{ method: 'navigateTo', url: '/pages/admin-refund/index?refundId=r-1' }]);
    wx.openerEvents[0]?.events['updated']?.({ ...pending, status: 'PROCESSING' });
    await settle();
    expect(page.text('.refund-status')).toBe('退款中');
  });
});

/** Opens the detail page the way a link or a notice does: with the refund id only. */
async function openDetail(item: Item, opener = true) {
  const { order, ...refund } = item;
  wx.backend.getRefund = (e) =>
    e.refundId === item.refundId
      ? ok<GetRefundResult>({ refund, order: order ?? aPaidOrder() })
      : fail('NOT_FOUND');
  wx.backend.refundReasons = () =>
    ok({ apply: [], reject: ['商品已发货，请收货后申请退货退款', '已超过售后期限'] });
  const page = PageDriver.open(root, 'admin-refund');
  const emittedBack = opener ? page.openerChannel() : [];
  await page.run('onLoad', { refundId: item.refundId });
  return {
    page,
    emittedBack: {
      get args() {
        return emittedBack.map((e) => e.args[0]);
      },
    },
  };
}

describe('refund review detail', () => {
  it('loads the refund by its id with its order, as from a link or a notice', async () => {
    const { page } = await openDetail(pending, false);
    expect(wx.callsOf('getRefund')).toEqual([{ refundId: 'r-1' }]);
    expect(page.text('#refund-status')).toBe('待审核');
    expect(page.pageText).toContain('联系方式：13800000000');
    expect(page.text('#order')).toContain('明前龙井 × 2');
    await page.tap('#copy-transaction');
    expect(wx.clipboard).toEqual(['4200000001']);
  });

  it('refreshes from the server on the button and on pull-down', async () => {
    const { page } = await openDetail(pending);
    wx.backend.getRefund = () =>
      ok({ refund: { ...pending, order: undefined, status: 'PROCESSING' }, order: aPaidOrder() });
    await page.tap('#refresh');
    expect(page.text('#refund-status')).toBe('退款中');
    await page.run('onPullDownRefresh');
    expect(wx.callsOf('getRefund')).toHaveLength(3);
    expect(wx.stopPullDownRefreshCount).toBe(1);
  });

  it('says what went wrong when the refund cannot be loaded, and tries again', async () => {
    const page = PageDriver.open(root, 'admin-refund');
    wx.backend.getRefund = () => fail('NOT_FOUND');
    await page.run('onLoad', { refundId: 'r-x' });
    expect(page.text('#load-error')).toContain('订单或退款不存在');
    wx.backend.getRefund = () => ok({ refund: aRefund({ refundId: 'r-x' }), order: aPaidOrder() });
    await page.tap('#retry');
    expect(page.text('#refund-status')).toBe('待审核');
  });

  it('says where to come from when opened without a refund id', async () => {
    const page = PageDriver.open(root, 'admin-refund');
    await page.run('onLoad', {});
    expect(page.text('#load-error')).toContain('请从退款审核列表进入');
    expect(wx.callsOf('getRefund')).toEqual([]);
  });

  it('shows the timeline with the time of each step', async () => {
    const t = (m: number) => Date.UTC(2025, 4, 1, 3, m); // 11:mm Beijing
    const { page } = await openDetail({
      ...aRefund({
        status: 'SUCCESS',
        createdAtMs: t(0),
        reviewedAtMs: t(5),
        submittedAtMs: t(6),
        finishedAtMs: t(20),
      }),
      order: aPaidOrder(),
    });
    expect(page.texts('#timeline .timeline-label')).toEqual(['提交申请', '商家已同意', '退款中', '退款到账']);
    expect(page.texts('#timeline .timeline-at')).toEqual([
      '2025-05-01 11:00',
      '2025-05-01 11:05',
      '2025-05-01 11:06',
      '2025-05-01 11:20',
    ]);
  });

  it('asks for confirmation with the amount before approving, and sends nothing when the merchant says no', async () => {
    wx.backend.approveRefund = () => ok({ refund: aRefund({ refundId: 'r-1', status: 'PROCESSING' }) });
    const { page } = await openDetail(pending);
    wx.modalAnswers.push(false);
    await page.tap('#approve');
    expect(wx.modals).toEqual([
      {
        title: '确认同意退款',
        content: '将 ¥19.90 原路退回给顾客，提交微信支付后无法撤回',
        confirmText: '同意退款',
      },
    ]);
    expect(wx.callsOf('approveRefund')).toEqual([]);
    await page.tap('#approve');
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-1', decision: 'approve' }]);
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
    expect(emittedBack.args).toEqual([processing]);
  });

  it('rejects with a preset comment after confirming it, and asks for a comment first', async () => {
    wx.backend.approveRefund = (e) =>
      ok({ refund: aRefund({ refundId: e.refundId, status: 'REJECTED', comment: e.comment }) });
    const { page } = await openDetail(pending);
    await page.tap('#reject');
    expect(wx.callsOf('approveRefund')).toEqual([]);
    expect(wx.modals).toEqual([]);
    expect(page.text('#error')).toBe('拒绝时请填写说明，用户会看到');

    await page.tap('.preset', 1);
    expect(page.data['comment']).toBe('已超过售后期限');
    await page.tap('#reject');
    expect(wx.modals[0]).toEqual({
      title: '确认拒绝退款',
      content: '拒绝这笔 ¥19.90 的退款，预留金额退回订单。顾客会看到您的说明：已超过售后期限',
      confirmText: '拒绝',
    });
    expect(wx.callsOf('approveRefund')).toEqual([
      { refundId: 'r-1', decision: 'reject', comment: '已超过售后期限' },
    ]);
    expect(page.text('#result')).toBe('已拒绝该退款申请');
    expect(page.text('#refund-status')).toBe('已拒绝');
  });

  it('shows a FAILED refund with its reason and retries it with approve after confirming, or rejects it', async () => {
    wx.backend.approveRefund = () =>
      ok({ refund: { ...failed, order: undefined, status: 'PROCESSING', failReason: undefined } });
    const { page } = await openDetail(failed);
    expect(page.text('#fail-reason')).toBe('微信支付原因：NOTENOUGH 基本账户余额不足');
    expect(page.text('#guide')).toContain('同一退款单号重新发起');
    expect(page.texts('.action')).toEqual(['重新发起退款', '拒绝']);
    await page.tap('#approve');
    expect(wx.modals[0]?.title).toBe('确认重新发起退款');
    expect(wx.modals[0]?.content).toContain('¥19.90');
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-9', decision: 'approve' }]);
    expect(page.text('#result')).toBe('已同意，微信支付已受理，退款中');
    expect(page.has('#fail-reason')).toBe(false);
  });

  it('shows a backend error and lets the merchant try again', async () => {
    wx.backend.approveRefund = () => fail('INVALID_STATE');
    const { page } = await openDetail(pending);
    await page.tap('#approve');
    expect(wx.modals.at(-1)).toEqual({ title: '操作失败', content: '状态已变化，请刷新后重试' });
    expect(page.text('#error')).toBe('状态已变化，请刷新后重试');
    await page.tap('#approve');
    expect(wx.callsOf('approveRefund')).toHaveLength(2);
  });

  it('retries a CLOSED refund as a new refund after confirming, and shows the link to the old one', async () => {
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
    expect(wx.modals[0]?.content).toBe(
      '以新的退款单号向微信支付重新退款 ¥19.90，原路退回顾客，提交后无法撤回',
    );
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-closed', decision: 'approve' }]);
    expect(page.text('#result')).toBe('已作为新退款单 r-new 重新发起，微信支付已受理，退款中');
    expect(page.text('#predecessor')).toBe('重试自已关闭的退款单 r-closed');
    expect(page.text('#refund-status')).toBe('退款中');
    expect(emittedBack.args).toEqual([successor]);
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

  it('tells where to settle an ABNORMAL refund and marks it resolved once after confirming, however often tapped', async () => {
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
    expect(wx.modals[0]?.title).toBe('确认已处理');
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
    wx.backend.listRefunds = () => ok({ items: [closed], nextCursor: null, pendingCount: 0 });
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
