/**
 * A simulator speaking APIv2, APIv3 and cloudPay over one ledger, with a direct merchant, a
 * service provider and its sub-merchant, plus providers for each and a notify receiver that
 * keeps the raw bytes and headers. Real keys and signatures throughout.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createV2Provider, type PaymentProvider } from '../../cloudfunctions/shared/providers';
import { createV3Client, type V3ClientConfig } from '../../cloudfunctions/shared/providers/v3/client';
import {
  merchantPrivateKey,
  platformCertificateEntries,
  publicKeyEntry,
  type VerifierKey,
  VerifierKeys,
} from '../../cloudfunctions/shared/providers/v3/keys';
import { createV3Provider, type V3Merchant } from '../../cloudfunctions/shared/providers/v3/provider';
import { createWxPayClient, nonceStr } from '../../cloudfunctions/shared/wxpay';
import { type CertPaths, ensureCerts } from '../../sandbox/certs';
import {
  ensureV3Material,
  type SimMerchant,
  type SimV3Options,
  startWxPaySimulator,
  type V3Material,
  type WxPaySimulator,
  type WxPaySimulatorOptions,
} from '../../sandbox/wxpay';

export const DIRECT = { appid: 'wxd678efh567hg6787', mchId: '1900000109' };
export const SP = { appid: 'wx8888888888888888', mchId: '1900000100' };
export const SUB = { subMchId: '1900000119', subAppid: 'wxsubmerchant00001' };

export interface V3Env {
  dir: string;
  certs: CertPaths;
  spCerts: CertPaths;
  material: V3Material;
  sim: WxPaySimulator;
  /** Moves the simulator's clock forward by `ms` (its rules run at timeScale 0.001: closeorder's 5 minutes). */
  advance(ms: number): void;
  caPem: string;
  direct: SimMerchant;
  sp: SimMerchant;
  /** WeChat Pay's keys as the merchant configures them: the public key and/or the platform certificate. */
  verifiers(which?: { publicKey?: boolean; certificate?: boolean }): VerifierKey[];
  v3(opts?: {
    merchant?: 'direct' | 'partner' | 'partner-sp-openid';
    verifiers?: VerifierKey[];
    client?: Partial<V3ClientConfig>;
  }): PaymentProvider;
  v2(opts?: { partner?: boolean; subAppid?: boolean }): PaymentProvider;
  close(): Promise<void>;
}

export async function startV3Env(
  opts: { v3?: Partial<SimV3Options>; sim?: Partial<WxPaySimulatorOptions> } = {},
): Promise<V3Env> {
  const dir = mkdtempSync(join(tmpdir(), 'providers-test-'));
  const certs = await ensureCerts(join(dir, 'certs'), { mchId: DIRECT.mchId });
  // The service provider's API certificate comes from the same CA (see test/wxpay/fixtures.ts).
  mkdirSync(join(dir, 'certs-sp'));
  for (const f of ['ca_cert.pem', 'ca_key.pem'])
    copyFileSync(join(dir, 'certs', f), join(dir, 'certs-sp', f));
  const spCerts = await ensureCerts(join(dir, 'certs-sp'), { mchId: SP.mchId });
  const material = ensureV3Material(join(dir, 'v3'), {
    caCertPath: certs.caCertPath,
    caKeyPath: join(dir, 'certs', 'ca_key.pem'),
    mchId: DIRECT.mchId,
  });
  const direct: SimMerchant = {
    ...DIRECT,
    apiKey: nonceStr(32),
    signType: 'HMAC-SHA256',
    v3: { apiV3Key: material.apiV3Key, certPem: readFileSync(certs.certPath, 'utf8') },
  };
  const sp: SimMerchant = {
    ...SP,
    apiKey: nonceStr(32),
    signType: 'MD5',
    v3: { apiV3Key: 'sp0123456789abcdefghijklmnopqrst', certPem: readFileSync(spCerts.certPath, 'utf8') },
    subMerchants: [SUB, { subMchId: '1900000129' }],
  };
  let offsetMs = 0;
  const sim = await startWxPaySimulator({
    certs,
    merchants: [direct, sp],
    timeScale: 0.001,
    now: () => Date.now() + offsetMs,
    v3: {
      publicKey: {
        id: material.publicKeyId,
        privateKeyPem: readFileSync(material.publicKeyPrivatePath, 'utf8'),
      },
      platformCertificate: {
        certPem: readFileSync(material.platformCertPath, 'utf8'),
        privateKeyPem: readFileSync(material.platformKeyPath, 'utf8'),
      },
      ...opts.v3,
    },
    ...opts.sim,
  });
  const caPem = readFileSync(certs.caCertPath, 'utf8');

  const verifiers = (which: { publicKey?: boolean; certificate?: boolean } = { publicKey: true }) => [
    ...(which.publicKey
      ? [publicKeyEntry(material.publicKeyId, readFileSync(material.publicKeyPath, 'utf8'))]
      : []),
    ...(which.certificate ? platformCertificateEntries(readFileSync(material.platformCertPath, 'utf8')) : []),
  ];

  return {
    dir,
    certs,
    spCerts,
    material,
    sim,
    advance(ms) {
      offsetMs += ms;
    },
    caPem,
    direct,
    sp,
    verifiers,
    v3(o = {}) {
      const kind = o.merchant ?? 'direct';
      const isPartner = kind !== 'direct';
      const keyPem = readFileSync(isPartner ? spCerts.keyPath : certs.keyPath, 'utf8');
      const certPem = readFileSync(isPartner ? spCerts.certPath : certs.certPath, 'utf8');
      const privateKey = merchantPrivateKey(keyPem);
      const keys = new VerifierKeys(o.verifiers ?? verifiers());
      const merchant: V3Merchant =
        kind === 'direct'
          ? { kind: 'direct', appid: DIRECT.appid, mchid: DIRECT.mchId }
          : {
              kind: 'partner',
              spAppid: SP.appid,
              spMchid: SP.mchId,
              subMchid: SUB.subMchId,
              ...(kind === 'partner' ? { subAppid: SUB.subAppid } : {}),
            };
      const client = createV3Client({
        mchid: isPartner ? SP.mchId : DIRECT.mchId,
        merchantSerial: new X509Certificate(certPem).serialNumber,
        privateKey,
        verifiers: keys,
        baseUrl: sim.url,
        caPem,
        sleep: async () => {},
        totalTimeoutMs: 3000,
        ...o.client,
      });
      return createV3Provider({
        client,
        merchant,
        apiV3Key: isPartner ? (sp.v3?.apiV3Key ?? '') : material.apiV3Key,
        privateKey,
        verifiers: keys,
        now: Date.now,
        nonce: () => nonceStr(32),
      });
    },
    v2(o = {}) {
      const m = o.partner ? sp : direct;
      const c = o.partner ? spCerts : certs;
      const client = createWxPayClient({
        appid: m.appid,
        mchId: m.mchId,
        apiKey: m.apiKey,
        signType: m.signType,
        baseUrl: sim.url,
        caPem,
        cert: { certPem: readFileSync(c.certPath, 'utf8'), keyPem: readFileSync(c.keyPath, 'utf8') },
        sleep: async () => {},
        ...(o.partner ? { subMchId: SUB.subMchId, ...(o.subAppid ? { subAppid: SUB.subAppid } : {}) } : {}),
      });
      return createV2Provider({
        client,
        appid: m.appid,
        mchId: m.mchId,
        apiKey: m.apiKey,
        signType: m.signType,
        ...(o.partner ? { subMchId: SUB.subMchId, ...(o.subAppid ? { subAppid: SUB.subAppid } : {}) } : {}),
        now: Date.now,
        nonce: () => nonceStr(32),
      });
    },
    async close() {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Delivery {
  method: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface Endpoint {
  url: string;
  received: Delivery[];
  /** What to answer: status, headers and body (default 204). */
  answer: (
    d: Delivery,
    n: number,
  ) => Promise<{ statusCode: number; headers?: Record<string, string>; body?: string }>;
  close(): Promise<void>;
}

/** A notify endpoint on 127.0.0.1 that keeps each delivery's raw bytes and headers. */
export async function startEndpoint(answer?: Endpoint['answer']): Promise<Endpoint> {
  const e: Endpoint = {
    url: '',
    received: [],
    answer: answer ?? (async () => ({ statusCode: 204 })),
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      const d: Delivery = { method: req.method ?? '', headers, body: Buffer.concat(chunks) };
      e.received.push(d);
      e.answer(d, e.received.length).then(
        (a) => {
          res.writeHead(a.statusCode, a.headers ?? {});
          res.end(a.body ?? '');
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  e.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`;
  e.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return e;
}

export async function until<T>(fn: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let seq = 0;
export function uniqueNo(prefix: string): string {
  seq += 1;
  return `${prefix}${Date.now().toString(36)}${seq}`;
}
