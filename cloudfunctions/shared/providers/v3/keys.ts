/**
 * The keys an APIv3 merchant holds: its own API private key (signs requests and paySign,
 * named by its certificate's serial) and WeChat Pay's verification keys, chosen per message
 * by `Wechatpay-Serial`:
 * - the WeChat Pay public key (`PUB_KEY_ID_…`): the only one merchants opened since late
 *   2024 get ("新申请商户号不再签发平台证书");
 * - platform certificates (hex serials): older merchants, several at once during a rotation.
 * During a switch-over from certificates to the public key, notifies arrive signed by both
 * for about a week, so both kinds may be held at once. An unknown serial is refused, never
 * tried against every key.
 */
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { CryptoError } from '../../errors';

export const PUBLIC_KEY_ID_PATTERN = /^PUB_KEY_ID_[0-9A-Za-z]{1,64}$/;
/** Merchant API and platform certificate serials: hex, 40 characters at WeChat. */
export const CERT_SERIAL_PATTERN = /^[0-9A-Fa-f]{2,40}$/;

export interface VerifierKey {
  serial: string;
  kind: 'public-key' | 'platform-certificate';
  key: KeyObject;
  /** Platform certificates only. */
  notAfterMs?: number;
  notBeforeMs?: number;
}

export class VerifierKeys {
  private readonly keys = new Map<string, VerifierKey>();

  /** The WeChat Pay public key ID, when one is held: requests then carry it in `Wechatpay-Serial`. */
  readonly publicKeyId: string | undefined;

  constructor(entries: readonly VerifierKey[]) {
    let publicKeyId: string | undefined;
    for (const e of entries) {
      this.keys.set(normalize(e.serial), e);
      if (e.kind === 'public-key') publicKeyId = e.serial;
    }
    this.publicKeyId = publicKeyId;
  }

  get(serial: string | undefined): VerifierKey | undefined {
    return serial ? this.keys.get(normalize(serial)) : undefined;
  }

  serials(): string[] {
    return [...this.keys.values()].map((k) => k.serial);
  }

  get size(): number {
    return this.keys.size;
  }
}

/** Hex serials compare case-insensitively; a public key ID is kept as written. */
function normalize(serial: string): string {
  return serial.startsWith('PUB_KEY_ID_') ? serial : serial.toUpperCase();
}

/** The WeChat Pay public key (`pub_key.pem`, SPKI) under its ID. */
export function publicKeyEntry(publicKeyId: string, pem: string): VerifierKey {
  if (!PUBLIC_KEY_ID_PATTERN.test(publicKeyId)) {
    throw new CryptoError(
      'PUBLIC_KEY_ID',
      `a WeChat Pay public key ID looks like PUB_KEY_ID_ followed by digits, got ${publicKeyId}`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new CryptoError('PUBLIC_KEY_PEM', 'the WeChat Pay public key is not a PEM public key', { cause });
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new CryptoError('PUBLIC_KEY_PEM', 'the WeChat Pay public key is not RSA');
  return { serial: publicKeyId, kind: 'public-key', key };
}

/** Every certificate in a PEM bundle, each under its own serial. */
export function platformCertificateEntries(pemBundle: string): VerifierKey[] {
  const pems = pemBundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0)
    throw new CryptoError('PLATFORM_CERT_PEM', 'no PEM certificate found in the platform certificates');
  return pems.map((pem) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (cause) {
      throw new CryptoError('PLATFORM_CERT_PEM', 'a platform certificate does not parse', { cause });
    }
    return {
      serial: cert.serialNumber.toUpperCase(),
      kind: 'platform-certificate' as const,
      key: cert.publicKey,
      notAfterMs: Date.parse(cert.validTo),
      notBeforeMs: Date.parse(cert.validFrom),
    };
  });
}

/** The merchant API private key (`apiclient_key.pem`, PKCS#8 or PKCS#1), RSA only. */
export function merchantPrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (cause) {
    throw new CryptoError('PRIVATE_KEY_PEM', 'the merchant API private key is not a PEM private key', {
      cause,
    });
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new CryptoError('PRIVATE_KEY_PEM', 'the merchant API private key is not RSA');
  return key;
}

/** The serial of the merchant API certificate (`apiclient_cert.pem`), upper-case hex. */
export function certificateSerial(certPem: string): string {
  return new X509Certificate(certPem).serialNumber.toUpperCase();
}

/** True when `privateKey` is the key of `certPem` (their public halves are compared). */
export function keyMatchesCertificate(privateKey: KeyObject, certPem: string): boolean {
  try {
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
    return spki(createPublicKey(privateKey)).equals(spki(new X509Certificate(certPem).publicKey));
  } catch {
    return false;
  }
}
