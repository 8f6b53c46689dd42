// @vitest-environment jsdom
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrderView, ProductView } from '../../cloudfunctions/shared/contract';
import { encodeCart } from '../../miniprogram/utils/cart';
import { anOrder, buildMiniprogram, FakeWx, fail, ok, PAYMENT, PageDriver, settle } from './harness';

/** Real time passes (the page waits between looks at the order); resolves once `done` holds. */
async function waitFor(done: () => boolean, limitMs = 3_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
  await settle();
}

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

const TEA: ProductView = { id: 'tea', name: '明前龙井', priceFen: 1990, image: '' };
const CUP: ProductView = { id: 'cup', name: '玻璃杯', priceFen: 1, image: '' };

describe('product list', () => {
  beforeEach(() => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: 'shopper' });
  });

  it('lists products with prices in yuan and pages on reaching the bottom', async () => {
    wx.backend.listProducts = (e) =>
      e.cursor === 'p2' ? ok({ items: [CUP], nextCursor: null }) : ok({ items: [TEA], nextCursor: 'p2' });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(page.count('.product')).toBe(1);
    expect(page.pageText).toContain('¥19.90');

    await page.run('onReachBottom');
    expect(wx.callsOf('listProducts')).toEqual([{}, { cursor: 'p2' }]);
    expect(page.count('.product')).toBe(2);
    expect(page.pageText).toContain('¥0.01');
    expect(page.pageText).toContain('没有更多了');

    await page.run('onReachBottom');
    expect(wx.callsOf('listProducts')).toHaveLength(2);
  });

  it('estimates the cart and opens checkout with it', async () => {
    wx.backend.listProducts = () => ok({ items: [TEA, CUP], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    await page.tap('.plus', 0);
    await page.tap('.plus', 0);
    await page.tap('.plus', 1);
    expect(page.pageText).toContain('已选 3 件，预估 ¥39.81');

    await page.tap('#checkout');
    const nav = wx.navigations[0];
    expect(nav?.method).toBe('navigateTo');
    expect(nav?.url).toMatch(/^\/pages\/checkout\/index\?cart=/);
  });

  it('updates only the tapped row when a stepper is tapped, not the whole list', async () => {
    wx.backend.listProducts = () => ok({ items: [TEA, CUP], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    const patches: Record<string, unknown>[] = [];
    const setData = page.instance['setData'] as (d: Record<string, unknown>) => void;
    page.instance['setData'] = function (this: unknown, d: Record<string, unknown>) {
      patches.push(d);
      return setData.call(this, d);
    };
    await page.tap('.plus', 1);
    await page.tap('.minus', 1);
    expect(patches.map((p) => Object.keys(p).filter((k) => k.startsWith('products')))).toEqual([
      ['products[1].quantity'],
      ['products[1].quantity'],
    ]);
    expect(page.texts('.quantity')).toEqual(['0', '0']);
  });

  it('labels every stepper for screen readers with the product and what it does', () => {
    for (const name of ['products', 'checkout']) {
      const wxml = readFileSync(resolve(__dirname, `../../miniprogram/pages/${name}/index.wxml`), 'utf8');
      const stepper = /<view class="stepper">([\s\S]*?)<\/view>/.exec(wxml)?.[1] ?? '';
      const controls = stepper.match(/<(button|text)\b[^>]*>/g) ?? [];
      expect(controls).toHaveLength(3);
      // simulate renders no attributes of built-in components: the template is what VoiceOver reads.
      for (const c of controls) expect(c).toMatch(/aria-label="\{\{item\.name\}\}[^"]+"/);
    }
  });

  it('empties the cart once checkout made the order', async () => {
    wx.backend.listProducts = () => ok({ items: [TEA, CUP], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    await page.tap('.plus', 0);
    await page.tap('.plus', 1);
    await page.tap('#checkout');
    expect(wx.openerEvents[0]?.url).toMatch(/^\/pages\/checkout\/index\?cart=/);
    wx.openerEvents[0]?.events['ordered']?.({ orderId: 'o-7', totalFee: 1991 });
    await settle();
    expect(page.pageText).toContain('已选 0 件，预估 ¥0.00');
    expect(page.texts('.quantity')).toEqual(['0', '0']);
    expect(page.data['cart']).toEqual([]);
  });

  it('keeps its bottom bar clear of the home indicator', async () => {
    wx.backend.listProducts = () => ok({ items: [TEA], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(page.has('.bottom-bar.safe-area #checkout')).toBe(true);
  });

  it('shows an empty state when nothing is on sale', async () => {
    wx.backend.listProducts = () => ok({ items: [], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(page.text('#empty')).toBe('暂无在售商品');
  });

  it('shows a backend error on the page and retries', async () => {
    let answer = fail<{ items: ProductView[]; nextCursor: null }>('INTERNAL');
    wx.backend.listProducts = () => answer;
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(page.text('#error')).toContain('服务繁忙，请稍后重试');

    answer = ok({ items: [TEA], nextCursor: null });
    await page.tap('#retry');
    expect(page.has('#error')).toBe(false);
    expect(page.count('.product')).toBe(1);
  });

  it('shows the retryable network message when callFunction itself fails', async () => {
    // no listProducts handler: the fake callFunction rejects like a dropped connection
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(page.text('#error')).toContain('网络异常，请检查网络后重试');
  });

  it('stops the pull-down spinner after reloading', async () => {
    wx.backend.listProducts = () => ok({ items: [TEA], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    await page.run('onPullDownRefresh');
    expect(wx.callsOf('listProducts')).toHaveLength(2);
    expect(wx.stopPullDownRefreshCount).toBe(1);
  });

  it('hides the merchant entry from a shopper', async () => {
    wx.backend.listProducts = () => ok({ items: [], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(wx.callsOf('whoami')).toHaveLength(1);
    expect(page.has('#admin-entry')).toBe(false);
  });

  it('hides the merchant entry when whoami fails', async () => {
    wx.backend.listProducts = () => ok({ items: [], nextCursor: null });
    wx.backend.whoami = () => fail('UNAUTHENTICATED');
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    expect(page.has('#admin-entry')).toBe(false);
  });

  it('shows the merchant entry to an admin and opens the review list', async () => {
    wx.backend.listProducts = () => ok({ items: [], nextCursor: null });
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    await page.tap('#admin-entry');
    expect(wx.navigations).toEqual([{ method: 'navigateTo', url: '/pages/admin-refunds/index' }]);
  });
});

describe('checkout', () => {
  const cart = encodeCart([{ productId: 'tea', name: '明前龙井', priceFen: 1990, quantity: 2 }]);
  let order: OrderView;

  beforeEach(() => {
    order = anOrder({ orderId: 'o-7', totalFee: 3500 });
    // The server charges its own price (a promotion here), not the client's estimate.
    wx.backend.createOrder = () => ok({ orderId: 'o-7', totalFee: 3500, payment: PAYMENT });
    wx.backend.queryOrder = () => ok({ order, refunds: [] });
    wx.onPay = () => {
      order = { ...order, status: 'PAID', payable: false, paidAtMs: Date.now() };
    };
  });

  it('shows the client estimate before the order exists', async () => {
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    expect(page.text('#estimate')).toContain('预估 ¥39.80');
  });

  it('creates the order, pays with exactly the returned parameters, then confirms with queryOrder', async () => {
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');

    expect(wx.calls.map((c) => c.name).filter((n) => n !== 'noticeTemplates')).toEqual([
      'createOrder',
      'queryOrder',
    ]);
    expect(wx.callsOf('createOrder')).toEqual([{ items: [{ productId: 'tea', quantity: 2 }] }]);
    expect(wx.payments).toEqual([PAYMENT]);
    expect(wx.callsOf('queryOrder')).toEqual([{ orderId: 'o-7' }]);
    expect(page.text('#server-total')).toBe('应付 ¥35.00');
    expect(wx.modals[0]?.title).toBe('支付成功');
    expect(wx.navigations).toEqual([{ method: 'redirectTo', url: '/pages/order-detail/index?orderId=o-7' }]);
  });

  it('tells the product list to empty its cart once the order exists', async () => {
    const page = PageDriver.open(root, 'checkout');
    const toOpener = page.openerChannel();
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    expect(toOpener).toEqual([{ event: 'ordered', args: [{ orderId: 'o-7', totalFee: 3500 }] }]);
  });

  it('asks the server a few more times when the cashier said ok but the order is not PAID yet', async () => {
    let queries = 0;
    wx.onPay = null;
    wx.backend.queryOrder = () => {
      queries++;
      // The pay notify lands between the second and the third look.
      if (queries === 3) order = { ...order, status: 'PAID', payable: false };
      return ok({ order, refunds: [] });
    };
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    await waitFor(() => wx.modals.length > 0);
    expect(queries).toBe(3);
    expect(wx.modals[0]?.title).toBe('支付成功');
  });

  it('says the result is still being confirmed when the order stays unpaid after a few looks', async () => {
    wx.onPay = null;
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    await waitFor(() => wx.modals.length > 0, 6_000);
    expect(wx.callsOf('queryOrder')).toHaveLength(4);
    expect(wx.modals[0]).toEqual({
      title: '支付结果确认中',
      content: '微信支付正在确认，请稍后在订单详情中查看',
    });
  });

  it('does not ask again when the shopper cancelled at the cashier', async () => {
    wx.paymentErrMsg = 'requestPayment:fail cancel';
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    expect(wx.callsOf('queryOrder')).toHaveLength(1);
  });

  it('tells the shopper a cancelled payment keeps the order payable, after asking the server', async () => {
    wx.paymentErrMsg = 'requestPayment:fail cancel';
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');

    expect(wx.callsOf('queryOrder')).toEqual([{ orderId: 'o-7' }]);
    expect(wx.modals).toEqual([{ title: '已取消支付', content: '订单已保留，可在订单详情中继续支付' }]);
    expect(wx.navigations[0]?.url).toBe('/pages/order-detail/index?orderId=o-7');
  });

  it('reports a failed payment, after asking the server', async () => {
    wx.paymentErrMsg = 'requestPayment:fail 系统错误';
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');

    expect(wx.callsOf('queryOrder')).toHaveLength(1);
    expect(wx.modals[0]?.title).toBe('支付失败');
  });

  it('believes the server when the cashier failed but the money arrived', async () => {
    wx.paymentErrMsg = 'requestPayment:fail timeout';
    order = { ...order, status: 'PAID', payable: false };
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');
    expect(wx.modals[0]?.title).toBe('支付成功');
  });

  it('shows a createOrder error, opens no cashier, and lets the shopper try again', async () => {
    wx.backend.createOrder = () => fail('WXPAY_UNAVAILABLE');
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    await page.tap('#submit');

    expect(wx.payments).toEqual([]);
    expect(wx.modals).toEqual([{ title: '下单失败', content: '微信支付暂时不可用，请稍后重试' }]);
    expect(page.data['submitting']).toBe(false);
    await page.tap('#submit');
    expect(wx.callsOf('createOrder')).toHaveLength(2);
  });

  it('creates one order when submit is tapped twice quickly', async () => {
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart });
    page.tapNow('#submit');
    page.tapNow('#submit');
    await page.run('onSubmit');
    expect(wx.callsOf('createOrder')).toHaveLength(1);
    expect(wx.payments).toHaveLength(1);
  });

  it('shows an empty state for an empty or broken cart link', async () => {
    const page = PageDriver.open(root, 'checkout');
    await page.run('onLoad', { cart: 'not-json' });
    expect(page.text('#empty')).toContain('购物车是空的');
    await page.tap('#submit');
    expect(wx.calls).toEqual([]);
  });
});
