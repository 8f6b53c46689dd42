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
  ...aRefund({ refundId: 'r-9', status: 'FAILED', failReason: 'REFUNDCLOSE 退款关闭' }),
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
    expect(page.pageText).toContain('失败原因：REFUNDCLOSE 退款关闭');
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

  it('shows a FAILED refund with its reason and retries it with approve', async () => {
    wx.backend.approveRefund = () =>
      ok({ refund: { ...failed, status: 'PROCESSING', failReason: undefined } });
    const { page } = await openDetail(failed);
    expect(page.text('#fail-reason')).toBe('失败原因：REFUNDCLOSE 退款关闭');
    expect(page.has('#approve')).toBe(false);
    await page.tap('#retry-refund');
    expect(wx.callsOf('approveRefund')).toEqual([{ refundId: 'r-9', decision: 'approve' }]);
    expect(page.text('#result')).toBe('已同意，微信支付已受理，退款中');
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
});
