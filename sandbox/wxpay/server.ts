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
  type CloudPayAnswer,
  type CloudPayCall,
  createCloudPaySide,
  type FunctionInvoker,
  type SimCloudPayOptions,
} from './cloudpay';
import {
  API_PATHS,
  type ApiPath,
  DEFAULT_FAULTS,
  Engine,
  type EngineHooks,
  type Faults,
  type NotifySink,
  type PayOptions,
  type PayOutcome,
  type Rate,
  ResultFail,
  ReturnFail,
} from './engine';
import { Ledger, type LedgerData, type SimOrder, type SimRefund } from './ledger';
import { Notifier, type NotifyRecord } from './notifier';
import {
  findView,
  type MerchantView,
  partnerHead,
  partnerPayer,
  partnerPayNotify,
  partnerRefundNotify,
  partnerViews,
} from './partner';
import { createV3Side, type SimV3Options } from './v3';
import { RETURN_MSG, type SimMerchant, verifyRequest } from './verify';

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
  /** Speak APIv3 too (paths under /v3/), with these WeChat Pay keys; merchants need `v3`. */
  v3?: SimV3Options;
  /** Answer cloudPay calls (through the CloudBase emulator) for these bound merchants. */
  cloudPay?: SimCloudPayOptions;
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
  pay(payment: Record<string, unknown>, outcome?: PayOutcome, options?: PayOptions): { errMsg: string };
  faults(): Faults;
  setFaults(patch: Partial<Faults>): Faults;
  notifies(): NotifyRecord[];
  ledger(): LedgerData;
  /** Finishes every PROCESSING refund now (outcome: faults.refundOutcome); returns how many. */
  settleRefunds(): number;
  /** Finishes one PROCESSING refund now with this outcome; false when it is not PROCESSING. */
  settleRefund(outRefundNo: string, outcome?: Faults['refundOutcome']): boolean;
  /** Sends every owed notify attempt now and waits for the replies. */
  flushNotifies(): Promise<void>;
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
  /** Forgets orders, refunds, notifies and faults. */
  reset(): void;
  close(): Promise<void>;
  /** With `v3`: the ids of the keys that sign answers and notifies. */
  v3:
    | {
        publicKeyId: string | undefined;
        platformSerial: string | undefined;
        /**
         * Wechatpay-* headers for `body` signed as WeChat signs a notify now (tests that must
         * get past the signature to reach a later check, e.g. a tampered GCM tag).
         */
        signNotifyForTest(
          body: string,
          opts?: { timestampS?: number; nonce?: string },
        ): Record<string, string>;
      }
    | undefined;
  /** With `cloudPay`: one call as the CloudBase emulator passes it on (wire format in sandbox/tcb/wxpayapi.ts). */
  cloudPay(call: CloudPayCall): CloudPayAnswer;
  /** Where cloudPay callbacks go: invokes a cloud function by name (the function runtime). */
  setFunctionInvoker(invoke: FunctionInvoker | undefined): void;
}

const MAX_BODY_BYTES = 256 * 1024;
const errorCode = (f: BillFailure) => ('errorCode' in f ? f.errorCode : undefined);

/** An API answer as bytes on the wire, or none at all (the caller's timeout decides). */
export type ApiReply = { status: number; contentType: string; body: string | Buffer } | { hang: true };

/** Whether a fault strikes this call (rates, and the one-shot systemErrorNext). */
export interface FaultDecisions {
  timeout(path: ApiPath): boolean;
  systemError(path: ApiPath): boolean;
  hangAfterEffect(path: ApiPath): boolean;
}

export interface WxPayCore {
  engine: Engine;
  ledger: Ledger;
  faults(): Faults;
  setFaults(patch: Partial<Faults>): Faults;
  decisions: FaultDecisions;
  /**
   * Answers one APIv2 request as WeChat would, after TLS: `clientCertCN` is the CN of the
   * client certificate the connection presented (required on /secapi/*).
   */
  answer(path: ApiPath, method: string, body: Buffer, clientCertCN: string | undefined): ApiReply;
}

export interface WxPayCoreOptions {
  merchants: readonly SimMerchant[];
  ledger: Ledger;
  notifier: NotifySink;
  now: () => number;
  random: () => number;
  timeScale: number;
  faults?: Partial<Faults>;
  onFaultsChanged?: (before: Faults, after: Faults) => void;
  /** APIv3's and cloudPay's differences (see EngineHooks); APIv2 alone needs none. */
  hooks?: EngineHooks;
  /** More merchant views for the engine (cloudPay's bound merchants). */
  views?: readonly MerchantView[];
}

/** The simulator without HTTP: the engine, its faults and APIv2's exact answers, for in-process use. */
export function createWxPayCore(o: WxPayCoreOptions): WxPayCore {
  let faults: Faults = { ...DEFAULT_FAULTS, ...o.faults };
  function setFaults(patch: Partial<Faults>): Faults {
    const before = faults;
    faults = { ...faults, ...patch };
    o.onFaultsChanged?.(before, faults);
    return faults;
  }
  const rate = (r: Rate, path: ApiPath) => (typeof r === 'number' ? r : (r[path] ?? 0));
  const decisions: FaultDecisions = {
    timeout: (path) => o.random() < rate(faults.timeoutRate, path),
    systemError(path) {
      if (faults.systemErrorNext > 0) {
        setFaults({ systemErrorNext: faults.systemErrorNext - 1 });
        return true;
      }
      return o.random() < rate(faults.systemErrorRate, path);
    },
    hangAfterEffect: (path) => o.random() < rate(faults.hangAfterEffectRate, path),
  };
  const ledger = o.ledger;
  const engine = new Engine({
    // Service-provider views (and cloudPay's) are merchants to the engine; see partner.ts.
    merchants: [...o.merchants, ...partnerViews([...o.merchants]), ...(o.views ?? [])],
    ledger,
    notifier: o.notifier,
    now: o.now,
    timeScale: o.timeScale,
    faults: () => faults,
    setFaults,
    hooks: {
      payNotify: (order, m) => partnerPayNotify(order, m as MerchantView),
      refundNotify: (r, m) => partnerRefundNotify(r, m as MerchantView),
      ...o.hooks,
    },
  });
  const xml = (body: string): ApiReply => ({ status: 200, contentType: 'text/xml; charset=utf-8', body });

  function signedAnswer(m: MerchantView, signType: SignType, fields: WxParamsIn): string {
    const p: WxParamsIn = {
      return_code: 'SUCCESS',
      return_msg: 'OK',
      ...(m.partner ? partnerHead(m.partner) : { appid: m.appid, mch_id: m.mchId }),
      nonce_str: randomBytes(16).toString('hex'),
      ...fields,
    };
    // WeChat signs its answer with the request's sign type and does not add sign_type.
    return toXml({ ...p, sign: sign(p, m.apiKey, signType) });
  }

  function answer(path: ApiPath, method: string, body: Buffer, clientCertCN: string | undefined): ApiReply {
    if (decisions.timeout(path)) return { hang: true };
    if (method !== 'POST')
      return xml(toXml({ return_code: 'FAIL', return_msg: RETURN_MSG.REQUIRE_POST_METHOD }));
    const v = verifyRequest(body, o.merchants);
    if (!v.ok) return xml(toXml({ return_code: 'FAIL', return_msg: v.returnMsg }));
    // Service-provider mode: the provider's key signed it; the sub-merchant's view is what the
    // engine works on, and the payer may be named under the sub-merchant's appid.
    let view: MerchantView = v.merchant;
    let params = v.params;
    if (params['sub_mch_id']) {
      const found = findView(v.merchant, params['sub_mch_id'], params['sub_appid']);
      if (!found) return xml(toXml({ return_code: 'FAIL', return_msg: '受理关系不存在' }));
      view = found;
      if (params['sub_openid']) {
        if (!params['sub_appid'])
          return xml(toXml({ return_code: 'FAIL', return_msg: 'sub_openid需与sub_appid一起传' }));
        params = { ...params, openid: params['sub_openid'] };
      }
    }
    // The certificate must also be this merchant's ("certificate not match", supersheep/wechat-pay#43).
    if (path.startsWith('/secapi/') && clientCertCN !== v.merchant.mchId)
      return xml(toXml({ return_code: 'FAIL', return_msg: '证书和商户号不匹配' }));
    if (decisions.systemError(path)) {
      return xml(
        signedAnswer(view, v.signType, {
          result_code: 'FAIL',
          err_code: 'SYSTEMERROR',
          err_code_des: '系统超时',
        }),
      );
    }
    if (path === '/pay/downloadbill') {
      const bill = generateBill(ledger, view, params, o.now());
      // Failures are unsigned XML with WeChat's return_msg (and error_code where it has one).
      if ('returnMsg' in bill)
        return xml(toXml({ return_code: 'FAIL', return_msg: bill.returnMsg, error_code: errorCode(bill) }));
      return { status: 200, contentType: bill.contentType, body: bill.body };
    }
    const out = engine.handle(path, params, view);
    // The effect is in the ledger; the answer is lost (hangAfterEffectRate fault).
    if (decisions.hangAfterEffect(path)) return { hang: true };
    if (out instanceof ReturnFail) return xml(toXml({ return_code: 'FAIL', return_msg: out.returnMsg }));
    if (out instanceof ResultFail) {
      return xml(
        signedAnswer(view, v.signType, {
          result_code: 'FAIL',
          err_code: out.errCode,
          err_code_des: out.errCodeDes,
        }),
      );
    }
    let fields: WxParamsIn = out;
    if (view.partner && path === '/pay/orderquery' && typeof out['out_trade_no'] === 'string') {
      const order = ledger.order(view.mchId, out['out_trade_no']);
      if (order) fields = { ...out, ...partnerPayer(order) };
    }
    return xml(signedAnswer(view, v.signType, { result_code: 'SUCCESS', ...fields }));
  }

  return { engine, ledger, faults: () => faults, setFaults, decisions, answer };
}

export async function startWxPaySimulator(opts: WxPaySimulatorOptions): Promise<WxPaySimulator> {
  const clock = opts.now ?? Date.now;
  let clockOffsetMs = 0;
  const now = () => clock() + clockOffsetMs;
  const random = opts.random ?? Math.random;
  const timeScale = opts.timeScale ?? 1;
  const merchants = opts.merchants;
  const caPem = readFileSync(opts.certs.caCertPath, 'utf8');
  const ledger = new Ledger(opts.stateFile);
  const hung = new Set<ServerResponse>();
  const hang = (res: ServerResponse) => {
    // Never answer; the client's own timeout decides. Closed with the server.
    hung.add(res);
    res.on('close', () => hung.delete(res));
  };
  // The APIv3 and cloudPay sides and the core refer to each other: each reaches the others lazily.
  let coreRef: WxPayCore | undefined;
  const core = () => coreRef!;
  const decisions: FaultDecisions = {
    timeout: (path) => core().decisions.timeout(path),
    systemError: (path) => core().decisions.systemError(path),
    hangAfterEffect: (path) => core().decisions.hangAfterEffect(path),
  };
  let notifierRef: Notifier | undefined;
  const v3 = opts.v3
    ? createV3Side({
        engine: () => core().engine,
        ledger,
        merchants,
        options: opts.v3,
        now,
        wallNow: clock,
        random,
        faults: decisions,
        hang,
        post: (url, body, headers) => notifierRef!.post(url, body, headers),
      })
    : undefined;
  const cloudPay = opts.cloudPay
    ? createCloudPaySide({
        engine: () => core().engine,
        ledger,
        options: opts.cloudPay,
        now,
        systemError: decisions.systemError,
        timeout: decisions.timeout,
        hangAfterEffect: decisions.hangAfterEffect,
      })
    : undefined;
  const notifier = new Notifier(ledger, {
    timeScale,
    now,
    caPem,
    faults: () => core().faults(),
    transports: {
      ...(v3 ? { v3: v3.deliver } : {}),
      ...(cloudPay ? { function: cloudPay.deliver } : {}),
    },
  });
  notifierRef = notifier;
  coreRef = createWxPayCore({
    merchants,
    ledger,
    notifier,
    now,
    random,
    timeScale,
    ...(opts.faults ? { faults: opts.faults } : {}),
    onFaultsChanged: (before, after) => {
      if (before.reorderNotifies && !after.reorderNotifies) notifier.releaseHeld();
    },
    ...(cloudPay ? { views: cloudPay.views } : {}),
    hooks: {
      ...(v3 ? { checkPaySign: v3.hooks.checkPaySign } : {}),
      payNotify: (order, m) =>
        order.api === 'v3'
          ? v3?.hooks.payNotify(order, m)
          : order.api === 'cloudpay'
            ? cloudPay?.payNotify(order, m)
            : partnerPayNotify(order, m as MerchantView),
      refundNotify: (r, m) =>
        r.api === 'v3'
          ? v3?.hooks.refundNotify(r, m)
          : r.api === 'cloudpay'
            ? cloudPay?.refundNotify(r, m)
            : partnerRefundNotify(r, m as MerchantView),
    },
  });
  const { engine, setFaults } = coreRef;
  const faults = () => core().faults();

  function platformRefund(p: { outTradeNo: string; refundFee: number }): SimRefund {
    const m = merchants[0]!;
    const delayMs = faults().refundDelayMs ?? 60_000 * timeScale;
    const r = merchantPlatformRefund(ledger, m, p, now(), Date.now() + delayMs);
    engine.acceptRefund(r);
    return r;
  }

  function reset(): void {
    setFaults({ ...DEFAULT_FAULTS });
    clockOffsetMs = 0;
    engine.close();
    notifier.clear();
    ledger.clear();
  }

  function xml(res: ServerResponse, body: string, status = 200): void {
    res.writeHead(status, { 'content-type': 'text/xml; charset=utf-8' });
    res.end(body);
  }

  function json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  }

  async function handleApi(
    path: ApiPath,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
  ): Promise<void> {
    const subjectCN = path.startsWith('/secapi/')
      ? (req.socket as TLSSocket).getPeerCertificate().subject?.CN
      : undefined;
    const cn = Array.isArray(subjectCN) ? subjectCN[0] : subjectCN;
    const reply = core().answer(path, req.method ?? 'GET', body, cn);
    if ('hang' in reply) return hang(res);
    res.writeHead(reply.status, { 'content-type': reply.contentType });
    res.end(reply.body);
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
          engine.pay(
            input['payment'] as Record<string, string>,
            input['outcome'] as PayOutcome,
            typeof input['couponFee'] === 'number' ? { couponFee: input['couponFee'] } : {},
          ),
        );
      case 'GET /sandbox/notifies':
        return json(res, 200, notifier.records);
      case 'GET /sandbox/faults':
        return json(res, 200, faults());
      case 'POST /sandbox/faults':
        return json(res, 200, setFaults(input as Partial<Faults>));
      case 'GET /sandbox/ledger':
        return json(res, 200, ledger.toJSON());
      case 'POST /sandbox/refunds/settle':
        // {} settles every PROCESSING refund; {outRefundNo, outcome?} settles one.
        if (typeof input['outRefundNo'] === 'string') {
          const outcome = input['outcome'] as Faults['refundOutcome'] | undefined;
          if (outcome !== undefined && !['SUCCESS', 'REFUNDCLOSE', 'CHANGE'].includes(outcome))
            return json(res, 400, { error: 'outcome must be SUCCESS, REFUNDCLOSE or CHANGE' });
          return json(res, 200, { settled: engine.settleOne(input['outRefundNo'], outcome) ? 1 : 0 });
        }
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
          if (route.startsWith('/v3/')) {
            if (!v3)
              return json(res, 404, { code: 'NOT_FOUND', message: 'APIv3 is not enabled in this simulator' });
            return v3.handle(req, res, body);
          }
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
    pay: (payment, outcome, options) => engine.pay(payment as Record<string, string>, outcome, options),
    faults,
    setFaults,
    notifies: () => notifier.records.map((r) => ({ ...r })),
    ledger: () => structuredClone(ledger.toJSON()),
    settleRefunds: () => engine.settleAll(),
    settleRefund: (outRefundNo, outcome) => engine.settleOne(outRefundNo, outcome),
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
    v3: v3
      ? {
          publicKeyId: v3.publicKeyId,
          platformSerial: v3.platformSerial,
          signNotifyForTest: v3.signNotifyForTest,
        }
      : undefined,
    cloudPay(call) {
      if (!cloudPay)
        return { json: { return_code: 'FAIL', return_msg: 'cloudPay is not enabled in this simulator' } };
      return cloudPay.call(call);
    },
    setFunctionInvoker(invoke) {
      cloudPay?.setInvoker(invoke);
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
