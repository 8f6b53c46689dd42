/**
 * Reconcile against a backlog: 10,000 NOTPAY orders whose notify has not come (created over
 * the last 25 minutes, so all of them expire within the next 30) and 2,000 PROCESSING refunds
 * due for refundquery (accepted over the last hour). Three measurements, each on the same
 * freshly written backlog:
 *
 * 1. the timer's runs at production latency, in-process: every WeChat call waits WX_MS and
 *    every database request DB_MS before it is sent (the simulator and the emulator answer in
 *    microseconds to milliseconds; WeChat and CloudBase do not), each run inside the budget of
 *    a 60 s function. Between runs the shop's clock (and WeChat's) jumps to the next 5-minute
 *    timer, so orders expire and come due as they would; the runs stop once every order and
 *    refund has been looked at. Each item's first look is checked against its deadline: an
 *    order before it expires, a refund within an hour of being due;
 * 2. one run of the reconcile function as deployed (the built bundle, its timer event, the
 *    local latencies): time, database requests, what it did;
 * 3. the same code in-process at several batch sizes, each over the same 2,000 orders and 400
 *    refunds: database requests and WeChat calls per item against the batch size.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { loadConfig } from '../cloudfunctions/shared/config';
import type { Deps, Payments } from '../cloudfunctions/shared/domain/deps';
import type { RefundDoc } from '../cloudfunctions/shared/domain/model';
import { reconcile } from '../cloudfunctions/shared/domain/reconcile';
import { type PaymentProvider, providersFromConfig } from '../cloudfunctions/shared/providers';
import { budgetFor } from '../cloudfunctions/shared/runtime/function';
import { Store } from '../cloudfunctions/shared/store';
import { nonceStr } from '../cloudfunctions/shared/wxpay';
import { type Stack, startStack } from '../sandbox/stack';
import type { SimRefund } from '../sandbox/wxpay';
import { insertAll, refundOf, type Trade, trade } from './backlog';
import { round, table } from './stats';

/** Assumptions for production, not measurements: one WeChat API call, one CloudBase request. */
const WX_MS = 150;
const DB_MS = 25;
const TIMER_EVERY_MIN = 5;
const FUNCTION_TIMEOUT_MS = 60_000;
/** An unpaid order must be looked at before it expires (ORDER_EXPIRE_MINUTES, default 30). */
const ORDER_EXPIRE_MIN = 30;
/** A processing refund is looked at within an hour of being due. */
const REFUND_DUE_MIN = 60;
/** The part of the backlog each batch-size run works through: the ratios need no more. */
const BATCH_ORDERS = 2_000;
const BATCH_REFUNDS = 400;
/** The timer's runs stop here at the latest (half an hour of the shop's clock). */
const MAX_TIMER_RUNS = 7;

export interface TimerRun {
  /** Minutes after the first run, on the shop's clock. */
  atMin: number;
  durationMs: number;
  /** Looked at for the first time in this run. */
  newOrders: number;
  newRefunds: number;
  /** Every orderquery, refundquery and closeorder of the run, first looks included. */
  wxCalls: number;
  dbRequests: number;
  ordersClosed: number;
  outOfTime: boolean;
  errors: number;
}

export interface ReconcileBench {
  backlog: { orders: number; refunds: number };
  production: {
    wxMs: number;
    dbMs: number;
    runs: TimerRun[];
    ordersNeverLookedAt: number;
    ordersLate: number;
    /** The least time between an order's first look and its expiry. */
    /** Over the orders looked at; null when none was. */
    smallestOrderMarginMin: number | null;
    refundsNeverLookedAt: number;
    refundsLate: number;
    largestRefundWaitMin: number;
  };
  deployedRun: {
    durationMs: number;
    dbRequests: number;
    report: Record<string, unknown> | null;
    error: string | null;
  };
  byBatch: { batch: number; ms: number; dbRequests: number; wxCalls: number; items: number; pages: number }[];
  targets: { target: string; measured: string; met: boolean }[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The payment provider, counting calls and when each order and refund was first asked about
 * (on `now`), each call sent after `delayMs`.
 */
function counting(provider: PaymentProvider, delayMs = 0, now: () => number = Date.now) {
  const orders = new Map<string, number>();
  const refunds = new Map<string, number>();
  let calls = 0;
  const wait = () => (delayMs > 0 ? sleep(delayMs) : Promise.resolve());
  const port: PaymentProvider = {
    ...provider,
    queryPayment: async (id, o) => {
      calls++;
      if (!orders.has(id)) orders.set(id, now());
      await wait();
      return provider.queryPayment(id, o);
    },
    queryRefund: async (id, o) => {
      calls++;
      if (!refunds.has(id)) refunds.set(id, now());
      await wait();
      return provider.queryRefund(id, o);
    },
    closePayment: async (id, o) => {
      calls++;
      await wait();
      return provider.closePayment(id, o);
    },
    refund: async (input, o) => {
      calls++;
      await wait();
      return provider.refund(input, o);
    },
  };
  const payments: Payments = { current: port, byName: { [provider.name]: port } };
  return { payments, orders, refunds, calls: () => calls };
}

/** A store whose every request waits `delayMs` before it is sent. */
function slowStore(store: Store, delayMs: number): Store {
  const inner = store as unknown as { call: (what: string, run: () => Promise<unknown>) => Promise<unknown> };
  const call = inner.call.bind(store);
  inner.call = async (what, run) => {
    await sleep(delayMs);
    return call(what, run);
  };
  return store;
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
    /**
     * The backlog as it stands at `now` (or its first `nO` orders and `nR` refunds), both
     * sides; the ids are the same every time, the times move with `now`.
     */
    const backlog = (now: number, nO = nOrders, nR = nRefunds) => {
      const unpaid: Trade[] = [];
      for (let i = 0; i < nO; i++) {
        // Created over the last 25 minutes, all past the notify grace, none expired yet.
        unpaid.push(
          trade(stack, i, {
            prefix: 'N',
            createdAtMs: now - 25 * 60_000 + Math.floor((i / nOrders) * 23 * 60_000),
          }),
        );
      }
      const paid: Trade[] = [];
      const refunds: { refund: RefundDoc; sim: SimRefund }[] = [];
      for (let i = 0; i < nR; i++) {
        const paidAt = now - 3 * 3600_000 + i * 1000;
        const t = trade(stack, nOrders + i, { prefix: 'P', createdAtMs: paidAt - 30_000, paidAtMs: paidAt });
        refunds.push(
          refundOf(t, i, {
            fee: t.order.totalFee,
            atMs: now - 60 * 60_000 + Math.floor((i / nRefunds) * 55 * 60_000),
            status: 'PROCESSING',
            wxStatus: 'PROCESSING',
          }),
        );
        paid.push(t);
      }
      return { unpaid, paid, refunds };
    };
    // Every measurement starts from the backlog as it stands when the measurement starts.
    const _ = stack.db.command;
    const writeBacklog = async (nO = nOrders, nR = nRefunds) => {
      for (const c of ['orders', 'refunds', 'payment_events'])
        await stack.db.raw
          .collection(c)
          .where({ _id: _.exists(true) })
          .remove();
      const b = backlog(Date.now(), nO, nR);
      const trades = [...b.unpaid, ...b.paid];
      stack.simulator.importTrades({
        orders: trades.map((t) => t.sim),
        refunds: b.refunds.map((r) => r.sim),
      });
      await insertAll(
        stack,
        'orders',
        trades.map((t) => t.order),
      );
      const refunds = b.refunds.map((r) => r.refund);
      await insertAll(stack, 'refunds', refunds);
      return { unpaid: b.unpaid.map((t) => t.order), refunds };
    };

    const require = createRequire(__filename);
    process.env['TENCENTCLOUD'] = 'true';
    const cloud = require('wx-server-sdk');
    cloud.init({ env: 'bench', secretId: 'x', secretKey: 'x', serviceUrl: stack.info.tcbServiceUrl });
    const db = cloud.database({ throwOnNotFound: false });
    const sandboxConfig = loadConfig(stack.env, { wxpay: true, cert: true, calls: true });
    const client = providersFromConfig(sandboxConfig).v2!;

    // 1. The timer's runs at production latency and production schedules (timeScale 1), the
    // shop's clock and WeChat's moved to each run's time.
    const { unpaid, refunds } = await writeBacklog();
    let offsetMs = 0;
    const shopNow = () => Date.now() + offsetMs;
    const wxSlow = counting(client, WX_MS, shopNow);
    const firstRunAt = Date.now();
    const runs: TimerRun[] = [];
    for (let k = 0; k < MAX_TIMER_RUNS; k++) {
      offsetMs = firstRunAt + k * TIMER_EVERY_MIN * 60_000 - Date.now();
      stack.simulator.setClockOffset(offsetMs);
      const seen = { orders: wxSlow.orders.size, refunds: wxSlow.refunds.size, calls: wxSlow.calls() };
      const deps: Deps = {
        store: slowStore(new Store(db), DB_MS),
        config: { ...sandboxConfig, timeScale: 1 },
        wxpay: wxSlow.payments,
        now: shopNow,
        random: nonceStr,
        log: () => {},
        budget: budgetFor(shopNow(), undefined, FUNCTION_TIMEOUT_MS),
      };
      const t0 = Date.now();
      const report = await reconcile(deps);
      runs.push({
        atMin: k * TIMER_EVERY_MIN,
        durationMs: Date.now() - t0,
        newOrders: wxSlow.orders.size - seen.orders,
        newRefunds: wxSlow.refunds.size - seen.refunds,
        wxCalls: wxSlow.calls() - seen.calls,
        dbRequests: deps.store.requests,
        ordersClosed: report.ordersClosed,
        outOfTime: report.outOfTime,
        errors: report.errors,
      });
      if (wxSlow.orders.size >= nOrders && wxSlow.refunds.size >= nRefunds) break;
    }
    stack.simulator.setClockOffset(0);
    let ordersLate = 0;
    let smallestMargin = Number.POSITIVE_INFINITY;
    for (const o of unpaid) {
      const at = wxSlow.orders.get(o._id);
      // Never looked at counts as late; the margin is over the orders that were.
      if (at === undefined) {
        ordersLate++;
        continue;
      }
      const margin = o.expiresAtMs - at;
      smallestMargin = Math.min(smallestMargin, margin);
      if (margin < 0) ordersLate++;
    }
    let refundsLate = 0;
    let largestWait = 0;
    for (const r of refunds) {
      const at = wxSlow.refunds.get(r._id);
      const wait = at === undefined ? Number.POSITIVE_INFINITY : at - (r.nextCheckAtMs ?? 0);
      largestWait = Math.max(largestWait, wait);
      if (wait > REFUND_DUE_MIN * 60_000) refundsLate++;
    }
    const production: ReconcileBench['production'] = {
      wxMs: WX_MS,
      dbMs: DB_MS,
      runs,
      ordersNeverLookedAt: nOrders - wxSlow.orders.size,
      ordersLate,
      smallestOrderMarginMin: Number.isFinite(smallestMargin) ? round(smallestMargin / 60_000) : null,
      refundsNeverLookedAt: nRefunds - wxSlow.refunds.size,
      refundsLate,
      largestRefundWaitMin: round(largestWait / 60_000),
    };

    // 2. The function as deployed, on its timer.
    await writeBacklog();
    const deployed = await stack.runtime.invoke(
      'reconcile',
      { Type: 'Timer', TriggerName: 'reconcileEvery5Min', Time: new Date().toISOString() },
      { SOURCE: 'wx_trigger' },
    );
    const deployedRun = {
      durationMs: Math.round(deployed.durationMs),
      dbRequests: deployed.dbRequests,
      report: (deployed.result as Record<string, unknown> | null) ?? null,
      error: deployed.error ? `${deployed.error.code}: ${deployed.error.message}` : null,
    };

    // 3. Batch sizes, local latency, each run over the same part of the backlog.
    const byBatch: ReconcileBench['byBatch'] = [];
    for (const batch of [25, 50, 100, 200]) {
      await writeBacklog(BATCH_ORDERS, BATCH_REFUNDS);
      const wx = counting(client);
      const store = new Store(db);
      let pages = 0;
      const find = store.find.bind(store);
      store.find = (...args) => {
        pages++;
        return find(...args);
      };
      const deps: Deps = {
        store,
        config: sandboxConfig,
        wxpay: wx.payments,
        now: Date.now,
        random: nonceStr,
        log: () => {},
        budget: budgetFor(Date.now(), undefined, FUNCTION_TIMEOUT_MS),
      };
      const t0 = Date.now();
      const report = await reconcile(deps, { batch });
      const items = report.ordersChecked + report.refundsChecked;
      byBatch.push({
        batch,
        ms: Date.now() - t0,
        dbRequests: deps.store.requests,
        wxCalls: wx.calls(),
        items,
        pages,
      });
    }

    const per = (b: (typeof byBatch)[number]) => b.dbRequests / Math.max(1, b.items);
    const linear = byBatch.every((b) => per(b) <= per(byBatch[0]!) * 1.05);
    const longest = Math.max(...production.runs.map((r) => r.durationMs));
    const runErrors = production.runs.reduce((n, r) => n + r.errors, 0);
    const out: ReconcileBench = {
      backlog: { orders: nOrders, refunds: nRefunds },
      production,
      deployedRun,
      byBatch,
      targets: [
        {
          target: `each reconcile run at production latency (${WX_MS} ms a WeChat call, ${DB_MS} ms a database request) ends inside its ${FUNCTION_TIMEOUT_MS / 1000} s timeout`,
          measured: `${production.runs.length} runs, the longest ${round(longest / 1000, 1)} s, ${runErrors} errors`,
          met: longest < FUNCTION_TIMEOUT_MS && runErrors === 0,
        },
        {
          target: `every unpaid order looked at before it expires (${nOrders}, expiring over the next ${ORDER_EXPIRE_MIN} min)`,
          measured: `${production.ordersLate} late (${production.ordersNeverLookedAt} never), the closest of those looked at ${production.smallestOrderMarginMin ?? 'n/a'} min before its expiry`,
          met: production.ordersLate === 0,
        },
        {
          target: `every processing refund looked at within ${REFUND_DUE_MIN} min of being due (${nRefunds}, due over the last hour)`,
          measured: `${production.refundsLate} late (${production.refundsNeverLookedAt} never), the longest wait ${production.largestRefundWaitMin} min`,
          met: production.refundsLate === 0,
        },
        {
          target: `the deployed function's run over the ${nOrders}/${nRefunds} backlog ends inside its timeout (local latency)`,
          measured: `${round(deployedRun.durationMs / 1000, 1)} s, ${deployedRun.error ?? 'no error'}`,
          met: deployedRun.error === null && deployedRun.durationMs < FUNCTION_TIMEOUT_MS,
        },
        {
          target:
            'database requests grow linearly or better in the batch size (per item, no worse at larger batches)',
          measured: byBatch.map((b) => `${b.batch}: ${round(per(b), 3)}`).join(', '),
          met: linear,
        },
      ],
    };

    console.log(
      `\n== Reconcile over a backlog of ${nOrders} NOTPAY orders and ${nRefunds} PROCESSING refunds ==`,
    );
    console.log(
      `  the timer's runs at production latency (${WX_MS} ms a WeChat call, ${DB_MS} ms a database request), ${TIMER_EVERY_MIN} min apart on the shop's clock:`,
    );
    console.log(
      table([
        [
          'run at',
          'time',
          'new orders',
          'new refunds',
          'WeChat calls',
          'db requests',
          'closed',
          'out of time',
          'errors',
        ],
        ...production.runs.map((r) => [
          `+${r.atMin} min`,
          `${round(r.durationMs / 1000, 1)} s`,
          r.newOrders,
          r.newRefunds,
          r.wxCalls,
          r.dbRequests,
          r.ordersClosed,
          r.outOfTime ? 'yes' : 'no',
          r.errors,
        ]),
      ]),
    );
    console.log(
      `  orders: ${production.ordersLate} looked at after expiry (${production.ordersNeverLookedAt} never), the closest of those looked at ${production.smallestOrderMarginMin ?? 'n/a'} min before; refunds: the longest wait ${production.largestRefundWaitMin} min after due (${production.refundsLate} over ${REFUND_DUE_MIN} min)`,
    );
    console.log(
      `  deployed function, one timer run (local latency): ${deployedRun.durationMs} ms, ${deployedRun.dbRequests} db requests, ${deployedRun.error ?? 'no error'}, report ${JSON.stringify(deployedRun.report)}`,
    );
    console.log(
      table([
        ['batch', 'items', 'queries', 'db requests', 'per item', 'WeChat calls', 'per item', 'local time'],
        ...byBatch.map((b) => [
          b.batch,
          b.items,
          b.pages,
          b.dbRequests,
          round(per(b), 3),
          b.wxCalls,
          round(b.wxCalls / Math.max(1, b.items), 3),
          `${b.ms} ms`,
        ]),
      ]),
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
