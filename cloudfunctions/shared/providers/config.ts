/**
 * Which WeChat Pay provider the shop uses (`WXPAY_PROVIDER`) and each provider's own
 * variables, validated once at cold start with every problem named. The APIv2 variables
 * (WXPAY_APPID, WXPAY_MCHID, WXPAY_API_KEY, …) stay in ../config.ts; this module adds what
 * APIv3, cloudPay and service-provider mode need, and reads the shared ones it depends on.
 */
import { ConfigError } from '../config';
import type { CryptoError } from '../errors';
import { registerSecret } from '../log';
import { PROVIDER_NAMES, type ProviderName } from './port';
import {
  CERT_SERIAL_PATTERN,
  certificateSerial,
  keyMatchesCertificate,
  merchantPrivateKey,
  PUBLIC_KEY_ID_PATTERN,
  platformCertificateEntries,
  publicKeyEntry,
  type VerifierKey,
} from './v3/keys';
import type { V3Merchant } from './v3/provider';

/** Every variable this module reads, for the README, deploy and doctor. */
export const PROVIDER_VARIABLES = {
  WXPAY_PROVIDER: 'v2 (default), v3 or cloudpay: how new orders are paid; existing orders keep theirs',
  WXPAY_SUB_MCHID:
    "service-provider mode (服务商, v2 and v3): the sub-merchant; WXPAY_APPID/WXPAY_MCHID and the keys are then the service provider's",
  WXPAY_SUB_APPID: "service-provider mode: the sub-merchant's mini program; payers are then sub_openid",
  WXPAY_V3_KEY: 'APIv3 key (APIv3密钥), exactly 32 bytes; not the APIv2 key',
  WXPAY_V3_CERT_SERIAL:
    'serial of the merchant API certificate (证书序列号, 40 hex); read from WXPAY_CERT_PEM when that is set',
  WXPAY_V3_PRIVATE_KEY_PEM: 'apiclient_key.pem content (or base64 of it); default WXPAY_KEY_PEM',
  WXPAY_V3_PUBLIC_KEY_ID: 'WeChat Pay public key ID (微信支付公钥ID), PUB_KEY_ID_ followed by digits',
  WXPAY_V3_PUBLIC_KEY_PEM: 'pub_key.pem content (or base64 of it), the WeChat Pay public key',
  WXPAY_V3_PLATFORM_CERTS_PEM:
    'platform certificates (平台证书), one or more PEM certificates (or base64 of them); older merchants only',
  WXPAY_CLOUDPAY_ENV:
    "cloudPay: the environment whose functions get the callbacks (default: this function's own)",
  WXPAY_CLOUDPAY_PAY_FUNCTION: 'cloudPay: the function the pay callback invokes (default payNotify)',
  WXPAY_CLOUDPAY_REFUND_FUNCTION: 'cloudPay: the function the refund callback invokes (default refundNotify)',
  WXPAY_CLOUDPAY_APPID: "cloudPay in a shared environment (资源复用): the mini program's appid",
} as const;

export type ProviderVariable = keyof typeof PROVIDER_VARIABLES;

/** Service-provider mode (v2 and v3). */
export interface PartnerConfig {
  subMchId: string;
  subAppid: string | undefined;
}

export interface V2ProviderConfig {
  provider: 'v2';
  partner: PartnerConfig | undefined;
}

export interface V3ProviderConfig {
  provider: 'v3';
  merchant: V3Merchant;
  /** The calling merchant in the Authorization header: the direct mchid or the sp_mchid. */
  mchid: string;
  apiV3Key: string;
  privateKeyPem: string;
  merchantSerial: string;
  /** The WeChat Pay public key and/or platform certificates, by serial. */
  verifiers: VerifierKey[];
  baseUrl: string;
  caPem: string | undefined;
  payNotifyUrl: string;
  refundNotifyUrl: string;
  timeoutMs: number;
}

export interface CloudPayProviderConfig {
  provider: 'cloudpay';
  subMchId: string;
  envId: string;
  payFunction: string;
  refundFunction: string;
  appid: string | undefined;
}

export type ProviderConfig = V2ProviderConfig | V3ProviderConfig | CloudPayProviderConfig;

type Env = Record<string, string | undefined>;

function pemOrBase64(value: string): string {
  const v = value.trim();
  if (v.startsWith('-----BEGIN')) return v.replace(/\\n/g, '\n');
  const decoded = Buffer.from(v, 'base64').toString('utf8');
  return decoded.trim().startsWith('-----BEGIN') ? decoded : v;
}

const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,59}$/;

/**
 * Reads WXPAY_PROVIDER and what that provider needs. Throws ConfigError naming every problem.
 * `nowMs` judges platform certificate validity.
 */
export function loadProviderConfig(env: Env, nowMs: number = Date.now()): ProviderConfig {
  const problems: string[] = [];
  const get = (k: string) => {
    const v = env[k];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const need = (k: string, what: string) => {
    const v = get(k);
    if (v === undefined) problems.push(`${k} is missing (${what})`);
    return v ?? '';
  };

  const name = (get('WXPAY_PROVIDER') ?? 'v2').toLowerCase();
  if (!(PROVIDER_NAMES as readonly string[]).includes(name)) {
    throw new ConfigError([`WXPAY_PROVIDER must be one of ${PROVIDER_NAMES.join(', ')}, got ${name}`]);
  }
  const provider = name as ProviderName;

  // APIv2 checks its own WXPAY_APPID/WXPAY_MCHID (../config.ts); the others need them here.
  const appid = provider === 'v3' ? need('WXPAY_APPID', 'mini-program appid') : (get('WXPAY_APPID') ?? '');
  if (appid && !/^wx[0-9a-zA-Z]{16}$/.test(appid))
    problems.push('WXPAY_APPID must look like wx followed by 16 characters');
  const mchId =
    provider === 'v2'
      ? (get('WXPAY_MCHID') ?? '')
      : need(
          'WXPAY_MCHID',
          provider === 'cloudpay' ? 'the merchant number bound to the environment' : 'merchant id',
        );
  if (mchId && !/^\d{6,12}$/.test(mchId)) problems.push('WXPAY_MCHID must be 6 to 12 digits');

  let partner: PartnerConfig | undefined;
  const subMchId = get('WXPAY_SUB_MCHID');
  const subAppid = get('WXPAY_SUB_APPID');
  if (subAppid && !subMchId) problems.push('WXPAY_SUB_APPID needs WXPAY_SUB_MCHID (service-provider mode)');
  if (subMchId) {
    if (provider === 'cloudpay')
      problems.push('WXPAY_SUB_MCHID is for v2/v3 service-provider mode; cloudPay uses WXPAY_MCHID');
    if (!/^\d{6,12}$/.test(subMchId)) problems.push('WXPAY_SUB_MCHID must be 6 to 12 digits');
    if (subAppid && !/^wx[0-9a-zA-Z]{16}$/.test(subAppid))
      problems.push('WXPAY_SUB_APPID must look like wx followed by 16 characters');
    partner = { subMchId, subAppid };
  }

  if (provider === 'v2') {
    if (problems.length > 0) throw new ConfigError(problems);
    return { provider, partner };
  }

  if (provider === 'cloudpay') {
    const envId = get('WXPAY_CLOUDPAY_ENV') ?? get('TCB_ENV') ?? get('SCF_NAMESPACE') ?? '';
    if (!envId)
      problems.push('WXPAY_CLOUDPAY_ENV is missing and this function does not know its environment');
    const payFunction = get('WXPAY_CLOUDPAY_PAY_FUNCTION') ?? 'payNotify';
    const refundFunction = get('WXPAY_CLOUDPAY_REFUND_FUNCTION') ?? 'refundNotify';
    for (const [k, v] of [
      ['WXPAY_CLOUDPAY_PAY_FUNCTION', payFunction],
      ['WXPAY_CLOUDPAY_REFUND_FUNCTION', refundFunction],
    ] as const) {
      if (!FUNCTION_NAME.test(v)) problems.push(`${k} is not a cloud function name`);
    }
    const cpAppid = get('WXPAY_CLOUDPAY_APPID');
    if (cpAppid && !/^wx[0-9a-zA-Z]{16}$/.test(cpAppid))
      problems.push('WXPAY_CLOUDPAY_APPID must look like wx followed by 16 characters');
    if (problems.length > 0) throw new ConfigError(problems);
    return { provider, subMchId: mchId, envId, payFunction, refundFunction, appid: cpAppid };
  }

  // ---- v3 ----
  const baseUrl = get('WXPAY_BASE_URL') ?? 'https://api.mch.weixin.qq.com';
  let local = false;
  try {
    const u = new URL(baseUrl);
    local = u.hostname === '127.0.0.1' || u.hostname === 'localhost';
    if (u.protocol !== 'https:' && !local) problems.push('WXPAY_BASE_URL must be https');
  } catch {
    problems.push('WXPAY_BASE_URL is not a URL');
  }
  const url = (k: string) => {
    const v = need(k, 'https notify URL, no query string');
    if (!v) return '';
    try {
      const u = new URL(v);
      if (u.protocol !== 'https:' && !(local && u.protocol === 'http:')) problems.push(`${k} must be https`);
      if (u.search) problems.push(`${k} must not have a query string`);
    } catch {
      problems.push(`${k} is not a URL`);
    }
    return v;
  };
  const payNotifyUrl = url('WXPAY_NOTIFY_URL');
  const refundNotifyUrl = url('WXPAY_REFUND_NOTIFY_URL');
  const timeout = get('WXPAY_TIMEOUT_MS') ?? '8000';
  if (!/^\d+$/.test(timeout) || Number(timeout) < 500 || Number(timeout) > 30000) {
    problems.push('WXPAY_TIMEOUT_MS must be from 500 to 30000');
  }

  const apiV3Key = need('WXPAY_V3_KEY', PROVIDER_VARIABLES.WXPAY_V3_KEY);
  if (apiV3Key && Buffer.byteLength(apiV3Key, 'utf8') !== 32) {
    problems.push(
      `WXPAY_V3_KEY must be exactly 32 bytes, got ${Buffer.byteLength(apiV3Key, 'utf8')} (the APIv3 key, not the APIv2 key)`,
    );
  }
  registerSecret(apiV3Key);

  const keyRaw = get('WXPAY_V3_PRIVATE_KEY_PEM') ?? get('WXPAY_KEY_PEM');
  if (!keyRaw) problems.push('WXPAY_V3_PRIVATE_KEY_PEM is missing (apiclient_key.pem; or set WXPAY_KEY_PEM)');
  const privateKeyPem = keyRaw ? pemOrBase64(keyRaw) : '';
  registerSecret(keyRaw);
  registerSecret(privateKeyPem);
  let privateKey: ReturnType<typeof merchantPrivateKey> | undefined;
  if (privateKeyPem) {
    try {
      privateKey = merchantPrivateKey(privateKeyPem);
      const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) problems.push(`the merchant API private key has ${bits} bits; WeChat issues 2048`);
    } catch (e) {
      problems.push(`WXPAY_V3_PRIVATE_KEY_PEM: ${(e as CryptoError).message}`);
    }
  }

  const certRaw = get('WXPAY_CERT_PEM');
  let merchantSerial = get('WXPAY_V3_CERT_SERIAL')?.toUpperCase() ?? '';
  if (certRaw) {
    const certPem = pemOrBase64(certRaw);
    let fromCert: string | undefined;
    try {
      fromCert = certificateSerial(certPem);
    } catch {
      problems.push('WXPAY_CERT_PEM is not a PEM certificate');
    }
    if (fromCert) {
      if (merchantSerial && merchantSerial !== fromCert) {
        problems.push(
          `WXPAY_V3_CERT_SERIAL ${merchantSerial} is not the serial of WXPAY_CERT_PEM (${fromCert})`,
        );
      }
      merchantSerial ||= fromCert;
      if (privateKey && !keyMatchesCertificate(privateKey, certPem)) {
        problems.push('the merchant API private key does not belong to the certificate in WXPAY_CERT_PEM');
      }
    }
  }
  if (!merchantSerial) problems.push('WXPAY_V3_CERT_SERIAL is missing (the merchant API certificate serial)');
  else if (!CERT_SERIAL_PATTERN.test(merchantSerial))
    problems.push('WXPAY_V3_CERT_SERIAL must be the certificate serial in hex (40 characters at WeChat)');

  const verifiers: VerifierKey[] = [];
  const pubId = get('WXPAY_V3_PUBLIC_KEY_ID');
  const pubPem = get('WXPAY_V3_PUBLIC_KEY_PEM');
  if (Boolean(pubId) !== Boolean(pubPem)) {
    problems.push('WXPAY_V3_PUBLIC_KEY_ID and WXPAY_V3_PUBLIC_KEY_PEM must be set together');
  } else if (pubId && pubPem) {
    if (!PUBLIC_KEY_ID_PATTERN.test(pubId))
      problems.push('WXPAY_V3_PUBLIC_KEY_ID must look like PUB_KEY_ID_ followed by digits');
    else {
      try {
        verifiers.push(publicKeyEntry(pubId, pemOrBase64(pubPem)));
      } catch (e) {
        problems.push(`WXPAY_V3_PUBLIC_KEY_PEM: ${(e as Error).message}`);
      }
    }
  }
  const certs = get('WXPAY_V3_PLATFORM_CERTS_PEM');
  if (certs) {
    try {
      for (const c of platformCertificateEntries(pemOrBase64(certs))) {
        if (c.notAfterMs !== undefined && c.notAfterMs < nowMs) {
          problems.push(
            `platform certificate ${c.serial} expired on ${new Date(c.notAfterMs).toISOString().slice(0, 10)}; remove it`,
          );
        } else verifiers.push(c);
      }
    } catch (e) {
      problems.push(`WXPAY_V3_PLATFORM_CERTS_PEM: ${(e as Error).message}`);
    }
  }
  if (!pubId && !certs) {
    problems.push(
      "APIv3 needs WeChat Pay's key to verify answers and notifies: set WXPAY_V3_PUBLIC_KEY_ID + WXPAY_V3_PUBLIC_KEY_PEM (商户平台 → API安全 → 微信支付公钥) or WXPAY_V3_PLATFORM_CERTS_PEM",
    );
  }

  const caRaw = get('WXPAY_CA_PEM');
  if (problems.length > 0) throw new ConfigError(problems);
  const merchant: V3Merchant = partner
    ? {
        kind: 'partner',
        spAppid: appid,
        spMchid: mchId,
        subMchid: partner.subMchId,
        ...(partner.subAppid ? { subAppid: partner.subAppid } : {}),
      }
    : { kind: 'direct', appid, mchid: mchId };
  return {
    provider: 'v3',
    merchant,
    mchid: mchId,
    apiV3Key,
    privateKeyPem,
    merchantSerial,
    verifiers,
    baseUrl,
    caPem: caRaw ? pemOrBase64(caRaw) : undefined,
    payNotifyUrl,
    refundNotifyUrl,
    timeoutMs: Number(timeout),
  };
}
