/**
 * The console in Chromium: a shopper buys and pays in the simulated cashier, applies for a
 * refund, the merchant approves it, and WeChat's refund notify finishes it; then the same
 * with the pay notify dropped (switched from the page) and recovered by reconcile (clicked
 * on the page). Every assertion is on what the page shows, cross-checked with the database.
 * Screenshots go to test-artifacts/browser/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { startConsoleStack } from '../../sandbox/console';
import { ROOT, type Stack } from '../../sandbox/stack';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts', 'browser');
/** Long enough for a notify round trip and a poll (1 s); short enough to fail fast. */
const SHOWN_MS = 10_000;

let stack: Stack;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startConsoleStack({
    // Refunds settle 0.6 s after acceptance; reconcile looks at an order at once. No timer:
    // the recovery in the second test must come from the click, not from a cron tick.
    timeScale: 0.01,
    timers: false,
    env: { RECONCILE_GRACE_SECONDS: '0', REFUND_QUERY_DELAY_SECONDS: '0' },
    functionLog: () => {},
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

const pageErrors: string[] = [];
beforeEach(async () => {
  stack.simulator.setFaults({ dropPayNotifies: false, refundOutcome: 'SUCCESS', refundError: null });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  pageErrors.length = 0;
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(stack.info.consoleUrl);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
});

afterEach(async () => {
  await page?.close();
  expect(pageErrors).toEqual([]);
});

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
const orderCard = (orderId: string) => page.locator(`[data-testid="order"][data-order-id="${orderId}"]`);
const orderStatus = (orderId: string) => orderCard(orderId).getByTestId('order-status');
const refundLine = (refundId: string) => page.locator(`[data-testid="refund"][data-refund-id="${refundId}"]`);
const reviewCard = (refundId: string) => page.locator(`[data-testid="review"][data-refund-id="${refundId}"]`);
const notifyRow = (kind: 'pay' | 'refund', subject: string) =>
  page.locator(`[data-testid="notify-row"][data-kind="${kind}"][data-subject="${subject}"]`);

/** Buys one of a product and pays in the cashier; returns the order id the cashier showed. */
async function buyAndPay(productId: string, yuan: string, prefix: string): Promise<string> {
  await page.getByTestId(`buy-${productId}`).click();
  const cashier = page.getByTestId('cashier');
  await cashier.waitFor({ state: 'visible', timeout: SHOWN_MS });
  expect(await cashier.getByTestId('cashier-amount').textContent()).toBe(`¥${yuan}`);
  const orderId = (await cashier.getByTestId('cashier-order').getAttribute('data-order-id')) ?? '';
  expect(orderId).toMatch(/^\w{20,32}$/);
  await expect
    .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
    .toBe('NOTPAY');
  await shot(`${prefix}-cashier`);
  await cashier.getByTestId('cashier-pay').click();
  await cashier.waitFor({ state: 'hidden', timeout: SHOWN_MS });
  expect(await page.getByTestId('toast').textContent()).toContain('requestPayment:ok');
  return orderId;
}

/** Applies for a full refund as the shopper, approves it as the merchant, waits for 退款完成. */
async function refundThroughReview(orderId: string, yuan: string, prefix: string): Promise<string> {
  await orderCard(orderId).getByTestId('order-refund').click();
  const form = page.getByTestId('refund-form');
  expect(await form.getByTestId('refund-amount').inputValue()).toBe(yuan);
  await form.getByTestId('refund-reason').fill('不想要了 changed my mind');
  await form.getByTestId('refund-submit').click();
  const line = orderCard(orderId).getByTestId('refund');
  await line.waitFor({ timeout: SHOWN_MS });
  const refundId = (await line.getAttribute('data-refund-id')) ?? '';
  expect(await line.getByTestId('refund-status').textContent()).toBe('待审核 Pending review');
  await shot(`${prefix}-refund-applied`);

  await page.getByTestId('as-merchant').click();
  const review = reviewCard(refundId);
  await review.waitFor({ timeout: SHOWN_MS });
  expect(await review.getByTestId('review-status').getAttribute('data-status')).toBe('PENDING_REVIEW');
  await review.getByTestId('review-comment').fill('同意退款');
  await shot(`${prefix}-merchant-review`);
  await review.getByTestId('review-approve').click();
  // PROCESSING first (WeChat accepted), then SUCCESS when WeChat's refund notify arrives.
  await expect
    .poll(() => review.getByTestId('review-status').textContent(), { timeout: SHOWN_MS })
    .toBe('退款完成 Refunded');
  await expect.poll(() => notifyRow('refund', refundId).getAttribute('data-outcome')).toBe('ok');
  await shot(`${prefix}-merchant-refunded`);

  await page.getByTestId('as-shopper-a').click();
  await expect
    .poll(() => refundLine(refundId).getByTestId('refund-status').textContent(), { timeout: SHOWN_MS })
    .toBe('退款完成 Refunded');
  expect(await orderCard(orderId).textContent()).toContain(`已退 refunded ¥${yuan}`);
  await shot(`${prefix}-shopper-refunded`);
  return refundId;
}

describe('the sandbox console in Chromium', () => {
  it('buy → pay in the cashier → PAID → apply refund → merchant approves → 退款完成', async () => {
    const orderId = await buyAndPay('mooncake-box', '128.00', '1');
    await expect
      .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    expect(await orderStatus(orderId).textContent()).toBe('已支付 Paid');
    expect(await notifyRow('pay', orderId).getAttribute('data-outcome')).toBe('ok');
    await shot('1-paid');

    const refundId = await refundThroughReview(orderId, '128.00', '1');

    const order = await stack.db.get<OrderDoc>('orders', orderId);
    expect(order).toMatchObject({ status: 'PAID', refundedFee: 12800, refundReservedFee: 0 });
    const refund = await stack.db.get<RefundDoc>('refunds', refundId);
    expect(refund).toMatchObject({ status: 'SUCCESS', refundFee: 12800, comment: '同意退款' });

    // The other shopper sees none of it.
    await page.getByTestId('as-shopper-b').click();
    await expect.poll(() => page.getByTestId('orders').textContent()).toContain('No orders yet');
  });

  it('a pay notify dropped by a fault set on the page stays unpaid until reconcile is clicked', async () => {
    await page.getByTestId('fault-drop-pay').check();
    await expect.poll(() => stack.simulator.faults().dropPayNotifies).toBe(true);

    const orderId = await buyAndPay('chopsticks', '19.90', '2');
    await expect.poll(() => notifyRow('pay', orderId).getAttribute('data-outcome')).toBe('dropped');
    // Two polls later the order is still unpaid: nothing told the shop about the money.
    await page.waitForTimeout(2500);
    expect(await orderStatus(orderId).getAttribute('data-status')).toBe('NOTPAY');
    expect((await stack.db.get<OrderDoc>('orders', orderId))?.status).toBe('NOTPAY');
    await shot('2-notify-dropped');

    await page.getByTestId('reconcile').click();
    await expect
      .poll(() => page.getByTestId('sandbox-result').textContent(), { timeout: SHOWN_MS })
      .toContain('ordersPaid 1');
    await expect
      .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    await shot('2-reconciled');
    const events = await stack.db.all<PaymentEventDoc>('payment_events', { _id: `${orderId}:PAID` });
    expect(events.map((e) => e.source)).toEqual(['orderquery']);

    await page.getByTestId('fault-drop-pay').uncheck();
    await expect.poll(() => stack.simulator.faults().dropPayNotifies).toBe(false);
    await refundThroughReview(orderId, '19.90', '2');
    expect((await stack.db.get<OrderDoc>('orders', orderId))?.refundedFee).toBe(1990);
  });
});
