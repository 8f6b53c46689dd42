/**
 * How the console shows the refund states that need the merchant (FAILED, CLOSED, ABNORMAL, a
 * SUCCESS that came after the refund had ended) and what it sends for each of their actions.
 * The functions' answers are fixed here (Playwright routes), so this tests the page's logic
 * for every state without driving WeChat into it; the flows that reach those states through
 * the simulator live with the backend's tests.
 */
import type { Browser, Page, Route } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrderView, RefundView } from '../../cloudfunctions/shared/contract';
import { startConsoleStack } from '../../sandbox/console';
import type { Stack } from '../../sandbox/stack';
import { cutOff, launchChromium, SHOWN_MS, shot } from './support';

let stack: Stack;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  stack = await startConsoleStack({ timeScale: 0.01, timers: false, functionLog: () => {} });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

const T0 = Date.UTC(2025, 4, 1, 2, 0);
const order: OrderView = {
  orderId: '20250501100000AbCdEfGhIjKl',
  status: 'PAID',
  totalFee: 12800,
  items: [{ productId: 'mooncake-box', name: '广式月饼礼盒 Mooncakes', priceFen: 12800, quantity: 1 }],
  description: '广式月饼礼盒 Mooncakes',
  createdAtMs: T0,
  expiresAtMs: T0 + 7_200_000,
  paidAtMs: T0 + 60_000,
  refundReservedFee: 9000,
  refundedFee: 1000,
  refundableFee: 2800,
  payable: false,
};
const refund = (over: Partial<RefundView>): RefundView => ({
  refundId: 'R20250501110000000000000001',
  orderId: order.orderId,
  refundFee: 3000,
  totalFee: 12800,
  reason: '不想要了',
  status: 'PENDING_REVIEW',
  createdAtMs: T0 + 3_600_000,
  updatedAtMs: T0 + 3_600_000,
  ...over,
});

const FAILED = refund({
  refundId: 'R-failed-000000000000000001',
  status: 'FAILED',
  failReason: 'NOTENOUGH 基本账户余额不足，请充值后重新发起',
});
const CLOSED = refund({
  refundId: 'R-closed-000000000000000001',
  status: 'CLOSED',
  failReason: 'REFUNDCLOSE',
});
const ABNORMAL = refund({
  refundId: 'R-abnormal-0000000000000001',
  status: 'ABNORMAL',
  failReason: 'CHANGE 退款到银行发现用户的卡作废或者冻结了',
});
const FLAGGED = refund({
  refundId: 'R-flagged-00000000000000001',
  status: 'SUCCESS',
  flag: 'SUCCESS_AFTER_FINAL',
  flaggedFrom: 'REJECTED',
  history: [
    { atMs: T0 + 3_600_000, status: 'PENDING_REVIEW', source: 'apply' },
    { atMs: T0 + 3_660_000, status: 'REJECTED', source: 'review', reason: '已发货' },
    { atMs: T0 + 3_720_000, status: 'SUCCESS', source: 'refundnotify', reason: 'SUCCESS 退款成功' },
  ],
});
const SUCCESSOR = refund({
  refundId: 'R-successor-000000000000001',
  status: 'PROCESSING',
  predecessorId: CLOSED.refundId,
});

const ok = (route: Route, data: unknown) =>
  route.fulfill({ contentType: 'application/json', body: JSON.stringify({ ok: true, data }) });

let decisions: Record<string, unknown>[];
beforeEach(async () => {
  decisions = [];
  pageErrors.length = 0;
  page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.route('**/functions/listRefunds', (route) =>
    ok(route, {
      items: [FAILED, CLOSED, ABNORMAL, FLAGGED].map((r) => ({ ...r, openid: 'o_shopper_demo' })),
      nextCursor: null,
      pendingCount: 0,
    }),
  );
  await page.route('**/functions/approveRefund', (route) => {
    const event = JSON.parse(route.request().postData() ?? '{}') as { refundId: string; decision: string };
    decisions.push(event);
    if (event.refundId === CLOSED.refundId) return ok(route, { refund: SUCCESSOR });
    return ok(route, { refund: { ...ABNORMAL, status: 'SUCCESS', failReason: undefined } });
  });
  await page.route('**/functions/listOrders', (route) => ok(route, { items: [order], nextCursor: null }));
  await page.route('**/functions/queryOrder', (route) =>
    // A shopper's view never carries failReason; here it does, to show the page ignores it anyway.
    ok(route, { order, refunds: [FAILED, CLOSED, ABNORMAL] }),
  );
});
afterEach(async () => {
  await page?.close();
  expect(pageErrors).toEqual([]);
});

const review = (id: string) => page.locator(`[data-testid="review"][data-refund-id="${id}"]`);

async function openAs(role: 'a' | 'merchant'): Promise<void> {
  await page.goto(`${stack.info.consoleUrl}?as=${role}`);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
}

describe('refund states in the console', () => {
  it('tells the merchant what each state needs and offers exactly those actions', async () => {
    await openAs('merchant');
    await review(ABNORMAL.refundId).waitFor({ timeout: SHOWN_MS });
    const buttons = (id: string) =>
      review(id)
        .locator('button[data-decision]')
        .evaluateAll((bs) => bs.map((b) => b.getAttribute('data-decision')));
    expect(await buttons(FAILED.refundId)).toEqual(['approve', 'reject']);
    expect(await buttons(CLOSED.refundId)).toEqual(['approve']);
    expect(await buttons(ABNORMAL.refundId)).toEqual(['resolve']);
    expect(await buttons(FLAGGED.refundId)).toEqual([]);

    expect(await review(FAILED.refundId).getByTestId('review-fail-reason').textContent()).toContain(
      'NOTENOUGH',
    );
    expect(await review(CLOSED.refundId).getByTestId('review-approve').textContent()).toBe(
      '作为新退款重新发起 Retry as a new refund',
    );
    expect(await review(CLOSED.refundId).getByTestId('review-guide').textContent()).toContain('新的退款单号');
    expect(await review(ABNORMAL.refundId).getByTestId('review-guide').textContent()).toContain(
      '商户平台 → 交易中心 → 退款 手动处理',
    );
    expect(await review(FLAGGED.refundId).getByTestId('review-flag').textContent()).toContain(
      '这笔退款在「已拒绝」之后，微信支付仍退款成功',
    );
    expect(await cutOff(page)).toEqual([]);
    await shot(page, 'states-merchant');
  });

  it('opens on the role and the status filter the URL names', async () => {
    const asked: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/functions/listRefunds')) asked.push(r.postData() ?? '');
    });
    await page.goto(`${stack.info.consoleUrl}?as=merchant&view=CLOSED`);
    await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
    expect(await page.getByTestId('as-merchant').getAttribute('aria-pressed')).toBe('true');
    expect(await page.getByTestId('view-CLOSED').getAttribute('aria-pressed')).toBe('true');
    expect(JSON.parse(asked[0] ?? '{}')).toEqual({ status: 'CLOSED', order: 'oldest' });
    await page.getByTestId('view-ABNORMAL').click();
    expect(new URL(page.url()).searchParams.get('view')).toBe('ABNORMAL');
    await page.reload();
    await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
    expect(await page.getByTestId('view-ABNORMAL').getAttribute('aria-pressed')).toBe('true');
  });

  it("shows the history with each step's own reason", async () => {
    await openAs('merchant');
    const history = review(FLAGGED.refundId).getByTestId('review-history');
    await history.waitFor({ timeout: SHOWN_MS });
    await history.locator('summary').click();
    const steps = history.getByTestId('history-step');
    expect(await steps.evaluateAll((li) => li.map((l) => l.getAttribute('data-status')))).toEqual([
      'PENDING_REVIEW',
      'REJECTED',
      'SUCCESS',
    ]);
    expect(await steps.nth(1).textContent()).toContain('已发货');
    expect(await steps.nth(2).textContent()).toContain('SUCCESS 退款成功');
  });

  it('retries a CLOSED refund with approve and names the new refund it became', async () => {
    await openAs('merchant');
    await review(CLOSED.refundId).getByTestId('review-approve').click();
    // Money moves: the page names the amount and asks first.
    expect(await page.getByTestId('confirm-text').textContent()).toContain('¥30.00');
    expect(decisions).toEqual([]);
    await page.getByTestId('confirm-ok').click();
    await expect
      .poll(() => decisions, { timeout: SHOWN_MS })
      .toEqual([{ refundId: CLOSED.refundId, decision: 'approve' }]);
    await expect
      .poll(() => page.getByTestId('toast').textContent(), { timeout: SHOWN_MS })
      .toContain(`已作为新退款单 ${SUCCESSOR.refundId} 重新发起`);
  });

  it('marks an ABNORMAL refund resolved once, and rejects only with a comment', async () => {
    await openAs('merchant');
    await review(ABNORMAL.refundId).getByTestId('review-resolve').dblclick();
    await page.getByTestId('confirm-ok').click();
    await expect
      .poll(() => decisions, { timeout: SHOWN_MS })
      .toEqual([{ refundId: ABNORMAL.refundId, decision: 'resolve' }]);
    // The toast follows the function's answer, a moment after the call.
    await expect
      .poll(() => page.getByTestId('toast').textContent(), { timeout: SHOWN_MS })
      .toContain('已标记为已处理');

    await review(FAILED.refundId).getByTestId('review-reject').click();
    expect(await page.getByTestId('toast').textContent()).toBe('拒绝时请填写说明，用户会看到');
    expect(decisions).toHaveLength(1);
  });

  it("shows the shopper the label and a neutral line, never WeChat's reason", async () => {
    await openAs('a');
    const lines = page.getByTestId('refund');
    await lines.first().waitFor({ timeout: SHOWN_MS });
    expect(await page.getByTestId('refund-note').allTextContents()).toEqual([
      '退款暂未成功，商家正在处理 · Not refunded yet; the merchant is handling it',
      '退款未完成，商家正在处理 · Not refunded yet; the merchant is handling it',
      '退款到账遇到问题，商家正在处理 · The refund could not reach you yet; the merchant is handling it',
    ]);
    const text = (await page.getByTestId('orders').textContent()) ?? '';
    for (const secret of ['NOTENOUGH', '余额不足', 'REFUNDCLOSE', 'CHANGE', '卡作废'])
      expect(text).not.toContain(secret);
    await shot(page, 'states-shopper');
  });
});
