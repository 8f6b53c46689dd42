/**
 * 服务通知 in the console, in Chromium: the merchant switches 接收通知 on (the subscribe prompt
 * answered through the emulator), a shopper buys, pays and applies for a refund on the page,
 * and the merchant's inbox shows the refund application notice as the phone renders it. Then
 * the merchant rejects it with a comment and the shopper, who switched notices on too, reads
 * the rejection in theirs; the other shopper, who did not, has nothing. Cross-checked with the
 * emulator's inboxes and the outbox. Screenshots go to test-artifacts/browser/.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { startConsoleStack } from '../../sandbox/console';
import { DEMO_TEMPLATE_IDS as T } from '../../sandbox/notice-templates';
import type { Stack } from '../../sandbox/stack';
import { cutOff, launchChromium, SHOWN_MS, shot as shotOf } from './support';

let stack: Stack;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  stack = await startConsoleStack({ timeScale: 0.01, timers: false, functionLog: () => {} });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

const shot = (name: string) => shotOf(page, name);
const ready = () => page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
const notices = (title: string) => page.locator(`[data-testid="notice"][data-title="${title}"]`);
const orderCard = (orderId: string) => page.locator(`[data-testid="order"][data-order-id="${orderId}"]`);

async function switchOn(): Promise<void> {
  const sw = page.getByTestId('notices-switch');
  await expect.poll(() => sw.isEnabled(), { timeout: SHOWN_MS }).toBe(true);
  await sw.check();
}

describe('服务通知 in the console', () => {
  it('the merchant’s inbox receives the refund application notice; the shopper reads the rejection', async () => {
    const admin = stack.info.adminOpenid;
    const shopper = stack.info.shopperOpenid;
    await page.goto(`${stack.info.consoleUrl}?as=merchant`);
    await ready();
    expect(await page.getByTestId('notices-inbox').textContent()).toContain('No notices yet');
    await switchOn();
    await expect
      .poll(() => page.getByTestId('notices-acceptances').textContent(), { timeout: SHOWN_MS })
      .toContain('退款申请通知（退款申请）×1');
    // Through the emulator's control route, as WeChat records the prompt's answer.
    expect(stack.emulator.subscribe.acceptances(admin)[T.refundApplied]).toBe(1);
    await shot('notices-1-merchant-switched-on');

    // Shopper A switches notices on too, buys, pays in the cashier and applies for a refund.
    await page.getByTestId('as-shopper-a').click();
    await ready();
    await switchOn();
    await expect
      .poll(() => stack.emulator.subscribe.acceptances(shopper)[T.refundReview] ?? 0, { timeout: SHOWN_MS })
      .toBe(1);
    await page.getByTestId('buy-chopsticks').click();
    const cashier = page.getByTestId('cashier');
    await cashier.waitFor({ state: 'visible', timeout: SHOWN_MS });
    const orderId = (await cashier.getByTestId('cashier-order').getAttribute('data-order-id')) ?? '';
    await cashier.getByTestId('cashier-pay').click();
    await cashier.waitFor({ state: 'hidden', timeout: SHOWN_MS });
    await expect
      .poll(() => orderCard(orderId).getByTestId('order-status').getAttribute('data-status'), {
        timeout: SHOWN_MS,
      })
      .toBe('PAID');
    await orderCard(orderId).getByTestId('order-refund').click();
    const form = page.getByTestId('refund-form');
    await form.getByTestId('refund-reason-code').selectOption({ label: '其他' });
    await form.getByTestId('refund-reason').fill('买错了规格');
    await form.getByTestId('refund-submit').click();
    const line = orderCard(orderId).getByTestId('refund');
    await line.waitFor({ timeout: SHOWN_MS });
    const refundId = (await line.getAttribute('data-refund-id')) ?? '';

    // The merchant's 服务通知: the application, rendered as the phone shows the template.
    await page.getByTestId('as-merchant').click();
    const applied = notices('退款申请通知');
    await applied.first().waitFor({ timeout: SHOWN_MS });
    expect(await applied.count()).toBe(1);
    expect(await applied.getByTestId('notice-line').allTextContents()).toEqual([
      `订单编号：${orderId}`,
      '退款金额：19.90元',
      '退款原因：买错了规格',
      expect.stringMatching(/^申请时间：\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}$/),
    ]);
    // A tap opens the application itself.
    expect(await applied.textContent()).toContain(`pages/admin-refund/index?refundId=${refundId}`);
    // The new-order notice came first (the switch accepted every merchant template).
    expect(await notices('新订单通知').getByTestId('notice-line').first().textContent()).toBe(
      `订单编号：${orderId}`,
    );
    // The switch is still on: the used acceptance was given again.
    await expect
      .poll(() => page.getByTestId('notices-acceptances').textContent(), { timeout: SHOWN_MS })
      .toContain('退款申请通知（退款申请）×1');
    expect(await cutOff(page)).toEqual([]);
    await shot('notices-2-merchant-inbox');

    // The merchant rejects it with a comment; the shopper reads it in their 服务通知.
    const review = page.locator(`[data-testid="review"][data-refund-id="${refundId}"]`);
    await review.getByTestId('review-comment').fill('商品已拆封，不支持退款');
    await review.getByTestId('review-reject').click();
    // Every decision is confirmed first.
    await page.getByTestId('confirm-ok').click();
    await expect
      .poll(() => review.getByTestId('review-status').getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('REJECTED');
    await page.getByTestId('as-shopper-a').click();
    const rejected = notices('退款审核结果通知');
    await rejected.first().waitFor({ timeout: SHOWN_MS });
    expect(await rejected.getByTestId('notice-line').allTextContents()).toEqual([
      `订单编号：${orderId}`,
      '退款金额：19.90元',
      '审核结果：已拒绝',
      '备注：商品已拆封，不支持退款',
      expect.stringMatching(/^审核时间：/),
    ]);
    await shot('notices-3-shopper-inbox');

    // Shopper B never switched notices on: an empty inbox.
    await page.getByTestId('as-shopper-b').click();
    await expect
      .poll(() => page.getByTestId('notices-inbox').textContent(), { timeout: SHOWN_MS })
      .toContain('No notices yet');

    const outbox = await stack.db.all<NoticeDoc>('notices', { subject: refundId });
    expect(outbox.map((d) => [d.kind, d.touser, d.status]).sort()).toEqual([
      ['refund_applied', admin, 'SENT'],
      ['refund_rejected', shopper, 'SENT'],
    ]);
    expect(pageErrors).toEqual([]);
  });
});
