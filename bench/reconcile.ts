/**
 * Reconcile against a backlog: 10,000 NOTPAY orders whose notify has not come (created over
 * the last 25 minutes, so all of them expire within the next 30) and 2,000 PROCESSING refunds
 * due for refundquery. Three figures:
 *
 * 1. one run of the reconcile function as deployed (the built bundle, its timer event): time,
 *    database requests, items looked at;
 * 2. the same code in-process at several batch sizes: database requests and WeChat calls per
 *    run against the batch size (they should grow linearly or better);
 * 3. coverage over consecutive runs: how many distinct orders orderquery has seen, against
 *    the backlog that is due before it expires.
 *
 * From these it prints what a run must do to look at every item within its due time, under
 * stated assumptions for production latency (the simulator and the emulator answer in
 * microseconds to milliseconds; WeChat and CloudBase do not).
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { loadConfig } from '../cloudfunctions/shared/config';
import type { Deps } from '../cloudfunctions/shared/domain/deps';
import type { OrderDoc, RefundDoc } from '../cloudfunctions/shared/domain/model';
import { reconcile } from '../cloudfunctions/shared/domain/reconcile';
import { Store } from '../cloudfunctions/shared/store';
import { createWxPayClient, nonceStr, type WxPayClient } from '../cloudfunctions/shared/wxpay';
import { type Stack, startStack } from '../sandbox/stack';
import type { SimOrder, SimRefund } from '../sandbox/wxpay';
import { insertAll, refundOf, trade } from './backlog';
import { round, table } from './stats';

/** Assumptions for production, not measurements: one WeChat API call, one CloudBase request. */
const WX_MS = 150;
const DB_MS = 25;
const TIMER_EVERY_MIN = 5;
const FUNCTION_TIMEOUT_S = 60;
/** An unpaid order must be looked at before it expires (ORDER_EXPIRE_MINUTES, default 30). */
const ORDER_DUE_MIN = 30;
/** A processing refund is asked about at least once an hour. */
const REFUND_DUE_MIN = 60;

export interface ReconcileBench {
  backlog: { orders: number; refunds: number };
  deployedRun: { durationMs: number; dbRequests: number; report: Record<string, unknown> | null };
  byBatch: {
    batch: number;
    ms: number;
    dbRequests: number;
    wxCalls: number;
    items: number;
    estimateMs: number;
  }[];
  coverage: { runs: number; distinctOrdersQueried: number; ordersQueried: number };
  needed: { ordersPerRun: number; refundsPerRun: number; perItemMs: number; concurrency: number };
  targets: { target: string; measured: string; met: boolean }[];
}

/** The WeChat port, counting calls and which orders orderquery was asked about. */
function counting(client: WxPayClient) {
  const seen = new Map<string, number>();
  let calls = 0;
  const port: WxPayClient = {
    ...client,
    orderQuery: (p) => {
      calls++;
      if ('out_trade_no' in p) seen.set(p.out_trade_no, (seen.get(p.out_trade_no) ?? 0) + 1);
      return client.orderQuery(p);
    },
    refundQuery: (p) => {
      calls++;
      return client.refundQuery(p);
    },
    closeOrder: (p) => {
      calls++;
      return client.closeOrder(p);
    },
    refund: (p) => {
      calls++;
      return client.refund(p);
    },
  };
  return { port, seen, calls: () => calls };
}

export async function reconcileBench(functionsDir: string, quick: boolean): Promise<ReconcileBench> {
  const nOrders = quick ? 2_000 : 10_000;
  const nRefunds = quick ? 400 : 2_000;
  const stack: Stack = await startStack({
    functionsDir,
    timeScale: 0.001,
    functionLog: () => {},
    env: { RECONCILE_GRACE_SECONDS: '60', REFUND_QUERY_DELAY_SECONDS: '60' },
  });
  try {
    const now = Date.now();
    const simOrders: SimOrder[] = [];
    const orders: OrderDoc[] = [];
    for (let i = 0; i < nOrders; i++) {
      // Created over the last 25 minutes, all past the notify grace, none expired yet.
      const t = trade(stack, i, {
        prefix: 'N',
        createdAtMs: now - 25 * 60_000 + Math.floor((i / nOrders) * 23 * 60_000),
      });
      orders.push(t.order);
      simOrders.push(t.sim);
    }
    const refunds: RefundDoc[] = [];
    const simRefunds: SimRefund[] = [];
    for (let i = 0; i < nRefunds; i++) {
      const paidAt = now - 3 * 3600_000 + i * 1000;
      const t = trade(stack, nOrders + i, { prefix: 'P', createdAtMs: paidAt - 30_000, paidAtMs: paidAt });
      const r = refundOf(t, i, {
        fee: t.order.totalFee,
        atMs: now - 60 * 60_000 + Math.floor((i / nRefunds) * 55 * 60_000),
        status: 'PROCESSING',
        wxStatus: 'PROCESSING',
      });
      orders.push(t.order);
      simOrders.push(t.sim);
      refunds.push(r.refund);
      simRefunds.push(r.sim);
    }
    stack.simulator.importTrades({ orders: simOrders, refunds: simRefunds });
    await insertAll(stack, 'orders', orders);
    await insertAll(stack, 'refunds', refunds);

    // 1. The function as deployed, on its timer.
    const deployed = await stack.runtime.invoke(
      'reconcile',
      { Type: 'Timer', TriggerName: 'reconcileEvery5Min', Time: new Date().toISOString() },
      { SOURCE: 'wx_trigger' },
    );
    const deployedRun = {
      durationMs: Math.round(deployed.durationMs),
      dbRequests: deployed.dbRequests,
      report: (deployed.result as Record<string, unknown> | null) ?? null,
    };

    // 2 + 3. In-process, the same code on the real wx-server-sdk.
    const require = createRequire(__filename);
    process.env['TENCENTCLOUD'] = 'true';
    const cloud = require('wx-server-sdk');
    cloud.init({ env: 'bench', secretId: 'x', secretKey: 'x', serviceUrl: stack.info.tcbServiceUrl });
    const db = cloud.database({ throwOnNotFound: false });
    const config = loadConfig(stack.env, { wxpay: true, cert: true, calls: true });
    const client = createWxPayClient({
      appid: config.wxpay.appid,
      mchId: config.wxpay.mchId,
      apiKey: config.wxpay.apiKey,
      signType: config.wxpay.signType,
      baseUrl: config.wxpay.baseUrl,
      ...(config.wxpay.caPem ? { caPem: config.wxpay.caPem } : {}),
      ...(config.cert ? { cert: config.cert } : {}),
    });
    // One run as deployed: reconcile's config.json timeout is 60 s.
    const budget = () => ({ endsAtMs: Date.now() + 60_000, callDeadlineMs: Date.now() + 54_000 });
    const byBatch: ReconcileBench['byBatch'] = [];
    for (const batch of [25, 50, 100, 200]) {
      const wx = counting(client);
      const deps: Deps = {
        store: new Store(db),
        config,
        wxpay: wx.port,
        now: Date.now,
        random: nonceStr,
        log: () => {},
        budget: budget(),
      };
      const t0 = Date.now();
      const report = await reconcile(deps, { batch });
      const ms = Date.now() - t0;
      const items = report.ordersChecked + report.refundsFinalized + report.refundsSubmitted;
      byBatch.push({
        batch,
        ms,
        dbRequests: deps.store.requests,
        wxCalls: wx.calls(),
        items,
        estimateMs: wx.calls() * WX_MS + deps.store.requests * DB_MS,
      });
    }
    const runs = 6;
    const wx = counting(client);
    let ordersQueried = 0;
    for (let i = 0; i < runs; i++) {
      const deps: Deps = {
        store: new Store(db),
        config,
        wxpay: wx.port,
        now: Date.now,
        random: nonceStr,
        log: () => {},
        budget: budget(),
      };
      ordersQueried += (await reconcile(deps, { batch: 50 })).ordersChecked;
    }
    const coverage = { runs, distinctOrdersQueried: wx.seen.size, ordersQueried };

    // What looking at every item within its due time takes, at the timer's pace: each unpaid
    // order before it expires, each processing refund once an hour.
    const ordersPerRun = Math.ceil(nOrders / (ORDER_DUE_MIN / TIMER_EVERY_MIN));
    const refundsPerRun = Math.ceil(nRefunds / (REFUND_DUE_MIN / TIMER_EVERY_MIN));
    // From the measured requests per item (batch 50) and the assumed latencies.
    const b50 = byBatch.find((b) => b.batch === 50)!;
    const perItemMs = b50.estimateMs / Math.max(1, b50.items);
    const workMs = (ordersPerRun + refundsPerRun) * perItemMs;
    const concurrency = Math.ceil(workMs / (FUNCTION_TIMEOUT_S * 1000 * 0.8));
    const per = (b: (typeof byBatch)[number]) => b.dbRequests / Math.max(1, b.items);
    const linear = byBatch.every((b) => per(b) <= per(byBatch[0]!) * 1.25);
    const out: ReconcileBench = {
      backlog: { orders: nOrders, refunds: nRefunds },
      deployedRun,
      byBatch,
      coverage,
      needed: { ordersPerRun, refundsPerRun, perItemMs: round(perItemMs), concurrency },
      targets: [
        {
          target: `one reconcile run over the ${nOrders}/${nRefunds} backlog finishes inside its ${FUNCTION_TIMEOUT_S} s timeout`,
          measured: `${round(deployedRun.durationMs / 1000, 2)} s locally, ${deployed.error ? deployed.error.code : 'no error'}`,
          met: !deployed.error && deployedRun.durationMs < FUNCTION_TIMEOUT_S * 1000,
        },
        {
          target: 'database requests grow linearly or better in the batch size',
          measured: byBatch.map((b) => `${b.batch}: ${b.dbRequests}`).join(', '),
          met: linear,
        },
        {
          target: `every unpaid order looked at before it expires (${nOrders} within ${ORDER_DUE_MIN} min)`,
          measured: `${coverage.distinctOrdersQueried} distinct orders in ${runs} runs (${runs * TIMER_EVERY_MIN} min of timer)`,
          met: coverage.distinctOrdersQueried >= Math.min(nOrders, runs * ordersPerRun),
        },
      ],
    };

    console.log(
      `\n== Reconcile over a backlog of ${nOrders} NOTPAY orders and ${nRefunds} PROCESSING refunds ==`,
    );
    console.log(
      `  deployed function, one timer run: ${deployedRun.durationMs} ms, ${deployedRun.dbRequests} db requests, report ${JSON.stringify(deployedRun.report)}`,
    );
    console.log(
      table([
        [
          'batch',
          'items',
          'db requests',
          'per item',
          'WeChat calls',
          'local time',
          `estimate (${WX_MS}/${DB_MS} ms)`,
        ],
        ...byBatch.map((b) => [
          b.batch,
          b.items,
          b.dbRequests,
          round(per(b), 2),
          b.wxCalls,
          `${b.ms} ms`,
          `${round(b.estimateMs / 1000, 1)} s`,
        ]),
      ]),
    );
    console.log(
      `  coverage: ${runs} runs at batch 50 asked orderquery ${coverage.ordersQueried} times about ${coverage.distinctOrdersQueried} distinct orders of ${nOrders}`,
    );
    console.log(
      `  needed every ${TIMER_EVERY_MIN} min: ${ordersPerRun} orders (each looked at before its ${ORDER_DUE_MIN} min are up) and ${refundsPerRun} refunds (each once in ${REFUND_DUE_MIN} min), at about ${round(perItemMs)} ms an item in production: ${round(workMs / 1000)} s of work, so about ${concurrency} items in flight to end inside 80% of the ${FUNCTION_TIMEOUT_S} s timeout`,
    );
    for (const t of out.targets) console.log(`  ${t.met ? 'met' : 'MISSED'}: ${t.target}: ${t.measured}`);
    writeFileSync(
      join(__dirname, '..', '.data', 'bench-reconcile.json'),
      `${JSON.stringify(out, null, 2)}\n`,
    );
    return out;
  } finally {
    await stack.close();
  }
}
