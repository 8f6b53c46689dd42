/** Shared set-up for the client/simulator tests: certificates, merchants, a notify receiver. */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWxPayClient, type WxPayClientConfig } from '../../cloudfunctions/shared/wxpay';
import { type CertPaths, ensureCerts } from '../../sandbox/certs';
import {
  type SimMerchant,
  startWxPaySimulator,
  type WxPaySimulator,
  type WxPaySimulatorOptions,
} from '../../sandbox/wxpay';

export const MD5_MERCHANT: SimMerchant = {
  appid: 'wx2421b1c4370ec43b',
  mchId: '10000100',
  apiKey: '192006250b4c09247ec02edce69f6a2d',
  signType: 'MD5',
};

export const HMAC_MERCHANT: SimMerchant = {
  appid: 'wxd678efh567hg6787',
  mchId: '1900000109',
  apiKey: 'qazwsxedcrfvtgbyhnujmikolp111111',
  signType: 'HMAC-SHA256',
};

export interface Env {
  dir: string;
  certs: CertPaths;
  sim: WxPaySimulator;
  /** Client config for a merchant, trusting the simulator's CA, with PEM client cert and no real backoff. */
  config(m: SimMerchant, extra?: Partial<WxPayClientConfig>): WxPayClientConfig;
  client(m: SimMerchant, extra?: Partial<WxPayClientConfig>): ReturnType<typeof createWxPayClient>;
  /**
   * Moves the simulator's clock forward by `ms` of real time (its business rules run at
   * timeScale 0.001: closeorder's 5 minutes, the 1-minute refund spacing).
   */
  advance(ms: number): void;
  close(): Promise<void>;
}

export async function startEnv(opts: Partial<WxPaySimulatorOptions> = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'wxpay-test-'));
  // The client certificate is issued for MD5_MERCHANT; HMAC_MERCHANT gets its own below.
  const certs = await ensureCerts(join(dir, 'certs'), { mchId: MD5_MERCHANT.mchId });
  let offsetMs = 0;
  const sim = await startWxPaySimulator({
    certs,
    merchants: [MD5_MERCHANT, HMAC_MERCHANT],
    timeScale: 0.001,
    now: () => Date.now() + offsetMs,
    ...opts,
  });
  const caPem = readFileSync(certs.caCertPath, 'utf8');
  // The second merchant's certificate must come from the same CA for the simulator to trust
  // it: seed its folder with that CA, and ensureCerts issues the rest under it.
  mkdirSync(join(dir, 'certs-hmac'));
  for (const f of ['ca_cert.pem', 'ca_key.pem'])
    copyFileSync(join(dir, 'certs', f), join(dir, 'certs-hmac', f));
  const hmacCerts = await ensureCerts(join(dir, 'certs-hmac'), { mchId: HMAC_MERCHANT.mchId });
  const clientCert = (m: SimMerchant) =>
    m.mchId === MD5_MERCHANT.mchId
      ? { certPem: readFileSync(certs.certPath, 'utf8'), keyPem: readFileSync(certs.keyPath, 'utf8') }
      : {
          certPem: readFileSync(hmacCerts.certPath, 'utf8'),
          keyPem: readFileSync(hmacCerts.keyPath, 'utf8'),
        };
  const config = (m: SimMerchant, extra: Partial<WxPayClientConfig> = {}): WxPayClientConfig => ({
    appid: m.appid,
    mchId: m.mchId,
    apiKey: m.apiKey,
    signType: m.signType,
    baseUrl: sim.url,
    caPem,
    cert: clientCert(m),
    sleep: async () => {},
    ...extra,
  });
  const clients = new Map<string, ReturnType<typeof createWxPayClient>>();
  return {
    dir,
    certs,
    sim,
    config,
    advance(ms) {
      offsetMs += ms;
    },
    client(m, extra) {
      if (extra) return createWxPayClient(config(m, extra));
      // One client per merchant, so its keep-alive connections are reused across calls.
      const cached = clients.get(m.mchId) ?? createWxPayClient(config(m));
      clients.set(m.mchId, cached);
      return cached;
    },
    async close() {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Receiver {
  url: string;
  bodies: string[];
  reply: (body: string, n: number) => { status?: number; body: string };
  close(): Promise<void>;
}

/** A merchant notify endpoint on 127.0.0.1 that records every body it gets. */
export async function startReceiver(reply: Receiver['reply']): Promise<Receiver> {
  const r: Receiver = { url: '', bodies: [], reply, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      r.bodies.push(body);
      const out = r.reply(body, r.bodies.length);
      res.writeHead(out.status ?? 200, { 'content-type': 'text/xml' });
      res.end(out.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`;
  r.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return r;
}

export async function until<T>(fn: () => T | undefined | false, what: string, timeoutMs = 3000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let seq = 0;
/** A fresh out_trade_no / out_refund_no per test, so tests never share ledger entries. */
export function uniqueNo(prefix: string): string {
  seq += 1;
  return `${prefix}${Date.now().toString(36)}${seq}`;
}
