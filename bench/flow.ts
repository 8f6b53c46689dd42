import { nonceStr } from '../cloudfunctions/shared/wxpay/nonce';
/**
 * The whole shop flow, one step at a time through the function runtime, recording what the
 * emulator counted for each step. Section 3 reads the counts; section 1 runs the same flow on
 * both builds (wx-server-sdk bundled and external) to prove every SDK path the functions use
 * works in each.
 *
 * Notifies are posted by this script (the simulator's own are switched off for the steps that
 * count them), so "first" and "duplicate" are exactly that, not a race with the simulator.
 */

import { encryptRefundNotifyForTest, signPayNotifyForTest } from '../cloudfunctions/shared/wxpay/testing';
import type { InvokeContext, InvokeResult } from '../sandbox/runtime';
import type { Stack } from '../sandbox/stack';

export const SHOPPER = 'o_shopper_demo';
export const ADMIN = 'o_admin_demo';

export interface FlowStep {
  step: string;
  fn: string;
  dbRequests: number;
  durationMs: number;
  coldStart: boolean;
  initMs?: number;
}

const shopper: InvokeContext = { OPENID: SHOPPER, APPID: 'wxlocalsandbox0001', SOURCE: 'wx_client' };
const admin: InvokeContext = { OPENID: ADMIN, APPID: 'wxlocalsandbox0001', SOURCE: 'wx_client' };
const http: InvokeContext = { SOURCE: 'wx_http' };
const httpEvent = (body: string) => ({ httpMethod: 'POST', body, isBase64Encoded: false, headers: {} });

type Data = Record<string, unknown>;

/** Runs every function the shop has, in the order a purchase and a refund take. */
export async function runFlow(stack: Stack): Promise<FlowStep[]> {
  const steps: FlowStep[] = [];
  const m = stack.info.merchant;
  const keys = { appid: m.appid, mchId: m.mchid, apiKey: m.apiKey, signType: m.signType };

  async function step(label: string, fn: string, event: unknown, ctx: InvokeContext): Promise<InvokeResult> {
    const r = await stack.runtime.invoke(fn, event, ctx);
    if (r.error) throw new Error(`${label} (${fn}) failed: ${r.error.code}: ${r.error.message}`);
    const res = r.result as { ok?: boolean; error?: unknown; statusCode?: number; body?: string } | null;
    if (res && res.ok === false) throw new Error(`${label} (${fn}) answered ${JSON.stringify(res.error)}`);
    if (res && typeof res.body === 'string' && !res.body.includes('<return_code><![CDATA[SUCCESS]]>')) {
      throw new Error(`${label} (${fn}) answered ${res.body}`);
    }
    const s: FlowStep = {
      step: label,
      fn,
      dbRequests: r.dbRequests,
      durationMs: r.durationMs,
      coldStart: r.coldStart,
    };
    if (r.initMs !== undefined) s.initMs = r.initMs;
    steps.push(s);
    return r;
  }
  const data = (r: InvokeResult) => (r.result as { data: Data }).data;

  // Every function runs at least once; these two first, as the mini-program's home page does.
  for (const fn of ['listProducts', 'whoami']) await step(`${fn}`, fn, {}, shopper);

  const created = data(
    await step(
      'createOrder',
      'createOrder',
      { items: [{ productId: 'tea-longjing', quantity: 1 }] },
      shopper,
    ),
  );
  const orderId = created['orderId'] as string;
  const totalFee = created['totalFee'] as number;
  await step('createOrder (pay again)', 'createOrder', { orderId }, shopper);

  stack.simulator.setFaults({ dropPayNotifies: true, dropRefundNotifies: true });
  try {
    const paid = stack.simulator.pay(created['payment'] as Record<string, unknown>);
    if (paid.errMsg !== 'requestPayment:ok') throw new Error(`pay: ${paid.errMsg}`);
    const notify = signPayNotifyForTest(keys, {
      out_trade_no: orderId,
      total_fee: totalFee,
      openid: SHOPPER,
    });
    await step('payNotify (first)', 'payNotify', httpEvent(notify), http);
    await step('payNotify (duplicate)', 'payNotify', httpEvent(notify), http);

    const q = data(await step('queryOrder (PAID)', 'queryOrder', { orderId }, shopper));
    if ((q['order'] as Data)['status'] !== 'PAID')
      throw new Error(`order is ${(q['order'] as Data)['status']}`);
    await step('listOrders', 'listOrders', {}, shopper);

    const applied = data(
      await step(
        'applyRefund',
        'applyRefund',
        { orderId, refundFee: 800, reason: 'bench', requestId: nonceStr(24) },
        shopper,
      ),
    );
    const refundId = (applied['refund'] as Data)['refundId'] as string;
    const approved = data(
      await step('approveRefund (approve)', 'approveRefund', { refundId, decision: 'approve' }, admin),
    );
    if ((approved['refund'] as Data)['status'] !== 'PROCESSING') {
      throw new Error(`refund is ${(approved['refund'] as Data)['status']} after approval`);
    }
    await step('listRefunds', 'listRefunds', {}, admin);

    const refundNotify = encryptRefundNotifyForTest(keys, {
      out_refund_no: refundId,
      out_trade_no: orderId,
      refund_fee: 800,
      total_fee: totalFee,
      refund_status: 'SUCCESS',
    });
    await step('refundNotify (first)', 'refundNotify', httpEvent(refundNotify), http);
    await step('refundNotify (duplicate)', 'refundNotify', httpEvent(refundNotify), http);
    const after = data(await step('queryOrder (refunded)', 'queryOrder', { orderId }, shopper));
    const refunds = after['refunds'] as Data[];
    if (refunds[0]?.['status'] !== 'SUCCESS') throw new Error(`refund is ${refunds[0]?.['status']}`);

    // An unpaid order: queryOrder asks WeChat (orderquery) before answering.
    const unpaid = data(
      await step(
        'createOrder (second order)',
        'createOrder',
        { items: [{ productId: 'sticker', quantity: 1 }] },
        shopper,
      ),
    );
    await step('queryOrder (NOTPAY, orderquery)', 'queryOrder', { orderId: unpaid['orderId'] }, shopper);
  } finally {
    stack.simulator.setFaults({ dropPayNotifies: false, dropRefundNotifies: false });
  }
  // The timer function: orderquery / closeorder / refundquery over whatever is open.
  const rec = await stack.runtime.fireTimer('reconcile');
  if (rec.error || (rec.result as { error?: string } | null)?.error) {
    throw new Error(`reconcile failed: ${JSON.stringify(rec.error ?? rec.result)}`);
  }
  steps.push({
    step: 'reconcile (timer)',
    fn: 'reconcile',
    dbRequests: rec.dbRequests,
    durationMs: rec.durationMs,
    coldStart: rec.coldStart,
    ...(rec.initMs !== undefined ? { initMs: rec.initMs } : {}),
  });
  return steps;
}
