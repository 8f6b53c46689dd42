import { nonceStr } from '../cloudfunctions/shared/wxpay/nonce';
/**
 * `npm run demo`: a scripted tour of the whole flow against an in-memory sandbox, printed
 * step by step. The shopper and the merchant call the functions through the gateway's
 * `POST /functions/<name>` (what wx.cloud.callFunction does); the phone's
 * wx.requestPayment is the simulator's pay. Exits 1 at the first step that goes wrong.
 *
 *   npm run demo                          the tour, on APIv2
 *   npm run demo -- --provider v3         on APIv3 (or cloudpay)
 *   npm run demo -- --verbose             plus every invocation and the functions' own log lines
 */

import type { FunctionMap, FunctionName } from '../cloudfunctions/shared/contract';
import type { PaymentEventDoc } from '../cloudfunctions/shared/domain/model';
import { fenToYuan } from '../cloudfunctions/shared/money';
import { PROVIDER_NAMES, type ProviderName } from '../cloudfunctions/shared/providers/port';
import { DEMO_ENV, DEMO_TIME_SCALE } from '../sandbox/console';
import { type Stack, startStack } from '../sandbox/stack';
import type { NotifyRecord } from '../sandbox/wxpay';
import { buildFunctions } from './build';

const verbose = process.argv.includes('--verbose');
const providerArg = process.argv[process.argv.indexOf('--provider') + 1];
const provider: ProviderName =
  process.argv.includes('--provider') && (PROVIDER_NAMES as readonly string[]).includes(providerArg ?? '')
    ? (providerArg as ProviderName)
    : 'v2';
if (process.argv.includes('--provider') && provider !== providerArg) {
  console.error(`--provider must be one of ${PROVIDER_NAMES.join(', ')}`);
  process.exit(2);
}
const PRODUCT = 'mooncake-box';
const WAIT_MS = 15_000;

const yuan = (fen: number) => `¥${fenToYuan(fen)}`;
let stepNo = 0;
const t0 = Date.now();
function step(text: string): void {
  stepNo += 1;
  const at = `${((Date.now() - t0) / 1000).toFixed(1)}s`.padStart(6);
  console.log(`${String(stepNo).padStart(2)}. ${at}  ${text}`);
}
const detail = (text: string) => console.log(`             ${text}`);

class DemoFailure extends Error {}
function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new DemoFailure(what);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + WAIT_MS;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new DemoFailure(`timed out after ${WAIT_MS / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** wx.cloud.callFunction, as the gateway offers it to the console and the tests. */
async function callFunction<K extends FunctionName>(
  stack: Stack,
  name: K,
  event: FunctionMap[K][0],
  openid: string,
): Promise<FunctionMap[K][1]> {
  const res = await fetch(`${stack.info.gatewayUrl}/functions/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wx-openid': openid },
    body: JSON.stringify(event),
  });
  const body = (await res.json()) as
    | { ok: true; data: FunctionMap[K][1] }
    | { ok: false; error: { code: string; message: string } }
    | { errMsg: string };
  if ('ok' in body && body.ok) return body.data;
  throw new DemoFailure(
    `${name} failed: ${'error' in body ? `${body.error.code} ${body.error.message}` : (body as { errMsg: string }).errMsg}`,
  );
}

/** How a notify reached the shop and what it answered, in the words of its transport. */
function delivered(n: NotifyRecord): string {
  if (n.transport === 'function')
    return `cloudPay invoked ${n.url.split('/').pop()} (attempt ${n.attempt}) → the shop answered ${n.replyBody ?? ''}`;
  const path = new URL(n.url).pathname;
  if (n.transport === 'v3')
    return `WeChat → POST ${path}, signed JSON (attempt ${n.attempt}) → the shop answered ${n.replyStatus}`;
  return `WeChat → POST ${path} (attempt ${n.attempt}) → the shop replied SUCCESS`;
}

async function tour(stack: Stack): Promise<void> {
  const { shopperOpenid: shopper, adminOpenid: admin } = stack.info;
  const call = <K extends FunctionName>(name: K, event: FunctionMap[K][0], openid: string) =>
    callFunction(stack, name, event, openid);

  const products = await call('listProducts', {}, shopper);
  const product = products.items.find((p) => p.id === PRODUCT);
  check(product !== undefined, `the demo product ${PRODUCT} is not on sale`);
  step(`listProducts as shopper ${shopper} → ${products.items.length} products on sale`);
  detail(`buying 1 × ${product.name} at ${yuan(product.priceFen)} (the price comes from the database)`);

  const created = await call('createOrder', { items: [{ productId: PRODUCT, quantity: 1 }] }, shopper);
  check(created.totalFee === product.priceFen, `totalFee ${created.totalFee} ≠ price ${product.priceFen}`);
  step(`createOrder → order ${created.orderId}, ${yuan(created.totalFee)}, 待支付 NOTPAY`);
  detail(`unifiedorder done; wx.requestPayment gets package=${created.payment.package.slice(0, 24)}…,`);
  detail(`signType ${created.payment.signType}, paySign ${created.payment.paySign.slice(0, 12)}…`);

  const paid = stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
  step(`wx.requestPayment in the simulator (checks the paySign, the user pays) → ${paid.errMsg}`);
  check(paid.errMsg === 'requestPayment:ok', 'the simulator refused the payment');

  // listOrders, not queryOrder: queryOrder would ask WeChat itself and hide the notify.
  const order = await waitFor('the pay notify to mark the order PAID', async () => {
    const page = await call('listOrders', {}, shopper);
    return page.items.find((o) => o.orderId === created.orderId && o.status === 'PAID');
  });
  const payNotify = stack.simulator.notifies().find((n) => n.kind === 'pay' && n.acknowledged);
  check(payNotify !== undefined, 'no acknowledged pay notify');
  step(delivered(payNotify));
  detail(`order 已支付 PAID, transaction_id ${order.transactionId}`);

  const applied = await call(
    'applyRefund',
    {
      orderId: created.orderId,
      refundFee: created.totalFee,
      reason: '送错了口味 wrong flavour',
      requestId: nonceStr(24),
    },
    shopper,
  );
  check(applied.refund.status === 'PENDING_REVIEW', `refund is ${applied.refund.status}`);
  step(
    `applyRefund ${yuan(applied.refund.refundFee)} → refund ${applied.refund.refundId}, 待审核 PENDING_REVIEW`,
  );

  const approved = await call(
    'approveRefund',
    { refundId: applied.refund.refundId, decision: 'approve', comment: '同意' },
    admin,
  );
  step(`approveRefund as merchant ${admin} → 退款中 ${approved.refund.status} (WeChat accepted the refund)`);
  check(approved.refund.status === 'PROCESSING', 'the refund was not accepted');
  detail(`not final yet: only WeChat's refund notify (or refundquery) says how it ended`);

  const settled = await waitFor('the refund notify', async () => {
    const q = await call('queryOrder', { orderId: created.orderId }, shopper);
    const r = q.refunds.find((x) => x.refundId === applied.refund.refundId);
    return r && r.status !== 'PROCESSING' ? { order: q.order, refund: r } : undefined;
  });
  const refundNotify = stack.simulator.notifies().find((n) => n.kind === 'refund');
  check(refundNotify !== undefined, 'no refund notify');
  step(
    `WeChat settled the refund (~${60 * DEMO_TIME_SCALE} s at time ×${DEMO_TIME_SCALE}); ${refundNotify.acknowledged ? delivered(refundNotify) : 'its notify was not acknowledged'}`,
  );
  check(settled.refund.status === 'SUCCESS', `the refund ended ${settled.refund.status}`);
  detail(
    `refund 退款完成 SUCCESS; order refunded ${yuan(settled.order.refundedFee)}, still refundable ${yuan(settled.order.refundableFee)}`,
  );

  const log = await stack.db.all<PaymentEventDoc>('payment_events');
  step(`trade log (payment_events): ${log.map((e) => `${e.to} via ${e.source}`).join(', ')}`);
  check(log.length === 3, `expected 3 trade log entries, got ${log.length}`);
}

async function main(): Promise<void> {
  console.log(`小店 demo: the whole pay and refund flow against an in-memory sandbox, on ${provider}\n`);
  await buildFunctions();
  const stack = await startStack({
    provider,
    timeScale: DEMO_TIME_SCALE,
    env: DEMO_ENV,
    functionLog: verbose ? (line) => console.log(line) : () => {},
  });
  try {
    step(
      `sandbox up: CloudBase emulator, WeChat Pay simulator (mch_id ${stack.info.merchant.mchid}, ${provider === 'v2' ? stack.info.merchant.signType : provider === 'v3' ? `APIv3, ${stack.info.v3?.publicKeyId}` : 'cloudPay'}), gateway ${stack.info.gatewayUrl}`,
    );
    await tour(stack);
  } finally {
    await stack.close();
  }
  console.log(`\n✓ the whole flow worked (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(
      `\n✗ demo failed: ${e instanceof DemoFailure ? e.message : e instanceof Error ? e.stack : e}`,
    );
    process.exit(1);
  },
);
