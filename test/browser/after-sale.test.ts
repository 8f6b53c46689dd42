/**
 * The console's after-sale actions in Chromium, as the mini-program offers them: a shopper
 * cancels an unpaid order and withdraws a pending refund application (each after a
 * confirmation), applies with a preset reason; the merchant works the review queue oldest
 * first with its pending count, searches it by order number, and confirms a decision with its
 * amount or steps back without sending anything. Cross-checked with the database.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrderDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { startConsoleStack } from '../../sandbox/console';
import type { Stack } from '../../sandbox/stack';
import { buyAndPay, newRequestId } from '../integration/support';
import { cutOff, launchChromium, SHOWN_MS, shot as shotOf } from './support';

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

beforeEach(() => {
  pageErrors.length = 0;
});
afterEach(async () => {
  await page?.close();
  expect(pageErrors).toEqual([]);
});

async function open(query: string, width = 1280): Promise<void> {
  page = await browser.newPage({ viewport: { width, height: 860 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${stack.info.consoleUrl}${query}`);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
}
const shot = (name: string) => shotOf(page, `after-sale-${name}`);
const orderCard = (orderId: string) => page.locator(`[data-testid="order"][data-order-id="${orderId}"]`);
const reviewCards = () => page.getByTestId('review');
const sent = (name: string) => {
  const calls: Record<string, unknown>[] = [];
  page.on('request', (r) => {
    if (r.url().endsWith(`/functions/${name}`)) calls.push(JSON.parse(r.postData() ?? '{}'));
  });
  return calls;
};

async function apply(orderId: string, refundFee: number, reason = 'queue') {
  const out = await stack.call(
    'applyRefund',
    { orderId, refundFee, reason, requestId: newRequestId() },
    stack.info.shopperOpenid,
  );
  if (!out.ok) throw new Error(out.error.code);
  return out.data.refund.refundId;
}

describe('after-sale actions in the console', () => {
  it('a shopper cancels an unpaid order after confirming; it stops being payable', async () => {
    await open('?as=a');
    const cancels = sent('cancelOrder');
    await page.getByTestId('buy-chopsticks').click();
    const cashier = page.getByTestId('cashier');
    await cashier.waitFor({ state: 'visible', timeout: SHOWN_MS });
    const orderId = (await cashier.getByTestId('cashier-order').getAttribute('data-order-id')) ?? '';
    await cashier.getByTestId('cashier-cancel').click();
    await cashier.waitFor({ state: 'hidden', timeout: SHOWN_MS });

    const card = orderCard(orderId);
    await card.getByTestId('order-cancel').waitFor({ timeout: SHOWN_MS });
    await card.getByTestId('order-cancel').click();
    expect(await page.getByTestId('confirm-text').textContent()).toContain('¥19.90');
    await page.getByTestId('confirm-cancel').click();
    expect(cancels).toEqual([]);
    expect((await stack.db.get<OrderDoc>('orders', orderId))?.cancelledAtMs).toBeUndefined();

    await card.getByTestId('order-cancel').click();
    await shot('cancel-confirm');
    await page.getByTestId('confirm-ok').click();
    await expect
      .poll(() => card.getByTestId('order-display').getAttribute('data-display'), { timeout: SHOWN_MS })
      .toBe('CANCELLED');
    expect(await page.getByTestId('toast').textContent()).toContain('订单已取消');
    expect(cancels).toEqual([{ orderId }]);
    expect(await card.getByTestId('order-pay').count()).toBe(0);
    expect(await card.getByTestId('order-cancel').count()).toBe(0);
    expect((await stack.db.get<OrderDoc>('orders', orderId))?.cancelledAtMs).toBeGreaterThan(0);
    await shot('cancelled');
  });

  it('a shopper applies with a preset reason, then withdraws the application; the amount is refundable again', async () => {
    const orderId = await buyAndPay(stack, stack.info.shopperOpenid, 'tea-longjing');
    await open('?as=a');
    const card = orderCard(orderId);
    await card.getByTestId('order-refund').click();
    const form = page.getByTestId('refund-form');
    await form.getByTestId('refund-reason-code').selectOption({ label: '质量问题' });
    await form.getByTestId('refund-reason').fill('茶叶受潮');
    await form.getByTestId('refund-submit').click();
    const line = card.getByTestId('refund');
    await line.waitFor({ timeout: SHOWN_MS });
    const refundId = (await line.getAttribute('data-refund-id')) ?? '';
    expect(await stack.db.get<RefundDoc>('refunds', refundId)).toMatchObject({
      reasonCode: 'QUALITY',
      reason: '质量问题：茶叶受潮',
    });
    expect(await card.getByTestId('order-refund').count()).toBe(0); // all of it is reserved

    await line.getByTestId('refund-withdraw').click();
    expect(await page.getByTestId('confirm-title').textContent()).toContain('撤销退款申请');
    await page.getByTestId('confirm-ok').click();
    await expect
      .poll(() => line.getByTestId('refund-status').getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('WITHDRAWN');
    expect(await line.getByTestId('refund-withdraw').count()).toBe(0);
    await card.getByTestId('order-refund').waitFor({ timeout: SHOWN_MS });
    expect(await stack.db.get<OrderDoc>('orders', orderId)).toMatchObject({
      refundReservedFee: 0,
      refundUsedFee: 0,
    });
    await shot('withdrawn');
  });

  it('the merchant works the queue oldest first with its pending count, and finds an order by its number', async () => {
    const first = await buyAndPay(stack, stack.info.shopperOpenid, 'mooncake-box');
    const second = await buyAndPay(stack, stack.info.shopperOpenid, 'mooncake-box');
    const older = await apply(first, 100);
    const middle = await apply(second, 200);
    const newer = await apply(first, 300);
    const pending = await stack.db.count('refunds', { status: 'PENDING_REVIEW' });

    await open('?as=merchant&view=PENDING_REVIEW');
    await expect
      .poll(() => page.getByTestId('queue-pending').getAttribute('data-count'), { timeout: SHOWN_MS })
      .toBe(String(pending));
    expect(await page.getByTestId('queue-sort').getAttribute('data-sort')).toBe('oldest');
    const ids = () =>
      reviewCards().evaluateAll((cards) => cards.map((c) => c.getAttribute('data-refund-id')));
    const ours = (all: (string | null)[]) =>
      all.filter((id) => id === older || id === middle || id === newer);
    await expect.poll(async () => ours(await ids()), { timeout: SHOWN_MS }).toEqual([older, middle, newer]);
    await shot('queue-oldest');

    await page.getByTestId('queue-sort').click();
    await expect.poll(async () => ours(await ids()), { timeout: SHOWN_MS }).toEqual([newer, middle, older]);
    expect(new URL(page.url()).searchParams.get('sort')).toBe('newest');

    await page.getByTestId('queue-search').fill(second);
    await page.getByTestId('queue-search-go').click();
    await expect.poll(ids, { timeout: SHOWN_MS }).toEqual([middle]);
    expect(new URL(page.url()).searchParams.get('q')).toBe(second);
    await shot('queue-search');
    // A reload keeps the search.
    await page.reload();
    await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
    await expect.poll(ids, { timeout: SHOWN_MS }).toEqual([middle]);

    await page.getByTestId('queue-search-clear').click();
    await expect.poll(async () => ours(await ids()), { timeout: SHOWN_MS }).toEqual([newer, middle, older]);
  });

  it('the merchant confirms a decision with its amount, and stepping back sends nothing', async () => {
    const orderId = await buyAndPay(stack, stack.info.shopperOpenid, 'tea-longjing');
    const refundId = await apply(orderId, 1234);
    await open('?as=merchant', 390);
    const decisions = sent('approveRefund');
    const card = page.locator(`[data-testid="review"][data-refund-id="${refundId}"]`);
    await card.waitFor({ timeout: SHOWN_MS });
    await card.getByTestId('review-approve').click();
    expect(await page.getByTestId('confirm-title').textContent()).toContain('确认同意退款');
    expect(await page.getByTestId('confirm-text').textContent()).toContain('¥12.34');
    expect(await cutOff(page)).toEqual([]);
    await shot('confirm-approve-phone');
    await page.getByTestId('confirm-cancel').click();
    await page.waitForTimeout(300);
    expect(decisions).toEqual([]);
    expect((await stack.db.get<RefundDoc>('refunds', refundId))?.status).toBe('PENDING_REVIEW');

    await card.getByTestId('review-approve').click();
    await page.getByTestId('confirm-ok').click();
    await expect
      .poll(() => card.getByTestId('review-status').getAttribute('data-status'), { timeout: SHOWN_MS })
      .not.toBe('PENDING_REVIEW');
    expect(decisions).toEqual([{ refundId, decision: 'approve' }]);
  });
});
