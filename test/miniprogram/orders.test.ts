// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrderView, RefundView } from '../../cloudfunctions/shared/contract';
import {
  anOrder,
  aPaidOrder,
  aRefund,
  buildMiniprogram,
  FakeWx,
  fail,
  ok,
  PAYMENT,
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

describe('my orders', () => {
  it('pages with nextCursor on reaching the bottom and shows amounts in yuan', async () => {
    wx.backend.listOrders = (e) =>
      e.cursor === 'c2'
        ? ok({ items: [anOrder({ orderId: 'o-2', totalFee: 1 })], nextCursor: null })
        : ok({ items: [aPaidOrder({ orderId: 'o-1' })], nextCursor: 'c2' });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.count('.order')).toBe(1);
    expect(page.pageText).toContain('已支付');
    expect(page.pageText).toContain('¥39.80');

    await page.run('onReachBottom');
    expect(wx.callsOf('listOrders')).toEqual([{}, { cursor: 'c2' }]);
    expect(page.count('.order')).toBe(2);
    expect(page.pageText).toContain('¥0.01');
    expect(page.text('#end')).toBe('没有更多了');
  });

  it('filters by status from the tabs and starts again from the first page', async () => {
    wx.backend.listOrders = (e) =>
      ok({ items: e.status === 'NOTPAY' ? [anOrder()] : [aPaidOrder(), anOrder()], nextCursor: null });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.count('.order')).toBe(2);

    await page.tap('.tab', 1);
    expect(wx.callsOf('listOrders')).toEqual([{}, { status: 'NOTPAY' }]);
    expect(page.count('.order')).toBe(1);
    expect(page.pageText).toContain('待支付');
  });

  it('drops the answer for a tab the shopper already left', async () => {
    let release: (() => void) | undefined;
    wx.backend.listOrders = (e) => {
      if (e.status === 'PAID') return ok({ items: [aPaidOrder({ orderId: 'paid-1' })], nextCursor: null });
      // The "all" page answers late, after the shopper switched to 已支付.
      return new Promise((r) => {
        release = () => r(ok({ items: [anOrder({ orderId: 'late' })], nextCursor: null }));
      });
    };
    const page = PageDriver.open(root, 'orders');
    void page.run('onLoad', {});
    await page.tap('.tab', 2);
    expect(page.count('.order')).toBe(1);
    release?.();
    await settle();
    const rows = page.data['orders'] as { orderId: string }[];
    expect(rows.map((o) => o.orderId)).toEqual(['paid-1']);
  });

  it('reloads on pull-down and stops the spinner', async () => {
    wx.backend.listOrders = () => ok({ items: [anOrder()], nextCursor: 'more' });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    await page.run('onPullDownRefresh');
    expect(wx.callsOf('listOrders')).toEqual([{}, {}]);
    expect(wx.stopPullDownRefreshCount).toBe(1);
  });

  it('shows an empty state', async () => {
    wx.backend.listOrders = () => ok({ items: [], nextCursor: null });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.text('#empty')).toBe('暂无订单');
  });

  it('shows a backend error on the page', async () => {
    wx.backend.listOrders = () => fail('UNAUTHENTICATED');
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.text('#error')).toContain('登录状态已失效');
  });

  it('opens the order detail with the order id', async () => {
    wx.backend.listOrders = () => ok({ items: [anOrder({ orderId: 'o 1/2' })], nextCursor: null });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    await page.tap('.order');
    expect(wx.navigations).toEqual([
      { method: 'navigateTo', url: '/pages/order-detail/index?orderId=o%201%2F2' },
    ]);
  });
});

describe('order detail', () => {
  let order: OrderView;
  let refunds: RefundView[];
  beforeEach(() => {
    order = anOrder();
    refunds = [];
    wx.backend.queryOrder = () => ok({ order, refunds });
  });

  it('offers pay again for a cancelled payment and pays with {orderId}', async () => {
    // Cancelled at the cashier: the order stays NOTPAY and payable.
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.text('#order-status')).toBe('待支付');
    expect(page.has('#pay-again')).toBe(true);
    expect(page.has('#apply-refund')).toBe(false);

    wx.backend.createOrder = () => ok({ orderId: 'o-1001', totalFee: 3980, payment: PAYMENT });
    wx.onPay = () => {
      order = aPaidOrder();
    };
    await page.tap('#pay-again');

    expect(wx.callsOf('createOrder')).toEqual([{ orderId: 'o-1001' }]);
    expect(wx.payments).toEqual([PAYMENT]);
    expect(wx.calls.map((c) => c.name)).toEqual(['queryOrder', 'createOrder', 'queryOrder', 'queryOrder']);
    expect(wx.toasts).toEqual(['支付成功']);
    expect(page.text('#order-status')).toBe('已支付');
    expect(page.has('#pay-again')).toBe(false);
  });

  it('keeps the order payable when pay again is cancelled too', async () => {
    wx.backend.createOrder = () => ok({ orderId: 'o-1001', totalFee: 3980, payment: PAYMENT });
    wx.paymentErrMsg = 'requestPayment:fail cancel';
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    await page.tap('#pay-again');
    expect(wx.modals[0]?.title).toBe('已取消支付');
    expect(page.has('#pay-again')).toBe(true);
  });

  it('shows why an expired order cannot be paid', async () => {
    wx.backend.createOrder = () => fail('ORDER_EXPIRED');
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    order = anOrder({ status: 'CLOSED', payable: false, closedAtMs: order.expiresAtMs });
    await page.tap('#pay-again');
    expect(wx.payments).toEqual([]);
    expect(wx.modals).toEqual([{ title: '无法支付', content: '订单已过期，请重新下单' }]);
    expect(page.text('#order-status')).toBe('已关闭');
    expect(page.has('#pay-again')).toBe(false);
  });

  it('shows every refund with its Chinese state, progress and comment, newest first', async () => {
    order = aPaidOrder({ refundReservedFee: 1000, refundedFee: 500, refundableFee: 2480 });
    const at = (h: number) => order.createdAtMs + h * 3_600_000;
    refunds = [
      aRefund({ refundId: 'a', status: 'SUCCESS', refundFee: 500, createdAtMs: at(1), finishedAtMs: at(2) }),
      aRefund({ refundId: 'b', status: 'REJECTED', comment: '商品已拆封', createdAtMs: at(3) }),
      aRefund({ refundId: 'c', status: 'FAILED', createdAtMs: at(4) }),
      aRefund({ refundId: 'd', status: 'PROCESSING', createdAtMs: at(5) }),
      aRefund({ refundId: 'e', status: 'APPROVED', createdAtMs: at(6) }),
      aRefund({ refundId: 'f', status: 'PENDING_REVIEW', refundFee: 1000, createdAtMs: at(7) }),
    ];
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });

    expect(page.texts('.refund-status')).toEqual([
      '待审核',
      '待退款',
      '退款中',
      '退款失败',
      '已拒绝',
      '退款完成',
    ]);
    expect(page.text('.refund-comment')).toBe('商家说明：商品已拆封');
    expect(page.texts('.refund-note')).toEqual([
      '商家已同意，等待微信支付受理',
      '退款暂未成功，商家正在处理',
    ]);
    expect(page.count('.step-current')).toBe(3); // pending review, approved, processing
    expect(page.text('#refundable')).toBe('可退金额 ¥24.80');
    expect(page.has('#apply-refund')).toBe(true);
  });

  it.each([
    ['FAILED', '退款失败', '退款暂未成功，商家正在处理', 'NOTENOUGH 基本账户余额不足，请充值后重新发起'],
    ['CLOSED', '退款关闭', '退款未完成，商家正在处理', 'REFUNDCLOSE 退款关闭'],
    ['ABNORMAL', '退款异常', '退款到账遇到问题，商家正在处理', 'CHANGE 退款到银行发现用户的卡作废或者冻结了'],
  ] as const)(
    "shows a %s refund to the shopper as %s with a neutral line, never WeChat's reason",
    async (status, label, line, wechatReason) => {
      order = aPaidOrder({ refundReservedFee: 1000, refundableFee: 2980 });
      // Even if a server slipped the merchant's reason into the shopper's view, it is not shown.
      refunds = [aRefund({ status, failReason: wechatReason })];
      const page = PageDriver.open(root, 'order-detail');
      await page.run('onLoad', { orderId: 'o-1001' });
      expect(page.text('.refund-status')).toBe(label);
      expect(page.text('.refund-note')).toBe(line);
      expect(page.pageText).not.toContain(wechatReason);
      expect(page.pageText).not.toContain(wechatReason.split(' ')[0]);
    },
  );

  it('offers no refund once everything is refunded or reserved', async () => {
    order = aPaidOrder({ refundedFee: 3980, refundableFee: 0 });
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.has('#apply-refund')).toBe(false);
  });

  it('opens the refund form for the order', async () => {
    order = aPaidOrder();
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.text('#no-refunds')).toBe('暂无退款记录');
    await page.tap('#apply-refund');
    expect(wx.navigations).toEqual([
      { method: 'navigateTo', url: '/pages/refund-apply/index?orderId=o-1001' },
    ]);
  });

  it('shows NOT_FOUND from the backend', async () => {
    wx.backend.queryOrder = () => fail('NOT_FOUND');
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'nope' });
    expect(page.text('#error')).toContain('订单或退款不存在');
  });
});
