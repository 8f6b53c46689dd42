/**
 * The APIv3 material of a sandbox, created once per data folder like the certificates:
 * - the merchant's APIv3 key (32 characters);
 * - WeChat Pay's public key (`pub_key.pem`, what 商户平台 → API安全 hands out) under a
 *   `PUB_KEY_ID_…` id, and its private half, which only the simulator holds;
 * - a platform certificate (40-hex serial, issued by the sandbox CA) and its key, for the
 *   older certificate mode and switch-over tests.
 * The merchant's own API certificate and key are the APIv2 client certificate (certs.ts): at
 * WeChat they are one and the same `apiclient_cert.pem`, and its serial is the v3 serial_no.
 */
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export interface V3Material {
  apiV3Key: string;
  publicKeyId: string;
  /** `pub_key.pem`: the WeChat Pay public key, as the merchant downloads it. */
  publicKeyPath: string;
  /** The simulator's signing key for the public-key mode (never given to the shop). */
  publicKeyPrivatePath: string;
  platformSerial: string;
  platformCertPath: string;
  /** The simulator's signing key for the platform-certificate mode. */
  platformKeyPath: string;
}

interface Saved {
  apiV3Key: string;
  publicKeyId: string;
  platformSerial: string;
}

function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

function digits(n: number): string {
  let s = '';
  while (s.length < n) s += String(randomInt(0, 10));
  return s;
}

/** Creates the material in `dir` unless it is there; the CA issues the platform certificate. */
export function ensureV3Material(
  dir: string,
  ca: { caCertPath: string; caKeyPath: string; mchId: string },
): V3Material {
  mkdirSync(dir, { recursive: true });
  const files = {
    saved: join(dir, 'v3.json'),
    pub: join(dir, 'pub_key.pem'),
    pubPrivate: join(dir, 'wechatpay_pub_key_private.pem'),
    cert: join(dir, 'wechatpay_platform_cert.pem'),
    certKey: join(dir, 'wechatpay_platform_key.pem'),
  };
  const paths = {
    publicKeyPath: files.pub,
    publicKeyPrivatePath: files.pubPrivate,
    platformCertPath: files.cert,
    platformKeyPath: files.certKey,
  };
  if (Object.values(files).every((f) => existsSync(f))) {
    const saved = JSON.parse(readFileSync(files.saved, 'utf8')) as Saved;
    return { ...saved, ...paths };
  }

  const pub = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKeyId = `PUB_KEY_ID_01${ca.mchId.padStart(12, '0')}${digits(14)}`;
  writeAtomic(files.pubPrivate, pub.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  writeAtomic(files.pub, pub.publicKey.export({ type: 'spki', format: 'pem' }).toString());

  const platform = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const platformKeyPem = platform.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(platformKeyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  // 40 hex characters like WeChat's, positive (first byte below 0x80).
  const serial = `${randomInt(0x10, 0x80).toString(16)}${randomBytes(19).toString('hex')}`.toUpperCase();
  cert.serialNumber = serial;
  const notBefore = new Date(Date.now() - 24 * 3600_000);
  const notAfter = new Date(notBefore);
  notAfter.setFullYear(notAfter.getFullYear() + 5);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const caCert = forge.pki.certificateFromPem(readFileSync(ca.caCertPath, 'utf8'));
  cert.setSubject([
    { name: 'commonName', value: 'Tenpay.com simulator platform certificate' },
    { name: 'organizationName', value: 'wxpay-cloud-shop sandbox' },
    { name: 'countryName', value: 'CN' },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, nonRepudiation: true, keyEncipherment: true, critical: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(readFileSync(ca.caKeyPath, 'utf8')), forge.md.sha256.create());
  writeAtomic(files.certKey, platformKeyPem);
  writeAtomic(files.cert, forge.pki.certificateToPem(cert));

  const saved: Saved = {
    apiV3Key: randomBytes(16).toString('hex'),
    publicKeyId,
    platformSerial: serial,
  };
  writeAtomic(files.saved, `${JSON.stringify(saved, null, 2)}\n`);
  return { ...saved, ...paths };
}
