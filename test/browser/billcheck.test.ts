/**
 * The bill check (对账) in the console, in Chromium: a day with a payment whose notify was
 * dropped, a refund made by hand on the merchant platform and an order amount changed in the
 * database; WeChat's clock moved to the next morning from the page; the merchant checks the
 * day from the page and sees what the check booked by itself and the difference with what to
 * do; a second check of the day changes nothing. Every assertion is on what the page shows,
 * cross-checked with the database. Screenshots go to test-artifacts/browser/.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { billDateOf } from '../../cloudfunctions/shared/domain/billdates';
import type { OrderDoc, PaymentEventDoc } from '../../cloudfunctions/shared/domain/model';
import { DISCREPANCY_LABEL } from '../../miniprogram/utils/billcheck';
import { startConsoleStack } from '../../sandbox/console';
import type { Stack } from '../../sandbox/stack';
import { cutOff, launchChromium, pageWidth, SHOWN_MS, shot as shotOf } from './support';

let stack: Stack;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  // No timer: what gets booked must come from the check the page runs, not from reconcile.
  stack = await startConsoleStack({ timeScale: 0.01, timers: false, functionLog: () => {} });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  await stack?.close();
});
beforeEach(() => {
  stack.simulator.setFaults({ dropPayNotifies: false, refundOutcome: 'SUCCESS', refundError: null });
  stack.simulator.setClockOffset(0);
  pageErrors.length = 0;
});
afterEach(async () => {
  await page?.close();
  stack.simulator.setClockOffset(0);
  expect(pageErrors).toEqual([]);
});

async function open(viewport: { width: number; height: number }, query = ''): Promise<void> {
  page = await browser.newPage({ viewport });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${stack.info.consoleUrl}${query}`);
  await page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });
}
const shot = (name: string) => shotOf(page, `billcheck-${name}`);
const orderStatus = (orderId: string) =>
  page.locator(`[data-testid="order"][data-order-id="${orderId}"]`).getByTestId('order-status');
const dayCard = (date: string) => page.locator(`[data-testid="billcheck"][data-date="${date}"]`);

/** Buys one of a product and pays in the cashier; returns the order id the cashier showed. */
async function buyAndPay(productId: string): Promise<string> {
  await page.getByTestId(`buy-${productId}`).click();
  const cashier = page.getByTestId('cashier');
  await cashier.waitFor({ state: 'visible', timeout: SHOWN_MS });
  const orderId = (await cashier.getByTestId('cashier-order').getAttribute('data-order-id')) ?? '';
  await cashier.getByTestId('cashier-pay').click();
  await cashier.waitFor({ state: 'hidden', timeout: SHOWN_MS });
  return orderId;
}

describe('对账 in the console', () => {
  it('books a dropped payment and a merchant-platform refund, shows a changed amount with what to do, and changes nothing twice', async () => {
    await open({ width: 1280, height: 900 }, '?as=a');
    const paid = await buyAndPay('mooncake-box');
    await expect
      .poll(() => orderStatus(paid).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    const changed = await buyAndPay('tea-longjing');
    await expect
      .poll(() => orderStatus(changed).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    await page.getByTestId('fault-drop-pay').check();
    await expect.poll(() => stack.simulator.faults().dropPayNotifies).toBe(true);
    const dropped = await buyAndPay('chopsticks');
    await expect
      .poll(() =>
        page
          .locator(`[data-testid="notify-row"][data-kind="pay"][data-subject="${dropped}"]`)
          .first()
          .getAttribute('data-outcome'),
      )
      .toBe('dropped');
    expect(await orderStatus(dropped).getAttribute('data-status')).toBe('NOTPAY');

    // Someone edits an order's amount in the database.
    await stack.db.raw.collection('orders').doc(changed).update({ totalFee: 6801 });

    // On WeChat's side: ¥10 of the first order refunded by hand on the merchant platform.
    await page.getByTestId('platform-refund-order').fill(paid);
    await page.getByTestId('platform-refund-amount').fill('10');
    await page.getByTestId('platform-refund-submit').click();
    await expect.poll(() => page.getByTestId('toast').textContent()).toContain('商户平台退款');
    await page.getByTestId('settle').click();
    await expect
      .poll(() => stack.simulator.ledger().refunds.filter((r) => r.outTradeNo === paid)[0]?.status)
      .toBe('SUCCESS');
    await shot('1-day');

    // The bill of the day exists from 10:00 the next morning, on WeChat's clock.
    const day = billDateOf((await stack.db.get<OrderDoc>('orders', paid))!.paidAtMs!);
    await page.getByTestId('clock-next-morning').click();
    await expect
      .poll(async () => Number(await page.getByTestId('wx-clock').getAttribute('data-offset-ms')))
      .toBeGreaterThan(0);
    expect(stack.simulator.now()).toBeGreaterThan(Date.now() + 60_000);

    await page.getByTestId('as-merchant').click();
    // The day offered is the one whose bill now exists.
    await expect
      .poll(() => page.getByTestId('billcheck-date').inputValue())
      .toBe(`${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6)}`);
    await page.getByTestId('billcheck-run').click();
    const card = dayCard(day);
    await card.waitFor({ timeout: 30_000 });
    await expect.poll(() => card.getAttribute('data-status'), { timeout: SHOWN_MS }).toBe('DONE');
    expect(await card.getByTestId('billcheck-status').textContent()).toBe('有差异 1 项');
    expect(await card.getByTestId('billcheck-summary').textContent()).toMatch(
      /^收款 3 笔 ¥215\.90，退款 1 笔 ¥10\.00/,
    );

    // Booked by itself, each after WeChat's own query confirmed it.
    const fixes = card.getByTestId('billcheck-fix');
    expect(await fixes.evaluateAll((li) => li.map((x) => x.getAttribute('data-kind')).sort())).toEqual([
      'BOOKED_PAID',
      'EXTERNAL_REFUND',
    ]);
    expect(await card.textContent()).toContain(`补记付款（支付通知未到） · ${dropped}`);
    expect(await card.textContent()).toContain(`记录商户平台退款 · ${paid}`);
    // The changed amount is shown with what to do, and left alone.
    const issue = card.getByTestId('billcheck-issue');
    expect(await issue.getAttribute('data-kind')).toBe('AMOUNT_MISMATCH');
    expect(await issue.textContent()).toContain(changed);
    expect(await issue.textContent()).toContain('微信 ¥68.00 / 本店 ¥68.01');
    expect(await issue.getByTestId('billcheck-todo').textContent()).toBe(
      `处理 To do: ${DISCREPANCY_LABEL.AMOUNT_MISMATCH.todo}`,
    );
    await shot('2-checked');

    const books = async () => ({
      dropped: (await stack.db.get<OrderDoc>('orders', dropped))!,
      paid: (await stack.db.get<OrderDoc>('orders', paid))!,
      changed: (await stack.db.get<OrderDoc>('orders', changed))!,
      events: (await stack.db.all<PaymentEventDoc>('payment_events')).length,
    });
    const after = await books();
    expect(after.dropped.status).toBe('PAID');
    expect(after.paid).toMatchObject({ refundedFee: 1000, status: 'PAID' });
    expect(after.changed.totalFee).toBe(6801);

    // The same day again: the same result, nothing booked twice.
    await page.getByTestId('billcheck-run').click();
    await expect.poll(() => card.textContent(), { timeout: 30_000 }).toContain('2 runs');
    expect(await card.getByTestId('billcheck-fix').count()).toBe(2);
    expect(await card.getByTestId('billcheck-issue').count()).toBe(1);
    expect(await books()).toEqual(after);

    await page.getByTestId('clock-now').click();
    await expect.poll(() => page.getByTestId('wx-clock').getAttribute('data-offset-ms')).toBe('0');
    await page.getByTestId('fault-drop-pay').uncheck();
  });

  it('a refused date comes back in the mini-program’s words, and a malformed request is refused', async () => {
    await open({ width: 1280, height: 900 }, '?as=merchant');
    await page.getByTestId('billcheck-date').fill('2999-01-01');
    await page.getByTestId('billcheck-run').click();
    await expect
      .poll(() => page.getByTestId('toast').textContent())
      .toBe('提交的信息有误，请检查后重试 · INVALID_INPUT');
    const bad = await fetch(`${stack.info.gatewayUrl}/console/api/billcheck`, {
      method: 'POST',
      body: JSON.stringify({ date: 20250101 }),
    });
    expect(bad.status).toBe(400);
    const refund = await fetch(`${stack.info.gatewayUrl}/console/api/platform-refund`, {
      method: 'POST',
      body: JSON.stringify({ outTradeNo: 'no-such-order', refundFee: 100 }),
    });
    expect(refund.status).toBe(400);
    expect(((await refund.json()) as { error: string }).error).toContain('is not paid');
  });

  it.each([360, 414])('fits a %i px wide screen with the bill checks and the bills panel', async (width) => {
    // At least one day on the page: yesterday's check, a day without trades ("No Bill Exist").
    const yesterday = billDateOf(Date.now() - 24 * 3600_000);
    const run = await fetch(`${stack.info.gatewayUrl}/console/api/billcheck`, {
      method: 'POST',
      body: JSON.stringify({ date: yesterday }),
    });
    expect(run.status).toBe(200);
    await open({ width, height: 800 }, '?as=merchant');
    await page
      .getByTestId('billchecks')
      .locator('[data-testid="billcheck"]')
      .first()
      .waitFor({ timeout: SHOWN_MS });
    expect(await cutOff(page)).toEqual([]);
    expect(await pageWidth(page)).toBeLessThanOrEqual(width);
    await shot(`phone-${width}`);
  });
});
