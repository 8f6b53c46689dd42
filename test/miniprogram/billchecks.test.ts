// @vitest-environment jsdom
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BillCheckView } from '../../cloudfunctions/shared/contract';
import { DISCREPANCY_LABEL, yesterdayBeijing } from '../../miniprogram/utils/billcheck';
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

function aCheck(over: Partial<BillCheckView> = {}): BillCheckView {
  return {
    billDate: '20260309',
    status: 'DONE',
    noBill: false,
    runs: 1,
    lastRunAtMs: Date.UTC(2026, 2, 10, 2, 30),
    totals: {
      rows: 3,
      payments: 2,
      paymentFen: 7790,
      settledFen: 7790,
      refunds: 1,
      refundFen: 1000,
      refundSuccessFen: 1000,
      feeFen: 41,
    },
    discrepancyCount: 0,
    discrepancyCounts: {},
    discrepancies: [],
    actions: [],
    pending: 0,
    ...over,
  };
}

const tampered = aCheck({
  billDate: '20260308',
  discrepancyCount: 1,
  discrepancyCounts: { AMOUNT_MISMATCH: 1 },
  discrepancies: [
    { kind: 'AMOUNT_MISMATCH', orderId: 'O1', wechatFen: 1990, localFen: 1991, detail: 'order is PAID here' },
  ],
  actions: [{ kind: 'BOOKED_PAID_AFTER_CLOSE', orderId: 'O2', fen: 6800, atMs: 0 }],
});

describe('对账 page', () => {
  it('is refused to a non-admin without asking for checks', async () => {
    wx.backend.whoami = () => ok({ isAdmin: false, openid: 'shopper' });
    const page = PageDriver.open(root, 'admin-billchecks');
    await page.run('onLoad', {});
    expect(page.text('#denied')).toBe('仅商家管理员可以查看');
    expect(wx.callsOf('listBillChecks')).toEqual([]);
  });

  it('lists days with WeChat totals; a day with differences says what differs and what to do', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listBillChecks = () => ok({ items: [aCheck(), tampered], nextCursor: null });
    const page = PageDriver.open(root, 'admin-billchecks');
    await page.run('onLoad', {});
    expect(page.texts('.check-status')).toEqual(['已对平', '有差异 1 项']);
    expect(page.pageText).toContain('收款 2 笔 ¥77.90，退款 1 笔 ¥10.00，手续费 ¥0.41');
    expect(page.pageText).toContain('已自动补记 1 笔');
    expect(page.pageText).not.toContain(DISCREPANCY_LABEL.AMOUNT_MISMATCH.todo);
    await page.tap('.check .row', 1);
    expect(page.pageText).toContain('金额与微信不一致');
    expect(page.pageText).toContain('微信 ¥19.90 / 本店 ¥19.91');
    expect(page.pageText).toContain(`处理：${DISCREPANCY_LABEL.AMOUNT_MISMATCH.todo}`);
    expect(page.pageText).toContain('补记付款（订单关闭后到账，已标记）：订单 O2');
  });

  it('checks a chosen day now and shows its result in the list', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listBillChecks = () => ok({ items: [aCheck()], nextCursor: null });
    wx.backend.runBillCheck = (e) => ok({ check: aCheck({ billDate: e.date, noBill: true }), ran: true });
    const page = PageDriver.open(root, 'admin-billchecks');
    await page.run('onLoad', {});
    expect(page.data['date']).toBe(yesterdayBeijing(Date.now()));
    await page.run('onDate', { detail: { value: '2026-03-10' } });
    await page.tap('#run');
    expect(wx.callsOf('runBillCheck')).toEqual([{ date: '20260310' }]);
    expect(page.texts('.day')).toEqual(['2026-03-10', '2026-03-09']);
    expect(wx.toasts).toContain('当日无交易');
  });

  it('says so when the bill is not generated yet, and shows a refusal', async () => {
    wx.backend.whoami = () => ok({ isAdmin: true, openid: 'admin' });
    wx.backend.listBillChecks = () =>
      ok({ items: [aCheck({ status: 'NOT_READY', message: 'Bill Creating' })], nextCursor: null });
    wx.backend.runBillCheck = () => fail('FORBIDDEN');
    const page = PageDriver.open(root, 'admin-billchecks');
    await page.run('onLoad', {});
    expect(page.texts('.check-status')).toEqual(['账单未生成，稍后自动重试']);
    await page.tap('#run');
    expect(page.text('#error')).toContain('没有权限进行此操作');
  });
});
