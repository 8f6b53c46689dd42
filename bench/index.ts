/**
 * `npm run bench`: every figure in BENCHMARKS.md from one unattended run, printed as tables
 * and written to .data/bench.json. `--quick` runs fewer rounds (for trying the script out,
 * not for quoting). Nothing here asserts a time: targets are reported as met or missed.
 *
 * Order matters for fairness on a small machine: the CPU-bound codec rounds and the cold-start
 * processes run while no stack (workers, servers) is alive.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Stack, startStack } from '../sandbox/stack';
import { billCheckBench } from './billcheck';
import {
  assertStandalone,
  type BundleSizes,
  buildVariants,
  type ColdResult,
  type ColdVariant,
  coldStarts,
  LOAD_SCRIPT,
  profileSdkLoad,
} from './bundles';
import { benchCodec, checkAgreement, notifyBreakdown } from './codec';
import { type FlowStep, runFlow } from './flow';
import { notifyBurstPhase, shoppersPhase } from './load';
import { reconcileBench } from './reconcile';
import { kb, median, round, table } from './stats';

const ROOT = join(__dirname, '..');
const quick = process.argv.includes('--quick');
const COLD_ROUNDS = quick ? 3 : 15;
const CODEC = quick ? { rounds: 3, roundMs: 100, warmupMs: 100 } : { rounds: 9, roundMs: 200, warmupMs: 300 };
const LOAD = { shoppers: 20, ordersEach: quick ? 2 : 5, burstOrders: quick ? 20 : 100 };

/**
 * The fewest database requests each step can make under DESIGN.md's rules (the order of
 * checks in §5, CAS transitions in §4, the trade log, the order stored before WeChat hears of
 * it). `null`: no fixed minimum (depends on the open work or on WeChat's answer).
 */
export const DESIGN_MINIMUM: Record<string, { min: number | null; why: string }> = {
  listProducts: { min: 1, why: 'one query for the products on sale' },
  whoami: { min: 0, why: 'admins are configuration, not data' },
  createOrder: {
    min: 3,
    why: 'read the products (prices never come from the client); insert the order before calling WeChat; store the prepay_id',
  },
  'createOrder (pay again)': {
    min: 1,
    why: 'read the order (owner, NOTPAY, prepay_id still valid); re-signing is local',
  },
  'payNotify (first)': {
    min: 3,
    why: 'read the order (exists, amount); append payment_events; CAS NOTPAY→PAID',
  },
  'payNotify (duplicate)': { min: 1, why: 'read the order: already PAID, answer SUCCESS, change nothing' },
  'queryOrder (PAID)': { min: 2, why: 'read the order; list its refunds' },
  listOrders: { min: 1, why: 'one paged query' },
  applyRefund: {
    min: 3,
    why: 'read the order (owner, paid); reserve the amount with one conditional update; insert the refund',
  },
  'approveRefund (approve)': {
    min: 4,
    why: 'read the refund; claim it (CAS → APPROVED with a lease) before calling WeChat; CAS → PROCESSING; append payment_events',
  },
  listRefunds: { min: 2, why: 'one page of refunds; their orders in one `in` query' },
  'refundNotify (first)': {
    min: 4,
    why: 'read the refund; append payment_events; settle the order (conditional update); CAS → SUCCESS',
  },
  'refundNotify (duplicate)': { min: 1, why: 'read the refund: already SUCCESS, answer SUCCESS' },
  'queryOrder (refunded)': { min: 2, why: 'read the order; list its refunds' },
  'createOrder (second order)': { min: 3, why: 'as createOrder' },
  'queryOrder (NOTPAY, orderquery)': {
    min: 2,
    why: 'read the order; orderquery says still NOTPAY so nothing is written; list its refunds',
  },
  'reconcile (timer)': { min: null, why: 'one query per kind of open work, then per item found' },
};

/** Function output (invocation lines, JSON logs from worker threads) is kept out of the tables. */
function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const write = process.stdout.write.bind(process.stdout);
  const held: string[] = [];
  process.stdout.write = ((chunk: string | Uint8Array) => {
    held.push(String(chunk));
    if (held.length > 200) held.shift();
    return true;
  }) as typeof process.stdout.write;
  return fn()
    .catch((e) => {
      process.stderr.write(`--- last function output ---\n${held.join('').slice(-6000)}\n`);
      throw e;
    })
    .finally(() => {
      process.stdout.write = write;
    });
}

function benchStack(functionsDir: string): Promise<Stack> {
  return startStack({
    functionsDir,
    // Fast notify and refund timings, and reconcile with no grace period, as the tests use.
    timeScale: 0.001,
    env: { RECONCILE_GRACE_SECONDS: '0', REFUND_QUERY_DELAY_SECONDS: '0' },
  });
}

const section = (title: string) => console.log(`\n== ${title} ==`);

async function main(): Promise<void> {
  const started = Date.now();
  const machine = {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    // Other work on the machine moves every timing; the figures say how busy it was.
    loadavg: loadavg().map((x) => round(x, 2)),
  };
  console.log(
    `machine: ${machine.nproc}× ${machine.cpu}, node ${machine.node}, load ${machine.loadavg.join(' ')}`,
  );
  const tmpRoot = mkdtempSync(join(tmpdir(), 'shop-bench-'));
  // Inside the project so `require('wx-server-sdk')` resolves by walking up, as it does from a
  // function folder after 云端安装依赖; the bundled variant lives where nothing can be found.
  const installedDir = join(ROOT, '.data', 'bench', 'installed');
  const bundledDir = join(tmpRoot, 'bundled');
  rmSync(installedDir, { recursive: true, force: true });
  mkdirSync(installedDir, { recursive: true });

  try {
    // 2. Codec first: CPU-bound, nothing else of ours running.
    section('2. APIv2 codec: operations per second (median of rounds; ratio = ours ÷ them)');
    const agreement = await checkAgreement();
    for (const n of agreement) console.log(`  agreed: ${n}`);
    const codec = await benchCodec(CODEC);
    console.log(
      table([
        ['operation', 'sign type', 'implementation', 'ops/s', 'ours ÷ it'],
        ...codec.map((r) => [r.op, r.signType, r.impl, r.opsPerSec, `${r.oursRatio}×`]),
      ]),
    );
    const breakdown = await notifyBreakdown(CODEC);
    console.log(
      `  our notify stages alone (HMAC-SHA256, ops/s): ${Object.entries(breakdown)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );

    // 1a. Sizes.
    section('1. Bundles: size and cold start');
    const sizes: BundleSizes[] = await buildVariants(installedDir, bundledDir);
    assertStandalone(bundledDir);

    // 3 + 4 on the installed variant (what ships), then the same flow on the bundled one.
    let env: Record<string, string> = {};
    const installedStack = await benchStack(installedDir);
    let flow: FlowStep[];
    let shoppers: Awaited<ReturnType<typeof shoppersPhase>>;
    let burst: Awaited<ReturnType<typeof notifyBurstPhase>>;
    try {
      env = installedStack.env;
      flow = await quietly(() => runFlow(installedStack));
      shoppers = await quietly(() => shoppersPhase(installedStack, LOAD.shoppers, LOAD.ordersEach));
      burst = await quietly(() => notifyBurstPhase(installedStack, LOAD.burstOrders));
    } finally {
      await installedStack.close();
    }

    // The bundled variant, from a cwd with no node_modules: the runtime adds <cwd>/node_modules
    // to NODE_PATH, and nothing may quietly fill a gap in the bundle from there.
    const cwd = process.cwd();
    process.chdir(tmpRoot);
    let bundledFlow: FlowStep[];
    try {
      const bundledStack = await benchStack(bundledDir);
      try {
        bundledFlow = await quietly(() => runFlow(bundledStack));
      } finally {
        await bundledStack.close();
      }
    } finally {
      process.chdir(cwd);
    }

    // 1b. Cold starts, with no stack alive.
    const fns = sizes.map((s) => s.fn);
    const variants: ColdVariant[] = [
      { name: 'node -e 0', args: ['-e', '0'], cwd: ROOT },
      { name: "require('wx-server-sdk')", args: ['-e', "require('wx-server-sdk')"], cwd: ROOT },
      ...fns.flatMap((fn) => [
        { name: `${fn} installed`, args: ['-e', LOAD_SCRIPT, join(installedDir, fn, 'index.js')], cwd: ROOT },
        { name: `${fn} bundled`, args: ['-e', LOAD_SCRIPT, join(bundledDir, fn, 'index.js')], cwd: tmpRoot },
      ]),
    ];
    const cold = coldStarts(variants, COLD_ROUNDS, env);
    const byName = new Map(cold.map((c) => [c.name, c]));
    const nodeMs = byName.get('node -e 0')!.medianMs;
    const sdkMs = byName.get("require('wx-server-sdk')")!.medianMs;
    const ratio = (c: ColdResult) => round(c.medianMs / sdkMs, 2);
    const netRatio = (c: ColdResult) => round((c.medianMs - nodeMs) / (sdkMs - nodeMs), 2);
    const sdkProfile = profileSdkLoad();

    console.log(
      table([
        [
          'function',
          'installed',
          'gzip',
          'cold p50',
          'p90',
          '÷ sdk',
          'bundled',
          'gzip',
          'cold p50',
          'p90',
          '÷ sdk',
        ],
        ...fns.map((fn) => {
          const s = sizes.find((x) => x.fn === fn)!;
          const a = byName.get(`${fn} installed`)!;
          const b = byName.get(`${fn} bundled`)!;
          return [
            fn,
            kb(s.installedBytes),
            kb(s.installedGzip),
            `${a.medianMs} ms`,
            `${a.p90Ms} ms`,
            `${ratio(a)}×`,
            kb(s.bundledBytes),
            kb(s.bundledGzip),
            `${b.medianMs} ms`,
            `${b.p90Ms} ms`,
            `${ratio(b)}×`,
          ];
        }),
      ]),
    );
    console.log(
      `  yardsticks (${COLD_ROUNDS} runs each, interleaved): node -e 0 p50 ${nodeMs} ms; bare require('wx-server-sdk') p50 ${sdkMs} ms, p90 ${byName.get("require('wx-server-sdk')")!.p90Ms} ms`,
    );
    console.log(
      `  wx-server-sdk load: ${sdkProfile.totalMs} ms, ${sdkProfile.modules} modules; self time by package: ${sdkProfile.top
        .slice(0, 8)
        .map((t) => `${t.pkg} ${t.selfMs}`)
        .join(', ')}`,
    );
    const bundledOk = bundledFlow.map((s) => s.step);
    console.log(
      `  bundled variant ran the whole flow from a folder with no node_modules (${bundledOk.length} steps, all ok: ${[...new Set(bundledFlow.map((s) => s.fn))].join(', ')})`,
    );
    const initOf = (steps: FlowStep[]) =>
      steps.filter((s) => s.initMs !== undefined).map((s) => s.initMs!) as number[];
    console.log(
      `  module load inside the runtime's worker threads (initMs, first call of each function): installed p50 ${round(
        median(initOf(flow)),
      )} ms, bundled p50 ${round(median(initOf(bundledFlow)))} ms`,
    );

    // 3. Database requests.
    section('3. Database requests per step (counted by the emulator)');
    const dbRows = flow.map((s) => {
      const d = DESIGN_MINIMUM[s.step];
      const b = bundledFlow.find((x) => x.step === s.step);
      return {
        step: s.step,
        measured: s.dbRequests,
        bundled: b?.dbRequests ?? -1,
        minimum: d?.min ?? null,
        why: d?.why ?? '',
      };
    });
    console.log(
      table([
        ['step', 'db requests', 'design minimum', 'verdict'],
        ...dbRows.map((r) => [
          r.step,
          r.measured,
          r.minimum ?? '-',
          r.minimum === null
            ? ''
            : r.measured === r.minimum
              ? 'at minimum'
              : `+${r.measured - r.minimum} over`,
        ]),
      ]),
    );

    // 4. Load.
    section('4. Local stack under load, through the gateway over HTTP');
    const phases = [shoppers, burst];
    console.log(
      table([
        [
          'phase',
          'requests',
          'req/s',
          'p50',
          'p99',
          'max',
          'errors',
          'orders checked',
          'not PAID once',
          'notify retries',
        ],
        ...phases.map((p) => [
          p.phase,
          p.requests,
          p.throughputPerSec,
          `${p.p50Ms} ms`,
          `${p.p99Ms} ms`,
          `${p.maxMs} ms`,
          p.errors,
          p.ordersChecked,
          p.badOrders,
          p.notifyRetries,
        ]),
      ]),
    );
    for (const p of phases) for (const e of p.errorSamples) console.log(`  error: ${e}`);
    await billCheckBench(installedDir, quick); // 5. .data/bench-billcheck.json
    await reconcileBench(installedDir, quick); // 6. .data/bench-reconcile.json

    // Targets.
    const notifyRows = codec.filter((r) => r.op === 'parse+verify+reply notify');
    const targets = ['MD5', 'HMAC-SHA256'].map((t) => {
      const rows = notifyRows.filter((r) => r.signType === t);
      const oursOps = rows.find((r) => r.impl === 'ours')!.opsPerSec;
      const best = rows
        .filter((r) => r.impl !== 'ours' && !r.impl.startsWith('ours'))
        .sort((a, b) => b.opsPerSec - a.opsPerSec)[0]!;
      const proposed = rows
        .filter((r) => r.impl.startsWith('ours,'))
        .map(
          (r) => `${r.impl.slice(6).replace(' (proposed)', '')}: ${round(r.opsPerSec / best.opsPerSec, 2)}×`,
        );
      return {
        target: `codec notify (${t}) ≥ 2× the faster library (${best.impl})`,
        measured: `${round(oursOps / best.opsPerSec, 2)}× (proposed ${proposed.join(', ')})`,
        met: oursOps / best.opsPerSec >= 2,
      };
    });
    const installedRatios = fns.map((fn) => ratio(byName.get(`${fn} installed`)!));
    const bundledRatios = fns.map((fn) => ratio(byName.get(`${fn} bundled`)!));
    targets.push(
      {
        target: "cold start ≤ 0.7× bare require('wx-server-sdk') — installed (as shipped)",
        measured: `${Math.min(...installedRatios)}–${Math.max(...installedRatios)}×`,
        met: Math.max(...installedRatios) <= 0.7,
      },
      {
        target: "cold start ≤ 0.7× bare require('wx-server-sdk') — bundled",
        measured: `${Math.min(...bundledRatios)}–${Math.max(...bundledRatios)}×`,
        met: Math.max(...bundledRatios) <= 0.7,
      },
    );
    const over = dbRows.filter((r) => r.minimum !== null && r.measured !== r.minimum);
    targets.push({
      target: 'database requests per step at the design minimum',
      measured:
        over.length === 0 ? 'all steps' : over.map((r) => `${r.step} ${r.measured}/${r.minimum}`).join(', '),
      met: over.length === 0,
    });
    targets.push({
      target: 'zero errors under load, every order PAID once with one event',
      measured: phases
        .map((p) => `${p.errors} errors, ${p.badOrders} bad orders, ${p.notifyRetries} notify retries`)
        .join('; '),
      met: phases.every((p) => p.errors === 0 && p.badOrders === 0),
    });
    section('Targets');
    console.log(
      table([
        ['target', 'measured', 'verdict'],
        ...targets.map((t) => [t.target, t.measured, t.met ? 'met' : 'MISSED']),
      ]),
    );

    const out = {
      at: new Date().toISOString(),
      quick,
      machine,
      durationS: round((Date.now() - started) / 1000),
      codec: { agreement, rows: codec, notifyStagesOpsPerSec: breakdown, options: CODEC },
      bundles: {
        sizes,
        coldStart: {
          rounds: COLD_ROUNDS,
          nodeMs,
          sdkMs,
          results: cold.map((c) => ({ ...c, ratio: ratio(c), netRatio: netRatio(c) })),
        },
        sdkProfile,
        bundledFlowSteps: bundledFlow,
        workerInitMs: { installed: initOf(flow), bundled: initOf(bundledFlow) },
      },
      dbRequests: dbRows,
      load: phases,
      targets,
    };
    mkdirSync(join(ROOT, '.data'), { recursive: true });
    writeFileSync(join(ROOT, '.data', 'bench.json'), `${JSON.stringify(out, null, 2)}\n`);
    console.log(`\nwrote .data/bench.json in ${out.durationS} s`);
  } finally {
    rmSync(tmpRoot, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
