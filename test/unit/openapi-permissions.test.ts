/**
 * The build's check that a function calling cloud.openapi declares it in config.json, run on
 * real esbuild output of the sender, minified as `npm run build` makes it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFunctions, readFunctionConfig } from '../../scripts/build';
import { openapiCalls, openapiPermissionProblems } from '../../scripts/openapi-permissions';

const root = resolve(__dirname, '../..');
let dir: string;
let sending: string;
let silent: string;

async function bundle(name: string, source: string): Promise<string> {
  const entry = join(dir, `${name}.ts`);
  writeFileSync(entry, source);
  const outfile = join(dir, `${name}.js`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node16',
    format: 'cjs',
    external: ['wx-server-sdk'],
    minify: true,
    logLevel: 'silent',
  });
  return readFileSync(outfile, 'utf8');
}

beforeAll(async () => {
  dir = mkdtempSync(join(root, 'node_modules', '.openapi-check-'));
  const runtime = join(root, 'cloudfunctions/shared/runtime');
  sending = await bundle(
    'sending',
    `import { subscribeSender } from '${runtime}/subscribe';\nexport const main = () => subscribeSender();\n`,
  );
  silent = await bundle(
    'silent',
    `import { getWxContext } from '${runtime}/cloud';\nexport const main = () => getWxContext();\n`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('finding cloud calls in a bundle', () => {
  it('finds subscribeMessage.send in the minified sender', () => {
    expect(openapiCalls(sending)).toEqual(['subscribeMessage.send']);
  });

  it('finds none in a function that only reads its caller', () => {
    expect(openapiCalls(silent)).toEqual([]);
  });

  it('reads the chain however it is spaced', () => {
    expect(openapiCalls('a.openapi.security.msgSecCheck(x);b.openapi .subscribeMessage. send ({})')).toEqual([
      'security.msgSecCheck',
      'subscribeMessage.send',
    ]);
  });
});

describe('the build refuses an undeclared cloud call', () => {
  it('names the function, the call and the line to add', () => {
    expect(openapiPermissionProblems('payNotify', sending, { timeout: 5 })).toEqual([
      'payNotify calls cloud.openapi subscribeMessage.send but its config.json does not declare it: add "permissions": { "openapi": ["subscribeMessage.send"] } (the platform refuses undeclared cloud calls with -604101)',
    ]);
  });

  it('accepts the declaration, and a function that declares more than it calls', () => {
    const declared = { permissions: { openapi: ['subscribeMessage.send'] } };
    expect(openapiPermissionProblems('payNotify', sending, declared)).toEqual([]);
    expect(openapiPermissionProblems('whoami', silent, declared)).toEqual([]);
  });

  it('refuses a malformed declaration', () => {
    expect(
      openapiPermissionProblems('x', silent, { permissions: { openapi: 'subscribeMessage.send' as never } }),
    ).toEqual([
      'x/config.json: permissions.openapi must be a list of API names such as "subscribeMessage.send"',
    ]);
    expect(
      openapiPermissionProblems('x', silent, { permissions: { openapi: ['subscribe message'] } }),
    ).toEqual(['x/config.json: "subscribe message" in permissions.openapi is not an API name']);
  });
});

describe('this repository', () => {
  const senders = [
    'payNotify',
    'refundNotify',
    'applyRefund',
    'approveRefund',
    'reconcile',
    'queryOrder',
    'billCheck',
    'runBillCheck',
  ];

  it('declares subscribeMessage.send in every function whose transitions send notices', () => {
    for (const fn of senders) {
      expect(listFunctions()).toContain(fn);
      expect(readFunctionConfig(fn).permissions?.openapi, fn).toEqual(['subscribeMessage.send']);
    }
  });

  it('puts the sender only into those functions: their bundles call it, no other bundle does', () => {
    // dist/ is built by the test run's global setup, exactly as npm run build makes it.
    const calling = listFunctions().filter(
      (fn) =>
        openapiCalls(readFileSync(join(root, 'dist/cloudfunctions', fn, 'index.js'), 'utf8')).length > 0,
    );
    expect(calling.sort()).toEqual([...senders].sort());
    for (const fn of listFunctions())
      expect(readFunctionConfig(fn).permissions?.openapi !== undefined, fn).toBe(senders.includes(fn));
  });
});
