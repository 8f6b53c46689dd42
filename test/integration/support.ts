import { randomUUID } from 'node:crypto';
import type { Result } from '../../cloudfunctions/shared/contract';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import { type Stack, type StackOptions, startStack } from '../../sandbox/stack';

export const SHOPPER = 'o_shopper_demo';
export const OTHER = 'o_shopper_two';
export const ADMIN = 'o_admin_demo';

/** Sandbox time in the test stacks: WeChat's and the functions' business waits × this. */
export const TEST_TIME_SCALE = 0.001;

/** Lets `productionMs` of business time pass in a test stack (e.g. the 1-minute refund rule). */
export function passTime(productionMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.ceil(productionMs * TEST_TIME_SCALE) + 15));
}

/**
 * The highest per-caller limits configuration allows, for files that race many calls of one
 * shopper to test something else (refund races, double taps). The limits themselves are
 * tested with the shipped defaults in limits.test.ts.
 */
export const ROOMY_LIMITS = {
  LIMIT_CREATE_ORDER_PER_MINUTE: '1000',
  LIMIT_APPLY_REFUND_PER_MINUTE: '1000',
  LIMIT_READS_PER_MINUTE: '1000',
  LIMIT_ADMIN_PER_MINUTE: '1000',
  LIMIT_OPEN_ORDERS: '100',
  LIMIT_ADMIN_OPEN_ORDERS: '100',
} as const;

/** A stack for tests: in memory, fast notify and refund timings, reconcile with no waiting. */
export function testStack(options: StackOptions = {}): Promise<Stack> {
  return startStack({
    timeScale: TEST_TIME_SCALE,
    // Function logs only when asked for (STACK_LOGS=1): a failing test prints its own story.
    functionLog: (line) => {
      if (process.env['STACK_LOGS']) console.log(line);
    },
    ...options,
    env: { RECONCILE_GRACE_SECONDS: '0', REFUND_QUERY_DELAY_SECONDS: '0', ...options.env },
  });
}

export function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.data;
}

export async function order(stack: Stack, id: string): Promise<OrderDoc> {
  const o = await stack.db.get<OrderDoc>('orders', id);
  if (!o) throw new Error(`order ${id} missing`);
  return o;
}

export async function refund(stack: Stack, id: string): Promise<RefundDoc> {
  const r = await stack.db.get<RefundDoc>('refunds', id);
  if (!r) throw new Error(`refund ${id} missing`);
  return r;
}

export function events(stack: Stack, subject: string): Promise<PaymentEventDoc[]> {
  return stack.db.all<PaymentEventDoc>('payment_events', {
    _id: stack.db.command.in([
      `${subject}:PAID`,
      `${subject}:CLOSED`,
      `${subject}:PROCESSING`,
      `${subject}:SUCCESS`,
      `${subject}:FAILED`,
      `${subject}:REJECTED`,
    ]),
  });
}

/** Orders a product as `openid` and pays it in the simulator; waits for the notify. */
export async function buyAndPay(
  stack: Stack,
  openid = SHOPPER,
  productId = 'tea-longjing',
  quantity = 1,
): Promise<string> {
  const created = unwrap(await stack.call('createOrder', { items: [{ productId, quantity }] }, openid));
  const paid = stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
  if (paid.errMsg !== 'requestPayment:ok') throw new Error(paid.errMsg);
  await stack.simulator.flushNotifies();
  return created.orderId;
}

export async function postHttp(
  stack: Stack,
  path: string,
  body: string | Buffer,
  contentType = 'text/xml',
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${stack.info.gatewayUrl}/http${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': contentType },
  });
  return { status: res.status, text: await res.text() };
}

export function payNotifyFor(
  stack: Stack,
  fields: { out_trade_no: string; total_fee: number } & Record<string, string | number>,
  keyOverride?: string,
): string {
  const m = stack.info.merchant;
  return signPayNotifyForTest(
    { appid: m.appid, mchId: m.mchid, apiKey: keyOverride ?? m.apiKey, signType: m.signType },
    { openid: SHOPPER, ...fields },
  );
}

export const isSuccessXml = (xml: string) => xml.includes('<return_code><![CDATA[SUCCESS]]></return_code>');

/** A fresh applyRefund requestId, as the mini-program makes one per form submission. */
export function newRequestId(): string {
  return `t${randomUUID().replace(/-/g, '')}`;
}
