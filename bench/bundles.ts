/**
 * Section 1: bundle size and cold start, wx-server-sdk installed in the cloud (what
 * scripts/build.ts ships) against wx-server-sdk bundled in and minified.
 *
 * Cold start is a whole fresh `node` process that requires a function's index.js and exits,
 * timed from spawn to exit by the parent: that is what SCF pays before the first event
 * (process start + module load), minus the platform's own container start. The yardstick is
 * the same process doing a bare `require('wx-server-sdk')` from node_modules.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { buildFunctions, listFunctions, readFunctionConfig } from '../scripts/build';
import { configuredRuntime, enginesRange, esbuildTarget } from '../scripts/target';
import { median, msSince, percentile, round } from './stats';

const ROOT = join(__dirname, '..');

export interface BundleSizes {
  fn: string;
  installedBytes: number;
  installedGzip: number;
  bundledBytes: number;
  bundledGzip: number;
}

/** Builds both variants: `installedDir` as scripts/build.ts does, `bundledDir` with no externals. */
export async function buildVariants(installedDir: string, bundledDir: string): Promise<BundleSizes[]> {
  await buildFunctions({ minify: true, out: installedDir });
  const fns = listFunctions();
  const warnings: string[] = [];
  await Promise.all(
    fns.map(async (fn) => {
      const dest = join(bundledDir, fn);
      mkdirSync(dest, { recursive: true });
      const r = await build({
        entryPoints: [join(ROOT, 'cloudfunctions', fn, 'index.ts')],
        outfile: join(dest, 'index.js'),
        bundle: true,
        platform: 'node',
        target: esbuildTarget(configuredRuntime()),
        format: 'cjs',
        minify: true,
        keepNames: true,
        legalComments: 'none',
        logLevel: 'silent',
      });
      for (const w of r.warnings) warnings.push(`${fn}: ${w.text}`);
      writeFileSync(join(dest, 'config.json'), `${JSON.stringify(readFunctionConfig(fn), null, 2)}\n`);
      // Nothing to install: the point of this variant.
      writeFileSync(
        join(dest, 'package.json'),
        `${JSON.stringify({ name: fn, version: '1.0.0', private: true, main: 'index.js', engines: { node: enginesRange(configuredRuntime()) } }, null, 2)}\n`,
      );
    }),
  );
  // A dynamic require esbuild cannot follow would be a warning; the flow check below is the proof.
  if (warnings.length > 0) throw new Error(`bundling wx-server-sdk warned:\n${warnings.join('\n')}`);
  return fns.map((fn) => {
    const a = readFileSync(join(installedDir, fn, 'index.js'));
    const b = readFileSync(join(bundledDir, fn, 'index.js'));
    return {
      fn,
      installedBytes: a.length,
      installedGzip: gzipSync(a).length,
      bundledBytes: b.length,
      bundledGzip: gzipSync(b).length,
    };
  });
}

export interface ColdVariant {
  name: string;
  /** Arguments to node. */
  args: string[];
  cwd: string;
}

export interface ColdResult {
  name: string;
  medianMs: number;
  p90Ms: number;
  samples: number[];
}

/**
 * Runs every variant `rounds` times, interleaved (round r starts at variant r mod n), so a
 * burst of background load hits all variants alike instead of one variant's whole series.
 */
export function coldStarts(
  variants: ColdVariant[],
  rounds: number,
  env: Record<string, string>,
): ColdResult[] {
  const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const childEnv = { PATH: process.env['PATH'] ?? '', ...env };
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(r + k) % variants.length]!;
      const t0 = process.hrtime.bigint();
      const res = spawnSync(process.execPath, v.args, { cwd: v.cwd, env: childEnv, stdio: 'pipe' });
      const ms = msSince(t0);
      if (res.status !== 0) {
        throw new Error(
          `cold start of ${v.name} failed (exit ${res.status}): ${String(res.stderr).slice(0, 800)}`,
        );
      }
      samples.get(v.name)!.push(ms);
    }
  }
  return variants.map((v) => {
    const s = samples.get(v.name)!;
    return {
      name: v.name,
      medianMs: round(median(s)),
      p90Ms: round(percentile(s, 90)),
      samples: s.map((x) => round(x)),
    };
  });
}

/** Loads `index.js` from argv[1] the way the platform does: require, then check main. */
export const LOAD_SCRIPT = "if (typeof require(process.argv[1]).main !== 'function') process.exit(3)";

/**
 * Where wx-server-sdk's load time goes: self time (exclusive of children) per package, from
 * one process that wraps Module._load. Approximate (the wrapper costs a little per module),
 * but it names the pieces a slimmer bundle would drop.
 */
const PROFILE_SCRIPT = `
const Module = require('module');
const orig = Module._load;
const self = new Map(); const stack = [];
let count = 0;
function pkgOf(f) {
  const i = f.lastIndexOf('node_modules/');
  if (i < 0) return f.startsWith('node:') || !f.includes('/') ? '(node builtins)' : '(other)';
  const parts = f.slice(i + 13).split('/');
  return parts[0].startsWith('@') ? parts[0] + '/' + parts[1] : parts[0];
}
Module._load = function (request, parent, isMain) {
  let file;
  try { file = Module._resolveFilename(request, parent, isMain); } catch { file = request; }
  const cached = Module._cache[file] !== undefined;
  const t0 = process.hrtime.bigint();
  stack.push(0n);
  try { return orig.apply(this, arguments); } finally {
    const total = process.hrtime.bigint() - t0;
    const children = stack.pop();
    if (stack.length) stack[stack.length - 1] += total;
    if (!cached) { count++; const k = pkgOf(file); self.set(k, (self.get(k) || 0n) + total - children); }
  }
};
const t = process.hrtime.bigint();
require('wx-server-sdk');
const totalMs = Number(process.hrtime.bigint() - t) / 1e6;
const out = [...self].map(([k, v]) => [k, Number(v) / 1e6]).sort((a, b) => b[1] - a[1]);
process.stdout.write(JSON.stringify({ totalMs, modules: count, byPackage: out }));
`;

export interface SdkProfile {
  totalMs: number;
  modules: number;
  top: { pkg: string; selfMs: number }[];
}

export function profileSdkLoad(): SdkProfile {
  const res = spawnSync(process.execPath, ['-e', PROFILE_SCRIPT], { cwd: ROOT, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`profile failed: ${res.stderr}`);
  const p = JSON.parse(res.stdout) as { totalMs: number; modules: number; byPackage: [string, number][] };
  return {
    totalMs: round(p.totalMs),
    modules: p.modules,
    top: p.byPackage.slice(0, 10).map(([pkg, ms]) => ({ pkg, selfMs: round(ms) })),
  };
}

/** Refuses a directory from which Node could still find a node_modules by walking up. */
export function assertStandalone(dir: string): void {
  for (let d = dir; d !== join(d, '..'); d = join(d, '..')) {
    if (existsSync(join(d, 'node_modules'))) throw new Error(`${dir} can reach ${join(d, 'node_modules')}`);
  }
}
