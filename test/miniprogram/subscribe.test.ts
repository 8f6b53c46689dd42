// @vitest-environment jsdom
/**
 * Subscribe prompts (wx.requestSubscribeMessage) where WeChat allows them: in the pay tap, in
 * the refund application's submit tap, and on the merchant's 接收通知 switch. WeChat opens the
 * prompt only synchronously inside a tap, so each test checks the prompt is already open when
 * the tap returns; and refusing never stops the purchase or the application.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyRefundEvent, NoticeTemplatesResult } from '../../cloudfunctions/shared/contract';
import { encodeCart } from '../../miniprogram/utils/cart';
import {
  anOrder,
  aPaidOrder,
  aRefund,
  buildMiniprogram,
  FakeWx,
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

const REVIEW = 'tpl-refund-review-000000000000000000000000';
const RESULT = 'tpl-refund-result-000000000000000000000000';
const ADMIN_TPLS = ['tpl-new-order', 'tpl-refund-applied', 'tpl-refund-attention', 'tpl-bill-mismatch'].map(
  (t) => t.padEnd(43, '0'),
);
const TEMPLATES: NoticeTemplatesResult = {
  shopper: [
    { templateId: REVIEW, title: '退款审核通过、退款被拒绝' },
    { templateId: RESULT, title: '退款完成、退款关闭' },
  ],
  admin: [
    { templateId: ADMIN_TPLS[0]!, title: '新订单' },
    { templateId: ADMIN_TPLS[1]!, title: '退款申请' },
    { templateId: ADMIN_TPLS[2]!, title: '退款待处理' },
    { templateId: ADMIN_TPLS[3]!, title: '对账异常' },
  ],
};

type Answer = Record<string, string> | { errCode: number; errMsg: string };

/** WeChat's subscribe prompt: records each opening and answers with `answer`. */
class FakePrompt {
  readonly opened: string[][] = [];
  answer: (ids: string[]) => Answer = (ids) => Object.fromEntries(ids.map((id) => [id, 'accept']));

  install(): void {
    const wx = (globalThis as unknown as { wx: Record<string, unknown> }).wx;
    wx['requestSubscribeMessage'] = (opts: {
      tmplIds: string[];
      success?: (r: Record<string, string>) => void;
      fail?: (r: { errCode: number; errMsg: string }) => void;
    }) => {
      this.opened.push([...opts.tmplIds]);
      const a = this.answer(opts.tmplIds);
      // The user answers later, like the real prompt.
      void Promise.resolve().then(() => {
        if ('errCode' in a && typeof a.errCode === 'number')
          opts.fail?.(a as { errCode: number; errMsg: string });
        else opts.success?.({ errMsg: 'requestSubscribeMessage:ok', ...(a as Record<string, string>) });
      });
    };
  }
}

/**
 * Taps, and returns when the handler has run up to its first await: j-component dispatches the
 * tap one microtask later, so what the handler did synchronously is visible right after it.
 * WeChat opens the subscribe prompt only from that synchronous part.
 */
async function tapSync(page: PageDriver, selector: string): Promise<{ opened: string[][]; calls: string[] }> {
  page.tapNow(selector);
  await Promise.resolve();
  // Read now: awaiting this function's own promise lets more microtasks run.
  return { opened: [...prompt.opened], calls: wx.calls.map((c) => c.name) };
}

let wx: FakeWx;
let prompt: FakePrompt;
beforeEach(() => {
  wx = new FakeWx();
  wx.install();
  prompt = new FakePrompt();
  prompt.install();
  wx.backend.noticeTemplates = () => ok(TEMPLATES);
});

describe('checkout: before paying', () => {
  const cart = encodeCart([{ productId: 'tea', name: '明前龙井', priceFen: 1990, quantity: 1 }]);
  beforeEach(() => {
    let order = anOrder({ orderId: 'o-7', totalFee: 1990 });
    wx.backend.createOrder = () => ok({ orderId: 'o-7', totalFee: 1990, payment: PAYMENT });
    wx.backend.queryOrder = () => ok({ order, refunds: [] });
    wx.onPay = () => {
      order = { ...order, status: 'PAID', payable: false };
    };
  });

  it('opens the prompt for the shopper’s refund notices within the tap, then pays and shows the choice', async () => {
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    const during = await tapSync(page, '#submit');
    expect(during.opened).toEqual([[REVIEW, RESULT]]);
    expect(during.calls).not.toContain('createOrder');
    await settle();

    expect(wx.payments).toEqual([PAYMENT]);
    expect(page.text('#subscribe-note')).toBe('已开启通知：退款审核通过、退款被拒绝、退款完成、退款关闭');
    expect(wx.modals).toEqual([
      {
        title: '支付成功',
        content: '订单已支付\n已开启通知：退款审核通过、退款被拒绝、退款完成、退款关闭',
      },
    ]);
  });

  it('pays just the same when the shopper refuses', async () => {
    prompt.answer = (ids) => Object.fromEntries(ids.map((id) => [id, 'reject']));
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    expect(wx.payments).toEqual([PAYMENT]);
    expect(wx.modals[0]?.title).toBe('支付成功');
    expect(page.text('#subscribe-note')).toBe('未开启通知，可稍后在订单详情查看进度');
  });

  it('pays just the same when notices are switched off in WeChat’s settings', async () => {
    prompt.answer = () => ({
      errCode: 20004,
      errMsg: 'requestSubscribeMessage:fail The main switch is switched off',
    });
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    expect(wx.payments).toEqual([PAYMENT]);
    expect(page.text('#subscribe-note')).toBe('微信设置中已关闭订阅消息，不会收到通知');
  });

  it('asks nothing when the shop has no templates, and says nothing about notices', async () => {
    wx.backend.noticeTemplates = () => ok({ shopper: [], admin: [] });
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    expect(prompt.opened).toEqual([]);
    expect(page.has('#subscribe-note')).toBe(false);
    expect(wx.modals).toEqual([{ title: '支付成功', content: '订单已支付' }]);
  });
});

describe('refund application: on submitting', () => {
  beforeEach(() => {
    wx.backend.queryOrder = () => ok({ order: aPaidOrder(), refunds: [] });
    wx.backend.refundReasons = () =>
      ok({ apply: [{ code: 'NOT_WANTED', label: '不想要了', noteRequired: false }], reject: [] });
    wx.backend.applyRefund = (e: ApplyRefundEvent) => ok({ refund: aRefund({ refundFee: e.refundFee }) });
  });

  async function fillAndSubmit(page: PageDriver) {
    await page.type('#amount', '1');
    await page.tap('.reason-option');
    return tapSync(page, '#submit');
  }

  it('opens the prompt within the submit tap, then applies and says the result will come as a notice', async () => {
    const page = PageDriver.open(root, 'refund-apply');
    await page.run('onLoad', { orderId: 'o-1001' });
    const during = await fillAndSubmit(page);
    expect(during.opened).toEqual([[REVIEW, RESULT]]);
    expect(during.calls).not.toContain('applyRefund');
    await settle();
    expect(wx.callsOf('applyRefund')).toHaveLength(1);
    expect(wx.toasts).toEqual(['已提交，等待商家审核，结果将以服务通知告知']);
  });

  it('applies just the same when the shopper refuses', async () => {
    prompt.answer = (ids) => Object.fromEntries(ids.map((id) => [id, 'reject']));
    const page = PageDriver.open(root, 'refund-apply');
    await page.run('onLoad', { orderId: 'o-1001' });
    await fillAndSubmit(page);
    await settle();
    expect(wx.callsOf('applyRefund')).toHaveLength(1);
    expect(wx.toasts).toEqual(['已提交，等待商家审核']);
    expect(page.text('#subscribe-note')).toBe('未开启通知，可稍后在订单详情查看进度');
  });

  it('does not prompt for a form that is refused before sending', async () => {
    const page = PageDriver.open(root, 'refund-apply');
    await page.run('onLoad', { orderId: 'o-1001' });
    await page.tap('#submit');
    expect(prompt.opened).toEqual([]);
  });
});

describe('the merchant’s 接收通知 switch', () => {
  beforeEach(() => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listRefunds = () => ok({ items: [], nextCursor: null, pendingCount: 0 });
  });

  it('asks again on every tap, three templates at a time, and shows what was accepted', async () => {
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.text('#notice-note')).toBe('点击开启，每次开启可收到每类通知各一条');
    expect(page.data['notice']).toMatchObject({ on: false });

    expect((await tapSync(page, '#notice-switch')).opened).toEqual([ADMIN_TPLS.slice(0, 3)]);
    await settle();
    expect(page.data['notice']).toMatchObject({ on: true });
    expect(page.text('#notice-note')).toBe('已开启通知：新订单、退款申请、退款待处理；再点一次订阅其余 1 类');

    await page.tap('#notice-switch');
    expect(prompt.opened[1]).toEqual([ADMIN_TPLS[3]]);
    expect(page.text('#notice-note')).toBe('已开启通知：对账异常');

    await page.tap('#notice-switch');
    expect(prompt.opened[2]).toEqual(ADMIN_TPLS.slice(0, 3));
  });

  it('stays off and says so when the merchant refuses', async () => {
    prompt.answer = (ids) => Object.fromEntries(ids.map((id) => [id, 'reject']));
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    await page.tap('#notice-switch');
    expect(page.data['notice']).toMatchObject({ on: false });
    expect(page.text('#notice-note')).toContain('未开启通知');
  });

  it('is not shown to a shopper, nor are the templates asked for', async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: 'shopper' });
    const page = PageDriver.open(root, 'admin-refunds');
    await page.run('onLoad', {});
    expect(page.has('#notice-switch')).toBe(false);
    expect(wx.callsOf('noticeTemplates')).toEqual([]);
  });
});
