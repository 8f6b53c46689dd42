// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildMiniprogram, FakeWx, fail, ok, PageDriver } from './harness';

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

const OPENID = 'oAbC-1234567890_merchant';

async function openMe(): Promise<PageDriver> {
  const page = PageDriver.open(root, 'me');
  await page.run('onLoad', {});
  return page;
}

describe('我的 page', () => {
  it("shows the caller's openid from whoami and copies it exactly", async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: OPENID });
    const page = await openMe();
    expect(wx.callsOf('whoami')).toEqual([{}]);
    expect(page.text('#openid')).toBe(OPENID);
    await page.tap('#copy');
    expect(wx.clipboard).toEqual([OPENID]);
  });

  it('tells a merchant who is not an admin yet how to become one', async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: OPENID });
    const page = await openMe();
    expect(page.text('#how-to-admin')).toContain('ADMIN_OPENIDS');
    expect(page.has('#admin-entry')).toBe(false);
    expect(page.has('#billchecks-entry')).toBe(false);
  });

  it('takes an admin to the refund review', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: OPENID });
    const page = await openMe();
    expect(page.has('#how-to-admin')).toBe(false);
    await page.tap('#admin-entry');
    expect(wx.navigations).toEqual([{ method: 'navigateTo', url: '/pages/admin-refunds/index' }]);
  });

  it('takes an admin to 对账, beside the refund review', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: OPENID });
    const page = await openMe();
    expect(page.text('#billchecks-entry')).toBe('对账');
    await page.tap('#billchecks-entry');
    expect(wx.navigations).toEqual([{ method: 'navigateTo', url: '/pages/admin-billchecks/index' }]);
  });

  it('shows a failed whoami with a retry, and copies nothing meanwhile', async () => {
    wx.backend.whoami = () => fail('INTERNAL');
    const page = await openMe();
    expect(page.text('#error')).toContain('服务繁忙，请稍后重试');
    expect(page.has('#copy')).toBe(false);
    wx.backend.whoami = () => ok({ isAdmin: false, openid: OPENID });
    await page.tap('#retry');
    expect(page.text('#openid')).toBe(OPENID);
  });

  it('is reached from the product list', async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: OPENID });
    wx.backend.listProducts = () => ok({ items: [], nextCursor: null });
    const page = PageDriver.open(root, 'products');
    await page.run('onLoad', {});
    await page.tap('#me');
    expect(wx.navigations).toEqual([{ method: 'navigateTo', url: '/pages/me/index' }]);
  });
});
