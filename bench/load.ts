/**
 * Section 4: the local stack under load, through the gateway over HTTP as the console and
 * WeChat reach it. Two phases:
 * - shoppers: N concurrent shoppers, each creating and paying orders one after another
 *   (createOrder over HTTP, then the simulator pays and sends the real pay notify back through
 *   the gateway);
 * - notify burst: every order of a fresh batch notified twice, all posted at once in random
 *   order, so first deliveries and duplicates race inside the function pool.
 * Errors are any non-200 answer, a function error, or a notify reply other than SUCCESS; the
 * database is checked afterwards: every order PAID exactly once, one payment_events entry each.
 */
import type { OrderDoc, PaymentEventDoc } from '../cloudfunctions/shared/domain/model';
import { signPayNotifyForTest } from '../cloudfunctions/shared/wxpay/testing';

import type { Stack } from '../sandbox/stack';
import { median, msSince, percentile, round } from './stats';

export interface PhaseResult {
  phase: string;
  requests: number;
  errors: number;
  wallMs: number;
  throughputPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Orders checked in the database afterwards, and how many were not PAID with one event. */
  ordersChecked: number;
  badOrders: number;
  /**
   * Pay notify deliveries by the simulator not acknowledged (e.g. no reply within its 5 s
   * timeout) and so retried later, as WeChat would: not an error in the final state, but a
   * sign the functions could not keep up.
   */
  notifyRetries: number;
  errorSamples: string[];
}

async function postJson(
  url: string,
  body: unknown,
  openid: string,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wx-openid': openid },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

function summarize(
  phase: string,
  latencies: number[],
  errors: string[],
  wallMs: number,
  ordersChecked: number,
  badOrders: number,
  notifyRetries = 0,
): PhaseResult {
  return {
    phase,
    requests: latencies.length,
    errors: errors.length,
    wallMs: round(wallMs),
    throughputPerSec: round((latencies.length / wallMs) * 1000),
    p50Ms: round(median(latencies)),
    p99Ms: round(percentile(latencies, 99)),
    maxMs: round(Math.max(...latencies)),
    ordersChecked,
    badOrders,
    notifyRetries,
    errorSamples: errors.slice(0, 5),
  };
}

/** Orders that are not PAID, or whose PAID transition is not logged exactly once. */
async function badPaidOrders(stack: Stack, orderIds: string[]): Promise<number> {
  const _ = stack.db.command;
  const orders = await stack.db.all<OrderDoc>('orders', { _id: _.in(orderIds) });
  const events = await stack.db.all<PaymentEventDoc>('payment_events', {
    _id: _.in(orderIds.map((id) => `${id}:PAID`)),
  });
  const eventCount = new Map<string, number>();
  for (const e of events) eventCount.set(e.orderId, (eventCount.get(e.orderId) ?? 0) + 1);
  const paid = new Set(orders.filter((o) => o.status === 'PAID').map((o) => o._id));
  return orderIds.filter((id) => !paid.has(id) || eventCount.get(id) !== 1).length;
}

export async function shoppersPhase(
  stack: Stack,
  shoppers: number,
  ordersEach: number,
): Promise<PhaseResult> {
  const url = `${stack.info.gatewayUrl}/functions/createOrder`;
  const latencies: number[] = [];
  const errors: string[] = [];
  const orderIds: string[] = [];
  const shop = async (openid: string, k: number, timed: boolean) => {
    const s = process.hrtime.bigint();
    try {
      const { status, json } = await postJson(
        url,
        { items: [{ productId: 'sticker', quantity: 1 + (k % 3) }] },
        openid,
      );
      if (timed) latencies.push(msSince(s));
      const r = json as { ok: boolean; data?: { orderId: string; payment: Record<string, unknown> } };
      if (status !== 200 || !r.ok || !r.data) {
        errors.push(`createOrder ${status} ${JSON.stringify(json).slice(0, 200)}`);
        return;
      }
      orderIds.push(r.data.orderId);
      // The phone pays; WeChat (the simulator) then posts the pay notify to the gateway.
      const paid = stack.simulator.pay(r.data.payment);
      if (paid.errMsg !== 'requestPayment:ok') errors.push(`pay ${paid.errMsg}`);
    } catch (e) {
      if (timed) latencies.push(msSince(s));
      errors.push(`createOrder ${(e as Error).message}`);
    }
  };
  const openids = Array.from({ length: shoppers }, (_, i) => `o_bench_shopper_${String(i).padStart(3, '0')}`);
  // Untimed first round: fills the function pools (createOrder, payNotify), so the figures are
  // the steady state; the cold starts are section 1's subject.
  await Promise.all(openids.map((o) => shop(o, 0, false)));
  await stack.simulator.flushNotifies();
  const notifiesBefore = stack.simulator.notifies().length;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    openids.map(async (o) => {
      for (let k = 0; k < ordersEach; k++) await shop(o, k, true);
    }),
  );
  await stack.simulator.flushNotifies();
  const wallMs = msSince(t0);
  const retried = stack.simulator
    .notifies()
    .slice(notifiesBefore)
    .filter((n) => n.kind === 'pay' && !n.dropped && !n.acknowledged);
  const result = summarize(
    `${shoppers} shoppers × ${ordersEach} orders (createOrder over HTTP, then pay)`,
    latencies,
    errors,
    wallMs,
    orderIds.length,
    await badPaidOrders(stack, orderIds),
    retried.length,
  );
  for (const n of retried.slice(0, 3)) {
    result.errorSamples.push(`(retried, not an error) pay notify: ${n.error ?? n.replyBody?.slice(0, 120)}`);
  }
  return result;
}

export async function notifyBurstPhase(stack: Stack, orders: number): Promise<PhaseResult> {
  const m = stack.info.merchant;
  const keys = { appid: m.appid, mchId: m.mchid, apiKey: m.apiKey, signType: m.signType };
  // Unpaid orders first (not timed), paid in the simulator with its notifies held back, so
  // every notify below is ours.
  stack.simulator.setFaults({ dropPayNotifies: true });
  const bodies: { orderId: string; xml: string }[] = [];
  const orderIds: string[] = [];
  try {
    for (let i = 0; i < orders; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, orders - i) }, (_, k) =>
          stack.call(
            'createOrder',
            { items: [{ productId: 'chopsticks', quantity: 1 }] },
            `o_bench_burst_${i + k}`,
          ),
        ),
      );
      for (const r of batch) {
        if (!r.ok) throw new Error(`setting up the burst: ${r.error.code} ${r.error.message}`);
        orderIds.push(r.data.orderId);
        const paid = stack.simulator.pay(r.data.payment as unknown as Record<string, unknown>);
        if (paid.errMsg !== 'requestPayment:ok') throw new Error(`setting up the burst: ${paid.errMsg}`);
        const xml = signPayNotifyForTest(keys, { out_trade_no: r.data.orderId, total_fee: r.data.totalFee });
        // Twice each: WeChat's retry or a duplicate delivery, byte for byte the same.
        bodies.push({ orderId: r.data.orderId, xml }, { orderId: r.data.orderId, xml });
      }
    }
  } finally {
    stack.simulator.setFaults({ dropPayNotifies: false });
  }
  // A fixed shuffle (LCG) so runs are comparable but duplicates are not adjacent.
  let seed = 42;
  for (let i = bodies.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [bodies[i], bodies[j]] = [bodies[j]!, bodies[i]!];
  }
  const url = `${stack.info.gatewayUrl}/http/pay/notify`;
  const latencies: number[] = [];
  const errors: string[] = [];
  const t0 = process.hrtime.bigint();
  await Promise.all(
    bodies.map(async (b) => {
      const s = process.hrtime.bigint();
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'text/xml' },
          body: b.xml,
        });
        const text = await res.text();
        latencies.push(msSince(s));
        if (res.status !== 200 || !text.includes('<return_code><![CDATA[SUCCESS]]></return_code>')) {
          errors.push(`notify ${b.orderId}: ${res.status} ${text.slice(0, 160)}`);
        }
      } catch (e) {
        latencies.push(msSince(s));
        errors.push(`notify ${b.orderId}: ${(e as Error).message}`);
      }
    }),
  );
  const wallMs = msSince(t0);
  return summarize(
    `burst of ${bodies.length} pay notifies for ${orders} orders (half duplicates)`,
    latencies,
    errors,
    wallMs,
    orderIds.length,
    await badPaidOrders(stack, orderIds),
  );
}
