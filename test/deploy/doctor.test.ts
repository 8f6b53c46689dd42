import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../cloudfunctions/shared/config';
import { createWxPayClient, WxPayApiError } from '../../cloudfunctions/shared/wxpay';
import type { CertPaths } from '../../sandbox/certs';
import { startWxPaySimulator, type WxPaySimulator } from '../../sandbox/wxpay';
import {
  type Check,
  checkConfiguration,
  checkOnline,
  renderChecks,
  renderStages,
  usesLegacyPkcs12Cipher,
} from '../../scripts/golive/checks';
import { withPemPair } from '../../scripts/golive/pkcs12';
import { functionEnvironment } from '../../scripts/golive/plan';
import { goodVars, hasOpenssl, MERCHANT, makeLegacyP12, merchantCerts } from './helpers';

const root = resolve(__dirname, '../..');
let dir: string;
let certs: CertPaths;
let otherCerts: CertPaths;
let sim: WxPaySimulator;
let sandboxVars: Record<string, string>;
const NOW = Date.now();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'doctor-'));
  certs = await merchantCerts(join(dir, 'certs'));
  otherCerts = await merchantCerts(join(dir, 'other'), '1900000109');
  sim = await startWxPaySimulator({
    certs,
    merchants: [{ ...MERCHANT, signType: 'MD5' }],
    timeScale: 0.001,
  });
  // The production shape, except that WeChat Pay is the local simulator.
  sandboxVars = {
    ...goodVars(certs),
    WXPAY_BASE_URL: sim.url,
    WXPAY_CA_PEM: readFileSync(certs.caCertPath, 'utf8'),
  };
});
afterAll(async () => {
  await sim?.close();
  rmSync(dir, { recursive: true, force: true });
});

const failures = (checks: Check[]) => checks.filter((c) => c.status === 'fail');
const offline = (patch: Record<string, string | undefined>, now = NOW) => {
  const v: Record<string, string> = { ...sandboxVars };
  for (const [k, val] of Object.entries(patch)) {
    if (val === undefined) delete v[k];
    else v[k] = val;
  }
  return checkConfiguration(v, { now });
};
const failed = (checks: Check[], name: string) => {
  const c = checks.find((x) => x.name === name && x.status === 'fail');
  expect(c, `${name} fails in:\n${renderChecks(checks)}`).toBeDefined();
  return renderChecks([c!]);
};

describe('npm run doctor on a sandbox configuration', () => {
  it('passes every check, with warnings only for the simulator endpoint and its CA', async () => {
    const checks = [...checkConfiguration(sandboxVars, { now: NOW }), await checkOnline(sandboxVars)];
    expect(failures(checks), renderChecks(checks)).toEqual([]);
    expect(checks.filter((c) => c.status === 'warn').map((c) => c.name)).toEqual([
      'WeChat Pay endpoint',
      'extra CA',
    ]);
    expect(checks.at(-1)).toMatchObject({
      status: 'ok',
      name: 'WeChat Pay round trip',
      detail: 'signed ORDERNOTEXIST: appid, mch_id, API key and sign type are right',
    });
  });

  it('opens the PKCS#12 with the mch_id as passphrase as well as the PEM pair', () => {
    const pfx = readFileSync(certs.pfxPath).toString('base64');
    const checks = offline({ WXPAY_CERT_PEM: undefined, WXPAY_KEY_PEM: undefined, WXPAY_PFX_BASE64: pfx });
    expect(renderChecks(checks)).toContain('✔ certificate: PKCS#12 readable; certificate and key match');
    const wrong = offline({
      WXPAY_CERT_PEM: undefined,
      WXPAY_KEY_PEM: undefined,
      WXPAY_PFX_BASE64: pfx,
      WXPAY_PFX_PASSPHRASE: 'nope',
    });
    expect(failed(wrong, 'certificate')).toMatch(/PKCS#12 cannot be opened.*→ check WXPAY_PFX_PASSPHRASE/);
  });

  it('runs as a CLI: exit 0 on the sandbox configuration, 1 with the fix on a broken one', async () => {
    const envFile = (name: string, extra: string[]) => {
      const p = join(dir, name);
      const v = { ...sandboxVars };
      delete (v as Record<string, string | undefined>)['WXPAY_CERT_PEM'];
      delete (v as Record<string, string | undefined>)['WXPAY_KEY_PEM'];
      delete (v as Record<string, string | undefined>)['WXPAY_CA_PEM'];
      const lines = Object.entries(v).map(([k, val]) => `${k}=${val}`);
      lines.push(
        `WXPAY_CERT_PEM_FILE=${certs.certPath}`,
        `WXPAY_KEY_PEM_FILE=${certs.keyPath}`,
        `WXPAY_CA_PEM_FILE=${certs.caCertPath}`,
      );
      writeFileSync(p, [...lines, ...extra].join('\n'));
      return p;
    };
    // Asynchronous: the simulator answers from this process, so it must not be blocked.
    const run = (file: string) =>
      promisify(execFile)(
        process.execPath,
        [
          join(root, 'node_modules/tsx/dist/cli.mjs'),
          join(root, 'scripts/doctor.ts'),
          '--env-file',
          file,
          '--online',
        ],
        { encoding: 'utf8', env: { PATH: process.env['PATH'] }, timeout: 60_000 },
      ).then(
        (r) => ({ status: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => ({
          status: e.code,
          stdout: e.stdout,
          stderr: e.stderr,
        }),
      );
    const good = await run(envFile('good.env', []));
    expect(good.status, good.stdout + good.stderr).toBe(0);
    expect(good.stdout).toContain('✔ WeChat Pay round trip: signed ORDERNOTEXIST');
    expect(good.stdout).toContain('ready for the first deploy (2 warning(s))');
    expect(good.stdout).not.toContain(MERCHANT.apiKey);

    const bad = await run(envFile('bad.env', ['WXPAY_API_KEY=0123456789abcdef0123456789ABCDEF']));
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(
      /^✖ WeChat Pay round trip: WeChat Pay answered 签名错误 \(SIGNERROR\).*→ copy the APIv2 key/m,
    );
    expect(bad.stdout).not.toContain('0123456789abcdef0123456789ABCDEF');
  });
});

describe('npm run doctor names each broken setting with its fix', () => {
  it('a short API key', () => {
    expect(failed(offline({ WXPAY_API_KEY: 'abc123' }), 'API key')).toBe(
      '✖ API key: WXPAY_API_KEY is 6 characters, expected 32 letters and digits → copy the APIv2 key from 商户平台 → 账户中心 → API安全 → APIv2密钥: 32 letters and digits, not the APIv3 key, not the AppSecret',
    );
  });

  it('a wrong API key, which WeChat Pay answers with SIGNERROR', async () => {
    const wrongKey = { ...sandboxVars, WXPAY_API_KEY: 'A'.repeat(32) };
    expect(failures(checkConfiguration(wrongKey, { now: NOW }))).toEqual([]);
    const c = await checkOnline(wrongKey);
    expect(c.status).toBe('fail');
    expect(renderChecks([c])).toMatch(
      /^✖ WeChat Pay round trip: WeChat Pay answered 签名错误 \(SIGNERROR\): it signs with another key → copy the APIv2 key/,
    );
  });

  it('a certificate and a private key from different downloads', () => {
    const text = failed(offline({ WXPAY_KEY_PEM: readFileSync(otherCerts.keyPath, 'utf8') }), 'certificate');
    expect(text).toBe(
      '✖ certificate: PEM pair: the certificate and the private key do not belong together → take apiclient_cert.pem and apiclient_key.pem from the same download (商户平台 → API安全 → API证书)',
    );
  });

  it('an expired certificate, and one about to expire', () => {
    const notAfter = Date.parse(new X509Certificate(readFileSync(certs.certPath)).validTo);
    expect(failed(offline({}, notAfter + 86_400_000), 'certificate validity')).toMatch(
      /^✖ certificate validity: expired on .* → renew it in 商户平台/,
    );
    const soon = offline({}, notAfter - 10 * 86_400_000).find((c) => c.name === 'certificate validity');
    expect(soon).toMatchObject({ status: 'warn', detail: expect.stringMatching(/^expires in (9|10) days/) });
  });

  it('a certificate issued to another mch_id', () => {
    const other = offline({
      WXPAY_CERT_PEM: readFileSync(otherCerts.certPath, 'utf8'),
      WXPAY_KEY_PEM: readFileSync(otherCerts.keyPath, 'utf8'),
    });
    expect(failed(other, 'certificate owner')).toMatch(
      /^✖ certificate owner: issued to CN=1900000109, not to mch_id 10000100 → use the API certificate of this merchant/,
    );
  });

  it('a notify URL over http', () => {
    const url = 'http://shop-1a2b3c.service.tcloudbase.com/pay/notify';
    expect(failed(offline({ WXPAY_NOTIFY_URL: url }), 'WXPAY_NOTIFY_URL')).toBe(
      `✖ WXPAY_NOTIFY_URL: ${url} is not https; WeChat Pay requires https → leave it unset (deploy derives https://shop-1a2b3c.service.tcloudbase.com/pay/notify) or set https://<HTTP access domain>/pay/notify (no port, no query)`,
    );
  });

  it('a notify URL with a query string, or a port', () => {
    expect(
      failed(
        offline({
          WXPAY_REFUND_NOTIFY_URL: 'https://shop-1a2b3c.service.tcloudbase.com/refund/notify?shop=1',
        }),
        'WXPAY_REFUND_NOTIFY_URL',
      ),
    ).toContain('has a query string; WeChat Pay refuses notify_url with parameters');
    expect(
      failed(
        offline({ WXPAY_NOTIFY_URL: 'https://shop-1a2b3c.service.tcloudbase.com:8443/pay/notify' }),
        'WXPAY_NOTIFY_URL',
      ),
    ).toContain('has a port; WeChat Pay calls 443 only');
  });

  it('no admin openids: needed before the first payment, not before the first deploy', () => {
    const checks = offline({ ADMIN_OPENIDS: undefined });
    expect(failed(checks, 'admin openids')).toMatch(
      /^✖ admin openids: ADMIN_OPENIDS is empty: nobody can approve or reject refunds → after the first deploy, open the mini-program as each reviewer, copy the openid its 我的 page shows into ADMIN_OPENIDS/,
    );
    expect(checks.find((c) => c.name === 'admin openids')?.stage).toBe('payment');
    expect(renderStages(checks)).toContain('ready for the first deploy');
    expect(renderStages(checks)).toContain('not ready for the first payment: 1 to fix (admin openids)');
  });

  it('an end-of-life runtime (Nodejs16.13) is a warning that names the date and the fix', () => {
    const c = offline({ CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs16.13' }).find(
      (x) => x.name === 'function runtime',
    );
    expect(renderChecks([c!])).toBe(
      '! function runtime: Nodejs16.13: Node.js 16 is end-of-life since 2023-09-11; the process holding the API key gets no security fixes → set CLOUDBASE_FUNCTION_RUNTIME=Nodejs24.11 (existing functions keep their runtime: delete them in the console to move them)',
    );
    expect(offline({}).find((x) => x.name === 'function runtime')).toMatchObject({
      status: 'ok',
      detail: 'Nodejs24.11 (Node.js 24, security fixes until 2028-04-30), the default',
    });
    expect(failed(offline({ CLOUDBASE_FUNCTION_RUNTIME: 'Nodejs26' }), 'function runtime')).toContain(
      'CLOUDBASE_FUNCTION_RUNTIME Nodejs26 is not a CloudBase Node.js runtime',
    );
  });

  it('unset notify URLs are derived from the environment id, not missing', () => {
    const checks = offline({
      WXPAY_NOTIFY_URL: undefined,
      WXPAY_REFUND_NOTIFY_URL: undefined,
      CLOUDBASE_HTTP_DOMAIN: undefined,
    });
    expect(failures(checks)).toEqual([]);
    expect(checks.find((c) => c.name === 'WXPAY_NOTIFY_URL')?.detail).toBe(
      'https://shop-1a2b3c.ap-shanghai.app.tcloudbase.com/pay/notify (derived from the environment id; deploy sets it on the functions)',
    );
  });

  it('a sign type WeChat Pay does not know', () => {
    const checks = offline({ WXPAY_SIGN_TYPE: 'SHA256' });
    expect(failed(checks, 'sign type')).toBe(
      '✖ sign type: WXPAY_SIGN_TYPE SHA256 is not a WeChat Pay APIv2 sign type → set MD5 or HMAC-SHA256 (exactly; paySign must use the same type as unifiedorder)',
    );
    // The functions would refuse to start too, and the doctor says so.
    expect(failed(checks, 'functions start')).toContain('WXPAY_SIGN_TYPE must be MD5 or HMAC-SHA256');
  });

  it('a notice template whose field cannot show what it is mapped to', () => {
    const checks = offline({ NOTICE_REFUND_APPLIED: `${'t'.repeat(43)} amount2=reason` });
    expect(failed(checks, 'functions start')).toContain(
      'NOTICE_REFUND_APPLIED: a amount field cannot show reason',
    );
  });

  it('counts the notice templates of reconcile and approveRefund with the certificate', () => {
    const big = `${'t'.repeat(43)} ${Array.from({ length: 20 }, (_, i) => `thing${i + 1}=status`).join(' ')}`;
    expect(failures(offline({ NOTICE_REFUND_APPLIED: big, NOTICE_BILL_MISMATCH: big }))).toEqual([]);
    expect(
      failed(
        offline({ NOTICE_ORDER_PAID: big, NOTICE_REFUND_CLOSED: big, NOTICE_REFUND_COMPLETED: big }),
        'function environment size',
      ),
    ).toMatch(/over SCF's 4096/);
  });
});

describe("the merchant platform's RC2-40 apiclient_cert.p12", () => {
  // Made the way older merchant-platform downloads are: certificates under PBE-SHA1-RC2-40, the
  // key under PBE-SHA1-3DES (forge never encrypts certificate bags, so the openssl CLI makes it).
  const makeLegacy = () =>
    makeLegacyP12({
      certPath: certs.certPath,
      keyPath: certs.keyPath,
      mchId: MERCHANT.mchId,
      out: join(dir, 'apiclient_cert_rc2.p12'),
    });

  it.skipIf(!hasOpenssl())(
    'is refused by this Node (OpenSSL 3), and the doctor says deploy converts it',
    () => {
      const der = makeLegacy();
      expect(usesLegacyPkcs12Cipher(der)).toBe(true);
      expect(usesLegacyPkcs12Cipher(readFileSync(certs.pfxPath))).toBe(false);
      expect(() => createSecureContext({ pfx: der, passphrase: MERCHANT.mchId })).toThrow();
      const checks = offline({
        WXPAY_CERT_PEM: undefined,
        WXPAY_KEY_PEM: undefined,
        WXPAY_PFX_BASE64: der.toString('base64'),
      });
      expect(checks.find((c) => c.name === 'PKCS#12 cipher')).toMatchObject({
        status: 'ok',
        detail: expect.stringContaining(
          "this Node's OpenSSL 3 refuses it); deploy converts it to the PEM pair",
        ),
      });
      expect(renderChecks(checks)).toContain('✔ certificate: PKCS#12 readable; certificate and key match');
    },
  );

  it.skipIf(!hasOpenssl())(
    'becomes the PEM pair on the functions, which a refund uses over mutual TLS',
    async () => {
      const der = makeLegacy();
      const { WXPAY_CERT_PEM: _c, WXPAY_KEY_PEM: _k, ...withPfx } = goodVars(certs);
      const out = withPemPair({ ...withPfx, WXPAY_PFX_BASE64: der.toString('base64') });
      expect(out.problem).toBeUndefined();
      expect(out.vars['WXPAY_PFX_BASE64']).toBeUndefined();
      expect(out.vars['WXPAY_CERT_PEM']).toBe(readFileSync(certs.certPath, 'utf8').trim());
      expect(out.vars['WXPAY_KEY_PEM']).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
      // The functions that refund get the pair, one line each; none gets the .p12.
      const env = functionEnvironment({ wxpay: true, cert: true }, out.vars);
      expect(Object.keys(env)).toEqual(expect.arrayContaining(['WXPAY_CERT_PEM', 'WXPAY_KEY_PEM']));
      expect('WXPAY_PFX_BASE64' in env).toBe(false);
      const config = loadConfig({ ...env, WXPAY_BASE_URL: sim.url }, { wxpay: true, cert: true });
      expect(config.cert && 'certPem' in config.cert).toBe(true);
      // A refund request through /secapi (mutual TLS, certificate CN checked against mch_id):
      // WeChat's answer about the unknown order proves the handshake used the converted pair.
      const client = createWxPayClient({
        appid: MERCHANT.appid,
        mchId: MERCHANT.mchId,
        apiKey: MERCHANT.apiKey,
        signType: 'MD5',
        baseUrl: sim.url,
        caPem: readFileSync(certs.caCertPath, 'utf8'),
        cert: config.cert!,
        maxAttempts: 1,
      });
      const err = await client
        .refund({ out_trade_no: 'T_NO_SUCH_ORDER', out_refund_no: 'R_NO_SUCH', total_fee: 1, refund_fee: 1 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WxPayApiError);
      expect((err as WxPayApiError).code).toBe('WXPAY_RESULT_FAIL');
      expect((err as WxPayApiError).returnMsg ?? '').not.toContain('证书');
    },
  );

  it('a .p12 that cannot be opened stops the deploy with the reason', () => {
    const out = withPemPair({
      WXPAY_MCHID: MERCHANT.mchId,
      WXPAY_PFX_BASE64: readFileSync(certs.pfxPath).toString('base64'),
      WXPAY_PFX_PASSPHRASE: 'wrong',
    });
    expect(out.problem).toMatch(/^WXPAY_PFX_BASE64 cannot be opened \(.*\): check WXPAY_PFX_PASSPHRASE/);
  });
});
