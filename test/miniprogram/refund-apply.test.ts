// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type {
  ApplyRefundEvent,
  ApplyRefundResult,
  OrderView,
  Result,
} from '../../cloudfunctions/shared/contract';
import { AMOUNT_RULE_MESSAGE } from '../../miniprogram/utils/refund-form';
import { REQUEST_ID_PATTERN } from '../../miniprogram/utils/request-id';
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

const A_REQUEST_ID = expect.stringMatching(REQUEST_ID_PATTERN);

let root: string;
let cleanup: () => void;
beforeAll(() => {
  ({ root, cleanup } = buildMiniprogram());
});
afterAll(() => cleanup());

let wx: FakeWx;
let order: OrderView;
beforeEach(() => {
  wx = new FakeWx();
  wx.install();
  // 39.80 paid, 10.00 already refunded, 5.00 pending: 24.80 left.
  order = aPaidOrder({ refundedFee: 1000, refundReservedFee: 500, refundableFee: 2480 });
  wx.backend.queryOrder = () => ok({ order, refunds: [] });
  wx.backend.applyRefund = (e: ApplyRefundEvent) =>
    ok({ refund: aRefund({ orderId: e.orderId, refundFee: e.refundFee, reason: e.reason }) });
});

async function openForm(): Promise<PageDriver> {
  const page = PageDriver.open(root, 'refund-apply');
  await page.run('onLoad', { orderId: 'o-1001' });
  return page;
}

describe('refund application form', () => {
  it('shows the refundable rest from the server', async () => {
    const page = await openForm();
    expect(wx.callsOf('queryOrder')).toEqual([{ orderId: 'o-1001' }]);
    expect(page.text('#refundable')).toBe('¥24.80');
  });

  it('refuses an amount above the refundable rest without sending anything', async () => {
    const page = await openForm();
    await page.type('#amount', '24.81');
    await page.type('#reason', '不想要了');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([]);
    expect(page.text('#form-error')).toBe('退款金额不能超过可退金额 ¥24.80');
  });

  it.each([
    ['', '请输入退款金额'],
    ['0', '退款金额需大于 0'],
    ['1.005', AMOUNT_RULE_MESSAGE],
    ['.5', AMOUNT_RULE_MESSAGE],
    ['5.', AMOUNT_RULE_MESSAGE],
    ['abc', AMOUNT_RULE_MESSAGE],
  ])('refuses amount %j with %s and sends nothing', async (amount, message) => {
    const page = await openForm();
    await page.type('#amount', amount);
    await page.type('#reason', '不想要了');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([]);
    expect(page.text('#form-error')).toBe(message);
  });

  it('requires a reason', async () => {
    const page = await openForm();
    await page.type('#amount', '1');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([]);
    expect(page.text('#form-error')).toBe('请填写退款原因');
  });

  it('sends a valid amount as integer fen and goes back', async () => {
    const page = await openForm();
    await page.type('#amount', '1.13'); // 1.13 * 100 is 112.99999999999999 in floats
    await page.type('#reason', ' 尺码不合适 ');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      { orderId: 'o-1001', refundFee: 113, reason: '尺码不合适', requestId: A_REQUEST_ID },
    ]);
    expect(wx.toasts).toEqual(['已提交，等待商家审核']);
    expect(wx.navigations).toEqual([{ method: 'navigateBack', url: '' }]);
  });

  it('fills the whole refundable rest and sends contact when given', async () => {
    const page = await openForm();
    await page.tap('#fill-all');
    await page.type('#reason', '质量问题');
    await page.type('#contact', '13800000000');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      {
        orderId: 'o-1001',
        refundFee: 2480,
        reason: '质量问题',
        contact: '13800000000',
        requestId: A_REQUEST_ID,
      },
    ]);
  });

  it('shows the backend refusal and reloads the rest when it changed meanwhile', async () => {
    const page = await openForm();
    wx.backend.applyRefund = () => fail('REFUND_EXCEEDS_PAID');
    order = { ...order, refundReservedFee: 2980, refundableFee: 0 };
    await page.type('#amount', '20');
    await page.type('#reason', '不想要了');
    await page.tap('#submit');
    expect(wx.modals).toEqual([{ title: '提交失败', content: '退款金额超过可退金额' }]);
    expect(page.text('#form-error')).toBe('退款金额超过可退金额');
    expect(wx.navigations).toEqual([]);
    expect(page.text('#refundable')).toBe('¥0.00');
    expect(page.text('#nothing-left')).toBe('该订单暂无可退金额');
  });

  it('sends one application with one request id when submit is tapped twice quickly', async () => {
    const answer = deferred<Result<ApplyRefundResult>>();
    wx.backend.applyRefund = () => answer.promise;
    const page = await openForm();
    await page.type('#amount', '1');
    await page.type('#reason', '不想要了');
    page.tapNow('#submit');
    page.tapNow('#submit');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      { orderId: 'o-1001', refundFee: 100, reason: '不想要了', requestId: A_REQUEST_ID },
    ]);
    expect(page.data['submitting']).toBe(true);
    answer.resolve(ok({ refund: aRefund() }));
    await settle();
    expect(wx.navigations).toEqual([{ method: 'navigateBack', url: '' }]);
  });

  it('retries a submission whose answer was lost with the same request id', async () => {
    wx.backend.applyRefund = () => {
      throw { errMsg: 'cloud.callFunction:fail timeout' };
    };
    const page = await openForm();
    await page.type('#amount', '2');
    await page.type('#reason', '不想要了');
    await page.tap('#submit');
    expect(wx.modals).toEqual([{ title: '提交失败', content: '网络异常，请检查网络后重试' }]);
    // The answer was lost, not the application: sent again, it must name the same submission.
    wx.backend.applyRefund = (e: ApplyRefundEvent) => ok({ refund: aRefund({ refundFee: e.refundFee }) });
    await page.tap('#submit');
    const [first, retry] = wx.callsOf('applyRefund') as ApplyRefundEvent[];
    expect(first?.requestId).toMatch(REQUEST_ID_PATTERN);
    expect(retry).toEqual(first);
  });

  it('gives changed values a new request id: they are a new application, not a retry', async () => {
    wx.backend.applyRefund = () => fail('WXPAY_UNAVAILABLE');
    const page = await openForm();
    await page.type('#amount', '2');
    await page.type('#reason', '不想要了');
    await page.tap('#submit');
    await page.type('#amount', '3');
    await page.tap('#submit');
    const [first, second] = wx.callsOf('applyRefund') as ApplyRefundEvent[];
    expect(second).toMatchObject({ refundFee: 300, requestId: A_REQUEST_ID });
    expect(second?.requestId).not.toBe(first?.requestId);
  });
});
