/**
 * Bundles every cloud function: each folder under cloudfunctions/ with an index.ts (except
 * shared/) becomes dist/cloudfunctions/<fn>/{index.js,package.json,config.json}.
 *
 * Two ways to ship wx-server-sdk, pinned either way to the exact version in our package.json:
 * - `bundled` (the default): the SDK is inside the one minified index.js, with the parts the
 *   shop never reaches trimmed (scripts/sdk-trim.ts). Nothing is installed in the cloud, and a
 *   cold start loads one file instead of ~500.
 * - `external` (`npm run build -- --sdk external`): wx-server-sdk stays out of index.js and
 *   the function's package.json lists it, for CloudBase to install (云端安装依赖).
 * Each function's package.json says which in its `sdkBuild` field (see `readBuildInfo`).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';
import { openapiPermissionProblems } from './openapi-permissions';
import type { NodeRuntime } from './runtimes';
import { SDK_TRIMS, type SdkTrim, sdkTrimPlugin } from './sdk-trim';
import { configuredRuntime, enginesRange, esbuildTarget } from './target';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = join(root, 'cloudfunctions');
const outDir = join(root, 'dist', 'cloudfunctions');

export interface FunctionConfig {
  timeout?: number;
  envVariables?: Record<string, string>;
  triggers?: { name: string; type: 'timer'; config: string }[];
  permissions?: { openapi?: string[] };
}

export function listFunctions(dir = srcDir): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'shared' && existsSync(join(dir, d.name, 'index.ts')))
    .map((d) => d.name)
    .sort();
}

function fail(msg: string): never {
  throw new Error(`build: ${msg}`);
}

/** Checks a function's config.json against CloudBase's rules before anything is uploaded. */
export function readFunctionConfig(fn: string, dir = srcDir): FunctionConfig {
  const path = join(dir, fn, 'config.json');
  if (!existsSync(path)) return {};
  let cfg: FunctionConfig;
  try {
    cfg = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(`${fn}/config.json is not valid JSON: ${(e as Error).message}`);
  }
  if (
    cfg.timeout !== undefined &&
    !(Number.isInteger(cfg.timeout) && cfg.timeout >= 1 && cfg.timeout <= 300)
  ) {
    fail(`${fn}/config.json: timeout must be an integer from 1 to 300 seconds`);
  }
  const triggers = cfg.triggers ?? [];
  if (triggers.length > 1) fail(`${fn}/config.json: CloudBase allows one trigger per function`);
  for (const t of triggers) {
    if (t.type !== 'timer') fail(`${fn}/config.json: trigger type must be "timer"`);
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,59}$/.test(t.name)) fail(`${fn}/config.json: bad trigger name ${t.name}`);
    // CloudBase timers take 7 fields: sec min hour day month weekday year (UTC+8).
    if (t.config.trim().split(/\s+/).length !== 7) {
      fail(`${fn}/config.json: timer "${t.config}" must have 7 fields (sec min hour day month weekday year)`);
    }
  }
  return cfg;
}

export function sdkVersion(): string {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const v: string | undefined = pkg.dependencies?.['wx-server-sdk'];
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) fail('package.json must pin wx-server-sdk to an exact version');
  return v;
}

export type SdkMode = 'bundled' | 'external';
export const SDK_MODES: readonly SdkMode[] = ['bundled', 'external'];

/** What a built function's package.json says about how it carries wx-server-sdk. */
export interface BuildInfo {
  /** `bundled`: inside index.js, nothing to install. `external`: CloudBase installs `dependencies`. */
  sdk: SdkMode;
  /** The exact wx-server-sdk version, bundled or to be installed. */
  wxServerSdk: string;
}

export interface BuildOptionsIn {
  minify?: boolean;
  out?: string;
  /** Default `bundled`. */
  sdk?: SdkMode;
  /** Default: CLOUDBASE_FUNCTION_RUNTIME, else the default runtime. */
  runtime?: NodeRuntime;
}

/**
 * Each function's own timeout (config.json), set before its entry runs, so every WeChat call
 * can end before the platform kills the function (runtime/function.ts reads it). One esbuild
 * run builds every function, so this is a line added to each entry, not a global define.
 */
function functionTimeoutPlugin(timeoutsMs: Record<string, number>): Plugin {
  return {
    name: 'function-timeout',
    setup(b) {
      b.onLoad({ filter: /[\\/]cloudfunctions[\\/][^\\/]+[\\/]index\.ts$/ }, (args) => {
        const fn = args.path.split(/[\\/]/).at(-2) ?? '';
        const ms = timeoutsMs[fn];
        if (ms === undefined) return undefined;
        const source = readFileSync(args.path, 'utf8');
        return { contents: `globalThis.__FUNCTION_TIMEOUT_MS__ = ${ms};\n${source}`, loader: 'ts' };
      });
    },
  };
}

/**
 * The esbuild options for a set of entry points (`{ outName: entryFile }`, each written to
 * `<outdir>/<outName>/index.js`), shared with the tests that bundle a probe the same way so
 * that what they prove holds for the shipped bundles.
 */
export function esbuildOptions(
  entries: Record<string, string>,
  outdir: string,
  sdk: SdkMode,
  applied: Set<SdkTrim>,
  minify = true,
  target = esbuildTarget(configuredRuntime()),
  timeoutsMs: Record<string, number> = {},
): BuildOptions {
  const plugins = [
    functionTimeoutPlugin(timeoutsMs),
    ...(sdk === 'external' ? [] : [sdkTrimPlugin(root, applied)]),
  ];
  return {
    entryPoints: entries,
    outdir,
    entryNames: '[name]/index',
    bundle: true,
    platform: 'node',
    target,
    format: 'cjs',
    minify,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'silent',
    plugins,
    ...(sdk === 'external' ? { external: ['wx-server-sdk'] } : {}),
  };
}

/**
 * Bundles each entry into `<outdir>/<name>/index.js`. A warning fails the build: in the
 * bundled variant one is usually a require() esbuild could not follow, which would fail in
 * the cloud, where no node_modules exists. So does a trim that did not apply.
 */
export async function bundleEntries(
  entries: Record<string, string>,
  outdir: string,
  sdk: SdkMode,
  minify = true,
  target = esbuildTarget(configuredRuntime()),
  timeoutsMs: Record<string, number> = {},
): Promise<void> {
  const applied = new Set<SdkTrim>();
  const result = await build(esbuildOptions(entries, outdir, sdk, applied, minify, target, timeoutsMs));
  if (result.warnings.length > 0) {
    fail(
      `bundling warned:\n${result.warnings.map((w) => `  ${w.location?.file ?? ''}: ${w.text}`).join('\n')}`,
    );
  }
  if (sdk === 'bundled') {
    const missed = SDK_TRIMS.filter((t) => !applied.has(t));
    if (missed.length > 0) {
      fail(
        `these SDK trims did not apply (review scripts/sdk-trim.ts): ${missed.map((t) => `${t.via.at(-1)}/${t.file}`).join(', ')}`,
      );
    }
  }
}

export async function buildFunctions(options: BuildOptionsIn = {}): Promise<string[]> {
  const out = options.out ?? outDir;
  const sdk = options.sdk ?? 'bundled';
  if (!SDK_MODES.includes(sdk)) fail(`--sdk must be one of ${SDK_MODES.join(', ')}, got ${String(sdk)}`);
  const runtime = options.runtime ?? configuredRuntime();
  const fns = listFunctions();
  if (fns.length === 0) fail('no functions found under cloudfunctions/');
  const version = sdkVersion();
  const configs = new Map(fns.map((fn) => [fn, readFunctionConfig(fn)]));
  mkdirSync(out, { recursive: true });
  for (const stale of readdirSync(out))
    if (!fns.includes(stale)) rmSync(join(out, stale), { recursive: true, force: true });
  // One esbuild run for all functions: the SDK is parsed once, not once per function.
  await bundleEntries(
    Object.fromEntries(fns.map((fn) => [fn, join(srcDir, fn, 'index.ts')])),
    out,
    sdk,
    options.minify ?? true,
    esbuildTarget(runtime),
    // CloudBase's default timeout is 3 s when config.json names none.
    Object.fromEntries(fns.map((fn) => [fn, (configs.get(fn)?.timeout ?? 3) * 1000])),
  );
  for (const fn of fns) {
    const dest = join(out, fn);
    // A function that calls cloud.openapi.* must declare it, or CloudBase refuses the call.
    const openapi = openapiPermissionProblems(
      fn,
      readFileSync(join(dest, 'index.js'), 'utf8'),
      configs.get(fn) ?? {},
    );
    if (openapi.length > 0) fail(openapi.join('; '));
    const sdkBuild: BuildInfo = { sdk, wxServerSdk: version };
    const pkg = {
      name: fn,
      version: '1.0.0',
      private: true,
      main: 'index.js',
      // Only the external build has anything for CloudBase to install.
      ...(sdk === 'external' ? { dependencies: { 'wx-server-sdk': version } } : {}),
      sdkBuild,
      // The Node major this bundle was compiled for; the sandbox refuses to run it on another.
      engines: { node: enginesRange(runtime) },
    };
    writeFileSync(join(dest, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
    writeFileSync(join(dest, 'config.json'), `${JSON.stringify(configs.get(fn), null, 2)}\n`);
  }
  return fns;
}

/** How the function built into `dir` carries wx-server-sdk, from its package.json. */
export function readBuildInfo(dir: string): BuildInfo {
  let pkg: { sdkBuild?: Partial<BuildInfo>; dependencies?: Record<string, string> };
  try {
    pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  } catch (e) {
    fail(`${dir}/package.json cannot be read: ${(e as Error).message} (run npm run build)`);
  }
  const info = pkg.sdkBuild;
  if (
    !info ||
    !SDK_MODES.includes(info.sdk as SdkMode) ||
    typeof info.wxServerSdk !== 'string' ||
    !/^\d+\.\d+\.\d+$/.test(info.wxServerSdk)
  ) {
    fail(`${dir}/package.json has no valid sdkBuild field (run npm run build)`);
  }
  const installs = pkg.dependencies?.['wx-server-sdk'];
  if (info.sdk === 'external' ? installs !== info.wxServerSdk : installs !== undefined) {
    fail(`${dir}/package.json: sdkBuild says ${info.sdk} but dependencies disagree (run npm run build)`);
  }
  return { sdk: info.sdk as SdkMode, wxServerSdk: info.wxServerSdk };
}

/** `npm run build [-- --sdk bundled|external]`. */
export function parseBuildArgs(argv: string[]): { sdk: SdkMode } {
  let sdk: string = 'bundled';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--sdk') sdk = argv[++i] ?? '';
    else if (a.startsWith('--sdk=')) sdk = a.slice('--sdk='.length);
    else fail(`unknown argument ${a} (usage: npm run build -- [--sdk bundled|external])`);
  }
  if (!SDK_MODES.includes(sdk as SdkMode)) fail(`--sdk must be one of ${SDK_MODES.join(', ')}, got "${sdk}"`);
  return { sdk: sdk as SdkMode };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  Promise.resolve()
    .then(() => parseBuildArgs(process.argv.slice(2)))
    .then(({ sdk }) =>
      buildFunctions({ sdk }).then((fns) =>
        console.log(
          `built ${fns.length} functions (wx-server-sdk ${sdk === 'bundled' ? 'bundled in, trimmed' : 'external, installed in the cloud'}) into dist/cloudfunctions in ${Date.now() - t0} ms: ${fns.join(', ')}`,
        ),
      ),
    )
    .catch((e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
}
