/**
 * WXPAY_PROVIDER, WXPAY_KEEP_PROVIDERS and each provider's variables, read by loadConfig at
 * cold start with every problem named at once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type ProvidersConfig } from '../../cloudfunctions/shared/config';
import { redact } from '../../cloudfunctions/shared/log';
import { ensureCerts } from '../../sandbox/certs';
import { ensureV3Material, type V3Material } from '../../sandbox/wxpay';

let dir: string;
let certPem: string;
let keyPem: string;
let otherKeyPem: string;
let material: V3Material;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'provider-config-'));
  const certs = await ensureCerts(join(dir, 'a'), { mchId: '1900000109' });
  const other = await ensureCerts(join(dir, 'b'), { mchId: '1900000109' });
  certPem = readFileSync(certs.certPath, 'utf8');
  keyPem = readFileSync(certs.keyPath, 'utf8');
  otherKeyPem = readFileSync(other.keyPath, 'utf8');
  material = ensureV3Material(join(dir, 'v3'), {
    caCertPath: certs.caCertPath,
    caKeyPath: join(dir, 'a', 'ca_key.pem'),
    mchId: '1900000109',
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = () => ({
  WXPAY_APPID: 'wxd678efh567hg6787',
  WXPAY_MCHID: '1900000109',
  WXPAY_NOTIFY_URL: 'https://shop.example.com/pay/notify',
  WXPAY_REFUND_NOTIFY_URL: 'https://shop.example.com/refund/notify',
});
const V2_KEY = 'abcdefghijklmnopqrstuvwxyz012345';

/** What loadConfig makes of the providers, for a function that talks to WeChat Pay. */
function loadProviderConfig(env: Record<string, string | undefined>): ProvidersConfig {
  return loadConfig(env, { wxpay: true }).providers;
}

const v3 = () => ({
  ...base(),
  WXPAY_PROVIDER: 'v3',
  WXPAY_V3_KEY: material.apiV3Key,
  WXPAY_CERT_PEM: certPem,
  WXPAY_KEY_PEM: keyPem,
  WXPAY_V3_PUBLIC_KEY_ID: material.publicKeyId,
  WXPAY_V3_PUBLIC_KEY_PEM: readFileSync(material.publicKeyPath, 'utf8'),
});

function problems(env: Record<string, string | undefined>, needs = { wxpay: true }): string[] {
  try {
    loadConfig(env, needs);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('WXPAY_PROVIDER', () => {
  it('defaults to v2 alone; service-provider mode comes from WXPAY_SUB_MCHID', () => {
    expect(loadProviderConfig({ ...base(), WXPAY_API_KEY: V2_KEY })).toMatchObject({
      current: 'v2',
      enabled: ['v2'],
      partner: undefined,
      v3: undefined,
      cloudpay: undefined,
    });
    expect(
      loadProviderConfig({
        ...base(),
        WXPAY_API_KEY: V2_KEY,
        WXPAY_SUB_MCHID: '1900000119',
        WXPAY_SUB_APPID: 'wxsubmerchant00001',
      }),
    ).toMatchObject({
      current: 'v2',
      partner: { subMchId: '1900000119', subAppid: 'wxsubmerchant00001' },
    });
  });

  it('refuses anything but v2, v3 and cloudpay', () => {
    expect(problems({ ...base(), WXPAY_API_KEY: V2_KEY, WXPAY_PROVIDER: 'v4' })).toEqual([
      'WXPAY_PROVIDER must be one of v2, v3, cloudpay, got v4',
    ]);
  });

  it('a function that never calls WeChat Pay needs none of it', () => {
    expect(problems({ WXPAY_PROVIDER: 'v3' }, { wxpay: false })).toEqual([]);
  });

  it('refuses sub_appid without sub_mch_id', () => {
    expect(problems({ ...base(), WXPAY_API_KEY: V2_KEY, WXPAY_SUB_APPID: 'wxsubmerchant00001' })).toContain(
      'WXPAY_SUB_APPID needs WXPAY_SUB_MCHID (service-provider mode)',
    );
  });
});

describe('WXPAY_KEEP_PROVIDERS', () => {
  it('a shop moved from v2 to v3 keeps APIv2 for its earlier orders, and needs its key and certificate', () => {
    const kept = { ...v3(), WXPAY_KEEP_PROVIDERS: 'v2', WXPAY_API_KEY: V2_KEY };
    expect(loadConfig(kept, { wxpay: true, cert: true })).toMatchObject({
      providers: { current: 'v3', enabled: ['v3', 'v2'] },
      wxpay: { apiKey: V2_KEY },
      cert: { certPem: expect.stringContaining('BEGIN CERTIFICATE') },
    });
    // The APIv2 key gone: cold start says which orders still need it and why.
    expect(problems({ ...kept, WXPAY_API_KEY: '' }, { wxpay: true })).toEqual([
      expect.stringMatching(
        /^WXPAY_API_KEY is missing .*\(APIv2 is kept for the orders it made before WXPAY_PROVIDER changed: WXPAY_KEEP_PROVIDERS\)$/,
      ),
    ]);
    // Without APIv2 kept, v3 alone needs neither the APIv2 key nor the client certificate.
    const v3Only = {
      ...v3(),
      WXPAY_CERT_PEM: '',
      WXPAY_KEY_PEM: '',
      WXPAY_V3_PRIVATE_KEY_PEM: keyPem,
      WXPAY_V3_CERT_SERIAL: 'AB12',
    };
    expect(problems(v3Only, { wxpay: true, cert: true } as never)).toEqual([]);
    expect(problems({ ...v3(), WXPAY_KEEP_PROVIDERS: 'v5' })).toEqual([
      'WXPAY_KEEP_PROVIDERS lists v5; providers are v2, v3, cloudpay',
    ]);
  });

  it('a kept APIv2 still needs the client certificate for refunds', () => {
    expect(
      problems(
        {
          ...v3(),
          WXPAY_CERT_PEM: '',
          WXPAY_KEY_PEM: '',
          WXPAY_V3_PRIVATE_KEY_PEM: keyPem,
          WXPAY_V3_CERT_SERIAL: 'AB12',
          WXPAY_KEEP_PROVIDERS: 'v2',
          WXPAY_API_KEY: V2_KEY,
        },
        { wxpay: true, cert: true } as never,
      ),
    ).toEqual([expect.stringMatching(/^the merchant certificate is missing.*WXPAY_KEEP_PROVIDERS\)$/)]);
  });
});

describe('v3', () => {
  it('accepts a public-key merchant, taking the serial from the certificate and the key from WXPAY_KEY_PEM', () => {
    const c = loadProviderConfig(v3()).v3;
    expect(c).toMatchObject({
      provider: 'v3',
      merchant: { kind: 'direct', appid: 'wxd678efh567hg6787', mchid: '1900000109' },
      merchantSerial: expect.stringMatching(/^[0-9A-F]+$/),
    });
    expect(c?.verifiers.map((v) => [v.kind, v.serial])).toEqual([['public-key', material.publicKeyId]]);
  });

  it('accepts platform certificates alone, and both kinds at once during a switch-over', () => {
    const certsOnly = {
      ...v3(),
      WXPAY_V3_PUBLIC_KEY_ID: '',
      WXPAY_V3_PUBLIC_KEY_PEM: '',
      WXPAY_V3_PLATFORM_CERTS_PEM: readFileSync(material.platformCertPath, 'utf8'),
    };
    const c = loadProviderConfig(certsOnly).v3;
    expect(c?.verifiers.map((v) => v.serial)).toEqual([material.platformSerial]);
    const both = loadProviderConfig({
      ...v3(),
      WXPAY_V3_PLATFORM_CERTS_PEM: Buffer.from(readFileSync(material.platformCertPath)).toString('base64'),
    }).v3;
    expect(both?.verifiers.map((v) => v.kind).sort()).toEqual(['platform-certificate', 'public-key']);
  });

  it("names every problem at once: key length, id format, a key that is not the certificate's, no WeChat key", () => {
    const p = problems({
      ...v3(),
      WXPAY_V3_KEY: 'short',
      WXPAY_KEY_PEM: otherKeyPem,
      WXPAY_V3_PUBLIC_KEY_ID: 'PUBKEY123',
    });
    expect(p).toEqual(
      expect.arrayContaining([
        'WXPAY_V3_KEY must be exactly 32 bytes, got 5 (the APIv3 key, not the APIv2 key)',
        'the merchant API private key does not belong to the certificate in WXPAY_CERT_PEM',
        'WXPAY_V3_PUBLIC_KEY_ID must look like PUB_KEY_ID_ followed by digits',
      ]),
    );
    expect(problems({ ...v3(), WXPAY_V3_PUBLIC_KEY_ID: '', WXPAY_V3_PUBLIC_KEY_PEM: '' })).toEqual([
      expect.stringMatching(/^APIv3 needs WeChat Pay's key to verify answers and notifies/),
    ]);
    expect(problems({ ...v3(), WXPAY_V3_CERT_SERIAL: 'ABCDEF' })).toEqual([
      expect.stringMatching(/^WXPAY_V3_CERT_SERIAL ABCDEF is not the serial of WXPAY_CERT_PEM/),
    ]);
    expect(problems({ ...v3(), WXPAY_V3_PUBLIC_KEY_PEM: '' })).toContain(
      'WXPAY_V3_PUBLIC_KEY_ID and WXPAY_V3_PUBLIC_KEY_PEM must be set together',
    );
  });

  it('needs a serial when no certificate is given, and https notify URLs', () => {
    const p = problems({
      ...v3(),
      WXPAY_CERT_PEM: '',
      WXPAY_NOTIFY_URL: 'http://shop.example.com/pay/notify?x=1',
    });
    expect(p).toEqual(
      expect.arrayContaining([
        'WXPAY_NOTIFY_URL must be https',
        'WXPAY_NOTIFY_URL must not have a query string',
        'WXPAY_V3_CERT_SERIAL is missing (the merchant API certificate serial)',
      ]),
    );
  });

  it('registers the APIv3 key and the private key as secrets', () => {
    loadProviderConfig(v3());
    const line = redact(`oops ${material.apiV3Key} and ${keyPem}`);
    expect(line).not.toContain(material.apiV3Key);
    expect(line).not.toContain(keyPem.split('\n')[1]);
  });

  it('builds service-provider mode from WXPAY_SUB_MCHID', () => {
    const c = loadProviderConfig({
      ...v3(),
      WXPAY_SUB_MCHID: '1900000119',
      WXPAY_SUB_APPID: 'wxsubmerchant00001',
    }).v3;
    expect(c).toMatchObject({
      merchant: {
        kind: 'partner',
        spAppid: 'wxd678efh567hg6787',
        spMchid: '1900000109',
        subMchid: '1900000119',
        subAppid: 'wxsubmerchant00001',
      },
      mchid: '1900000109',
    });
  });
});

describe('cloudpay', () => {
  it("needs only the merchant number, taking the environment from the function's own", () => {
    expect(
      loadProviderConfig({
        WXPAY_APPID: 'wxd678efh567hg6787',
        WXPAY_PROVIDER: 'cloudpay',
        WXPAY_MCHID: '1900000109',
        TCB_ENV: 'shop-1a2b',
      }).cloudpay,
    ).toEqual({
      provider: 'cloudpay',
      subMchId: '1900000109',
      envId: 'shop-1a2b',
      payFunction: 'payNotify',
      refundFunction: 'refundNotify',
      appid: undefined,
      timeoutMs: 8000,
    });
  });

  it('refuses a bad function name, a missing environment and service-provider variables', () => {
    expect(
      problems({
        WXPAY_APPID: 'wxd678efh567hg6787',
        WXPAY_PROVIDER: 'cloudpay',
        WXPAY_MCHID: '1900000109',
        WXPAY_CLOUDPAY_PAY_FUNCTION: 'pay notify',
        WXPAY_SUB_MCHID: '1900000119',
      }),
    ).toEqual([
      'WXPAY_SUB_MCHID is for v2/v3 service-provider mode; cloudPay uses WXPAY_MCHID',
      'WXPAY_CLOUDPAY_ENV is missing and this function does not know its environment',
      'WXPAY_CLOUDPAY_PAY_FUNCTION is not a cloud function name',
    ]);
  });
});
