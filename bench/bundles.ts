/**
 * Section 1: bundle size, upload size, cold start and peak memory of both builds that
 * scripts/build.ts makes: `bundled` (the default: wx-server-sdk inside index.js, trimmed)
 * and `external` (wx-server-sdk installed by CloudBase from the function's package.json).
 *
 * Cold start is a whole fresh `node` process that requires a function's index.js and exits,
 * timed from spawn to exit by the parent: what SCF pays before the first event (process start
 * and module load), minus the platform's own container start. The yardstick is the same
 * process doing a bare `require('wx-server-sdk')` from node_modules.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { resolveFunctionNode } from '../sandbox/runtime/node';
import { buildFunctions } from '../scripts/build';
import { configuredRuntime } from '../scripts/target';

/** Cold starts run on the function runtime's Node (the one the sandbox and CloudBase use). */
const functionNode = resolveFunctionNode(configuredRuntime()).path;

import { median, msSince, percentile, round } from './stats';

const ROOT = join(__dirname, '..');

export interface BundleSizes {
  fn: string;
  bundledBytes: number;
  bundledGzip: number;
  /** Every file the deploy uploads (index.js, package.json, config.json), gzip-compressed. */
  bundledUpload: number;
  externalBytes: number;
  externalGzip: number;
  externalUpload: number;
}

function uploadBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + gzipSync(readFileSync(join(dir, f))).length, 0);
}

/** Builds both variants with scripts/build.ts, exactly as `npm run build [-- --sdk external]`. */
export async function buildVariants(bundledDir: string, externalDir: string): Promise<BundleSizes[]> {
  const fns = await buildFunctions({ out: bundledDir, sdk: 'bundled' });
  await buildFunctions({ out: externalDir, sdk: 'external' });
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  return fns.map((fn) => {
    const b = readFileSync(join(bundledDir, fn, 'index.js'));
    const needs = [...b.toString('utf8').matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)]
      .map((m) => m[1]!)
      .filter((m) => !builtins.has(m));
    if (needs.length > 0) throw new Error(`bundled ${fn} still requires ${[...new Set(needs)].join(', ')}`);
    const e = readFileSync(join(externalDir, fn, 'index.js'));
    return {
      fn,
      bundledBytes: b.length,
      bundledGzip: gzipSync(b).length,
      bundledUpload: uploadBytes(join(bundledDir, fn)),
      externalBytes: e.length,
      externalGzip: gzipSync(e).length,
      externalUpload: uploadBytes(join(externalDir, fn)),
    };
  });
}

function dirBytes(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      // Nested node_modules are packages of their own, counted when the walk reaches them.
      if (entry.name === 'node_modules') continue;
      const sub = dirBytes(path);
      bytes += sub.bytes;
      files += sub.files;
    } else if (entry.isFile()) {
      bytes += statSync(path).size;
      files++;
    }
  }
  return { bytes, files };
}

/**
 * What 云端安装依赖 puts beside each external function: wx-server-sdk and its production
 * dependency tree, as npm installed it here (the same pinned versions).
 */
export function installedSdkTree(): { packages: number; bytes: number; files: number } {
  const seen = new Set<string>();
  let bytes = 0;
  let files = 0;
  const visit = (from: string, name: string) => {
    let pkgJson: string;
    try {
      pkgJson = createRequire(join(from, 'package.json')).resolve(`${name}/package.json`);
    } catch {
      return; // an optional dependency that is not installed
    }
    const dir = dirname(pkgJson);
    if (seen.has(dir)) return;
    seen.add(dir);
    const size = dirBytes(dir);
    bytes += size.bytes;
    files += size.files;
    const pkg = JSON.parse(readFileSync(pkgJson, 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dir, dep);
  };
  visit(ROOT, 'wx-server-sdk');
  return { packages: seen.size, bytes, files };
}

export interface ColdVariant {
  name: string;
  /** Arguments to node. */
  args: string[];
  cwd: string;
  /** Set over the shared environment (the platform's, named for this function). */
  env?: Record<string, string>;
}

export interface ColdResult {
  name: string;
  medianMs: number;
  p90Ms: number;
  samples: number[];
  /** Peak resident set size of the process, median over the runs (KB). */
  maxRssKb: number;
  /**
   * CPU time (user + system) of the whole process, median over the runs: unlike the wall
   * clock, it does not grow while the process waits for a core on a busy machine.
   */
  cpuMedianMs: number;
}

const MARK = '\u0000cold:';

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
  const rss = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const cpu = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const childEnv = { PATH: process.env['PATH'] ?? '', ...env };
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(r + k) % variants.length]!;
      const t0 = process.hrtime.bigint();
      const res = spawnSync(functionNode, v.args, {
        cwd: v.cwd,
        env: { ...childEnv, ...v.env },
        stdio: 'pipe',
      });
      const ms = msSince(t0);
      if (res.status !== 0) {
        throw new Error(
          `cold start of ${v.name} failed (exit ${res.status}): ${String(res.stderr).slice(0, 800)}`,
        );
      }
      const out = String(res.stdout);
      const at = out.lastIndexOf(MARK);
      if (at < 0) throw new Error(`cold start of ${v.name} did not report its memory: ${out.slice(0, 300)}`);
      const report = JSON.parse(out.slice(at + MARK.length)) as { rssKb: number; cpuMs: number };
      samples.get(v.name)!.push(ms);
      rss.get(v.name)!.push(report.rssKb);
      cpu.get(v.name)!.push(report.cpuMs);
    }
  }
  return variants.map((v) => {
    const s = samples.get(v.name)!;
    return {
      name: v.name,
      medianMs: round(median(s)),
      p90Ms: round(percentile(s, 90)),
      samples: s.map((x) => round(x)),
      maxRssKb: Math.round(median(rss.get(v.name)!)),
      cpuMedianMs: round(median(cpu.get(v.name)!)),
    };
  });
}

// Peak RSS and CPU time are read as the process ends, after the module load being measured,
// and written after a marker so that nothing a function logs at load can be mistaken for
// them. Linux's VmHWM belongs to the new process image; getrusage's maxRSS would start from
// the parent's (this bench's) size, which fork hands down. CPU time starts at the fork.
const REPORT = `{ const u = process.cpuUsage(); let rssKb = process.resourceUsage().maxRSS; try { rssKb = Number(/VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]); } catch {} process.stdout.write(${JSON.stringify(MARK)} + JSON.stringify({ rssKb, cpuMs: (u.user + u.system) / 1000 })); }`;

/** Loads `index.js` from argv[1] the way the platform does: require, then check main. */
export const LOAD_SCRIPT = `if (typeof require(process.argv[1]).main !== 'function') process.exit(3); ${REPORT}`;

/** The yardstick: a bare require of the SDK, as an external function's first line does. */
export const SDK_SCRIPT = `require('wx-server-sdk'); ${REPORT}`;

/** An empty node process: the floor no function can go under. */
export const EMPTY_SCRIPT = REPORT;

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
    top: p.byPackage.slice(0, 12).map(([pkg, ms]) => ({ pkg, selfMs: round(ms) })),
  };
}

/** Refuses a directory from which Node could still find a node_modules by walking up. */
export function assertStandalone(dir: string): void {
  for (let d = dir; d !== join(d, '..'); d = join(d, '..')) {
    if (existsSync(join(d, 'node_modules'))) throw new Error(`${dir} can reach ${join(d, 'node_modules')}`);
  }
}
