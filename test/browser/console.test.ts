/**
 * The console in Chromium: a shopper buys and pays in the simulated cashier, applies for a
 * refund, the merchant approves it, and WeChat's refund notify finishes it; then the same
 * with the pay notify dropped (switched from the page) and recovered by reconcile (clicked
 * on the page), first skipped while the order is within its grace; then the whole flow on a
 * phone-sized screen, with a reload in the middle; then the flows that go through WeChat on
 * APIv3 and cloudPay. Every assertion is on what the page shows, cross-checked with the
 * database. Screenshots go to test-artifacts/browser/.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { newRequestId } from '../../miniprogram/utils/request-id';
import { startConsoleStack } from '../../sandbox/console';
import { SECOND_SHOPPER_OPENID } from '../../sandbox/console/api';
import type { Stack } from '../../sandbox/stack';
import { cutOff, launchChromium, pageWidth, SHOWN_MS, shot as shotOf } from './support';

/** Reconcile leaves an unpaid order to its pay notify this long (production: 60 s). */
const GRACE_S = 5;

let stack: Stack;
let browser: Browser;
let page: Page;

const STACK_OPTIONS = {
  // Refunds settle 0.6 s after acceptance. No timer: the recovery in the second test must
  // come from the click, not from a cron tick.
  timeScale: 0.01,
  timers: false,
  // Production seconds, run at the sandbox's time scale (×0.01): GRACE_S seconds here.
  env: { RECONCILE_GRACE_SECONDS: String(GRACE_S / 0.01), REFUND_QUERY_DELAY_SECONDS: '0' },
  functionLog: () => {},
};

beforeAll(async () => {
  stack = await startConsoleStack(STACK_OPTIONS);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

const pageErrors: string[] = [];
async function open(viewport: { width: number; height: number }, query = ''): Promise<void> {
  page = await browser.newPage({ viewport });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${stack.info.consoleUrl}${query}`);
  await ready();
}
const ready = () => page.locator('body[data-ready="true"]').waitFor({ timeout: SHOWN_MS });

beforeEach(() => {
  stack.simulator.setFaults({ dropPayNotifies: false, refundOutcome: 'SUCCESS', refundError: null });
  pageErrors.length = 0;
});

afterEach(async () => {
  await page?.close();
  expect(pageErrors).toEqual([]);
});

const shot = (name: string) => shotOf(page, name);
const orderCard = (orderId: string) => page.locator(`[data-testid="order"][data-order-id="${orderId}"]`);
const orderStatus = (orderId: string) => orderCard(orderId).getByTestId('order-status');
const refundLine = (refundId: string) => page.locator(`[data-testid="refund"][data-refund-id="${refundId}"]`);
const reviewCard = (refundId: string) => page.locator(`[data-testid="review"][data-refund-id="${refundId}"]`);
const notifyRow = (kind: 'pay' | 'refund', subject: string) =>
  page.locator(`[data-testid="notify-row"][data-kind="${kind}"][data-subject="${subject}"]`);

/** On a phone, also: nothing sticks out of the screen or is clipped. */
let phone = false;
async function nothingCutOff(step: string): Promise<void> {
  if (phone) expect(await cutOff(page), step).toEqual([]);
}

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
  await nothingCutOff('the cashier');
  await shot(`${prefix}-cashier`);
  await cashier.getByTestId('cashier-pay').click();
  await cashier.waitFor({ state: 'hidden', timeout: SHOWN_MS });
  expect(await page.getByTestId('toast').textContent()).toContain('requestPayment:ok');
  return orderId;
}

/** Fills in and sends the refund form for an order as the shopper; returns the new refund's id. */
async function applyForRefund(orderId: string, yuan: string, prefix: string): Promise<string> {
  await orderCard(orderId).getByTestId('order-refund').click();
  const form = page.getByTestId('refund-form');
  expect(await form.getByTestId('refund-amount').inputValue()).toBe(yuan);
  await form.getByTestId('refund-reason-code').selectOption({ label: '不想要了' });
  await form.getByTestId('refund-reason').fill('changed my mind');
  await nothingCutOff('the refund form');
  await form.getByTestId('refund-submit').click();
  const line = orderCard(orderId).getByTestId('refund');
  await line.waitFor({ timeout: SHOWN_MS });
  const refundId = (await line.getAttribute('data-refund-id')) ?? '';
  expect(await line.getByTestId('refund-status').textContent()).toBe('待审核 Pending review');
  await nothingCutOff('the applied refund');
  await shot(`${prefix}-refund-applied`);
  return refundId;
}

/** Approves as the merchant and waits for 退款完成, then checks the shopper sees it. */
async function approveAndSettle(orderId: string, refundId: string, yuan: string, prefix: string) {
  const review = reviewCard(refundId);
  await review.waitFor({ timeout: SHOWN_MS });
  expect(await review.getByTestId('review-status').getAttribute('data-status')).toBe('PENDING_REVIEW');
  if ((await review.getByTestId('review-comment').inputValue()) === '')
    await review.getByTestId('review-comment').fill('同意退款');
  await shot(`${prefix}-merchant-review`);
  await review.getByTestId('review-approve').click();
  // Money moves on approve: the amount is named and the merchant confirms.
  expect(await page.getByTestId('confirm-text').textContent()).toContain(`¥${yuan}`);
  await nothingCutOff('the confirmation');
  await page.getByTestId('confirm-ok').click();
  // PROCESSING first (WeChat accepted), then SUCCESS when WeChat's refund notify arrives.
  await expect
    .poll(() => review.getByTestId('review-status').textContent(), { timeout: SHOWN_MS })
    .toBe('退款完成 Refunded');
  await expect.poll(() => notifyRow('refund', refundId).getAttribute('data-outcome')).toBe('ok');
  await nothingCutOff('the refunded review');
  await shot(`${prefix}-merchant-refunded`);

  await page.getByTestId('as-shopper-a').click();
  await expect
    .poll(() => refundLine(refundId).getByTestId('refund-status').textContent(), { timeout: SHOWN_MS })
    .toBe('退款完成 Refunded');
  expect(await orderCard(orderId).textContent()).toContain(`已退 refunded ¥${yuan}`);
  await nothingCutOff('the shopper after the refund');
  await shot(`${prefix}-shopper-refunded`);
}

async function refundThroughReview(orderId: string, yuan: string, prefix: string): Promise<string> {
  const refundId = await applyForRefund(orderId, yuan, prefix);
  await page.getByTestId('as-merchant').click();
  await approveAndSettle(orderId, refundId, yuan, prefix);
  return refundId;
}

/** The whole flow on the page: bought, paid, refunded, and the other shopper sees none of it. */
async function paidAndRefunded(prefix: string): Promise<void> {
  const orderId = await buyAndPay('mooncake-box', '128.00', prefix);
  await expect
    .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
    .toBe('PAID');
  expect(await orderStatus(orderId).textContent()).toBe('已支付 Paid');
  // Acknowledged (on a loaded machine a cold function may miss WeChat's 5 s and the retry lands).
  await expect
    .poll(
      () => notifyRow('pay', orderId).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-outcome'))),
      {
        timeout: SHOWN_MS,
      },
    )
    .toContain('ok');
  await shot(`${prefix}-paid`);

  const refundId = await refundThroughReview(orderId, '128.00', prefix);

  const order = await stack.db.get<OrderDoc>('orders', orderId);
  expect(order).toMatchObject({ status: 'PAID', refundedFee: 12800, refundReservedFee: 0 });
  const refund = await stack.db.get<RefundDoc>('refunds', refundId);
  expect(refund).toMatchObject({ status: 'SUCCESS', refundFee: 12800, comment: '同意退款' });

  // The other shopper sees none of it.
  await page.getByTestId('as-shopper-b').click();
  await expect.poll(() => page.getByTestId('orders').textContent()).toContain('No orders yet');
}

/** A pay notify lost: reconcile first waits for it (and says until when), then finds the money. */
async function droppedNotifyRecovered(prefix: string): Promise<void> {
  await page.getByTestId('fault-drop-pay').check();
  await expect.poll(() => stack.simulator.faults().dropPayNotifies).toBe(true);

  const orderId = await buyAndPay('chopsticks', '19.90', prefix);
  await expect.poll(() => notifyRow('pay', orderId).getAttribute('data-outcome')).toBe('dropped');

  // Within the grace: reconcile looks at nothing and says what it skipped and from when.
  await page.getByTestId('reconcile').click();
  const result = page.getByTestId('sandbox-result');
  const skipped = result.locator(`[data-testid="reconcile-waiting"][data-id="${orderId}"]`);
  await skipped.waitFor({ timeout: SHOWN_MS });
  expect(await skipped.getAttribute('data-why')).toBe('pay-notify-grace');
  expect(await skipped.textContent()).toContain(`等支付通知 ${GRACE_S} 秒`);
  expect(await result.getByTestId('report-ordersPaid').getAttribute('data-value')).toBe('0');
  expect(await result.getByTestId('reconcile-next').textContent()).toContain('timer off');
  await shot(`${prefix}-reconcile-skipped`);

  // Polls go on, the order stays unpaid: nothing told the shop about the money.
  const dueAtMs = Number(await skipped.getAttribute('data-due-at-ms'));
  const created = await stack.db.get<OrderDoc>('orders', orderId);
  expect(dueAtMs).toBe((created?.createdAtMs ?? 0) + GRACE_S * 1000);
  await page.waitForTimeout(Math.max(0, dueAtMs - Date.now()) + 300);
  expect(await orderStatus(orderId).getAttribute('data-status')).toBe('NOTPAY');
  expect((await stack.db.get<OrderDoc>('orders', orderId))?.status).toBe('NOTPAY');
  await shot(`${prefix}-notify-dropped`);

  await page.getByTestId('reconcile').click();
  await expect
    .poll(() => result.getByTestId('report-ordersPaid').getAttribute('data-value'), { timeout: SHOWN_MS })
    .toBe('1');
  expect(await skipped.count()).toBe(0);
  await expect
    .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
    .toBe('PAID');
  await shot(`${prefix}-reconciled`);
  const events = await stack.db.all<PaymentEventDoc>('payment_events', { _id: `${orderId}:PAID` });
  expect(events.map((e) => e.source)).toEqual(['orderquery']);

  await page.getByTestId('fault-drop-pay').uncheck();
  await expect.poll(() => stack.simulator.faults().dropPayNotifies).toBe(false);
  await refundThroughReview(orderId, '19.90', prefix);
  expect((await stack.db.get<OrderDoc>('orders', orderId))?.refundedFee).toBe(1990);
}

describe('the sandbox console in Chromium', () => {
  beforeEach(async () => {
    phone = false;
    await open({ width: 1280, height: 860 });
  });

  it('buy → pay in the cashier → PAID → apply refund → merchant approves → 退款完成', () =>
    paidAndRefunded('1'));

  it('a dropped pay notify: reconcile first says it waits for the notify and until when, then finds the money', () =>
    droppedNotifyRecovered('2'));

  it('states the amount rule and a missing reason on the page, and sends nothing', async () => {
    const orderId = await buyAndPay('sticker', '0.01', '3');
    await expect
      .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    const calls: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/functions/applyRefund')) calls.push(r.postData() ?? '');
    });
    await orderCard(orderId).getByTestId('order-refund').click();
    const form = page.getByTestId('refund-form');
    await form.getByTestId('refund-reason-code').selectOption({ label: '质量问题' });
    for (const amount of ['1.005', '.5', '5.']) {
      await form.getByTestId('refund-amount').fill(amount);
      await form.getByTestId('refund-reason').fill('坏了');
      await form.getByTestId('refund-submit').click();
      expect(await form.getByTestId('refund-error').textContent(), amount).toBe(
        '金额为数字，最多两位小数，如 12 或 12.50',
      );
      expect(await form.getByTestId('refund-amount').getAttribute('aria-invalid')).toBe('true');
    }
    await form.getByTestId('refund-amount').fill('0.01');
    await form.getByTestId('refund-reason-code').selectOption({ value: '' });
    await form.getByTestId('refund-submit').click();
    expect(await form.getByTestId('refund-error').textContent()).toBe('请选择退款原因');
    expect(await form.getByTestId('refund-reason-code').getAttribute('aria-invalid')).toBe('true');
    await form.getByTestId('refund-reason-code').selectOption({ label: '其他' });
    await form.getByTestId('refund-reason').fill('   ');
    await form.getByTestId('refund-submit').click();
    expect(await form.getByTestId('refund-error').textContent()).toBe('请说明退款原因');
    expect(calls).toEqual([]);
    await form.getByTestId('refund-cancel').click();
  });

  it("shows a function's refusal in the mini-program's words, with its code", async () => {
    const orderId = await buyAndPay('tea-longjing', '68.00', '4');
    await expect
      .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    await orderCard(orderId).getByTestId('order-refund').click();
    // Meanwhile the same shopper applies for part of it elsewhere: the form's amount is stale.
    const elsewhere = await stack.call(
      'applyRefund',
      { orderId, refundFee: 100, reason: 'elsewhere', requestId: newRequestId() },
      stack.info.shopperOpenid,
    );
    expect(elsewhere.ok).toBe(true);
    const form = page.getByTestId('refund-form');
    await form.getByTestId('refund-reason-code').selectOption({ label: '不想要了' });
    await form.getByTestId('refund-submit').click();
    await expect
      .poll(() => form.getByTestId('refund-error').textContent(), { timeout: SHOWN_MS })
      .toBe('退款金额超过可退金额 · REFUND_EXCEEDS_PAID');
    await form.getByTestId('refund-cancel').click();
  });

  it('double-clicking submit sends one application with one requestId', async () => {
    const orderId = await buyAndPay('tea-longjing', '68.00', '5');
    await expect
      .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    const sent: { requestId: string }[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/functions/applyRefund')) sent.push(JSON.parse(r.postData() ?? '{}'));
    });
    await orderCard(orderId).getByTestId('order-refund').click();
    const form = page.getByTestId('refund-form');
    await form.getByTestId('refund-amount').fill('10');
    await form.getByTestId('refund-reason-code').selectOption({ label: '不想要了' });
    await form.getByTestId('refund-reason').fill('double tap');
    await form.getByTestId('refund-submit').dblclick();
    await orderCard(orderId).getByTestId('refund').waitFor({ timeout: SHOWN_MS });
    await page.waitForTimeout(500);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.requestId).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect(await stack.db.count('refunds', { orderId })).toBe(1);
    expect((await stack.db.get<OrderDoc>('orders', orderId))?.refundReservedFee).toBe(1000);
  });

  it("disables all of the cashier's buttons while a payment is in flight", async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    await page.route('**/console/api/pay', async (route) => {
      await held;
      await route.continue();
    });
    await page.getByTestId('buy-chopsticks').click();
    const cashier = page.getByTestId('cashier');
    await cashier.waitFor({ state: 'visible', timeout: SHOWN_MS });
    await cashier.getByTestId('cashier-pay').click();
    for (const b of ['cashier-pay', 'cashier-fail', 'cashier-cancel'])
      expect(await cashier.getByTestId(b).isDisabled(), b).toBe(true);
    await page.keyboard.press('Escape');
    expect(await cashier.isVisible()).toBe(true);
    await shot('6-cashier-in-flight');
    release();
    await cashier.waitFor({ state: 'hidden', timeout: SHOWN_MS });
    expect(await page.getByTestId('toast').textContent()).toContain('requestPayment:ok');
  });
});

describe('the console on a phone (390×844)', () => {
  beforeEach(() => {
    phone = true;
  });

  it('buys, pays, applies for and approves a refund with nothing cut off; a reload keeps the role and the comment', async () => {
    await open({ width: 390, height: 844 }, '?as=a');
    await nothingCutOff('the first screen');
    const orderId = await buyAndPay('mooncake-box', '128.00', 'phone');
    await expect
      .poll(() => orderStatus(orderId).getAttribute('data-status'), { timeout: SHOWN_MS })
      .toBe('PAID');
    await nothingCutOff('the paid order');
    const refundId = await applyForRefund(orderId, '128.00', 'phone');

    await page.getByTestId('as-merchant').click();
    expect(new URL(page.url()).searchParams.get('as')).toBe('merchant');
    const review = reviewCard(refundId);
    await review.waitFor({ timeout: SHOWN_MS });
    await review.getByTestId('review-comment').fill('同意，已收到退货');
    await nothingCutOff('the merchant review');

    // A reload in the middle: still the merchant, the comment still there.
    await page.reload();
    await ready();
    expect(await page.getByTestId('as-merchant').getAttribute('aria-pressed')).toBe('true');
    await reviewCard(refundId).waitFor({ timeout: SHOWN_MS });
    expect(await reviewCard(refundId).getByTestId('review-comment').inputValue()).toBe('同意，已收到退货');
    await shot('phone-after-reload');

    await approveAndSettle(orderId, refundId, '128.00', 'phone');
    expect(await stack.db.get<RefundDoc>('refunds', refundId)).toMatchObject({
      status: 'SUCCESS',
      comment: '同意，已收到退货',
    });
  });

  it.each([360, 414])(
    'fits a %i px wide screen with the sandbox panel and a reconcile report',
    async (width) => {
      await open({ width, height: 800 }, '?as=a');
      await page.getByTestId('reconcile').click();
      await page.getByTestId('reconcile-next').waitFor({ timeout: SHOWN_MS });
      await page.getByTestId('as-merchant').click();
      await ready();
      await nothingCutOff(`${width} px`);
      expect(await pageWidth(page)).toBeLessThanOrEqual(width);
      await shot(`phone-${width}`);
    },
  );

  // Last: it leaves the second shopper with every unpaid-order place taken.
  it('says in Chinese and English how many unpaid orders to settle first, and for how long', async () => {
    for (let q = 1; q <= 10; q++) {
      const r = await stack.call(
        'createOrder',
        { items: [{ productId: 'sticker', quantity: q }] },
        SECOND_SHOPPER_OPENID,
      );
      expect(r.ok).toBe(true);
    }
    await open({ width: 1280, height: 860 }, '?as=b');
    await page.getByTestId('buy-chopsticks').click();
    await expect
      .poll(() => page.getByTestId('toast').textContent(), { timeout: SHOWN_MS })
      .toBe(
        '待支付的订单太多，请先支付或取消其中 1 笔（或 30 分钟后再试） · Too many unpaid orders: pay or cancel 1 of them first (or try again in 30 min) · RATE_LIMITED',
      );
    await shot('rate-limited');
  });
});

// The flows that go through WeChat, on the other two providers: the same page, the same
// clicks, the same states. The page's other behaviour (forms, cashier, phone layout) does not
// depend on the provider and runs on APIv2 above.
for (const provider of ['v3', 'cloudpay'] as const) {
  describe(`the console on ${provider}`, () => {
    let v2Stack: Stack;
    beforeAll(async () => {
      v2Stack = stack;
      stack = await startConsoleStack({ ...STACK_OPTIONS, provider });
    });
    afterAll(async () => {
      await stack?.close();
      stack = v2Stack;
    });
    beforeEach(async () => {
      phone = false;
      await open({ width: 1280, height: 860 });
    });

    it('says how new orders are paid', async () => {
      expect(await page.locator('#timings').textContent()).toContain(
        provider === 'v3' ? 'APIv3 (RSA)' : 'cloudPay',
      );
    });

    it('buy → pay → PAID → apply → approve → 退款完成, with the notifies shown in their transport', async () => {
      await paidAndRefunded(`${provider}-1`);
      const rows = page.locator('[data-testid="notify-row"]');
      expect(await rows.first().textContent()).toContain(provider === 'v3' ? 'APIv3 JSON' : 'cloudPay');
    });

    it('a dropped pay notify is found by reconcile', () => droppedNotifyRecovered(`${provider}-2`));
  });
}
