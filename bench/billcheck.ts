/**
 * The bill check of a 100,000-row day, through the stack: the built runBillCheck bundle in a
 * Node process of its own (old-space capped, RSS sampled), the real wx-server-sdk, the
 * emulator holding the day's orders and refunds, and the simulator serving the day's ALL bill
 * gzipped. Targets: under 10 s, and under 128 MB in a 256 MB function.
 *
 * Every row matches, so the figure is the comparison itself: stream, parse, one query per
 * 1,000 rows, the summary, the two counts of the reverse direction and the record.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunBillCheckResult } from '../cloudfunctions/shared/contract';
import { billDateOf, DAY_MS, dayStartMs } from '../cloudfunctions/shared/domain/billdates';
import type { RefundDoc } from '../cloudfunctions/shared/domain/model';
import { createBillDownloader } from '../cloudfunctions/shared/wxpay/billdownload';
import { platformEnvironment } from '../sandbox/runtime';
import { resolveFunctionNode } from '../sandbox/runtime/node';
import { ROOT, type Stack, startStack } from '../sandbox/stack';
import type { SimRefund } from '../sandbox/wxpay';
import { configuredRuntime } from '../scripts/target';
import { BENCH_ADMIN, insertAll, refundOf, type Trade, trade } from './backlog';
import { round, table } from './stats';

/**
 * An assumption, not a measurement: one indexed CloudBase request (an `_id in` of 1,000 ids,
 * a count on an index) from a function in the same region. The emulator serves `_id` queries
 * from its id map but scans for the counts, so its time says little about production.
 */
const PRODUCTION_DB_MS = 25;
/** The same for WeChat: the bill download's first byte (the transfer is in the CPU time). */
const PRODUCTION_WX_MS = 500;

export interface BillCheckBench {
  rows: number;
  payments: number;
  refunds: number;
  seedS: number;
  /** The simulator making the day's bill (WeChat's 9:00 job), before the measured run. */
  generatedS: number;
  durationMs: number;
  dbRequests: number;
  /** Of durationMs, waiting for the emulator. */
  dbMs: number;
  wxCalls: number;
  peakHeapMb: number | null;
  startHeapMb: number | null;
  /** The whole Node process running the bundle (what a function's memory limit counts). */
  peakRssMb: number;
  /** CPU time of the function's process during the run. */
  cpuMs: number;
  /** cpuMs + dbRequests × PRODUCTION_DB_MS + wxCalls × PRODUCTION_WX_MS. */
  productionEstimateMs: number;
  status: string;
  discrepancies: number;
  targets: { target: string; measured: string; met: boolean }[];
}

/** The heap the measured process may use: what must hold for a 256 MB function to be safe. */
const HEAP_CAP_MB = 128;

/**
 * The built runBillCheck bundle in a process of the function runtime's Node, as an SCF
 * instance is, called as the admin with the platform's environment (what the function runtime
 * sets), its old-space capped, its RSS sampled every 20 ms. A worker thread would share the bench's process, whose
 * memory says nothing about the function's.
 */
function runAlone(
  stack: Stack,
  functionsDir: string,
  date: string,
): Promise<{ result: unknown; durationMs: number; cpuMs: number; peakRssMb: number }> {
  const script = `
    let peak = 0;
    const sample = () => { const r = process.memoryUsage().rss; if (r > peak) peak = r; };
    setInterval(sample, 20).unref();
    const { main } = require(process.argv[1]);
    const t0 = Date.now();
    const c0 = process.cpuUsage();
    main(JSON.parse(process.argv[2]), {}).then(
      (result) => {
        sample();
        const c = process.cpuUsage(c0);
        process.stdout.write(JSON.stringify({ result, durationMs: Date.now() - t0, cpuMs: Math.round((c.user + c.system) / 1000), peakRssMb: Math.round(peak / 1048576 * 10) / 10 }));
        process.exit(0);
      },
      (e) => { console.error(e); process.exit(1); });`;
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    NODE_PATH: join(ROOT, 'node_modules'),
    ...platformEnvironment({
      envId: 'local',
      functionName: 'runBillCheck',
      serviceUrl: stack.info.tcbServiceUrl,
    }),
    WX_CONTEXT_KEYS: 'WX_OPENID,WX_APPID,WX_UNIONID,WX_CLIENTIP,WX_CLIENTIPV6',
    WX_OPENID: BENCH_ADMIN,
    WX_APPID: stack.info.merchant.appid,
    TCB_SOURCE: 'wx_client',
    ...stack.env,
  };
  return new Promise((resolve, reject) => {
    // The function runtime's Node, as the sandbox and CloudBase run the bundle.
    const child = spawn(
      resolveFunctionNode(configuredRuntime()).path,
      [
        `--max-old-space-size=${HEAP_CAP_MB}`,
        '-e',
        script,
        join(functionsDir, 'runBillCheck', 'index.js'),
        JSON.stringify({ date }),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString('utf8');
    });
    // The function's own timeout (runBillCheck/config.json): past it, the platform kills it.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{"result"')) {
        reject(new Error(`runBillCheck process exited ${code}: ${err.slice(-2000)}`));
        return;
      }
      resolve(JSON.parse(last));
    });
  });
}

export async function billCheckBench(functionsDir: string, quick: boolean): Promise<BillCheckBench> {
  const rows = quick ? 10_000 : 100_000;
  const refunds = Math.round(rows / 20);
  const payments = rows - refunds;
  const stack: Stack = await startStack({ functionsDir, timeScale: 0.001, functionLog: () => {} });
  try {
    // A day that ended two days ago, so its bill exists on the simulator's own clock.
    const date = billDateOf(Date.now() - 2 * DAY_MS);
    const start = dayStartMs(date)!;
    const t0 = Date.now();
    const trades: Trade[] = [];
    for (let i = 0; i < payments; i++) {
      const paidAtMs = start + Math.floor((i / payments) * (DAY_MS - 5 * 60_000)) + 30_000;
      trades.push(trade(stack, i, { prefix: 'B', createdAtMs: paidAtMs - 20_000, paidAtMs }));
    }
    const refundDocs: RefundDoc[] = [];
    const simRefunds: SimRefund[] = [];
    for (let i = 0; i < refunds; i++) {
      const t = trades[i * 19]!;
      const r = refundOf(t, i, {
        fee: t.order.totalFee,
        atMs: t.order.paidAtMs! + 60_000,
        status: 'SUCCESS',
        wxStatus: 'SUCCESS',
      });
      refundDocs.push(r.refund);
      simRefunds.push(r.sim);
    }
    stack.simulator.importTrades({ orders: trades.map((t) => t.sim), refunds: simRefunds });
    await insertAll(
      stack,
      'orders',
      trades.map((t) => t.order),
    );
    await insertAll(stack, 'refunds', refundDocs);
    trades.length = 0;
    const seedS = round((Date.now() - t0) / 1000);

    // WeChat's bill is made once, at 9:00; the simulator makes it on the first download, so
    // download it once before the measured run, as WeChat would have it ready.
    const m = stack.info.merchant;
    const warm = await createBillDownloader({
      appid: m.appid,
      mchId: m.mchid,
      apiKey: m.apiKey,
      signType: m.signType,
      baseUrl: stack.info.wxpayBaseUrl,
      caPem: readFileSync(stack.info.caCertPath, 'utf8'),
      idleTimeoutMs: 120_000,
    }).download({ bill_date: date, tar_type: 'GZIP', deadlineMs: Date.now() + 600_000 });
    if (warm.kind !== 'bill') throw new Error(`the simulator has no bill for ${date}: ${warm.kind}`);
    for await (const _ of warm.lines);
    const generatedS = round((Date.now() - t0) / 1000 - seedS);

    const before = stack.emulator.requestCount();
    const run = await runAlone(stack, functionsDir, date);
    const dbRequests = stack.emulator.requestCount() - before;
    const res = run.result as { ok: boolean; data?: RunBillCheckResult; error?: unknown };
    if (!res.ok || !res.data) throw new Error(`runBillCheck answered ${JSON.stringify(res.error)}`);
    const check = res.data.check;
    const peak = check.lastRun?.peakHeapMb ?? null;
    const dbMs = check.lastRun?.dbMs ?? 0;
    // The function's own work is its CPU time (its wall time on a shared machine includes
    // waiting for a core); add what an indexed database and WeChat would take.
    const estimate = Math.round(
      run.cpuMs + dbRequests * PRODUCTION_DB_MS + (check.lastRun?.wxCalls ?? 0) * PRODUCTION_WX_MS,
    );
    const out: BillCheckBench = {
      rows: check.totals.rows,
      payments: check.totals.payments,
      refunds: check.totals.refunds,
      seedS,
      generatedS,
      durationMs: Math.round(run.durationMs),
      dbRequests,
      dbMs,
      peakRssMb: run.peakRssMb,
      cpuMs: run.cpuMs,
      wxCalls: check.lastRun?.wxCalls ?? 0,
      peakHeapMb: peak,
      startHeapMb: check.lastRun?.startHeapMb ?? null,
      productionEstimateMs: estimate,
      status: check.status,
      discrepancies: check.discrepancyCount,
      targets: [
        {
          target: `bill check of a ${rows.toLocaleString('en')}-row bill under 10 s`,
          measured: `${round(run.durationMs / 1000, 2)} s`,
          met: run.durationMs < 10_000 && check.status === 'DONE' && check.totals.rows === rows,
        },
        {
          target: `… estimated: its CPU time + ${PRODUCTION_DB_MS} ms a database request + ${PRODUCTION_WX_MS} ms for WeChat, under 10 s`,
          measured: `${round(estimate / 1000, 2)} s`,
          met: estimate < 10_000,
        },
        {
          target: `… and under 128 MB in a 256 MB function (old-space capped at ${HEAP_CAP_MB} MB)`,
          measured: `JS heap + buffers ${peak ?? '-'} MB; whole process ${run.peakRssMb} MB`,
          met: peak !== null && peak < 128 && run.peakRssMb < 256,
        },
      ],
    };
    console.log('\n== Bill check (对账) of one day, through the stack ==');
    console.log(
      table([
        [
          'rows',
          'payments',
          'refunds',
          'status',
          'differences',
          'time',
          'of it emulator',
          'CPU',
          'db requests',
          'WeChat calls',
          'heap at start',
          'peak heap',
          'process peak',
        ],
        [
          out.rows,
          out.payments,
          out.refunds,
          out.status,
          out.discrepancies,
          `${out.durationMs} ms`,
          `${dbMs} ms`,
          `${run.cpuMs} ms`,
          out.dbRequests,
          out.wxCalls,
          out.startHeapMb === null ? '-' : `${out.startHeapMb} MB`,
          peak === null ? '-' : `${peak} MB`,
          `${run.peakRssMb} MB`,
        ],
      ]),
    );
    console.log(
      `  not part of the check: seeding ${rows} rows ${seedS} s, the simulator making the bill ${generatedS} s`,
    );
    for (const t of out.targets) console.log(`  ${t.met ? 'met' : 'MISSED'}: ${t.target}: ${t.measured}`);
    writeFileSync(
      join(__dirname, '..', '.data', 'bench-billcheck.json'),
      `${JSON.stringify(out, null, 2)}\n`,
    );
    return out;
  } finally {
    await stack.close();
  }
}
