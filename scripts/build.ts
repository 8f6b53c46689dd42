/**
 * Bundles every cloud function: each folder under cloudfunctions/ with an index.ts (except
 * shared/) becomes dist/cloudfunctions/<fn>/{index.js,package.json,config.json}.
 * wx-server-sdk stays external and is pinned to the exact version in our package.json,
 * because CloudBase installs it in the cloud (云端安装依赖) and minor releases have broken envs.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { openapiPermissionProblems } from './openapi-permissions';

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

export async function buildFunctions(options: { minify?: boolean; out?: string } = {}): Promise<string[]> {
  const out = options.out ?? outDir;
  const fns = listFunctions();
  if (fns.length === 0) fail('no functions found under cloudfunctions/');
  const version = sdkVersion();
  mkdirSync(out, { recursive: true });
  for (const stale of readdirSync(out))
    if (!fns.includes(stale)) rmSync(join(out, stale), { recursive: true, force: true });
  await Promise.all(
    fns.map(async (fn) => {
      const config = readFunctionConfig(fn);
      const dest = join(out, fn);
      mkdirSync(dest, { recursive: true });
      await build({
        entryPoints: [join(srcDir, fn, 'index.ts')],
        outfile: join(dest, 'index.js'),
        bundle: true,
        platform: 'node',
        target: 'node16',
        format: 'cjs',
        external: ['wx-server-sdk'],
        minify: options.minify ?? true,
        keepNames: true,
        legalComments: 'none',
        logLevel: 'warning',
      });
      const openapi = openapiPermissionProblems(fn, readFileSync(join(dest, 'index.js'), 'utf8'), config);
      if (openapi.length > 0) fail(openapi.join('; '));
      const pkg = {
        name: fn,
        version: '1.0.0',
        private: true,
        main: 'index.js',
        dependencies: { 'wx-server-sdk': version },
      };
      writeFileSync(join(dest, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
      writeFileSync(join(dest, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    }),
  );
  return fns;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  buildFunctions()
    .then((fns) =>
      console.log(
        `built ${fns.length} functions into dist/cloudfunctions in ${Date.now() - t0} ms: ${fns.join(', ')}`,
      ),
    )
    .catch((e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
}
