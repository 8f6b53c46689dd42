import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildFunctions,
  listFunctions,
  parseBuildArgs,
  readBuildInfo,
  readFunctionConfig,
  sdkVersion,
} from '../../scripts/build';
import { findRuntime } from '../../scripts/runtimes';
import { SDK_TRIMS, trimTargets } from '../../scripts/sdk-trim';
import { configuredRuntime } from '../../scripts/target';

const root = resolve(__dirname, '../..');
const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
let tmp: string;
let bundled: string;
let external: string;
let fns: string[];

beforeAll(async () => {
  // Under /tmp, where no node_modules can be found by walking up.
  tmp = mkdtempSync(join(tmpdir(), 'build-'));
  bundled = join(tmp, 'bundled');
  external = join(tmp, 'external');
  fns = await buildFunctions({ out: bundled });
  await buildFunctions({ out: external, sdk: 'external' });
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function requiredModules(file: string): string[] {
  const code = readFileSync(file, 'utf8');
  return [...new Set([...code.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!))];
}

/** Runs whoami's main in a fresh node process from `cwd`, as the platform would. */
function runWhoami(cwd: string): unknown {
  const stdout = execFileSync(
    process.execPath,
    [
      '-e',
      "require('./index.js').main({userInfo:{openId:'forged'}}).then(r => console.log(JSON.stringify(r)))",
    ],
    {
      cwd,
      env: {
        PATH: process.env['PATH'],
        WX_CONTEXT_KEYS: 'WX_OPENID,WX_APPID',
        WX_OPENID: 'o_admin',
        WX_APPID: 'wx_test',
        ADMIN_OPENIDS: 'o_other, o_admin',
        TENCENTCLOUD: 'true',
      },
      encoding: 'utf8',
    },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe('npm run build (wx-server-sdk bundled, the default)', () => {
  it('builds one bundle per function folder, found from the folders', () => {
    expect(fns).toEqual(listFunctions());
    expect(fns).toContain('whoami');
    expect(fns).not.toContain('shared');
    expect(readdirSync(bundled).sort()).toEqual(fns);
  });

  it('leaves nothing for CloudBase to install, and says so in each package.json', () => {
    for (const fn of fns) {
      const pkg = JSON.parse(readFileSync(join(bundled, fn, 'package.json'), 'utf8'));
      expect(pkg.dependencies).toBeUndefined();
      expect(pkg.sdkBuild).toEqual({ sdk: 'bundled', wxServerSdk: sdkVersion() });
      expect(readBuildInfo(join(bundled, fn))).toEqual({ sdk: 'bundled', wxServerSdk: sdkVersion() });
      expect(readdirSync(join(bundled, fn)).sort()).toEqual(['config.json', 'index.js', 'package.json']);
      expect(JSON.parse(readFileSync(join(bundled, fn, 'config.json'), 'utf8'))).toEqual(
        readFunctionConfig(fn),
      );
    }
  });

  it('compiles for the configured runtime’s Node major and records it in each package.json', async () => {
    const runtime = configuredRuntime();
    const old = mkdtempSync(join(tmpdir(), 'build16-'));
    try {
      await buildFunctions({ out: old, runtime: findRuntime('Nodejs16.13')! });
      for (const fn of fns) {
        const pkg = JSON.parse(readFileSync(join(bundled, fn, 'package.json'), 'utf8'));
        expect(pkg.engines, fn).toEqual({ node: `${runtime.major}.x` });
        expect(JSON.parse(readFileSync(join(old, fn, 'package.json'), 'utf8')).engines).toEqual({
          node: '16.x',
        });
        // Class static blocks are kept from Node 16.11 on; a node16 build rewrites them.
        const code = readFileSync(join(bundled, fn, 'index.js'), 'utf8');
        if (runtime.major > 16) expect(code.includes('static{'), `${fn} keeps static blocks`).toBe(true);
        expect(readFileSync(join(old, fn, 'index.js'), 'utf8').includes('static{'), fn).toBe(false);
      }
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  }, 120_000);

  it('gives each function its own config.json timeout, so its WeChat calls can end before it is killed', () => {
    for (const fn of fns) {
      const timeout = (readFunctionConfig(fn).timeout ?? 3) * 1000;
      // Minified: 20000 is written 2e4.
      const set = /__FUNCTION_TIMEOUT_MS__=([0-9.e]+)/.exec(
        readFileSync(join(bundled, fn, 'index.js'), 'utf8'),
      );
      expect(Number(set?.[1]), fn).toBe(timeout);
    }
  });

  it('requires nothing but Node built-ins: the whole SDK is inside index.js', () => {
    for (const fn of fns) {
      expect(
        requiredModules(join(bundled, fn, 'index.js')).filter((r) => !BUILTINS.has(r)),
        fn,
      ).toEqual([]);
    }
  });

  it('loads and runs in a fresh node process with no node_modules anywhere above it', () => {
    const app = join(tmp, 'app-bundled');
    mkdirSync(app);
    for (let d = app; d !== dirname(d); d = dirname(d))
      expect(existsSync(join(d, 'node_modules'))).toBe(false);
    writeFileSync(join(app, 'index.js'), readFileSync(join(bundled, 'whoami', 'index.js')));
    expect(runWhoami(app)).toEqual({ ok: true, data: { isAdmin: true, openid: 'o_admin' } });
  });

  it('leaves out the trimmed parts of the SDK and keeps the deferred ones', () => {
    const code = readFileSync(join(bundled, 'createOrder', 'index.js'), 'utf8');
    // Stubbed: the AI client and jsonwebtoken, recognised by their own strings, are gone.
    expect(code).not.toContain('aiBotBaseUrl');
    expect(code).not.toContain('jwt malformed');
    // Deferred, still present: xml2js (storage) and the MIME table.
    expect(code).toContain('__sdkTrimLazy');
    expect(code).toContain('application/vnd.ms-excel');
    expect(code.length).toBeLessThan(1_200_000);
  });

  it('resolves every trim to an installed file of the SDK tree', () => {
    const targets = trimTargets(root);
    expect([...targets.values()].flat().length).toBe(SDK_TRIMS.length);
    for (const path of targets.keys()) expect(existsSync(path), path).toBe(true);
  });
});

describe('npm run build -- --sdk external', () => {
  it('pins wx-server-sdk exactly in each package.json for CloudBase to install', () => {
    const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    for (const fn of fns) {
      const pkg = JSON.parse(readFileSync(join(external, fn, 'package.json'), 'utf8'));
      expect(pkg.dependencies).toEqual({ 'wx-server-sdk': rootPkg.dependencies['wx-server-sdk'] });
      expect(pkg.dependencies['wx-server-sdk']).toMatch(/^\d+\.\d+\.\d+$/);
      expect(readBuildInfo(join(external, fn))).toEqual({ sdk: 'external', wxServerSdk: sdkVersion() });
    }
  });

  it('requires nothing but Node built-ins and wx-server-sdk', () => {
    const allowed = new Set([...BUILTINS, 'wx-server-sdk']);
    for (const fn of fns) {
      expect(
        requiredModules(join(external, fn, 'index.js')).filter((r) => !allowed.has(r)),
        fn,
      ).toEqual([]);
    }
  });

  it('loads and runs in a fresh node process whose only package is wx-server-sdk', () => {
    const app = join(tmp, 'app-external');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    symlinkSync(
      join(root, 'node_modules', 'wx-server-sdk'),
      join(app, 'node_modules', 'wx-server-sdk'),
      'dir',
    );
    writeFileSync(join(app, 'index.js'), readFileSync(join(external, 'whoami', 'index.js')));
    expect(runWhoami(app)).toEqual({ ok: true, data: { isAdmin: true, openid: 'o_admin' } });
  });
});

describe('build arguments and build info', () => {
  it('takes --sdk bundled|external and refuses anything else', () => {
    expect(parseBuildArgs([])).toEqual({ sdk: 'bundled' });
    expect(parseBuildArgs(['--sdk', 'external'])).toEqual({ sdk: 'external' });
    expect(parseBuildArgs(['--sdk=bundled'])).toEqual({ sdk: 'bundled' });
    expect(() => parseBuildArgs(['--sdk', 'installed'])).toThrow(/--sdk must be one of bundled, external/);
    expect(() => parseBuildArgs(['--sdk'])).toThrow(/--sdk must be one of/);
    expect(() => parseBuildArgs(['--minify'])).toThrow(/unknown argument --minify/);
  });

  it('refuses a package.json whose build info is missing or contradicts its dependencies', () => {
    const dir = join(tmp, 'pkg');
    mkdirSync(dir);
    const write = (pkg: unknown) => writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg));
    write({ name: 'x', dependencies: { 'wx-server-sdk': '4.0.2' } });
    expect(() => readBuildInfo(dir)).toThrow(/no valid sdkBuild/);
    write({ sdkBuild: { sdk: 'bundled', wxServerSdk: '4.0.2' }, dependencies: { 'wx-server-sdk': '4.0.2' } });
    expect(() => readBuildInfo(dir)).toThrow(/dependencies disagree/);
    write({ sdkBuild: { sdk: 'external', wxServerSdk: '4.0.2' } });
    expect(() => readBuildInfo(dir)).toThrow(/dependencies disagree/);
    write({
      sdkBuild: { sdk: 'external', wxServerSdk: '^4.0.2' },
      dependencies: { 'wx-server-sdk': '^4.0.2' },
    });
    expect(() => readBuildInfo(dir)).toThrow(/no valid sdkBuild/);
  });
});
