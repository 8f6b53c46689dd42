// @vitest-environment jsdom
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CancelOrderResult, OrderView, RefundView } from '../../cloudfunctions/shared/contract';
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

  it('filters from the tabs, 待支付 and 售后 included, each from the first page', async () => {
    wx.backend.listOrders = (e) =>
      ok({ items: e.filter === 'payable' ? [anOrder()] : [aPaidOrder(), anOrder()], nextCursor: null });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.texts('.tab')).toEqual(['全部', '待支付', '已支付', '售后', '已关闭']);
    expect(page.count('.order')).toBe(2);

    await page.tap('.tab', 1);
    expect(page.count('.order')).toBe(1);
    expect(page.text('.order-status')).toBe('待支付');
    for (const i of [2, 3, 4]) await page.tap('.tab', i);
    expect(wx.callsOf('listOrders')).toEqual([
      {},
      { filter: 'payable' },
      { status: 'PAID' },
      { filter: 'afterSale' },
      { status: 'CLOSED' },
    ]);
  });

  it('opens on the 售后 tab from a link', async () => {
    wx.backend.listOrders = () => ok({ items: [], nextCursor: null });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', { tab: 'afterSale' });
    expect(wx.callsOf('listOrders')).toEqual([{ filter: 'afterSale' }]);
    expect(page.text('.tab-active')).toBe('售后');
  });

  it('names refund states instead of 已支付: 退款中, 部分退款, 已退款', async () => {
    wx.backend.listOrders = () =>
      ok({
        items: [
          aPaidOrder({ orderId: 'a', refundReservedFee: 1000, refundableFee: 2980 }),
          aPaidOrder({ orderId: 'b', refundedFee: 1000, refundableFee: 2980 }),
          aPaidOrder({ orderId: 'c', refundedFee: 3980, refundableFee: 0 }),
          aPaidOrder({ orderId: 'd' }),
        ],
        nextCursor: null,
      });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.texts('.order-status')).toEqual(['退款中', '部分退款', '已退款', '已支付']);
  });

  it('never shows 待支付 for an order past its window or cancelled, whatever reconcile has done yet', async () => {
    wx.backend.listOrders = () =>
      ok({
        items: [
          anOrder({ orderId: 'late', expiresAtMs: Date.now() - 1000, payable: false }),
          anOrder({ orderId: 'gone', payable: false, cancelledAtMs: Date.now() - 5000 }),
          anOrder({ orderId: 'ok' }),
        ],
        nextCursor: null,
      });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    expect(page.texts('.order-status')).toEqual(['已过期', '已取消', '待支付']);
    expect(page.count('.cancel-order')).toBe(1);
  });

  it('counts down an unpaid order, one row at a time, and turns it 已过期 when time runs out', async () => {
    const expiresAtMs = Date.now() + 90_000;
    wx.backend.listOrders = () =>
      ok({ items: [aPaidOrder({ orderId: 'p' }), anOrder({ orderId: 'u', expiresAtMs })], nextCursor: null });
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    const patches: Record<string, unknown>[] = [];
    const setData = page.instance['setData'] as (d: Record<string, unknown>) => void;
    page.instance['setData'] = function (this: unknown, d: Record<string, unknown>) {
      patches.push(d);
      return setData.call(this, d);
    };
    await page.run('tick', expiresAtMs - 65_000);
    expect(page.text('.countdown')).toBe('剩余 01:05 自动关闭');
    expect(patches.map((p) => Object.keys(p))).toEqual([['orders[1].countdown']]);

    await page.run('tick', expiresAtMs + 1);
    expect(page.texts('.order-status')).toEqual(['已支付', '已过期']);
    expect(page.has('.countdown')).toBe(false);
    expect(page.has('.cancel-order')).toBe(false);
  });

  it('cancels an unpaid order from the list after confirming, without opening it', async () => {
    let cancelled = false;
    wx.backend.listOrders = () => ok({ items: [anOrder({ orderId: 'u' })], nextCursor: null });
    wx.backend.cancelOrder = (e) => {
      cancelled = true;
      return ok<CancelOrderResult>({
        order: anOrder({ orderId: e.orderId, payable: false, cancelledAtMs: Date.now() }),
        outcome: 'CLOSING',
      });
    };
    const page = PageDriver.open(root, 'orders');
    await page.run('onLoad', {});
    wx.modalAnswers.push(false);
    await page.tap('.cancel-order');
    expect(wx.modals[0]?.title).toBe('取消订单');
    expect(cancelled).toBe(false);

    await page.tap('.cancel-order');
    expect(wx.callsOf('cancelOrder')).toEqual([{ orderId: 'u' }]);
    expect(page.text('.order-status')).toBe('已取消');
    expect(wx.toasts).toEqual(['订单已取消']);
    expect(wx.navigations).toEqual([]);
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
    expect(page.count('.timeline-current')).toBe(3); // pending review, approved, processing
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

  it('counts down the time left to pay and stops offering payment when it runs out', async () => {
    order = anOrder({ expiresAtMs: Date.now() + 10 * 60_000 });
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    await page.run('tick', order.expiresAtMs - (29 * 60 + 59) * 1000);
    expect(page.text('#countdown')).toBe('剩余 29:59，超时自动关闭');
    await page.run('tick', order.expiresAtMs - 1000);
    expect(page.text('#countdown')).toBe('剩余 00:01，超时自动关闭');
    await page.run('tick', order.expiresAtMs);
    expect(page.text('#order-status')).toBe('已过期');
    expect(page.has('#countdown')).toBe(false);
    expect(page.has('#pay-again')).toBe(false);
    expect(page.has('#cancel-order')).toBe(false);
  });

  it('cancels an unpaid order after a confirmation naming the amount, and says so', async () => {
    wx.backend.cancelOrder = (e) => {
      order = anOrder({ orderId: e.orderId, payable: false, cancelledAtMs: Date.now() });
      return ok<CancelOrderResult>({ order, outcome: 'CLOSING' });
    };
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    wx.modalAnswers.push(false);
    await page.tap('#cancel-order');
    expect(wx.modals).toEqual([
      {
        title: '取消订单',
        content: '取消后这笔 ¥39.80 的订单不能再支付，商品需重新下单',
        confirmText: '取消订单',
      },
    ]);
    expect(wx.callsOf('cancelOrder')).toEqual([]);

    await page.tap('#cancel-order');
    expect(wx.callsOf('cancelOrder')).toEqual([{ orderId: 'o-1001' }]);
    expect(page.text('#order-status')).toBe('已取消');
    expect(wx.toasts).toEqual(['订单已取消']);
    expect(page.has('#pay-again')).toBe(false);
    expect(page.has('#cancel-order')).toBe(false);
  });

  it('tells the shopper when the payment arrived before the cancel, and shows the order paid', async () => {
    wx.backend.cancelOrder = () => {
      order = aPaidOrder();
      return ok<CancelOrderResult>({ order, outcome: 'PAID' });
    };
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    await page.tap('#cancel-order');
    expect(wx.modals.at(-1)).toEqual({
      title: '订单已支付',
      content: '订单已支付，无法取消；如需退款请申请退款',
    });
    expect(page.text('#order-status')).toBe('已支付');
    expect(page.has('#apply-refund')).toBe(true);
  });

  it('copies the order number and the WeChat transaction number, and offers 联系商家', async () => {
    order = aPaidOrder({ transactionId: '4200000009202605010001' });
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    await page.tap('#copy-order');
    await page.tap('#copy-transaction');
    expect(wx.clipboard).toEqual(['o-1001', '4200000009202605010001']);
    expect(page.text('#contact')).toBe('联系商家');
    // WeChat's customer service conversation (客服消息) opens from the button itself, which
    // simulate renders without its attributes: read the template.
    const wxml = readFileSync(resolve(__dirname, '../../miniprogram/pages/order-detail/index.wxml'), 'utf8');
    expect(wxml).toMatch(/<button id="contact"[^>]*open-type="contact"/);
  });

  it('does not offer a transaction number to copy before the order is paid', async () => {
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.has('#copy-transaction')).toBe(false);
  });

  it('shows each refund’s progress with its times, and where the money goes back', async () => {
    order = aPaidOrder({ refundReservedFee: 1000, refundableFee: 2980 });
    const t = (m: number) => Date.UTC(2025, 4, 1, 3, m); // 11:mm Beijing
    refunds = [
      aRefund({
        status: 'PROCESSING',
        refundFee: 1000,
        createdAtMs: t(0),
        reviewedAtMs: t(3),
        submittedAtMs: t(4),
      }),
    ];
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.texts('.timeline-label')).toEqual(['提交申请', '商家已同意', '退款中', '退款到账']);
    expect(page.texts('.timeline-at')).toEqual([
      '2025-05-01 11:00',
      '2025-05-01 11:03',
      '2025-05-01 11:04',
      '',
    ]);
    expect(page.texts('.timeline-note')).toEqual([
      '微信支付已受理',
      '原路退回：零钱约 20 分钟内到账，银行卡 1–3 个工作日',
    ]);
  });

  it('withdraws a pending application after confirming, and shows the amount refundable again', async () => {
    order = aPaidOrder({ refundReservedFee: 1990, refundableFee: 1990 });
    refunds = [
      aRefund({ refundId: 'r-p', status: 'PENDING_REVIEW' }),
      aRefund({ refundId: 'r-s', status: 'SUCCESS' }),
    ];
    wx.backend.withdrawRefund = (e) => {
      refunds = [aRefund({ refundId: e.refundId, status: 'WITHDRAWN' }), refunds[1]!];
      order = aPaidOrder({ refundableFee: 3980 });
      return ok({ refund: refunds[0]! });
    };
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.count('.withdraw')).toBe(1);

    wx.modalAnswers.push(false);
    await page.tap('.withdraw');
    expect(wx.modals[0]).toEqual({
      title: '撤销退款申请',
      content: '撤销这笔 ¥19.90 的退款申请？撤销后可重新申请',
      confirmText: '撤销',
    });
    expect(wx.callsOf('withdrawRefund')).toEqual([]);

    await page.tap('.withdraw');
    expect(wx.callsOf('withdrawRefund')).toEqual([{ refundId: 'r-p' }]);
    expect(page.texts('.refund-status')[0]).toBe('已撤销');
    expect(page.count('.withdraw')).toBe(0);
    expect(page.text('#refundable')).toBe('可退金额 ¥39.80');
    expect(wx.toasts).toEqual(['已撤销申请']);
  });

  it('shows the refusal when the merchant reviewed the application first', async () => {
    order = aPaidOrder({ refundReservedFee: 1990, refundableFee: 1990 });
    refunds = [aRefund({ refundId: 'r-p', status: 'PENDING_REVIEW' })];
    wx.backend.withdrawRefund = () => {
      refunds = [aRefund({ refundId: 'r-p', status: 'PROCESSING' })];
      return fail('INVALID_STATE');
    };
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    await page.tap('.withdraw');
    expect(wx.modals.at(-1)).toEqual({ title: '撤销失败', content: '状态已变化，请刷新后重试' });
    expect(page.texts('.refund-status')).toEqual(['退款中']);
  });

  it('keeps its bottom bar clear of the home indicator', async () => {
    order = aPaidOrder();
    const page = PageDriver.open(root, 'order-detail');
    await page.run('onLoad', { orderId: 'o-1001' });
    expect(page.has('.bottom-bar.safe-area')).toBe(true);
  });
});
