import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertPaths } from '../../sandbox/certs';
import { startWxPaySimulator, type WxPaySimulator } from '../../sandbox/wxpay';
import {
  type Check,
  checkConfiguration,
  checkOnline,
  renderChecks,
  usesLegacyPkcs12Cipher,
} from '../../scripts/golive/checks';
import { goodVars, MERCHANT, merchantCerts } from './helpers';

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
    expect(good.stdout).toContain('ready: 0 to fix, 2 warning(s)');
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
      `✖ WXPAY_NOTIFY_URL: ${url} is not https; WeChat Pay requires https → set https://<HTTP access domain>/pay/notify (no port, no query), the route npm run deploy creates`,
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

  it('no admin openids', () => {
    expect(failed(offline({ ADMIN_OPENIDS: undefined }), 'admin openids')).toMatch(
      /^✖ admin openids: ADMIN_OPENIDS is empty: nobody can approve or reject refunds → set ADMIN_OPENIDS/,
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
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('legacy PKCS#12 detection', () => {
  // forge never encrypts certificate bags, so the legacy file comes from the openssl CLI.
  it.skipIf(!hasOpenssl())(
    'warns about an RC2-40 .p12 (old merchant-platform downloads), not about a 3DES one',
    () => {
      const legacy = join(dir, 'legacy.p12');
      execFileSync('openssl', [
        'pkcs12',
        '-export',
        '-legacy',
        '-in',
        certs.certPath,
        '-inkey',
        certs.keyPath,
        '-passout',
        `pass:${MERCHANT.mchId}`,
        '-out',
        legacy,
      ]);
      expect(usesLegacyPkcs12Cipher(readFileSync(legacy))).toBe(true);
      expect(usesLegacyPkcs12Cipher(readFileSync(certs.pfxPath))).toBe(false);
      const checks = offline({
        WXPAY_CERT_PEM: undefined,
        WXPAY_KEY_PEM: undefined,
        WXPAY_PFX_BASE64: readFileSync(legacy).toString('base64'),
      });
      expect(checks.find((c) => c.name === 'PKCS#12 cipher')).toMatchObject({
        status: 'warn',
        detail: expect.stringContaining("legacy RC2/RC4 (this Node's OpenSSL 3 refuses it"),
      });
      // forge still opens it, so the rest of the certificate is checked.
      expect(renderChecks(checks)).toContain('✔ certificate: PKCS#12 readable; certificate and key match');
    },
  );
});
