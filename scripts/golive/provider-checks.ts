/**
 * The doctor's checks for APIv3 and cloudPay, beside checks.ts's APIv2 ones. What goes wrong
 * when a shop goes live on APIv3: the APIv2 key pasted as the APIv3 key, a private key from
 * another download than the certificate whose serial is configured, a public key id copied
 * wrongly, an expired platform certificate, no WeChat Pay key at all (every answer is then
 * unverifiable). cloudPay has no key to check: what can be checked offline is its merchant
 * number and callback functions; the rest is in the CloudBase console.
 */
import { X509Certificate } from 'node:crypto';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { pemOrBase64 } from '../../cloudfunctions/shared/providers/config';
import { checkSignature, createV3Client } from '../../cloudfunctions/shared/providers/v3/client';
import {
  CERT_SERIAL_PATTERN,
  keyMatchesCertificate,
  merchantPrivateKey,
  PUBLIC_KEY_ID_PATTERN,
  platformCertificateEntries,
  publicKeyEntry,
  type VerifierKey,
  VerifierKeys,
} from '../../cloudfunctions/shared/providers/v3/keys';
import { request } from '../../cloudfunctions/shared/wxpay/http';
import type { Check } from './checks';

const ok = (name: string, detail: string): Check => ({ status: 'ok', name, detail });
const fail = (name: string, detail: string, fix: string): Check => ({ status: 'fail', name, detail, fix });
const warn = (name: string, detail: string, fix: string): Check => ({ status: 'warn', name, detail, fix });

const DAY_MS = 24 * 3600 * 1000;
const EXPIRY_WARNING_DAYS = 30;
const V3_KEY_FIX =
  'copy the APIv3 key from 商户平台 → 账户中心 → API安全 → APIv3密钥 (32 characters, set by the merchant; not the APIv2 key)';

/** The WeChat Pay keys the configuration holds, each checked; undefined entries are refused ones. */
function verifierKeys(vars: Record<string, string>, now: number): { checks: Check[]; keys: VerifierKey[] } {
  const checks: Check[] = [];
  const keys: VerifierKey[] = [];
  const id = vars['WXPAY_V3_PUBLIC_KEY_ID'];
  const pem = vars['WXPAY_V3_PUBLIC_KEY_PEM'];
  const certs = vars['WXPAY_V3_PLATFORM_CERTS_PEM'];
  if (id || pem) {
    const name = 'WeChat Pay public key';
    if (!id || !pem) {
      checks.push(
        fail(
          name,
          'only one of WXPAY_V3_PUBLIC_KEY_ID / WXPAY_V3_PUBLIC_KEY_PEM is set',
          'set both: the id (PUB_KEY_ID_…) and pub_key.pem, from 商户平台 → API安全 → 微信支付公钥',
        ),
      );
    } else if (!PUBLIC_KEY_ID_PATTERN.test(id)) {
      checks.push(
        fail(
          name,
          `WXPAY_V3_PUBLIC_KEY_ID ${id} is not PUB_KEY_ID_ followed by digits`,
          'copy the 公钥ID shown next to the public key on the merchant platform',
        ),
      );
    } else {
      try {
        const entry = publicKeyEntry(id, pemOrBase64(pem));
        keys.push(entry);
        const bits = entry.key.asymmetricKeyDetails?.modulusLength ?? 0;
        checks.push(ok(name, `${id}, RSA ${bits} bits`));
      } catch (e) {
        checks.push(
          fail(name, `WXPAY_V3_PUBLIC_KEY_PEM: ${(e as Error).message}`, 'use pub_key.pem as downloaded'),
        );
      }
    }
  }
  if (certs) {
    const name = 'platform certificates';
    try {
      for (const c of platformCertificateEntries(pemOrBase64(certs))) {
        const days = Math.floor(((c.notAfterMs ?? 0) - now) / DAY_MS);
        if (c.notAfterMs !== undefined && c.notAfterMs < now) {
          checks.push(
            fail(
              name,
              `${c.serial} expired ${-days} days ago`,
              'remove it; merchants now use the WeChat Pay public key (WXPAY_V3_PUBLIC_KEY_ID/_PEM)',
            ),
          );
          continue;
        }
        keys.push(c);
        if (days < EXPIRY_WARNING_DAYS) {
          checks.push(
            warn(
              name,
              `${c.serial} expires in ${days} days`,
              'add the next platform certificate beside it, or switch to the WeChat Pay public key',
            ),
          );
        } else checks.push(ok(name, `${c.serial} valid for ${days} days`));
      }
    } catch (e) {
      checks.push(
        fail(name, `WXPAY_V3_PLATFORM_CERTS_PEM: ${(e as Error).message}`, 'use the downloaded PEM'),
      );
    }
  }
  if (!id && !pem && !certs) {
    checks.push(
      fail(
        'WeChat Pay public key',
        "no WeChat Pay key: APIv3's answers and notifies cannot be verified",
        'set WXPAY_V3_PUBLIC_KEY_ID and WXPAY_V3_PUBLIC_KEY_PEM_FILE (商户平台 → API安全 → 微信支付公钥), or WXPAY_V3_PLATFORM_CERTS_PEM_FILE for an older merchant',
      ),
    );
  }
  return { checks, keys };
}

/** The merchant's API key and the serial it is named by. */
function merchantKey(vars: Record<string, string>): Check[] {
  const name = 'APIv3 merchant key';
  const keyRaw = vars['WXPAY_V3_PRIVATE_KEY_PEM'] || vars['WXPAY_KEY_PEM'];
  if (!keyRaw) {
    return [
      fail(
        name,
        'no merchant API private key',
        'set WXPAY_KEY_PEM_FILE (apiclient_key.pem) or WXPAY_V3_PRIVATE_KEY_PEM_FILE',
      ),
    ];
  }
  let key: ReturnType<typeof merchantPrivateKey>;
  try {
    key = merchantPrivateKey(pemOrBase64(keyRaw));
  } catch (e) {
    return [fail(name, (e as Error).message, 'use apiclient_key.pem as downloaded')];
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048)
    return [fail(name, `the key has ${bits} bits; WeChat issues 2048`, 'use apiclient_key.pem')];
  const serial = vars['WXPAY_V3_CERT_SERIAL']?.toUpperCase();
  const certRaw = vars['WXPAY_CERT_PEM'];
  if (!certRaw) {
    if (!serial) {
      return [
        fail(
          name,
          'no serial for the merchant API certificate',
          'set WXPAY_CERT_PEM_FILE (apiclient_cert.pem), or WXPAY_V3_CERT_SERIAL (商户平台 → API安全 → API证书 → 证书序列号)',
        ),
      ];
    }
    if (!CERT_SERIAL_PATTERN.test(serial))
      return [fail(name, `WXPAY_V3_CERT_SERIAL ${serial} is not hex`, 'copy the 证书序列号 (40 hex)')];
    return [
      warn(
        name,
        `serial ${serial}; without the certificate the key cannot be matched to it offline`,
        'add WXPAY_CERT_PEM_FILE, or run the doctor with --online, which WeChat answers with SIGN_ERROR for a wrong pair',
      ),
    ];
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pemOrBase64(certRaw));
  } catch {
    return [fail(name, 'WXPAY_CERT_PEM is not a certificate', 'use apiclient_cert.pem as downloaded')];
  }
  const fromCert = cert.serialNumber.toUpperCase();
  if (serial && serial !== fromCert) {
    return [
      fail(
        name,
        `WXPAY_V3_CERT_SERIAL ${serial} is not the serial of the certificate (${fromCert})`,
        'remove WXPAY_V3_CERT_SERIAL (the certificate names it) or fix it',
      ),
    ];
  }
  if (!keyMatchesCertificate(key, cert.toString())) {
    return [
      fail(
        name,
        `the private key is not the key of certificate ${fromCert}: WeChat would answer every request 401 SIGN_ERROR`,
        'use apiclient_key.pem from the same download as apiclient_cert.pem',
      ),
    ];
  }
  return [ok(name, `RSA ${bits} bits, the key of certificate ${fromCert}`)];
}

/** Every offline check of an APIv3 configuration. */
export function checkV3(vars: Record<string, string>, now: number): Check[] {
  const out: Check[] = [];
  const key = vars['WXPAY_V3_KEY'];
  const name = 'APIv3 key';
  if (!key) out.push(fail(name, 'WXPAY_V3_KEY is missing', V3_KEY_FIX));
  else if (Buffer.byteLength(key, 'utf8') !== 32)
    out.push(fail(name, `WXPAY_V3_KEY is ${Buffer.byteLength(key, 'utf8')} bytes, not 32`, V3_KEY_FIX));
  else if (key === vars['WXPAY_API_KEY'])
    out.push(fail(name, 'WXPAY_V3_KEY is the APIv2 key: notifies would never decrypt', V3_KEY_FIX));
  else out.push(ok(name, '32 bytes'));
  out.push(...merchantKey(vars));
  out.push(...verifierKeys(vars, now).checks);
  return out;
}

/**
 * A signed query for an order that cannot exist, read as WeChat answered it: 404
 * ORDER_NOT_EXIST proves WeChat accepted the Authorization (mchid, private key, serial);
 * 401 SIGN_ERROR says they do not belong together. The answer's own signature, checked with
 * the configured WeChat Pay key, proves that key too. Moves no money.
 */
export async function checkOnlineV3(
  vars: Record<string, string>,
  opts: { outTradeNo?: string; now?: () => number } = {},
): Promise<Check> {
  const name = 'WeChat Pay APIv3 round trip';
  const now = opts.now ?? Date.now;
  const base = (vars['WXPAY_BASE_URL'] ?? 'https://api.mch.weixin.qq.com').replace(/\/+$/, '');
  const keyRaw = vars['WXPAY_V3_PRIVATE_KEY_PEM'] || vars['WXPAY_KEY_PEM'];
  let serial = vars['WXPAY_V3_CERT_SERIAL']?.toUpperCase();
  try {
    if (!serial && vars['WXPAY_CERT_PEM'])
      serial = new X509Certificate(pemOrBase64(vars['WXPAY_CERT_PEM'])).serialNumber.toUpperCase();
  } catch {
    serial = undefined;
  }
  const { keys } = verifierKeys(vars, now());
  if (!keyRaw || !serial || keys.length === 0) {
    return fail(
      name,
      'not attempted: the APIv3 configuration is incomplete',
      'fix the APIv3 lines above first',
    );
  }
  const mchid = vars['WXPAY_MCHID'] ?? '';
  const verifiers = new VerifierKeys(keys);
  const privateKey = merchantPrivateKey(pemOrBase64(keyRaw));
  // The client's own Authorization and headers; the answer is read raw, error or not.
  const client = createV3Client({ mchid, merchantSerial: serial, privateKey, verifiers, baseUrl: base, now });
  const outTradeNo = opts.outTradeNo ?? `DOCTOR${Date.now()}`;
  const sub = vars['WXPAY_SUB_MCHID'];
  const path = sub
    ? `/v3/pay/partner/transactions/out-trade-no/${outTradeNo}?sp_mchid=${mchid}&sub_mchid=${sub}`
    : `/v3/pay/transactions/out-trade-no/${outTradeNo}?mchid=${mchid}`;
  const caPem = vars['WXPAY_CA_PEM'] ? pemOrBase64(vars['WXPAY_CA_PEM']) : undefined;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(new URL(base + path), {
      method: 'GET',
      headers: {
        authorization: client.authorize('GET', path, ''),
        accept: 'application/json',
        ...(verifiers.publicKeyId ? { 'wechatpay-serial': verifiers.publicKeyId } : {}),
      },
      agent: new https.Agent({ ca: caPem ? [...rootCertificates, caPem] : undefined }),
      connectTimeoutMs: 5000,
      totalTimeoutMs: 10000,
      maxResponseBytes: 64 * 1024,
    });
  } catch (e) {
    return fail(
      name,
      `cannot reach ${base}: ${(e as Error).message}`,
      'check the network and WXPAY_BASE_URL',
    );
  }
  let code = '';
  try {
    code = String((JSON.parse(res.body.toString('utf8')) as { code?: unknown }).code ?? '');
  } catch {
    code = `HTTP ${res.status}`;
  }
  if (res.status === 401 || code === 'SIGN_ERROR') {
    return fail(
      name,
      `WeChat Pay answered ${res.status} ${code}: it does not accept the request's signature`,
      'the private key, WXPAY_V3_CERT_SERIAL (or WXPAY_CERT_PEM) and WXPAY_MCHID must be the same merchant API certificate',
    );
  }
  if (res.status !== 404 || (code !== 'ORDER_NOT_EXIST' && code !== 'RESOURCE_NOT_EXISTS')) {
    return fail(name, `unexpected answer ${res.status} ${code}`, 'see docs/GOING_LIVE.md "Troubleshooting"');
  }
  const signed = checkSignature(res.headers, res.body, verifiers, now(), undefined);
  if (!signed.ok && signed.code === 'MISSING_HEADERS') {
    return warn(
      name,
      `${code}: the Authorization is accepted; the answer carried no signature, so the WeChat Pay key is not proven`,
      'run it again later',
    );
  }
  if (!signed.ok) {
    return fail(
      name,
      `${code}: the Authorization is accepted, but the answer does not verify with the configured WeChat Pay key (${signed.message})`,
      'check WXPAY_V3_PUBLIC_KEY_ID / WXPAY_V3_PUBLIC_KEY_PEM (or the platform certificates)',
    );
  }
  return ok(
    name,
    `signed ${code} for ${outTradeNo}, verified with ${signed.serial}: mchid, private key, serial and WeChat Pay key are right`,
  );
}

/** cloudPay: its merchant number and callback functions; nothing to prove online from here. */
export function checkCloudPay(vars: Record<string, string>): Check[] {
  const name = 'cloudPay';
  const out: Check[] = [];
  const mch = vars['WXPAY_MCHID'];
  if (!mch || !/^\d{6,12}$/.test(mch)) {
    out.push(fail(name, 'WXPAY_MCHID must be the merchant number bound to the environment', 'set it'));
  }
  const callbacks = [
    vars['WXPAY_CLOUDPAY_PAY_FUNCTION'] || 'payNotify',
    vars['WXPAY_CLOUDPAY_REFUND_FUNCTION'] || 'refundNotify',
  ];
  const wrong = callbacks.filter((f) => f !== 'payNotify' && f !== 'refundNotify');
  if (wrong.length > 0) {
    out.push(
      fail(
        name,
        `callbacks go to ${wrong.join(', ')}, which do not answer cloudPay`,
        'leave WXPAY_CLOUDPAY_PAY_FUNCTION / WXPAY_CLOUDPAY_REFUND_FUNCTION unset (payNotify, refundNotify)',
      ),
    );
  } else out.push(ok(name, `callbacks invoke ${[...new Set(callbacks)].join(' and ')}`));
  out.push({
    ...warn(
      'cloudPay binding',
      'cannot be checked from here: the merchant must be bound to the environment, and cloudPay calls work only with the mini-program’s cloud-call context',
      '云开发控制台 → 设置 → 全局设置 → 添加商户号, confirm in 微信支付商家助手; then pay 1 fen from the mini-program (goods of restricted categories may not use cloudPay: docs/GOING_LIVE.md)',
    ),
    stage: 'payment',
  });
  return out;
}
