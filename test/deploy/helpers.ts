/** A sandbox merchant for the going-live tests: certificates from ensureCerts and a deploy.env. */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CertPaths, ensureCerts } from '../../sandbox/certs';

export const MERCHANT = {
  appid: 'wx2421b1c4370ec43b',
  mchId: '10000100',
  apiKey: '192006250b4c09247ec02edce69f6a2d',
} as const;

export const ADMIN = 'oUpF8uMEb4qRXf22hE3X68TekukE';
export const DOMAIN = 'shop-1a2b3c.service.tcloudbase.com';

export async function merchantCerts(dir: string, mchId: string = MERCHANT.mchId): Promise<CertPaths> {
  return ensureCerts(dir, { mchId });
}

/** The variables of a correct production configuration (PEM pair inline, as deploy sets them). */
export function goodVars(certs: CertPaths): Record<string, string> {
  return {
    CLOUDBASE_ENV_ID: 'shop-1a2b3c',
    CLOUDBASE_HTTP_DOMAIN: DOMAIN,
    WXPAY_APPID: MERCHANT.appid,
    WXPAY_MCHID: MERCHANT.mchId,
    WXPAY_API_KEY: MERCHANT.apiKey,
    WXPAY_SIGN_TYPE: 'MD5',
    WXPAY_NOTIFY_URL: `https://${DOMAIN}/pay/notify`,
    WXPAY_REFUND_NOTIFY_URL: `https://${DOMAIN}/refund/notify`,
    WXPAY_CERT_PEM: readFileSync(certs.certPath, 'utf8'),
    WXPAY_KEY_PEM: readFileSync(certs.keyPath, 'utf8'),
    ADMIN_OPENIDS: ADMIN,
  };
}

/** Writes a deploy.env the way the merchant would: certificates by file. */
export function writeEnvFile(dir: string, certs: CertPaths, extra: Record<string, string> = {}): string {
  const vars = { ...goodVars(certs), ...extra };
  delete (vars as Record<string, string | undefined>)['WXPAY_CERT_PEM'];
  delete (vars as Record<string, string | undefined>)['WXPAY_KEY_PEM'];
  const lines = [
    '# test deploy.env',
    ...Object.entries(vars).map(([k, v]) => `${k}=${v}`),
    `WXPAY_CERT_PEM_FILE=${certs.certPath}`,
    `WXPAY_KEY_PEM_FILE="${certs.keyPath}"`,
  ];
  const path = join(dir, 'deploy.env');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

/** Whether the openssl CLI is on this machine (it makes the legacy .p12 files). */
export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * An apiclient_cert.p12 made the way older merchant-platform downloads are: certificates under
 * PBE-SHA1-RC2-40, the key under PBE-SHA1-3DES, the mch_id as passphrase (forge never encrypts
 * certificate bags, so the openssl CLI makes it). OpenSSL 3 refuses to open it.
 */
export function makeLegacyP12(p: { certPath: string; keyPath: string; mchId: string; out: string }): Buffer {
  execFileSync('openssl', [
    'pkcs12',
    '-export',
    '-legacy',
    '-certpbe',
    'PBE-SHA1-RC2-40',
    '-keypbe',
    'PBE-SHA1-3DES',
    '-in',
    p.certPath,
    '-inkey',
    p.keyPath,
    '-passout',
    `pass:${p.mchId}`,
    '-out',
    p.out,
  ]);
  return readFileSync(p.out);
}
