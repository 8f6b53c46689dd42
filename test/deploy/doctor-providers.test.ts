/**
 * The doctor and the deploy plan for each provider: APIv3's key, merchant key and serial,
 * WeChat Pay key, and an online signed query against the simulator's APIv3 side; cloudPay's
 * offline checks; each function given exactly the variables its providers need.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../cloudfunctions/shared/config';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import {
  type Check,
  checkConfiguration,
  checkOnlineProviders,
  renderChecks,
} from '../../scripts/golive/checks';
import {
  envBytes,
  functionEnvironment,
  loadRules,
  parseNeeds,
  planDeployment,
} from '../../scripts/golive/plan';
import { DIRECT, startV3Env, type V3Env } from '../providers/fixtures';

const NOW = Date.now();
let env: V3Env;
let v3Vars: Record<string, string>;

beforeAll(async () => {
  env = await startV3Env();
  const domain = 'shop-1a2b3c.service.tcloudbase.com';
  v3Vars = {
    CLOUDBASE_ENV_ID: 'shop-1a2b3c',
    CLOUDBASE_HTTP_DOMAIN: domain,
    WXPAY_PROVIDER: 'v3',
    WXPAY_APPID: DIRECT.appid,
    WXPAY_MCHID: DIRECT.mchId,
    WXPAY_NOTIFY_URL: `https://${domain}/pay/notify`,
    WXPAY_REFUND_NOTIFY_URL: `https://${domain}/refund/notify`,
    WXPAY_V3_KEY: env.material.apiV3Key,
    WXPAY_CERT_PEM: readFileSync(env.certs.certPath, 'utf8'),
    WXPAY_KEY_PEM: readFileSync(env.certs.keyPath, 'utf8'),
    WXPAY_V3_PUBLIC_KEY_ID: env.material.publicKeyId,
    WXPAY_V3_PUBLIC_KEY_PEM: readFileSync(env.material.publicKeyPath, 'utf8'),
    ADMIN_OPENIDS: 'oUpF8uMEb4qRXf22hE3X68TekukE',
    // The simulator stands in for WeChat Pay.
    WXPAY_BASE_URL: env.sim.url,
    WXPAY_CA_PEM: env.caPem,
  };
});
afterAll(() => env?.close());

const failures = (checks: Check[]) => checks.filter((c) => c.status === 'fail');
const named = (checks: Check[], name: string) => checks.filter((c) => c.name === name);
const anotherKey = () =>
  generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();

describe('npm run doctor on APIv3', () => {
  it('passes every offline check, and the online query proves the private key, serial and WeChat Pay key', async () => {
    const checks = checkConfiguration(v3Vars, { now: NOW });
    expect(failures(checks), renderChecks(checks)).toEqual([]);
    expect(named(checks, 'APIv3 key')[0]?.status).toBe('ok');
    expect(named(checks, 'APIv3 merchant key')[0]?.detail).toContain('the key of certificate');
    // APIv2's key and client certificate are not asked for: APIv2 is not in use.
    expect(named(checks, 'API key')).toEqual([]);
    const online = await checkOnlineProviders(v3Vars);
    expect(online, renderChecks(online)).toMatchObject([
      { status: 'ok', name: 'WeChat Pay APIv3 round trip', stage: 'payment' },
    ]);
    expect(online[0]!.detail).toContain(env.material.publicKeyId);
  });

  it('a private key from another download: offline against the certificate, online by SIGN_ERROR', async () => {
    const other = anotherKey();
    expect(
      renderChecks(failures(checkConfiguration({ ...v3Vars, WXPAY_KEY_PEM: other }, { now: NOW }))),
    ).toContain('the private key is not the key of certificate');
    // With only the serial configured, the pair cannot be matched offline; WeChat refuses it.
    const { WXPAY_CERT_PEM: _c, WXPAY_KEY_PEM: _k, ...rest } = v3Vars;
    const serialOnly = {
      ...rest,
      WXPAY_V3_PRIVATE_KEY_PEM: other,
      WXPAY_V3_CERT_SERIAL: new X509Certificate(readFileSync(env.certs.certPath)).serialNumber,
    };
    expect(named(checkConfiguration(serialOnly, { now: NOW }), 'APIv3 merchant key')[0]?.status).toBe('warn');
    const [online] = await checkOnlineProviders(serialOnly);
    expect(online).toMatchObject({ status: 'fail' });
    expect(online!.detail).toContain('SIGN_ERROR');
  });

  it('the APIv2 key pasted as the APIv3 key, a key of the wrong length, a malformed public key id', () => {
    const apiV2Key = 'abcdefghijklmnopqrstuvwxyz012345';
    const checks = [
      ...checkConfiguration({ ...v3Vars, WXPAY_V3_KEY: apiV2Key, WXPAY_API_KEY: apiV2Key }, { now: NOW }),
      ...checkConfiguration({ ...v3Vars, WXPAY_V3_KEY: 'short' }, { now: NOW }),
      ...checkConfiguration({ ...v3Vars, WXPAY_V3_PUBLIC_KEY_ID: 'PUBKEY_1' }, { now: NOW }),
      ...checkConfiguration(
        { ...v3Vars, WXPAY_V3_PUBLIC_KEY_ID: '', WXPAY_V3_PUBLIC_KEY_PEM: '' },
        { now: NOW },
      ),
    ];
    const text = renderChecks(failures(checks));
    expect(text).toContain('WXPAY_V3_KEY is the APIv2 key');
    expect(text).toContain('WXPAY_V3_KEY is 5 bytes, not 32');
    expect(text).toContain('is not PUB_KEY_ID_ followed by digits');
    expect(text).toContain("no WeChat Pay key: APIv3's answers and notifies cannot be verified");
  });

  it('online: answers that do not verify with the configured WeChat Pay key are found', async () => {
    const otherPub = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    const [online] = await checkOnlineProviders({ ...v3Vars, WXPAY_V3_PUBLIC_KEY_PEM: otherPub });
    expect(online).toMatchObject({ status: 'fail' });
    expect(online!.detail).toContain('does not verify with the configured WeChat Pay key');
  });
});

describe('npm run doctor on cloudPay', () => {
  const cloudPayVars = () => ({
    CLOUDBASE_ENV_ID: 'shop-1a2b3c',
    WXPAY_PROVIDER: 'cloudpay',
    WXPAY_APPID: DIRECT.appid,
    WXPAY_MCHID: DIRECT.mchId,
    ADMIN_OPENIDS: 'oUpF8uMEb4qRXf22hE3X68TekukE',
  });

  it('needs no key or certificate; what cannot be checked from here is said, and online is not attempted', async () => {
    const checks = checkConfiguration(cloudPayVars(), { now: NOW });
    expect(failures(checks), renderChecks(checks)).toEqual([]);
    expect(renderChecks(checks)).toContain('callbacks invoke payNotify and refundNotify');
    expect(named(checks, 'cloudPay binding')[0]).toMatchObject({ status: 'warn', stage: 'payment' });
    expect(named(checks, 'certificate')).toEqual([]);
    const online = await checkOnlineProviders(cloudPayVars());
    expect(online).toMatchObject([{ status: 'warn', name: 'cloudPay round trip' }]);
  });

  it('refuses callbacks aimed at a function that does not answer them', () => {
    const checks = checkConfiguration(
      { ...cloudPayVars(), WXPAY_CLOUDPAY_PAY_FUNCTION: 'createOrder' },
      { now: NOW },
    );
    expect(renderChecks(failures(checks))).toContain('callbacks go to createOrder');
  });
});

describe('the deploy plan per provider', () => {
  const needs = {
    createOrder: { wxpay: true, calls: true },
    approveRefund: { wxpay: true, cert: true, calls: true },
    listOrders: {},
  } as const;

  it('APIv3 alone: paying functions get the private key and the serial, not the certificate nor the APIv2 key', () => {
    const vars = { ...v3Vars, WXPAY_API_KEY: 'abcdefghijklmnopqrstuvwxyz012345' };
    const pay = functionEnvironment(needs.createOrder, vars);
    expect(pay['WXPAY_V3_PRIVATE_KEY_PEM']).toContain('BEGIN PRIVATE KEY');
    expect(pay['WXPAY_V3_CERT_SERIAL']).toMatch(/^[0-9A-F]+$/);
    expect(pay['WXPAY_CERT_PEM']).toBeUndefined();
    expect(pay['WXPAY_API_KEY']).toBeUndefined();
    const refund = functionEnvironment(needs.approveRefund, vars);
    expect(refund['WXPAY_CERT_PEM']).toBeUndefined();
    const list = functionEnvironment(needs.listOrders, vars);
    expect(Object.keys(list).filter((k) => k.startsWith('WXPAY_V3'))).toEqual([]);
    // Each function starts with what it was given.
    for (const [fn, n] of Object.entries(needs)) {
      expect(() => loadConfig(functionEnvironment(n, vars), n), fn).not.toThrow();
    }
  });

  it('APIv3 with APIv2 kept: the refunding functions hold the client certificate once, for both', () => {
    const vars = {
      ...v3Vars,
      WXPAY_KEEP_PROVIDERS: 'v2',
      WXPAY_API_KEY: 'abcdefghijklmnopqrstuvwxyz012345',
    };
    const refund = functionEnvironment(needs.approveRefund, vars);
    expect(refund['WXPAY_CERT_PEM']).toBeDefined();
    expect(refund['WXPAY_KEY_PEM']).toBeDefined();
    expect(refund['WXPAY_V3_PRIVATE_KEY_PEM']).toBeUndefined();
    expect(refund['WXPAY_API_KEY']).toBeDefined();
    for (const [fn, n] of Object.entries(needs)) {
      expect(() => loadConfig(functionEnvironment(n, vars), n), fn).not.toThrow();
    }
  });

  it('APIv3 with APIv2 kept: every function fits in 4 KB, until the notice templates push the refunding ones over; the doctor names them', () => {
    const vars = {
      ...v3Vars,
      WXPAY_KEEP_PROVIDERS: 'v2',
      WXPAY_API_KEY: 'abcdefghijklmnopqrstuvwxyz012345',
    };
    const sizesWith = (all: Record<string, string>) => {
      const { WXPAY_CA_PEM: _ca, WXPAY_BASE_URL: _base, ...production } = all;
      return Object.fromEntries(
        ['approveRefund', 'reconcile', 'createOrder', 'payNotify', 'billCheck'].map((fn) => {
          const n = parseNeeds(
            readFileSync(resolve(__dirname, '../../cloudfunctions', fn, 'index.ts'), 'utf8'),
          );
          expect(n, fn).toBeDefined();
          const env = functionEnvironment(n, production);
          expect(() => loadConfig(env, n), fn).not.toThrow();
          return [fn, envBytes(env)];
        }),
      );
    };
    const size = (all: Record<string, string>) =>
      checkConfiguration(all, { now: NOW }).find((c) => c.name === 'function environment size')!;

    // The certificate, its key (APIv3 signs with it too) and the WeChat Pay public key: with
    // the sandbox's certificate about 3.9 KB on the refunding functions.
    const bare = sizesWith(vars);
    for (const [fn, bytes] of Object.entries(bare)) expect(bytes, fn).toBeLessThanOrEqual(4096);
    expect(size(vars)).toMatchObject({ status: 'ok' });
    expect(size(vars).detail).toContain(`${Math.max(...Object.values(bare))} of 4096 bytes`);

    // reconcile's four templates and approveRefund's two do not fit beside them.
    const withNotices = { ...vars, ...demoNoticeEnv() };
    const full = sizesWith(withNotices);
    expect(full['createOrder']).toBeLessThanOrEqual(4096);
    expect(full['reconcile']).toBeGreaterThan(4096);
    expect(full['approveRefund']).toBeGreaterThan(4096);
    const check = size(withNotices);
    expect(check.status).toBe('fail');
    expect(check.detail).toContain(`approveRefund ${full['approveRefund']} bytes`);
    expect(check.detail).toContain(`reconcile ${full['reconcile']} bytes`);
    expect(check.fix).toContain('notice templates');
    expect(check.fix).toContain('WXPAY_KEEP_PROVIDERS');
  });

  it('cloudPay: its callback functions deny the mini-program, and binding the merchant is a manual step', () => {
    const rules = loadRules(resolve(__dirname, '../../deploy'));
    const plan = planDeployment({
      functions: [],
      vars: {
        CLOUDBASE_ENV_ID: 'shop-1a2b3c',
        WXPAY_PROVIDER: 'cloudpay',
        WXPAY_APPID: DIRECT.appid,
        WXPAY_MCHID: DIRECT.mchId,
        WXPAY_CLOUDPAY_REFUND_FUNCTION: 'createOrder',
      },
      rules,
      sdkVersion: '4.0.2',
    });
    expect(plan.problems.join('\n')).toContain("cloudPay's callbacks must go to payNotify or refundNotify");
    expect(plan.manualSteps.join('\n')).toContain('添加商户号');
    expect(rules.functions['payNotify']?.invoke).toBe(false);
    expect(rules.functions['refundNotify']?.invoke).toBe(false);
  });
});
