import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type { Result } from '../../cloudfunctions/shared/contract';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import type { ProviderName } from '../../cloudfunctions/shared/providers/port';
import { rfc3339Beijing } from '../../cloudfunctions/shared/providers/time';
import { notifyBodyForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import { encryptRefundNotifyForTest } from '../../cloudfunctions/shared/wxpay';
import { signPayNotifyForTest } from '../../cloudfunctions/shared/wxpay/testing';
import { type Stack, type StackOptions, startStack } from '../../sandbox/stack';

export const SHOPPER = 'o_shopper_demo';
export const OTHER = 'o_shopper_two';
export const ADMIN = 'o_admin_demo';

/** Sandbox time in the test stacks: WeChat's and the functions' business waits × this. */
export const TEST_TIME_SCALE = 0.001;

/**
 * Lets `productionMs` of business time pass in a test stack (e.g. the 1-minute refund rule);
 * `timeScale` is the stack's, for a file that starts its stack at another speed.
 */
export function passTime(productionMs: number, timeScale: number = TEST_TIME_SCALE): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.ceil(productionMs * timeScale) + 15));
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

/**
 * A test stack (see testStack) started before a test file's tests and closed after them. Call
 * at the top level of the file; read `stack` in hooks and tests.
 */
export function useTestStack(options: StackOptions = {}): { readonly stack: Stack } {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await testStack(options);
  });
  afterAll(() => stack?.close());
  return {
    get stack() {
      if (!stack) throw new Error('the test stack starts in beforeAll: use it in hooks and tests');
      return stack;
    },
  };
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

/** Every provider the shop can take payments through; the integration flow runs on each. */
export const PROVIDERS: readonly ProviderName[] = ['v2', 'v3', 'cloudpay'];

/**
 * The words each provider's WeChat uses, as the merchant reads them in reasons and the trade
 * log: APIv3 has its own codes; cloudPay is APIv2 underneath (its err_code recovered from the text).
 */
export const WORDS: Record<ProviderName, { notEnough: string; closed: string; abnormal: string }> = {
  v2: { notEnough: 'NOTENOUGH', closed: 'REFUNDCLOSE', abnormal: 'CHANGE' },
  v3: { notEnough: 'NOT_ENOUGH', closed: 'CLOSED', abnormal: 'ABNORMAL' },
  cloudpay: { notEnough: 'NOTENOUGH', closed: 'REFUNDCLOSE', abnormal: 'CHANGE' },
};

/** The shop's answer to a notify, whatever its transport: received (acknowledged) or not. */
export interface NotifyAnswer {
  ok: boolean;
  status?: number;
  body: string;
}

/**
 * A refund notify for `fields`, made as WeChat would make it for this stack's provider and
 * delivered to the shop: APIv2 XML with req_info under the merchant's key; APIv3 JSON
 * encrypted with the APIv3 key and signed now by WeChat Pay's key; cloudPay an (unsigned)
 * callback invocation of refundNotify, which the shop confirms with queryRefund.
 */
export async function sendRefundNotify(
  stack: Stack,
  f: {
    out_refund_no: string;
    out_trade_no: string;
    refund_fee: number;
    total_fee: number;
    refund_status: 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE';
  },
): Promise<NotifyAnswer> {
  const m = stack.info.merchant;
  if (stack.info.provider === 'v2') {
    const body = encryptRefundNotifyForTest({ appid: m.appid, mchId: m.mchid, apiKey: m.apiKey }, f);
    const r = await postHttp(stack, '/refund/notify', body);
    return { ok: isSuccessXml(r.text), status: r.status, body: r.text };
  }
  if (stack.info.provider === 'v3') {
    const status = { SUCCESS: 'SUCCESS', REFUNDCLOSE: 'CLOSED', CHANGE: 'ABNORMAL' }[f.refund_status];
    const body = notifyBodyForTest(
      `REFUND.${status}`,
      {
        mchid: m.mchid,
        out_trade_no: f.out_trade_no,
        transaction_id: '4200000000000000000000000000',
        out_refund_no: f.out_refund_no,
        refund_id: `50300${Date.now()}`,
        refund_status: status,
        ...(status === 'SUCCESS' ? { success_time: rfc3339Beijing(Date.now()) } : {}),
        user_received_account: '支付用户零钱',
        amount: {
          total: f.total_fee,
          refund: f.refund_fee,
          payer_total: f.total_fee,
          payer_refund: f.refund_fee,
        },
      },
      stack.info.v3!.apiV3Key,
    );
    return postV3(stack, '/refund/notify', body, stack.simulator.v3!.signNotifyForTest(body));
  }
  const out = await stack.runtime.invoke(
    stack.info.cloudPay!.refundFunction,
    {
      returnCode: 'SUCCESS',
      appid: m.appid,
      subMchId: stack.info.cloudPay!.subMchId,
      outRefundNo: f.out_refund_no,
      outTradeNo: f.out_trade_no,
      refundFee: f.refund_fee,
      totalFee: f.total_fee,
      refundStatus: f.refund_status,
    },
    { SOURCE: 'wx_paycallback' },
  );
  const value = out.result as { errcode?: number };
  return { ok: value?.errcode === 0, body: JSON.stringify(out.result) };
}

/** POSTs an APIv3 notify exactly as given (bytes and headers) to the gateway's HTTP access. */
export async function postV3(
  stack: Stack,
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<NotifyAnswer> {
  const res = await fetch(`${stack.info.gatewayUrl}/http${path}`, {
    method: 'POST',
    body,
    headers: { ...headers, 'content-type': 'application/json' },
  });
  const text = await res.text();
  return { ok: res.status === 200 || res.status === 204, status: res.status, body: text };
}
