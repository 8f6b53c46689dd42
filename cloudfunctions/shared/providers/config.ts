/**
 * What APIv3, cloudPay and service-provider mode read from the environment, for
 * ../config.ts (loadConfig), which reads every variable once at cold start and names every
 * problem at once. Each reader appends its problems and returns its part of the configuration.
 */
import type { CryptoError } from '../errors';
import { registerSecret } from '../log';
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

/** Service-provider mode (v2 and v3). */
export interface PartnerConfig {
  subMchId: string;
  subAppid: string | undefined;
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
  timeoutMs: number;
}

type Get = (k: string) => string | undefined;

export function pemOrBase64(value: string): string {
  const v = value.trim();
  if (v.startsWith('-----BEGIN')) return v.replace(/\\n/g, '\n');
  const decoded = Buffer.from(v, 'base64').toString('utf8');
  return decoded.trim().startsWith('-----BEGIN') ? decoded : v;
}

const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,59}$/;

/** WXPAY_SUB_MCHID / WXPAY_SUB_APPID. */
export function readPartner(get: Get, problems: string[], cloudPay: boolean): PartnerConfig | undefined {
  const subMchId = get('WXPAY_SUB_MCHID');
  const subAppid = get('WXPAY_SUB_APPID');
  if (subAppid && !subMchId) problems.push('WXPAY_SUB_APPID needs WXPAY_SUB_MCHID (service-provider mode)');
  if (!subMchId) return undefined;
  if (cloudPay)
    problems.push('WXPAY_SUB_MCHID is for v2/v3 service-provider mode; cloudPay uses WXPAY_MCHID');
  if (!/^\d{6,12}$/.test(subMchId)) problems.push('WXPAY_SUB_MCHID must be 6 to 12 digits');
  if (subAppid && !/^wx[0-9a-zA-Z]{16}$/.test(subAppid))
    problems.push('WXPAY_SUB_APPID must look like wx followed by 16 characters');
  return { subMchId, subAppid };
}

export function readCloudPay(
  get: Get,
  problems: string[],
  shared: { mchId: string; timeoutMs: number },
): CloudPayProviderConfig {
  const envId = get('WXPAY_CLOUDPAY_ENV') ?? get('TCB_ENV') ?? get('SCF_NAMESPACE') ?? '';
  if (!envId) problems.push('WXPAY_CLOUDPAY_ENV is missing and this function does not know its environment');
  const payFunction = get('WXPAY_CLOUDPAY_PAY_FUNCTION') ?? 'payNotify';
  const refundFunction = get('WXPAY_CLOUDPAY_REFUND_FUNCTION') ?? 'refundNotify';
  for (const [k, v] of [
    ['WXPAY_CLOUDPAY_PAY_FUNCTION', payFunction],
    ['WXPAY_CLOUDPAY_REFUND_FUNCTION', refundFunction],
  ] as const) {
    if (!FUNCTION_NAME.test(v)) problems.push(`${k} is not a cloud function name`);
  }
  const appid = get('WXPAY_CLOUDPAY_APPID');
  if (appid && !/^wx[0-9a-zA-Z]{16}$/.test(appid))
    problems.push('WXPAY_CLOUDPAY_APPID must look like wx followed by 16 characters');
  return {
    provider: 'cloudpay',
    subMchId: shared.mchId,
    envId,
    payFunction,
    refundFunction,
    appid,
    timeoutMs: shared.timeoutMs,
  };
}

/**
 * The APIv3 key, the merchant's private key and serial, and WeChat Pay's verification keys.
 * `nowMs` judges platform certificate validity.
 */
export function readV3(
  get: Get,
  problems: string[],
  shared: {
    appid: string;
    mchId: string;
    partner: PartnerConfig | undefined;
    baseUrl: string;
    caPem: string | undefined;
    payNotifyUrl: string;
    refundNotifyUrl: string;
    timeoutMs: number;
    nowMs: number;
  },
): V3ProviderConfig {
  const apiV3Key = get('WXPAY_V3_KEY') ?? '';
  if (!apiV3Key) problems.push('WXPAY_V3_KEY is missing (APIv3 key, exactly 32 bytes; not the APIv2 key)');
  else if (Buffer.byteLength(apiV3Key, 'utf8') !== 32) {
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
        if (c.notAfterMs !== undefined && c.notAfterMs < shared.nowMs) {
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

  const { appid, mchId, partner } = shared;
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
    baseUrl: shared.baseUrl,
    caPem: shared.caPem,
    payNotifyUrl: shared.payNotifyUrl,
    refundNotifyUrl: shared.refundNotifyUrl,
    timeoutMs: shared.timeoutMs,
  };
}
