/**
 * The WeChat Pay APIv2 simulator over HTTPS (its own CA; mutual TLS on /secapi/*), plus a
 * JSON control surface under /sandbox/ that needs no client certificate.
 */
import { constants, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type SignType, sign, toXml, type WxParamsIn } from '../../cloudfunctions/shared/wxpay';
import type { CertPaths } from '../certs';
import { type BillFailure, generateBill, MerchantPlatformRefundError, merchantPlatformRefund } from './bills';
import {
  API_PATHS,
  type ApiPath,
  DEFAULT_FAULTS,
  Engine,
  type Faults,
  type PayOutcome,
  type Rate,
  ResultFail,
  ReturnFail,
} from './engine';
import { Ledger, type LedgerData, type SimOrder, type SimRefund } from './ledger';
import { Notifier, type NotifyRecord } from './notifier';
import { RETURN_MSG, type SimMerchant, verifyRequest } from './verify';

const errorCode = (f: BillFailure) => ('errorCode' in f ? f.errorCode : undefined);

export interface WxPaySimulatorOptions {
  host?: string;
  /** 0 = a free port. */
  port?: number;
  certs: CertPaths;
  merchants: SimMerchant[];
  /** 1 = WeChat's real timings (notify retries, refund results); tests use e.g. 0.001. */
  timeScale?: number;
  /** Persist the ledger here (JSON, atomic write+rename); omitted = in memory. */
  stateFile?: string;
  /** Clock for timestamps, prepay_id and time_expire expiry. */
  now?: () => number;
  /** Randomness for the fault rates. */
  random?: () => number;
  faults?: Partial<Faults>;
}

export interface PayRequest {
  payment: Record<string, unknown>;
  outcome?: PayOutcome;
}

export interface WxPaySimulator {
  /** Base URL of the APIv2 paths and of /sandbox/. */
  url: string;
  caCertPath: string;
  merchants: readonly SimMerchant[];
  /** What wx.requestPayment does on a phone; answers like it. */
  pay(payment: Record<string, unknown>, outcome?: PayOutcome): { errMsg: string };
  faults(): Faults;
  setFaults(patch: Partial<Faults>): Faults;
  notifies(): NotifyRecord[];
  ledger(): LedgerData;
  /** Finishes every PROCESSING refund now (outcome: faults.refundOutcome); returns how many. */
  settleRefunds(): number;
  /** Sends every owed notify attempt now and waits for the replies. */
  flushNotifies(): Promise<void>;
  /** Forgets orders, refunds, notifies and faults. */
  reset(): void;
  /**
   * Moves the simulator's clock (what bills, prepay_id validity and time_expire go by) this
   * far ahead of the wall clock; e.g. to the next morning, when yesterday's bill exists.
   */
  setClockOffset(ms: number): void;
  /** The simulator's clock, epoch ms. */
  now(): number;
  /**
   * A refund made by hand on the merchant platform: no notify, only the bill shows it.
   * Settles like API refunds (faults.refundOutcome, after the refund delay).
   */
  merchantPlatformRefund(p: { outTradeNo: string; refundFee: number }): SimRefund;
  /** Adds trades as they would be after their API calls (benchmarks seed large days this way). */
  importTrades(data: { orders?: SimOrder[]; refunds?: SimRefund[] }): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 256 * 1024;

export async function startWxPaySimulator(opts: WxPaySimulatorOptions): Promise<WxPaySimulator> {
  const clock = opts.now ?? Date.now;
  let clockOffsetMs = 0;
  const now = () => clock() + clockOffsetMs;
  const random = opts.random ?? Math.random;
  const timeScale = opts.timeScale ?? 1;
  const merchants = opts.merchants;
  const caPem = readFileSync(opts.certs.caCertPath, 'utf8');
  let faults: Faults = { ...DEFAULT_FAULTS, ...opts.faults };
  const ledger = new Ledger(opts.stateFile);
  const notifier = new Notifier(ledger, { timeScale, now, caPem, faults: () => faults });
  const engine = new Engine({ merchants, ledger, notifier, now, timeScale, faults: () => faults });
  const hung = new Set<ServerResponse>();

  function setFaults(patch: Partial<Faults>): Faults {
    const wasReordering = faults.reorderNotifies;
    faults = { ...faults, ...patch };
    if (wasReordering && !faults.reorderNotifies) notifier.releaseHeld();
    return faults;
  }

  function platformRefund(p: { outTradeNo: string; refundFee: number }): SimRefund {
    const m = merchants[0]!;
    const delayMs = faults.refundDelayMs ?? 60_000 * timeScale;
    const r = merchantPlatformRefund(ledger, m, p, now(), Date.now() + delayMs);
    engine.acceptRefund(r);
    return r;
  }

  function reset(): void {
    faults = { ...DEFAULT_FAULTS };
    clockOffsetMs = 0;
    engine.close();
    notifier.clear();
    ledger.clear();
  }

  const rate = (r: Rate, path: ApiPath) => (typeof r === 'number' ? r : (r[path] ?? 0));

  function xml(res: ServerResponse, body: string, status = 200): void {
    res.writeHead(status, { 'content-type': 'text/xml; charset=utf-8' });
    res.end(body);
  }

  function json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  }

  function signedAnswer(m: SimMerchant, signType: SignType, fields: WxParamsIn): string {
    const p: WxParamsIn = {
      return_code: 'SUCCESS',
      return_msg: 'OK',
      appid: m.appid,
      mch_id: m.mchId,
      nonce_str: randomBytes(16).toString('hex'),
      ...fields,
    };
    // WeChat signs its answer with the request's sign type and does not add sign_type.
    return toXml({ ...p, sign: sign(p, m.apiKey, signType) });
  }

  async function handleApi(
    path: ApiPath,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
  ): Promise<void> {
    if (random() < rate(faults.timeoutRate, path)) {
      // Never answer; the client's own timeout decides. Closed with the server.
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (req.method !== 'POST')
      return xml(res, toXml({ return_code: 'FAIL', return_msg: RETURN_MSG.REQUIRE_POST_METHOD }));
    const v = verifyRequest(body, merchants);
    if (!v.ok) return xml(res, toXml({ return_code: 'FAIL', return_msg: v.returnMsg }));
    if (path.startsWith('/secapi/')) {
      // The certificate must also be this merchant's ("certificate not match", supersheep/wechat-pay#43).
      const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      if (cn !== v.merchant.mchId)
        return xml(res, toXml({ return_code: 'FAIL', return_msg: '证书和商户号不匹配' }));
    }
    if (faults.systemErrorNext > 0 || random() < rate(faults.systemErrorRate, path)) {
      if (faults.systemErrorNext > 0) faults = { ...faults, systemErrorNext: faults.systemErrorNext - 1 };
      return xml(
        res,
        signedAnswer(v.merchant, v.signType, {
          result_code: 'FAIL',
          err_code: 'SYSTEMERROR',
          err_code_des: '系统超时',
        }),
      );
    }
    if (path === '/pay/downloadbill') {
      const bill = generateBill(ledger, v.merchant, v.params, now());
      if ('returnMsg' in bill) {
        // Failures are unsigned XML with WeChat's return_msg (and error_code where it has one).
        return xml(
          res,
          toXml({ return_code: 'FAIL', return_msg: bill.returnMsg, error_code: errorCode(bill) }),
        );
      }
      res.writeHead(200, { 'content-type': bill.contentType, 'content-length': bill.body.length });
      res.end(bill.body);
      return;
    }
    const out = engine.handle(path, v.params, v.merchant);
    if (random() < rate(faults.hangAfterEffectRate, path)) {
      // The effect is in the ledger; the answer is lost (hangAfterEffectRate fault).
      hung.add(res);
      res.on('close', () => hung.delete(res));
      return;
    }
    if (out instanceof ReturnFail) return xml(res, toXml({ return_code: 'FAIL', return_msg: out.returnMsg }));
    if (out instanceof ResultFail) {
      return xml(
        res,
        signedAnswer(v.merchant, v.signType, {
          result_code: 'FAIL',
          err_code: out.errCode,
          err_code_des: out.errCodeDes,
        }),
      );
    }
    return xml(res, signedAnswer(v.merchant, v.signType, { result_code: 'SUCCESS', ...out }));
  }

  async function handleSandbox(
    route: string,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
  ): Promise<void> {
    let input: Record<string, unknown> = {};
    if (req.method === 'POST' && body.length > 0) {
      try {
        input = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        return json(res, 400, { error: 'body must be JSON' });
      }
    }
    const key = `${req.method} ${route}`;
    switch (key) {
      case 'POST /sandbox/pay':
        return json(
          res,
          200,
          engine.pay(input['payment'] as Record<string, string>, input['outcome'] as PayOutcome),
        );
      case 'GET /sandbox/notifies':
        return json(res, 200, notifier.records);
      case 'GET /sandbox/faults':
        return json(res, 200, faults);
      case 'POST /sandbox/faults':
        return json(res, 200, setFaults(input as Partial<Faults>));
      case 'GET /sandbox/ledger':
        return json(res, 200, ledger.toJSON());
      case 'POST /sandbox/refunds/settle':
        return json(res, 200, { settled: engine.settleAll() });
      case 'POST /sandbox/notifies/flush':
        await notifier.flush();
        return json(res, 200, { ok: true });
      case 'GET /sandbox/clock':
        return json(res, 200, { nowMs: now(), offsetMs: clockOffsetMs });
      case 'POST /sandbox/clock': {
        const offset = input['offsetMs'];
        const advance = input['advanceMs'];
        if (typeof offset === 'number' && Number.isSafeInteger(offset)) clockOffsetMs = offset;
        else if (typeof advance === 'number' && Number.isSafeInteger(advance)) clockOffsetMs += advance;
        else return json(res, 400, { error: 'give offsetMs or advanceMs, whole milliseconds' });
        return json(res, 200, { nowMs: now(), offsetMs: clockOffsetMs });
      }
      case 'POST /sandbox/refunds/merchant-platform': {
        try {
          const r = platformRefund({
            outTradeNo: String(input['outTradeNo'] ?? ''),
            refundFee: input['refundFee'] as number,
          });
          return json(res, 200, { outRefundNo: r.outRefundNo, refundId: r.refundId, status: r.status });
        } catch (e) {
          if (e instanceof MerchantPlatformRefundError) return json(res, 400, { error: e.message });
          throw e;
        }
      }
      case 'POST /sandbox/reset':
        reset();
        return json(res, 200, { ok: true });
      default:
        return json(res, 404, { error: `no sandbox route ${key}` });
    }
  }

  const server = https.createServer(
    {
      cert: readFileSync(opts.certs.serverCertPath),
      key: readFileSync(opts.certs.serverKeyPath),
      ca: caPem,
      // Ask every client for a certificate but let the handshake finish without one, so
      // /pay/* and /sandbox/* work without it and /secapi/* can answer like WeChat's nginx.
      requestCert: true,
      rejectUnauthorized: false,
      // No session resumption: a resumed TLS session reports `authorized` without a peer
      // certificate, which would let a certificate-less client through /secapi/*.
      secureOptions: constants.SSL_OP_NO_TICKET,
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY_BYTES) chunks.push(c);
      });
      req.on('end', () => {
        const route = new URL(req.url ?? '/', 'https://localhost').pathname;
        const body = Buffer.concat(chunks);
        const run = async () => {
          if (size > MAX_BODY_BYTES)
            return xml(res, toXml({ return_code: 'FAIL', return_msg: RETURN_MSG.XML_FORMAT_ERROR }));
          if (route.startsWith('/sandbox/')) return handleSandbox(route, req, res, body);
          if (!(API_PATHS as readonly string[]).includes(route))
            return json(res, 404, { error: 'not found' });
          if (route.startsWith('/secapi/')) {
            const socket = req.socket as TLSSocket;
            if (!socket.authorized || !socket.getPeerCertificate().subject) {
              // What WeChat's nginx answers (WxJava#3740, weixin-java-pay-demo#60).
              const sent = Object.keys(socket.getPeerCertificate()).length > 0;
              res.writeHead(400, { 'content-type': 'text/html' });
              res.end(
                `<html><head><title>400 ${sent ? 'The SSL certificate error' : 'No required SSL certificate was sent'}</title></head></html>`,
              );
              return;
            }
          }
          return handleApi(route as ApiPath, req, res, body);
        };
        run().catch((e: unknown) => {
          if (!res.headersSent) json(res, 500, { error: (e as Error).message });
        });
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.address.includes(':') ? `[${addr.address}]` : addr.address;

  return {
    url: `https://${host}:${addr.port}`,
    caCertPath: opts.certs.caCertPath,
    merchants,
    pay: (payment, outcome) => engine.pay(payment as Record<string, string>, outcome),
    faults: () => faults,
    setFaults,
    notifies: () => notifier.records.map((r) => ({ ...r })),
    ledger: () => structuredClone(ledger.toJSON()),
    settleRefunds: () => engine.settleAll(),
    flushNotifies: () => notifier.flush(),
    reset,
    setClockOffset(ms) {
      clockOffsetMs = ms;
    },
    now,
    merchantPlatformRefund: platformRefund,
    importTrades(data) {
      for (const o of data.orders ?? []) ledger.putOrder(o, false);
      for (const r of data.refunds ?? []) ledger.putRefund(r, false);
      ledger.save();
    },
    async close() {
      engine.close();
      notifier.close();
      for (const res of hung) res.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
