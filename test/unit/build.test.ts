import { execFileSync } from 'node:child_process';
import {
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
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveFunctionNode } from '../../sandbox/runtime/node';
import { buildFunctions, listFunctions, readFunctionConfig } from '../../scripts/build';
import { findRuntime } from '../../scripts/runtimes';
import { configuredRuntime } from '../../scripts/target';

const root = resolve(__dirname, '../..');
let out: string;
let fns: string[];

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'build-'));
  fns = await buildFunctions({ out });
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('npm run build', () => {
  it('builds one bundle per function folder, found from the folders', () => {
    expect(fns).toEqual(listFunctions());
    expect(fns).toContain('whoami');
    expect(fns).not.toContain('shared');
    expect(readdirSync(out).sort()).toEqual(fns);
  });

  it('pins wx-server-sdk exactly in each function package.json and copies config.json', () => {
    const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    for (const fn of fns) {
      const pkg = JSON.parse(readFileSync(join(out, fn, 'package.json'), 'utf8'));
      expect(pkg.dependencies).toEqual({ 'wx-server-sdk': rootPkg.dependencies['wx-server-sdk'] });
      expect(pkg.dependencies['wx-server-sdk']).toMatch(/^\d+\.\d+\.\d+$/);
      expect(JSON.parse(readFileSync(join(out, fn, 'config.json'), 'utf8'))).toEqual(readFunctionConfig(fn));
    }
  });

  it('compiles for the configured runtime’s Node major and records it in each package.json', async () => {
    const runtime = configuredRuntime();
    const old = mkdtempSync(join(tmpdir(), 'build16-'));
    try {
      await buildFunctions({ out: old, runtime: findRuntime('Nodejs16.13')! });
      for (const fn of fns) {
        const pkg = JSON.parse(readFileSync(join(out, fn, 'package.json'), 'utf8'));
        expect(pkg.engines, fn).toEqual({ node: `${runtime.major}.x` });
        expect(JSON.parse(readFileSync(join(old, fn, 'package.json'), 'utf8')).engines).toEqual({
          node: '16.x',
        });
        // Class static blocks are kept from Node 16.11 on; a node16 build rewrites them.
        const code = readFileSync(join(out, fn, 'index.js'), 'utf8');
        if (runtime.major > 16) expect(code.includes('static{'), `${fn} keeps static blocks`).toBe(true);
        expect(readFileSync(join(old, fn, 'index.js'), 'utf8').includes('static{'), fn).toBe(false);
      }
    } finally {
      rmSync(old, { recursive: true, force: true });
    }
  });

  it('requires nothing but node built-ins and wx-server-sdk', () => {
    const allowed = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`), 'wx-server-sdk']);
    for (const fn of fns) {
      const code = readFileSync(join(out, fn, 'index.js'), 'utf8');
      const required = [...code.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!);
      expect(
        required.filter((r) => !allowed.has(r)),
        fn,
      ).toEqual([]);
    }
  });

  it('loads and runs in a fresh process of the runtime’s Node whose only package is wx-server-sdk', () => {
    const app = mkdtempSync(join(tmpdir(), 'fn-'));
    try {
      mkdirSync(join(app, 'node_modules'));
      symlinkSync(
        join(root, 'node_modules', 'wx-server-sdk'),
        join(app, 'node_modules', 'wx-server-sdk'),
        'dir',
      );
      writeFileSync(join(app, 'index.js'), readFileSync(join(out, 'whoami', 'index.js')));
      const stdout = execFileSync(
        resolveFunctionNode(configuredRuntime()).path,
        [
          '-e',
          "require('./index.js').main({userInfo:{openId:'forged'}}).then(r => console.log(JSON.stringify(r)))",
        ],
        {
          cwd: app,
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
      expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({
        ok: true,
        data: { isAdmin: true, openid: 'o_admin' },
      });
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });
});
