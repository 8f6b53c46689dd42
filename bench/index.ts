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
import { platformEnvironment } from '../sandbox/runtime';
import { type Stack, startStack } from '../sandbox/stack';
import { SDK_TRIMS } from '../scripts/sdk-trim';
import { billCheckBench } from './billcheck';
import {
  assertStandalone,
  type BundleSizes,
  buildVariants,
  type ColdResult,
  type ColdVariant,
  coldStarts,
  EMPTY_SCRIPT,
  installedSdkTree,
  LOAD_SCRIPT,
  profileSdkLoad,
  SDK_SCRIPT,
} from './bundles';
import { benchCodec, checkAgreement, notifyBreakdown, REFERENCES } from './codec';
import { type FlowStep, runFlow } from './flow';
import { limitsBench } from './limits';
import { notifyBurstPhase, shoppersPhase } from './load';
import { reconcileBench } from './reconcile';
import { runtimeTargetColdStarts } from './runtime-target';
import { kb, median, round, table } from './stats';
import { runV3Bench } from './v3';

const ROOT = join(__dirname, '..');
const quick = process.argv.includes('--quick');
const COLD_ROUNDS = quick ? 3 : 15;
const CODEC = quick ? { rounds: 3, roundMs: 100, warmupMs: 100 } : { rounds: 9, roundMs: 200, warmupMs: 300 };
const LOAD = { shoppers: 20, ordersEach: quick ? 2 : 5, burstOrders: quick ? 20 : 100 };

/** The issue's targets, in one place. */
const TARGET = { coldRatio: 0.6, notifyRatio: 1.5 };

/**
 * The fewest database requests each step can make under the rules of docs/ARCHITECTURE.md (a
 * notify's checks in order, §5; every transition a compare-and-set, §4; the trade log; the
 * order stored before WeChat hears of it). `null`: no fixed minimum (depends on the open work
 * or on WeChat's answer).
 */
export const STEP_MINIMUM: Record<string, { min: number | null; why: string }> = {
  listProducts: {
    min: 4,
    why: "the caller's first limited call: their limits document is created (conditional update, read, insert); one query for the products on sale",
  },
  whoami: { min: 0, why: 'admins are configuration, not data' },
  createOrder: {
    min: 4,
    why: 'one conditional update admits it (calls per minute, a free place among the open orders, not the same cart again); read the products (prices never come from the client); insert the order before calling WeChat; store the prepay_id',
  },
  'createOrder (pay again)': {
    min: 1,
    why: 'read the order (owner, NOTPAY, prepay_id still valid); re-signing is local and not counted',
  },
  'payNotify (first)': {
    min: 5,
    why: "read the order (exists, amount); append payment_events; CAS NOTPAY→PAID; the admin's 新订单 notice (outbox insert, WeChat's answer)",
  },
  'payNotify (duplicate)': { min: 1, why: 'read the order: already PAID, answer SUCCESS, change nothing' },
  'queryOrder (PAID)': {
    min: 2,
    why: 'read the order; list its refunds (no question to WeChat, not counted)',
  },
  listOrders: { min: 2, why: "the caller's limits (one conditional update); one paged query" },
  applyRefund: {
    min: 7,
    why: "the caller's limits; the requestId's refund (a retry is the same refund); read the order (owner, paid); reserve the amount with one conditional update; insert the refund; the admin's notice (outbox insert, WeChat's answer)",
  },
  'approveRefund (approve)': {
    min: 8,
    why: "read the refund; claim it (CAS → APPROVED with a lease) before calling WeChat; the order's 1-minute refund slot, taken before the call and held a minute past its answer; CAS → PROCESSING; append payment_events; the shopper's 已同意 notice (outbox insert, WeChat's answer)",
  },
  listRefunds: {
    min: 6,
    why: "the admin's first limited call: their limits document is created (update, read, insert); one page of refunds; their orders in one `in` query; the count of applications waiting (the queue's badge)",
  },
  'refundNotify (first)': {
    min: 6,
    why: "read the refund; append payment_events; settle the order (conditional update); CAS → SUCCESS; the shopper's 退款完成 notice (outbox insert, WeChat's answer)",
  },
  'refundNotify (duplicate)': { min: 1, why: 'read the refund: already SUCCESS, answer SUCCESS' },
  'queryOrder (refunded)': { min: 2, why: 'read the order; list its refunds' },
  'createOrder (second order)': { min: 4, why: 'as createOrder' },
  'queryOrder (NOTPAY, orderquery)': {
    min: 3,
    why: "asking WeChat counts against the caller's read limit (one conditional update); read the order; orderquery says still NOTPAY so nothing is written; list its refunds",
  },
  'reconcile (timer)': { min: null, why: 'one query per kind of open work, then per item found' },
};

/** Function output (invocation lines, JSON logs from function instances) is kept out of the tables. */
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
  // Both builds live under the OS temp folder, from which no node_modules can be reached:
  // the bundled one must need none, and the external one is given the project's through
  // NODE_PATH, as 云端安装依赖 gives it one beside index.js.
  const tmpRoot = mkdtempSync(join(tmpdir(), 'shop-bench-'));
  const bundledDir = join(tmpRoot, 'bundled');
  const externalDir = join(tmpRoot, 'external');
  const nodePath = join(ROOT, 'node_modules');

  try {
    // 2. Codec first: CPU-bound, nothing else of ours running.
    section(
      '2. APIv2 codec: operations per second of CPU time, and of wall time (median of rounds; ratio = ours ÷ them)',
    );
    const agreement = await checkAgreement();
    for (const n of agreement) console.log(`  agreed: ${n}`);
    const codec = await benchCodec(CODEC);
    console.log(
      table([
        ['operation', 'sign type', 'implementation', 'ops/CPU s', 'ours ÷ it', 'ops/wall s', 'ours ÷ it'],
        ...codec.map((r) => [
          r.op,
          r.signType,
          r.impl,
          r.opsPerSec,
          `${r.oursRatio}×`,
          r.wallOpsPerSec,
          `${r.wallRatio}×`,
        ]),
      ]),
    );
    const breakdown = await notifyBreakdown(CODEC);
    console.log(
      `  our notify stages alone (HMAC-SHA256, ops per CPU second): ${Object.entries(breakdown)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const v3 = await runV3Bench(CODEC);

    // 1a. Both builds and their sizes.
    section('1. Bundles: size, upload, cold start and peak memory');
    const sizes: BundleSizes[] = await buildVariants(bundledDir, externalDir);
    assertStandalone(bundledDir);
    const sdkTree = installedSdkTree();

    // 3 + 4 on the bundled build (what ships), then the same flow on the external one.
    const cwd = process.cwd();
    let env: Record<string, string> = {};
    let serviceUrl = '';
    let flow: FlowStep[];
    let shoppers: Awaited<ReturnType<typeof shoppersPhase>>;
    let burst: Awaited<ReturnType<typeof notifyBurstPhase>>;
    let externalFlow: FlowStep[];
    // From a cwd with no node_modules. The runtime still puts the project's node_modules on
    // NODE_PATH, so buildVariants checked statically that the bundles need no package at all.
    process.chdir(tmpRoot);
    try {
      const stack = await benchStack(bundledDir);
      try {
        env = stack.env;
        serviceUrl = stack.info.tcbServiceUrl;
        flow = await quietly(() => runFlow(stack));
        shoppers = await quietly(() => shoppersPhase(stack, LOAD.shoppers, LOAD.ordersEach));
        burst = await quietly(() => notifyBurstPhase(stack, LOAD.burstOrders));
      } finally {
        await stack.close();
      }
    } finally {
      process.chdir(cwd);
    }
    {
      const stack = await benchStack(externalDir);
      try {
        externalFlow = await quietly(() => runFlow(stack));
      } finally {
        await stack.close();
      }
    }

    // 1b. Cold starts, with no stack alive.
    const fns = sizes.map((s) => s.fn);
    // Every process gets what an SCF container sets, named for its function (the yardstick
    // for one of its own), or the SDK probes a metadata server that production never asks.
    const platform = (functionName: string) =>
      platformEnvironment({ envId: 'local', functionName, serviceUrl });
    const variants: ColdVariant[] = [
      { name: 'node -e 0', args: ['-e', EMPTY_SCRIPT], cwd: tmpRoot },
      { name: "require('wx-server-sdk')", args: ['-e', SDK_SCRIPT], cwd: ROOT, env: platform('sdk') },
      ...fns.flatMap((fn) => [
        {
          name: `${fn} bundled`,
          args: ['-e', LOAD_SCRIPT, join(bundledDir, fn, 'index.js')],
          cwd: tmpRoot,
          env: platform(fn),
        },
        {
          name: `${fn} external`,
          args: ['-e', LOAD_SCRIPT, join(externalDir, fn, 'index.js')],
          cwd: tmpRoot,
          env: platform(fn),
        },
      ]),
    ];
    const cold = coldStarts(variants, COLD_ROUNDS, { ...env, NODE_PATH: nodePath });
    const byName = new Map(cold.map((c) => [c.name, c]));
    const empty = byName.get('node -e 0')!;
    const sdk = byName.get("require('wx-server-sdk')")!;
    const ratio = (c: ColdResult) => round(c.medianMs / sdk.medianMs, 2);
    const cpuRatio = (c: ColdResult) => round(c.cpuMedianMs / sdk.cpuMedianMs, 2);
    const netRatio = (c: ColdResult) =>
      round((c.medianMs - empty.medianMs) / (sdk.medianMs - empty.medianMs), 2);
    const mb = (k: number) => `${round(k / 1024, 1)} MB`;
    const sdkProfile = profileSdkLoad();

    console.log(
      table([
        [
          'function',
          'bundled',
          'gzip',
          'cold p50',
          'p90',
          '÷ sdk',
          'CPU',
          '÷ sdk',
          'peak RSS',
          'external',
          'gzip',
          'cold p50',
          '÷ sdk',
          'CPU',
          '÷ sdk',
          'peak RSS',
        ],
        ...fns.map((fn) => {
          const s = sizes.find((x) => x.fn === fn)!;
          const b = byName.get(`${fn} bundled`)!;
          const e = byName.get(`${fn} external`)!;
          return [
            fn,
            kb(s.bundledBytes),
            kb(s.bundledGzip),
            `${b.medianMs} ms`,
            `${b.p90Ms} ms`,
            `${ratio(b)}×`,
            `${b.cpuMedianMs} ms`,
            `${cpuRatio(b)}×`,
            mb(b.maxRssKb),
            kb(s.externalBytes),
            kb(s.externalGzip),
            `${e.medianMs} ms`,
            `${ratio(e)}×`,
            `${e.cpuMedianMs} ms`,
            `${cpuRatio(e)}×`,
            mb(e.maxRssKb),
          ];
        }),
      ]),
    );
    console.log(
      `  yardsticks (${COLD_ROUNDS} runs each, interleaved): node -e 0 p50 ${empty.medianMs} ms (CPU ${empty.cpuMedianMs} ms), peak RSS ${mb(empty.maxRssKb)}; bare require('wx-server-sdk') p50 ${sdk.medianMs} ms, p90 ${sdk.p90Ms} ms (CPU ${sdk.cpuMedianMs} ms), peak RSS ${mb(sdk.maxRssKb)}`,
    );
    const bundledUpload = sizes.reduce((a, s) => a + s.bundledUpload, 0);
    const externalUpload = sizes.reduce((a, s) => a + s.externalUpload, 0);
    const externalDeployed = externalUpload + fns.length * sdkTree.bytes;
    console.log(
      `  upload of all ${fns.length} functions (index.js, package.json, config.json, gzip): bundled ${kb(bundledUpload)} (${kb(sizes.reduce((a, s) => a + s.bundledBytes, 0))} raw), nothing installed; external ${kb(externalUpload)}, then 云端安装依赖 adds wx-server-sdk's tree to each: ${sdkTree.packages} packages, ${sdkTree.files} files, ${kb(sdkTree.bytes)} per function, ${kb(externalDeployed)} in all`,
    );
    console.log(
      `  wx-server-sdk load: ${sdkProfile.totalMs} ms, ${sdkProfile.modules} modules; self time by package: ${sdkProfile.top
        .slice(0, 10)
        .map((t) => `${t.pkg} ${t.selfMs}`)
        .join(', ')}`,
    );
    console.log(
      `  trimmed from the bundle: ${SDK_TRIMS.map((t) => `${t.kind} ${t.via.at(-1)}/${t.file}${t.requires ? ` (${t.requires.join(', ')})` : ''}`).join('; ')}`,
    );
    console.log(
      `  the whole flow ran on both builds (${flow.length} steps each, all ok: ${[...new Set(flow.map((s) => s.fn))].join(', ')}); the bundled one from a folder with no node_modules`,
    );
    const initOf = (steps: FlowStep[]) =>
      steps.filter((s) => s.initMs !== undefined).map((s) => s.initMs!) as number[];
    console.log(
      `  module load inside the runtime's instances (initMs, first call of each function): bundled p50 ${round(
        median(initOf(flow)),
      )} ms, external p50 ${round(median(initOf(externalFlow)))} ms`,
    );
    const runtimeTarget = await runtimeTargetColdStarts(
      join(ROOT, '.data', 'bench', 'runtime-target'),
      COLD_ROUNDS,
      env,
      serviceUrl,
    );

    // 3. Database requests.
    section('3. Database requests per step (counted by the emulator)');
    const dbRows = flow.map((s) => {
      const d = STEP_MINIMUM[s.step];
      const e = externalFlow.find((x) => x.step === s.step);
      return {
        step: s.step,
        measured: s.dbRequests,
        external: e?.dbRequests ?? -1,
        minimum: d?.min ?? null,
        why: d?.why ?? '',
      };
    });
    console.log(
      table([
        ['step', 'db requests', 'external build', 'minimum', 'verdict'],
        ...dbRows.map((r) => [
          r.step,
          r.measured,
          r.external,
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
    section('4. Local stack under load, through the gateway over HTTP (bundled build)');
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
    const billCheck = await billCheckBench(bundledDir, quick); // 5. also .data/bench-billcheck.json
    const reconcile = await reconcileBench(bundledDir, quick); // 6. also .data/bench-reconcile.json
    await limitsBench(bundledDir, quick); // 7. .data/bench-limits.json

    // Targets.
    const notifyRows = codec.filter((r) => r.op === 'parse+verify+reply notify');
    const references = new Set([...REFERENCES].map((i) => i.name));
    const targets = ['MD5', 'HMAC-SHA256'].map((t) => {
      const rows = notifyRows.filter((r) => r.signType === t);
      const oursOps = rows.find((r) => r.impl === 'ours')!.opsPerSec;
      const best = rows
        .filter((r) => r.impl !== 'ours' && !references.has(r.impl))
        .sort((a, b) => b.opsPerSec - a.opsPerSec)[0]!;
      const oursRow = rows.find((r) => r.impl === 'ours')!;
      const bestWall = Math.max(
        ...rows.filter((r) => r.impl !== 'ours' && !references.has(r.impl)).map((r) => r.wallOpsPerSec),
      );
      return {
        target: `notify parse+verify+reply (${t}) ≥ ${TARGET.notifyRatio}× the faster library (${best.impl})`,
        measured: `${round(oursOps / best.opsPerSec, 2)}× per CPU second (${oursOps} against ${best.opsPerSec}); per wall second ${round(oursRow.wallOpsPerSec / bestWall, 2)}×`,
        met: oursOps / best.opsPerSec >= TARGET.notifyRatio,
      };
    });
    const bundledRatios = fns.map((fn) => ratio(byName.get(`${fn} bundled`)!));
    const externalRatios = fns.map((fn) => ratio(byName.get(`${fn} external`)!));
    const bundledRss = fns.map((fn) => byName.get(`${fn} bundled`)!.maxRssKb);
    targets.push(
      {
        target: `cold start of every function ≤ ${TARGET.coldRatio}× bare require('wx-server-sdk') (bundled, the default)`,
        measured: `${Math.min(...bundledRatios)}–${Math.max(...bundledRatios)}× (net of node's own start ${Math.min(...fns.map((fn) => netRatio(byName.get(`${fn} bundled`)!)))}–${Math.max(...fns.map((fn) => netRatio(byName.get(`${fn} bundled`)!)))}×; CPU time ${Math.min(...fns.map((fn) => cpuRatio(byName.get(`${fn} bundled`)!)))}–${Math.max(...fns.map((fn) => cpuRatio(byName.get(`${fn} bundled`)!)))}×); peak RSS ${mb(Math.min(...bundledRss))}–${mb(Math.max(...bundledRss))} against ${mb(sdk.maxRssKb)}`,
        met: Math.max(...bundledRatios) <= TARGET.coldRatio,
      },
      {
        target: `for reference: the external build (--sdk external) against the same ${TARGET.coldRatio}×`,
        measured: `${Math.min(...externalRatios)}–${Math.max(...externalRatios)}×`,
        met: Math.max(...externalRatios) <= TARGET.coldRatio,
      },
      {
        target: 'upload of all functions smaller than the external build with its cloud install',
        measured: `${kb(bundledUpload)} gzip, nothing installed; external ${kb(externalUpload)} uploaded + ${kb(fns.length * sdkTree.bytes)} installed`,
        met: bundledUpload < externalDeployed,
      },
      {
        target: 'for reference: bytes sent by the deploy alone, bundled against external',
        measured: `${kb(bundledUpload)} against ${kb(externalUpload)} (${round(bundledUpload / externalUpload, 1)}×)`,
        met: bundledUpload < externalUpload,
      },
    );
    const over = dbRows.filter((r) => r.minimum !== null && r.measured !== r.minimum);
    const differ = dbRows.filter((r) => r.measured !== r.external);
    targets.push({
      target: 'database requests per step at their minimum, the same on both builds',
      measured:
        over.length === 0 && differ.length === 0
          ? 'all steps'
          : [...over, ...differ].map((r) => `${r.step} ${r.measured}/${r.minimum}/${r.external}`).join(', '),
      met: over.length === 0 && differ.length === 0,
    });
    targets.push({
      target: 'zero errors under load, every order PAID once with one event',
      measured: phases
        .map((p) => `${p.errors} errors, ${p.badOrders} bad orders, ${p.notifyRetries} notify retries`)
        .join('; '),
      met: phases.every((p) => p.errors === 0 && p.badOrders === 0),
    });
    targets.push(...billCheck.targets, ...reconcile.targets);
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
        upload: { bundledUpload, externalUpload, sdkTree, externalDeployed },
        coldStart: {
          rounds: COLD_ROUNDS,
          nodeMs: empty.medianMs,
          sdkMs: sdk.medianMs,
          results: cold.map((c) => ({ ...c, ratio: ratio(c), netRatio: netRatio(c), cpuRatio: cpuRatio(c) })),
        },
        sdkProfile,
        trims: SDK_TRIMS,
        externalFlowSteps: externalFlow,
        workerInitMs: { bundled: initOf(flow), external: initOf(externalFlow) },
      },
      dbRequests: dbRows,
      runtimeTarget,
      load: phases,
      v3,
      billCheck,
      reconcile,
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
