/**
 * Local PKI for the sandbox: a CA, the simulator's server certificate (127.0.0.1 and
 * localhost) and the merchant's API client certificate, issued the way the merchant
 * platform issues `apiclient_cert` (subject CN = mch_id; downloadable as PEM pair and as
 * PKCS#12 whose passphrase is the mch_id).
 *
 * Keys come from node:crypto (native, fast); node-forge only builds and signs certificates
 * and the PKCS#12 bundle.
 */
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

export interface CertPaths {
  caCertPath: string;
  serverCertPath: string;
  serverKeyPath: string;
  /** Merchant client certificate (PEM), issued by the CA. */
  certPath: string;
  /** Merchant client key (PEM, unencrypted). */
  keyPath: string;
  /** Merchant client certificate + key as PKCS#12, passphrase = mch_id. */
  pfxPath: string;
}

const FILES = {
  caCert: 'ca_cert.pem',
  caKey: 'ca_key.pem',
  serverCert: 'server_cert.pem',
  serverKey: 'server_key.pem',
  clientCert: 'apiclient_cert.pem',
  clientKey: 'apiclient_key.pem',
  clientPfx: 'apiclient_cert.p12',
} as const;

function newKeyPair(): { privateKeyPem: string; publicKey: forge.pki.PublicKey } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(privateKeyPem) as forge.pki.rsa.PrivateKey;
  return { privateKeyPem, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e) };
}

function serial(): string {
  // Positive, non-zero, 16 bytes: the leading 0x01 keeps the DER integer positive.
  return `01${randomBytes(15).toString('hex')}`;
}

interface Issued {
  certPem: string;
  keyPem: string;
}

function issue(opts: {
  subject: forge.pki.CertificateField[];
  issuer?: { cert: forge.pki.Certificate; keyPem: string };
  extensions: object[];
  years: number;
}): Issued {
  const { privateKeyPem, publicKey } = newKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  const notBefore = new Date(Date.now() - 24 * 3600 * 1000);
  const notAfter = new Date(notBefore);
  notAfter.setFullYear(notAfter.getFullYear() + opts.years);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(opts.subject);
  cert.setIssuer(opts.issuer ? opts.issuer.cert.subject.attributes : opts.subject);
  cert.setExtensions(opts.extensions);
  const signingKey = forge.pki.privateKeyFromPem(opts.issuer ? opts.issuer.keyPem : privateKeyPem);
  cert.sign(signingKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKeyPem };
}

function writeAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

function clientCertMatches(certPath: string, mchId: string, caCertPem: string): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certPath));
    return (
      cert.subject.split('\n').includes(`CN=${mchId}`) && cert.checkIssued(new X509Certificate(caCertPem))
    );
  } catch {
    return false;
  }
}

/**
 * Creates the certificates in `dir` unless they are already there (the CA and the server
 * certificate are reused as is; the client certificate is re-issued only when its CN is not
 * `mchId` or it was issued by another CA).
 */
export async function ensureCerts(dir: string, opts: { mchId: string }): Promise<CertPaths> {
  if (!/^\d{1,32}$/.test(opts.mchId)) throw new Error(`mch_id must be digits, got ${opts.mchId}`);
  mkdirSync(dir, { recursive: true });
  const p = Object.fromEntries(Object.entries(FILES).map(([k, f]) => [k, join(dir, f)])) as Record<
    keyof typeof FILES,
    string
  >;

  let caCertPem: string;
  let caKeyPem: string;
  let newCa = false;
  if (existsSync(p.caCert) && existsSync(p.caKey)) {
    caCertPem = readFileSync(p.caCert, 'utf8');
    caKeyPem = readFileSync(p.caKey, 'utf8');
  } else {
    const ca = issue({
      subject: [
        { name: 'commonName', value: 'WeChat Pay Simulator Local CA' },
        { name: 'organizationName', value: 'wxpay-cloud-shop sandbox' },
      ],
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        { name: 'subjectKeyIdentifier' },
      ],
      years: 10,
    });
    caCertPem = ca.certPem;
    caKeyPem = ca.keyPem;
    writeAtomic(p.caKey, caKeyPem);
    writeAtomic(p.caCert, caCertPem);
    newCa = true;
  }
  const issuer = { cert: forge.pki.certificateFromPem(caCertPem), keyPem: caKeyPem };

  if (newCa || !existsSync(p.serverCert) || !existsSync(p.serverKey)) {
    const server = issue({
      subject: [{ name: 'commonName', value: 'localhost' }],
      issuer,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
      years: 5,
    });
    writeAtomic(p.serverKey, server.keyPem);
    writeAtomic(p.serverCert, server.certPem);
  }

  const clientOk =
    !newCa &&
    existsSync(p.clientKey) &&
    existsSync(p.clientPfx) &&
    existsSync(p.clientCert) &&
    clientCertMatches(p.clientCert, opts.mchId, caCertPem);
  if (!clientOk) {
    const client = issue({
      subject: [
        { name: 'commonName', value: opts.mchId },
        { name: 'organizationalUnitName', value: 'sandbox merchant' },
        { name: 'organizationName', value: 'Tenpay.com simulator' },
        { name: 'countryName', value: 'CN' },
      ],
      issuer,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
      years: 5,
    });
    // 3DES instead of forge's default RC2-40: OpenSSL 3 (Node >= 17) refuses RC2 without the
    // legacy provider (nodejs/node#40672), which is the refund-certificate trap in the wild.
    const p12 = forge.pkcs12.toPkcs12Asn1(
      forge.pki.privateKeyFromPem(client.keyPem),
      [forge.pki.certificateFromPem(client.certPem), issuer.cert],
      opts.mchId,
      { algorithm: '3des', friendlyName: opts.mchId },
    );
    writeAtomic(p.clientKey, client.keyPem);
    writeAtomic(p.clientCert, client.certPem);
    writeAtomic(p.clientPfx, Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary'));
  }

  return {
    caCertPath: p.caCert,
    serverCertPath: p.serverCert,
    serverKeyPath: p.serverKey,
    certPath: p.clientCert,
    keyPath: p.clientKey,
    pfxPath: p.clientPfx,
  };
}
