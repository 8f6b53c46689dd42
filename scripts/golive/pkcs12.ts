/**
 * The merchant platform's `apiclient_cert.p12`, opened with node-forge: it reads the RC2-40
 * encryption older downloads use, which OpenSSL 3 (Node ≥ 17) refuses without its legacy
 * provider ("Error: unsupported"). Deploy turns a .p12 into the PEM pair before setting it on
 * the functions, so no function ever has to load a PKCS#12 at all.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import forge from 'node-forge';

// PKCS#12 bag types (RFC 7292 §4.2).
const OID_KEY_BAG = '1.2.840.113549.1.12.10.1.1';
const OID_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';

export interface Pkcs12Contents {
  /** Every certificate in the file (the merchant's, maybe its issuer). */
  certPems: string[];
  keyPem: string;
}

export function openPkcs12(der: Buffer, passphrase: string): Pkcs12Contents {
  const asn1 = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const p12 = forge.pkcs12.pkcs12FromAsn1(asn1, passphrase);
  const bags = (type: string) => p12.getBags({ bagType: type })[type] ?? [];
  const certPems = bags(OID_CERT_BAG)
    .map((b) => b.cert)
    .filter((c): c is forge.pki.Certificate => c !== undefined)
    .map((c) => forge.pki.certificateToPem(c));
  const keyBags = [...bags(OID_SHROUDED_KEY_BAG), ...bags(OID_KEY_BAG)];
  const key = keyBags.find((b) => b.key)?.key;
  if (!key) throw new Error('it holds no private key');
  return { certPems, keyPem: forge.pki.privateKeyToPem(key) };
}

/** The PEM pair of a .p12: its private key and the certificate that key belongs to. */
export function pkcs12ToPemPair(der: Buffer, passphrase: string): { certPem: string; keyPem: string } {
  const { certPems, keyPem } = openPkcs12(der, passphrase);
  const key = createPrivateKey(keyPem);
  const certPem = certPems.find((p) => new X509Certificate(p).checkPrivateKey(key));
  if (!certPem) throw new Error('no certificate in it belongs to its private key');
  return { certPem: certPem.trim(), keyPem: keyPem.trim() };
}

/**
 * The variables as deploy sets them: a WXPAY_PFX_BASE64 (+ passphrase, default the mch_id)
 * becomes WXPAY_CERT_PEM + WXPAY_KEY_PEM. A .p12 that cannot be opened is a problem.
 */
export function withPemPair(vars: Record<string, string>): {
  vars: Record<string, string>;
  note?: string;
  problem?: string;
} {
  const pfx = vars['WXPAY_PFX_BASE64'];
  if (!pfx || vars['WXPAY_CERT_PEM'] || vars['WXPAY_KEY_PEM']) return { vars };
  const passphrase = vars['WXPAY_PFX_PASSPHRASE'] ?? vars['WXPAY_MCHID'] ?? '';
  try {
    const pair = pkcs12ToPemPair(Buffer.from(pfx, 'base64'), passphrase);
    const { WXPAY_PFX_BASE64: _p, WXPAY_PFX_PASSPHRASE: _pp, ...rest } = vars;
    return {
      vars: { ...rest, WXPAY_CERT_PEM: pair.certPem, WXPAY_KEY_PEM: pair.keyPem },
      note: 'the PKCS#12 (WXPAY_PFX_BASE64) is set on the functions as the PEM pair WXPAY_CERT_PEM + WXPAY_KEY_PEM: OpenSSL 3 refuses the RC2-40 .p12 the merchant platform gives',
    };
  } catch (e) {
    return {
      vars,
      problem: `WXPAY_PFX_BASE64 cannot be opened (${e instanceof Error ? e.message : String(e)}): check WXPAY_PFX_PASSPHRASE (default: the mch_id)`,
    };
  }
}
