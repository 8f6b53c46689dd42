/**
 * Cold start of every function built for the function runtime's Node (node24 by default)
 * against the same function built for node16, both started by the runtime's own Node binary,
 * which is what CloudBase runs after the move: the only variable is the build target.
 *
 * A cold start is a fresh process that requires index.js and exits, timed from spawn to exit,
 * rounds interleaved across variants so background load hits them alike (as in bundles.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { platformEnvironment } from '../sandbox/runtime';
import { resolveFunctionNode } from '../sandbox/runtime/node';
import { buildFunctions } from '../scripts/build';
import { findRuntime } from '../scripts/runtimes';
import { configuredRuntime, esbuildTarget } from '../scripts/target';
import { LOAD_SCRIPT } from './bundles';
import { kb, median, msSince, percentile, round, table } from './stats';

export interface TargetColdRow {
  fn: string;
  targetBytes: number;
  node16Bytes: number;
  targetP50Ms: number;
  targetP90Ms: number;
  node16P50Ms: number;
  node16P90Ms: number;
}

export interface TargetColdStarts {
  runtime: string;
  target: string;
  node: string;
  rounds: number;
  /** `node -e 0` on the same binary: the process start every row pays. */
  nodeOnlyP50Ms: number;
  /** Every function's samples pooled: the figure to quote, steadier than any one row. */
  allTargetP50Ms: number;
  allNode16P50Ms: number;
  rows: TargetColdRow[];
}

/**
 * Builds both variants under `workDir` (inside the project, so require('wx-server-sdk')
 * resolves by walking up, as after 云端安装依赖), times them, prints a table, cleans up.
 */
export async function runtimeTargetColdStarts(
  workDir: string,
  rounds: number,
  env: Record<string, string>,
  // Read by no cold start (nothing calls the database while loading): any address will do.
  serviceUrl = 'http://127.0.0.1:9',
): Promise<TargetColdStarts> {
  const runtime = configuredRuntime();
  const node = resolveFunctionNode(runtime);
  const target = esbuildTarget(runtime);
  const dirs = { target: join(workDir, target), node16: join(workDir, 'node16') };
  for (const d of Object.values(dirs)) rmSync(d, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  try {
    const fns = await buildFunctions({ out: dirs.target, runtime });
    await buildFunctions({ out: dirs.node16, runtime: findRuntime('Nodejs16.13')! });

    const path = { PATH: process.env['PATH'] ?? '' };
    // Each process gets what an SCF container sets for its function, as the bench's other cold
    // starts do: without it the SDK probes a metadata server production never asks.
    const platform = (functionName: string) => ({
      ...path,
      ...env,
      ...platformEnvironment({ envId: 'local', functionName, serviceUrl }),
    });
    const variants = [
      { key: 'node -e 0', args: ['-e', '0'], env: path },
      ...fns.flatMap((fn) =>
        (['target', 'node16'] as const).map((v) => ({
          key: `${fn} ${v}`,
          args: ['-e', LOAD_SCRIPT, join(dirs[v], fn, 'index.js')],
          env: platform(fn),
        })),
      ),
    ];
    const samples = new Map<string, number[]>(variants.map((v) => [v.key, []]));
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(r + k) % variants.length]!;
        const t0 = process.hrtime.bigint();
        const res = spawnSync(node.path, v.args, { cwd: workDir, env: v.env, stdio: 'pipe' });
        const ms = msSince(t0);
        if (res.status !== 0) {
          throw new Error(
            `cold start of ${v.key} failed (exit ${res.status}): ${String(res.stderr).slice(0, 800)}`,
          );
        }
        samples.get(v.key)!.push(ms);
      }
    }
    const p50 = (key: string) => round(median(samples.get(key)!));
    const p90 = (key: string) => round(percentile(samples.get(key)!, 90));
    const size = (dir: string, fn: string) => readFileSync(join(dir, fn, 'index.js')).length;
    const rows: TargetColdRow[] = fns.map((fn) => ({
      fn,
      targetBytes: size(dirs.target, fn),
      node16Bytes: size(dirs.node16, fn),
      targetP50Ms: p50(`${fn} target`),
      targetP90Ms: p90(`${fn} target`),
      node16P50Ms: p50(`${fn} node16`),
      node16P90Ms: p90(`${fn} node16`),
    }));
    const pooled = (v: string) => round(median(fns.flatMap((fn) => samples.get(`${fn} ${v}`)!)));
    const out: TargetColdStarts = {
      runtime: runtime.name,
      target,
      node: `${node.version} (${node.source})`,
      rounds,
      nodeOnlyP50Ms: p50('node -e 0'),
      allTargetP50Ms: pooled('target'),
      allNode16P50Ms: pooled('node16'),
      rows,
    };
    printTargetColdStarts(out);
    return out;
  } finally {
    for (const d of Object.values(dirs)) rmSync(d, { recursive: true, force: true });
  }
}

function printTargetColdStarts(r: TargetColdStarts): void {
  console.log(
    `\n  cold start on the function runtime's Node ${r.node}, built for ${r.target} (${r.runtime}) vs node16 (${r.rounds} runs each, interleaved; node -e 0 p50 ${r.nodeOnlyP50Ms} ms):`,
  );
  console.log(
    table([
      ['function', r.target, 'cold p50', 'p90', 'node16', 'cold p50', 'p90', `${r.target} ÷ node16`],
      ...r.rows.map((x) => [
        x.fn,
        kb(x.targetBytes),
        `${x.targetP50Ms} ms`,
        `${x.targetP90Ms} ms`,
        kb(x.node16Bytes),
        `${x.node16P50Ms} ms`,
        `${x.node16P90Ms} ms`,
        `${round(x.targetP50Ms / x.node16P50Ms, 2)}×`,
      ]),
      [
        'all functions',
        '',
        `${r.allTargetP50Ms} ms`,
        '',
        '',
        `${r.allNode16P50Ms} ms`,
        '',
        `${round(r.allTargetP50Ms / r.allNode16P50Ms, 2)}×`,
      ],
    ]),
  );
}

// `tsx bench/runtime-target.ts [--quick]` runs this figure alone.
if (process.argv[1] && resolve(process.argv[1]) === __filename) {
  runtimeTargetColdStarts(
    join(__dirname, '..', '.data', 'bench', 'runtime-target'),
    process.argv.includes('--quick') ? 3 : 15,
    {},
  ).catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  });
}
