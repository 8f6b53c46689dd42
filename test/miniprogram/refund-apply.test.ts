// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type {
  ApplyRefundEvent,
  ApplyRefundResult,
  OrderView,
  QueryOrderResult,
  RefundReasonsResult,
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
const REASONS: RefundReasonsResult = {
  apply: [
    { code: 'NOT_WANTED', label: '不想要了', noteRequired: false },
    { code: 'QUALITY', label: '质量问题', noteRequired: false },
    { code: 'OTHER', label: '其他', noteRequired: true },
  ],
  reject: [],
};

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
  wx.backend.refundReasons = () => ok(REASONS);
  wx.backend.applyRefund = (e: ApplyRefundEvent) =>
    ok({ refund: aRefund({ orderId: e.orderId, refundFee: e.refundFee, reason: e.reason ?? '' }) });
});

async function openForm(): Promise<PageDriver> {
  const page = PageDriver.open(root, 'refund-apply');
  await page.run('onLoad', { orderId: 'o-1001' });
  return page;
}

/** Picks the preset reason with this label. */
async function pick(page: PageDriver, label: string) {
  const at = page.texts('.reason-option').indexOf(label);
  if (at < 0) throw new Error(`no reason ${label}`);
  await page.tap('.reason-option', at);
}

describe('refund application form', () => {
  it('starts at the whole refundable rest from the server', async () => {
    const page = await openForm();
    expect(wx.callsOf('queryOrder')).toEqual([{ orderId: 'o-1001' }]);
    expect(page.text('#refundable')).toBe('¥24.80');
    expect(page.data['amount']).toBe('24.80');
  });

  it('shows no amount at all while loading, never ¥0.00', async () => {
    const answer = deferred<Result<QueryOrderResult>>();
    wx.backend.queryOrder = () => answer.promise;
    const page = PageDriver.open(root, 'refund-apply');
    void page.run('onLoad', { orderId: 'o-1001' });
    await settle();
    expect(page.text('#loading')).toBe('加载中…');
    expect(page.pageText).not.toContain('¥');
    expect(page.has('#submit')).toBe(false);
    answer.resolve(ok({ order, refunds: [] }));
    await settle();
    expect(page.text('#refundable')).toBe('¥24.80');
  });

  it('offers to try again when loading fails, and then works', async () => {
    wx.backend.queryOrder = () => fail('INTERNAL');
    const page = await openForm();
    expect(page.text('#load-error')).toContain('服务繁忙，请稍后重试');
    expect(page.has('#submit')).toBe(false);
    expect(page.pageText).not.toContain('¥');

    wx.backend.queryOrder = () => ok({ order, refunds: [] });
    await page.tap('#retry-load');
    expect(page.has('#load-error')).toBe(false);
    expect(page.data['amount']).toBe('24.80');
  });

  it('offers the shop’s preset reasons and sends the picked code with an optional note', async () => {
    const page = await openForm();
    expect(page.texts('.reason-option')).toEqual(['不想要了', '质量问题', '其他']);
    await page.tap('#submit');
    expect(page.text('#form-error')).toBe('请选择退款原因');
    await pick(page, '质量问题');
    expect(page.texts('.reason-picked')).toEqual(['质量问题']);
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      { orderId: 'o-1001', refundFee: 2480, reasonCode: 'QUALITY', requestId: A_REQUEST_ID },
    ]);
    expect(wx.toasts).toEqual(['已提交，等待商家审核']);
    expect(wx.navigations).toEqual([{ method: 'navigateBack', url: '' }]);
  });

  it('asks the shopper to say more when the reason is 其他', async () => {
    const page = await openForm();
    await pick(page, '其他');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([]);
    expect(page.text('#form-error')).toBe('请说明退款原因');
    await page.type('#reason', ' 尺码不合适 ');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      {
        orderId: 'o-1001',
        refundFee: 2480,
        reasonCode: 'OTHER',
        reason: '尺码不合适',
        requestId: A_REQUEST_ID,
      },
    ]);
  });

  it('refuses an amount above the refundable rest without sending anything', async () => {
    const page = await openForm();
    await page.type('#amount', '24.81');
    await pick(page, '不想要了');
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
    await pick(page, '不想要了');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([]);
    expect(page.text('#form-error')).toBe(message);
  });

  it('sends a valid amount as integer fen', async () => {
    const page = await openForm();
    await page.type('#amount', '1.13'); // 1.13 * 100 is 112.99999999999999 in floats
    await pick(page, '不想要了');
    await page.type('#contact', '13800000000');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      {
        orderId: 'o-1001',
        refundFee: 113,
        reasonCode: 'NOT_WANTED',
        contact: '13800000000',
        requestId: A_REQUEST_ID,
      },
    ]);
  });

  it('fills the whole refundable rest again after the amount was changed', async () => {
    const page = await openForm();
    await page.type('#amount', '3');
    await page.tap('#fill-all');
    expect(page.data['amount']).toBe('24.80');
  });

  it('shows the backend refusal and reloads the rest when it changed meanwhile', async () => {
    const page = await openForm();
    wx.backend.applyRefund = () => fail('REFUND_EXCEEDS_PAID');
    order = { ...order, refundReservedFee: 2980, refundableFee: 0 };
    await page.type('#amount', '20');
    await pick(page, '不想要了');
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
    await pick(page, '不想要了');
    page.tapNow('#submit');
    page.tapNow('#submit');
    await page.tap('#submit');
    expect(wx.callsOf('applyRefund')).toEqual([
      { orderId: 'o-1001', refundFee: 100, reasonCode: 'NOT_WANTED', requestId: A_REQUEST_ID },
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
    await pick(page, '不想要了');
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
    await pick(page, '不想要了');
    await page.tap('#submit');
    await pick(page, '质量问题');
    await page.tap('#submit');
    const [first, second] = wx.callsOf('applyRefund') as ApplyRefundEvent[];
    expect(second).toMatchObject({ refundFee: 200, reasonCode: 'QUALITY', requestId: A_REQUEST_ID });
    expect(second?.requestId).not.toBe(first?.requestId);
  });

  it('keeps its submit bar clear of the home indicator', async () => {
    const page = await openForm();
    expect(page.has('.bottom-bar.safe-area #submit')).toBe(true);
  });
});
