/**
 * The WeChat Pay APIv2 client: signs with the codec, posts XML, verifies every answer and
 * turns WeChat's two-level result (return_code, then result_code/err_code) into typed errors.
 * Retries only what WeChat says may be retried with the same parameters.
 */

import * as http from 'node:http';
import * as https from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { AppError, XmlError } from '../errors';
import { HttpFailure, type HttpResponse, type PostOptions, post } from './http';
import { nonceStr } from './nonce';
import { verify, withSign } from './sign';
import { isSignType, type SignType, type WxParams, type WxParamsIn } from './types';
import { parseXml, toXml } from './xml';

export interface WxPayClientConfig {
  appid: string;
  mchId: string;
  apiKey: string;
  signType: SignType;
  /** Default 'https://api.mch.weixin.qq.com'; http:// is allowed for tests. */
  baseUrl?: string;
  /** An extra trusted CA (the simulator's), added to Node's default CAs. */
  caPem?: string;
  /** The merchant API client certificate, needed by /secapi/* only. */
  cert?: { certPem: string; keyPem: string } | { pfx: Buffer; passphrase: string };
  /** Default 3000. */
  connectTimeoutMs?: number;
  /** Default 8000, per attempt. */
  totalTimeoutMs?: number;
  /** Default 3 (one try and two retries). */
  maxAttempts?: number;
  /** Injectable backoff clock. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable nonce source; default `nonceStr`. */
  nonce?: () => string;
  /**
   * Service-provider mode (服务商): `appid`/`mchId`/`apiKey`/`cert` are the service provider's,
   * and every request names the sub-merchant. Answers must be about that sub-merchant.
   */
  subMchId?: string;
  /** The sub-merchant's own mini program (needed for `sub_openid`). */
  subAppid?: string;
  /** Injectable clock for deadlines; default Date.now. */
  now?: () => number;
  /** The HTTP edge; default one POST over node:http/https. Tests pass an in-process one. */
  transport?: (url: URL, body: string, options: PostOptions) => Promise<HttpResponse>;
}

/**
 * Per call. A cloud function is killed at its timeout, so every call ends by `deadlineMs`
 * (epoch ms): attempts are cut short and no retry starts that could not finish in time.
 */
export interface CallOptions {
  deadlineMs?: number;
  /**
   * Sign this request (and verify its answer) with this type instead of the configured one:
   * unifiedorder re-entry must repeat the order's original parameters, sign type included.
   */
  signType?: SignType;
}

export interface UnifiedOrderParams {
  body: string;
  out_trade_no: string;
  total_fee: number;
  spbill_create_ip: string;
  notify_url: string;
  /** The payer under `appid`. In service-provider mode either this or `sub_openid`. */
  openid?: string;
  /** Service-provider mode: the payer under `sub_appid` ("如果选择传sub_openid,则必须传sub_appid"). */
  sub_openid?: string;
  trade_type?: 'JSAPI';
  time_expire?: string;
  attach?: string;
}

export interface RefundParams {
  out_trade_no: string;
  out_refund_no: string;
  total_fee: number;
  refund_fee: number;
  refund_desc?: string;
  notify_url?: string;
}

export interface WxPayClient {
  /** Resolves the verified response (it has `prepay_id`). */
  unifiedOrder(p: UnifiedOrderParams, o?: CallOptions): Promise<WxParams>;
  orderQuery(p: { out_trade_no: string } | { transaction_id: string }, o?: CallOptions): Promise<WxParams>;
  closeOrder(p: { out_trade_no: string }, o?: CallOptions): Promise<WxParams>;
  /** Mutual TLS. Success means accepted, not refunded: the result comes from refundquery or the notify. */
  refund(p: RefundParams, o?: CallOptions): Promise<WxParams>;
  refundQuery(p: { out_refund_no: string } | { out_trade_no: string }, o?: CallOptions): Promise<WxParams>;
  /** The bill as CSV text (parse it with `parseBill`). */
  downloadBill(
    p: { bill_date: string; bill_type?: 'ALL' | 'SUCCESS' | 'REFUND' },
    o?: CallOptions,
  ): Promise<string>;
}

export type WxPayApiErrorCode = 'WXPAY_RETURN_FAIL' | 'WXPAY_RESULT_FAIL' | 'WXPAY_BAD_RESPONSE';

/** WeChat answered, and the answer is a failure (or cannot be trusted). */
export class WxPayApiError extends AppError {
  declare readonly code: WxPayApiErrorCode;
  readonly transient: boolean;
  /** WeChat refused for rate (FREQUENCY_LIMITED, INVALID_REQ_TOO_MUCH): nothing happened; try in a minute. */
  readonly rateLimited: boolean;
  readonly returnCode?: string;
  readonly returnMsg?: string;
  readonly resultCode?: string;
  readonly errCode?: string;
  readonly errCodeDes?: string;
  /** Every field of the (parsed) answer, so nothing WeChat said is lost. */
  readonly raw?: WxParams;
  readonly path: string;

  constructor(
    code: WxPayApiErrorCode,
    message: string,
    f: { path: string; transient: boolean; raw?: WxParams; cause?: unknown },
  ) {
    super(code, message, { cause: f.cause, details: { path: f.path } });
    this.path = f.path;
    this.transient = f.transient;
    this.raw = f.raw;
    // Stryker disable next-line StringLiteral: any stand-in for a missing err_code is no rate-limit code.
    this.rateLimited = RATE_LIMIT_ERR_CODES.has(f.raw?.['err_code'] ?? '');
    this.returnCode = f.raw?.['return_code'];
    this.returnMsg = f.raw?.['return_msg'];
    this.resultCode = f.raw?.['result_code'];
    this.errCode = f.raw?.['err_code'];
    this.errCodeDes = f.raw?.['err_code_des'];
  }
}

/** WeChat could not be reached or did not give an APIv2 answer (connect error, timeout, 5xx, non-XML). */
export class WxPayNetworkError extends AppError {
  declare readonly code: 'WXPAY_UNAVAILABLE';
  readonly transient = true;
  readonly path: string;
  /** HTTP status when there was one. */
  readonly status?: number;

  constructor(message: string, f: { path: string; status?: number; cause?: unknown }) {
    super('WXPAY_UNAVAILABLE', message, { cause: f.cause, details: { path: f.path, status: f.status } });
    this.path = f.path;
    this.status = f.status;
  }
}

// "系统超时等 — 请不要更换商户退款单号，请使用相同参数再次调用API" (refund), "系统异常，请用相同参数重新
// 调用" (unifiedorder), BIZERR_NEED_RETRY "并发情况下，业务被拒绝". Everything else is a decision.
const TRANSIENT_ERR_CODES = new Set(['SYSTEMERROR', 'BIZERR_NEED_RETRY']);
// Not decisions either, but retrying within the same call only makes them worse:
// INVALID_REQ_TOO_MUCH "连续错误请求数过多被系统短暂屏蔽 — 1分钟后再来重试".
const RATE_LIMIT_ERR_CODES = new Set(['FREQUENCY_LIMITED', 'INVALID_REQ_TOO_MUCH']);
/** An attempt with less time than this left is not started: it could only time out. */
const MIN_ATTEMPT_MS = 300;

const DEFAULT_BASE_URL = 'https://api.mch.weixin.qq.com';
const BILL_MAX_BYTES = 50 * 1024 * 1024;
const XML_MAX_BYTES = 1024 * 1024;

const defaultSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

/** 200 ms, 600 ms, 1.8 s, ... */
function backoffMs(retry: number): number {
  return 200 * 3 ** (retry - 1);
}

function configError(message: string): AppError {
  return new AppError('CONFIG_INVALID', message);
}

function validateConfig(c: WxPayClientConfig): void {
  const missing = (['appid', 'mchId', 'apiKey'] as const).filter((k) => !c[k]);
  if (missing.length > 0) throw configError(`WeChat Pay client config is missing: ${missing.join(', ')}`);
  if (c.subAppid && !c.subMchId)
    throw configError('WeChat Pay subAppid needs subMchId (service-provider mode)');
  if (!isSignType(c.signType)) {
    throw configError(`WeChat Pay signType must be MD5 or HMAC-SHA256, got ${String(c.signType)}`);
  }
  const base = new URL(c.baseUrl ?? DEFAULT_BASE_URL);
  if (base.protocol !== 'https:' && base.protocol !== 'http:') {
    throw configError(`WeChat Pay baseUrl must be http(s), got ${base.protocol}`);
  }
}

export function createWxPayClient(config: WxPayClientConfig): WxPayClient {
  validateConfig(config);
  const { appid, mchId, apiKey, signType } = config;
  // Service-provider mode: every request and answer also names the sub-merchant.
  const subFields = config.subMchId ? { sub_mch_id: config.subMchId, sub_appid: config.subAppid } : {};
  const base = (config.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const connectTimeoutMs = config.connectTimeoutMs ?? 3000;
  const totalTimeoutMs = config.totalTimeoutMs ?? 8000;
  const maxAttempts = Math.max(1, config.maxAttempts ?? 3);
  const sleep = config.sleep ?? defaultSleep;
  const nonce = config.nonce ?? (() => nonceStr());
  const now = config.now ?? Date.now;
  const transport = config.transport ?? post;
  const ca = () => (config.caPem ? [...rootCertificates, config.caPem] : undefined);
  // Keep-alive saves a TLS handshake per call in a warm instance. A pooled socket that the
  // far end closed while the instance was frozen fails with a network error, which is
  // retried with the same body, so it costs a retry and nothing else. Reconcile keeps 16
  // calls in flight: fewer free sockets would close and reopen some (a handshake each) between
  // its pages; with 4 kept, 8 calls at once ran 4× slower than one at a time.
  const agentOptions = { keepAlive: true, maxFreeSockets: 16 };
  // Built on the first call, not at cold start: a function that answers from the database
  // alone never needs one, and the extra CA list is only copied when it is.
  let plain: http.Agent | undefined;
  function plainAgent(): http.Agent {
    plain ??= base.startsWith('https:')
      ? new https.Agent({ ...agentOptions, ca: ca() })
      : new http.Agent(agentOptions);
    return plain;
  }
  let secureAgent: http.Agent | undefined;

  function certAgent(path: string): http.Agent {
    if (secureAgent) return secureAgent;
    const cert = config.cert;
    if (!cert) {
      throw configError(
        `${path} needs the merchant API client certificate (apiclient_cert): configure cert ` +
          '{ certPem, keyPem } or { pfx, passphrase } (the passphrase is the mch_id)',
      );
    }
    if (!base.startsWith('https:')) return plainAgent();
    const material =
      'pfx' in cert
        ? { pfx: cert.pfx, passphrase: cert.passphrase }
        : { cert: cert.certPem, key: cert.keyPem };
    try {
      // Load it now so a wrong passphrase or a mismatched pair is a config error, not a
      // "network" error on every refund. OpenSSL's reason never contains the material.
      createSecureContext(material);
    } catch (cause) {
      // Stryker disable next-line StringLiteral: OpenSSL always throws an Error (unreachable).
      const reason = cause instanceof Error ? cause.message : 'unknown reason';
      throw new AppError(
        'CONFIG_INVALID',
        `the merchant API client certificate could not be loaded (${'pfx' in cert ? 'PKCS#12 with the configured passphrase' : 'PEM certificate and key'}): ${reason}`,
      );
    }
    secureAgent = new https.Agent({ ...agentOptions, ca: ca(), ...material });
    return secureAgent;
  }

  async function send(
    path: string,
    body: string,
    agent: http.Agent,
    maxBytes: number,
    deadlineMs: number | undefined,
  ): Promise<HttpResponse> {
    const left = deadlineMs === undefined ? totalTimeoutMs : deadlineMs - now();
    if (deadlineMs !== undefined && left < MIN_ATTEMPT_MS) {
      throw new WxPayNetworkError(`WeChat Pay ${path}: no time left before the function's deadline`, {
        path,
      });
    }
    const attemptMs = Math.min(totalTimeoutMs, left);
    let res: HttpResponse;
    try {
      res = await transport(new URL(base + path), body, {
        agent,
        connectTimeoutMs: Math.min(connectTimeoutMs, attemptMs),
        totalTimeoutMs: attemptMs,
        maxResponseBytes: maxBytes,
        contentType: 'text/xml; charset=utf-8',
      });
    } catch (cause) {
      // Stryker disable next-line StringLiteral: post() rejects only with HttpFailure (unreachable).
      const msg = cause instanceof HttpFailure ? cause.message : 'request failed';
      throw new WxPayNetworkError(`WeChat Pay ${path}: ${msg}`, { path, cause });
    }
    if (res.status >= 500) {
      throw new WxPayNetworkError(`WeChat Pay ${path}: HTTP ${res.status}`, { path, status: res.status });
    }
    return res;
  }

  function parseAnswer(path: string, res: HttpResponse): WxParams {
    try {
      return parseXml(res.body, { maxBytes: XML_MAX_BYTES });
    } catch (cause) {
      // Stryker disable next-line ConditionalExpression: parseXml throws only XmlError (equivalent).
      if (!(cause instanceof XmlError)) throw cause;
      const snippet = res.body.subarray(0, 120).toString('utf8').replace(/\s+/g, ' ');
      throw new WxPayNetworkError(
        `WeChat Pay ${path}: HTTP ${res.status} answer is not APIv2 XML (${cause.code}): ${snippet}`,
        { path, status: res.status, cause },
      );
    }
  }

  /** Checks an APIv2 answer; resolves its fields only when both return_code and result_code say SUCCESS. */
  function judge(path: string, raw: WxParams, signType: SignType): WxParams {
    if (raw['return_code'] !== 'SUCCESS') {
      // Communication-level failure (签名错误, 参数格式错误, ...): the request itself is wrong, and
      // the same bytes would fail the same way.
      throw new WxPayApiError(
        'WXPAY_RETURN_FAIL',
        `WeChat Pay ${path}: return_code ${raw['return_code'] ?? '(missing)'}: ${raw['return_msg'] ?? ''}`,
        { path, transient: false, raw },
      );
    }
    const signed = typeof raw['sign'] === 'string' && raw['sign'] !== '';
    // A result we act on must be signed by WeChat with our key and be about our merchant;
    // otherwise the outcome is unknown, and re-sending the same request is safe (same
    // out_trade_no / out_refund_no), so it is transient. An unsigned result_code FAIL moves
    // no money and is reported as the failure it says it is.
    if (signed || raw['result_code'] === 'SUCCESS') {
      const problem = !signed
        ? 'is not signed'
        : !verify(raw, apiKey, signType)
          ? `signature does not verify with the ${signType} key`
          : raw['appid'] !== appid || raw['mch_id'] !== mchId
            ? 'is for another appid/mch_id'
            : config.subMchId && raw['sub_mch_id'] !== config.subMchId
              ? 'is for another sub_mch_id'
              : undefined;
      if (problem) {
        throw new WxPayApiError('WXPAY_BAD_RESPONSE', `WeChat Pay ${path}: answer ${problem}`, {
          path,
          transient: true,
          raw,
        });
      }
    }
    if (raw['result_code'] !== 'SUCCESS') {
      const errCode = raw['err_code'] ?? '';
      throw new WxPayApiError(
        'WXPAY_RESULT_FAIL',
        `WeChat Pay ${path}: ${errCode || raw['result_code'] || 'result_code missing'}: ${raw['err_code_des'] ?? ''}`,
        { path, transient: TRANSIENT_ERR_CODES.has(errCode), raw },
      );
    }
    return raw;
  }

  function isRetryable(e: unknown): boolean {
    // A 4xx (e.g. nginx's "400 No required SSL certificate was sent") fails the same way again.
    if (e instanceof WxPayNetworkError) return e.status === undefined || e.status < 400 || e.status >= 500;
    return e instanceof WxPayApiError && e.transient;
  }

  async function withRetries<T>(attempt: () => Promise<T>, deadlineMs: number | undefined): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        if (n >= maxAttempts || !isRetryable(e)) throw e;
        const pause = backoffMs(n);
        // A retry that cannot get a real attempt in before the deadline is not made.
        if (now() + pause + MIN_ATTEMPT_MS > (deadlineMs ?? Number.POSITIVE_INFINITY)) throw e;
        await sleep(pause);
      }
    }
  }

  function signedBody(params: WxParamsIn, type: SignType): string {
    return toXml(
      withSign({ appid, mch_id: mchId, ...subFields, nonce_str: nonce(), ...params }, apiKey, type),
    );
  }

  async function call(
    path: string,
    params: WxParamsIn,
    o: CallOptions | undefined,
    opts: { cert?: boolean } = {},
  ): Promise<WxParams> {
    const agent = opts.cert ? certAgent(path) : plainAgent();
    const type = o?.signType ?? signType;
    if (!isSignType(type))
      throw configError(`WeChat Pay signType must be MD5 or HMAC-SHA256, got ${String(type)}`);
    // Built once, before the first attempt: every retry sends the very same bytes (same
    // nonce_str and sign), so WeChat sees one request repeated, never two different ones.
    const body = signedBody(params, type);
    return withRetries(
      async () =>
        judge(path, parseAnswer(path, await send(path, body, agent, XML_MAX_BYTES, o?.deadlineMs)), type),
      o?.deadlineMs,
    );
  }

  function fen(name: string, v: number): number {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new AppError('INVALID_INPUT', `${name} must be a positive integer amount in fen, got ${v}`);
    }
    return v;
  }

  return {
    async unifiedOrder(p, o) {
      const res = await call(
        '/pay/unifiedorder',
        {
          body: p.body,
          out_trade_no: p.out_trade_no,
          total_fee: fen('total_fee', p.total_fee),
          spbill_create_ip: p.spbill_create_ip,
          notify_url: p.notify_url,
          openid: p.openid,
          sub_openid: p.sub_openid,
          trade_type: p.trade_type ?? 'JSAPI',
          time_expire: p.time_expire,
          attach: p.attach,
        },
        o,
      );
      if (!res['prepay_id']) {
        throw new WxPayApiError(
          'WXPAY_BAD_RESPONSE',
          'WeChat Pay /pay/unifiedorder: SUCCESS without prepay_id',
          {
            path: '/pay/unifiedorder',
            transient: true,
            raw: res,
          },
        );
      }
      return res;
    },
    orderQuery: (p, o) => call('/pay/orderquery', { ...p }, o),
    closeOrder: (p, o) => call('/pay/closeorder', { out_trade_no: p.out_trade_no }, o),
    // async, so a refused amount rejects like every other failure instead of throwing.
    refund: async (p, o) =>
      call(
        '/secapi/pay/refund',
        {
          out_trade_no: p.out_trade_no,
          out_refund_no: p.out_refund_no,
          total_fee: fen('total_fee', p.total_fee),
          refund_fee: fen('refund_fee', p.refund_fee),
          refund_desc: p.refund_desc,
          notify_url: p.notify_url,
        },
        o,
        { cert: true },
      ),
    refundQuery: (p, o) => call('/pay/refundquery', { ...p }, o),
    async downloadBill(p, o) {
      const path = '/pay/downloadbill';
      const type = o?.signType ?? signType;
      const body = signedBody({ bill_date: p.bill_date, bill_type: p.bill_type ?? 'ALL' }, type);
      return withRetries(async () => {
        const res = await send(path, body, plainAgent(), BILL_MAX_BYTES, o?.deadlineMs);
        // Success is the CSV itself (unsigned); a failure is an XML document with
        // return_code FAIL, e.g. return_msg "No Bill Exist".
        if (!/^\s*<xml>/.test(res.body.subarray(0, 64).toString('utf8'))) {
          if (res.status !== 200)
            throw new WxPayNetworkError(`WeChat Pay ${path}: HTTP ${res.status}`, {
              path,
              status: res.status,
            });
          return res.body.toString('utf8');
        }
        judge(path, parseAnswer(path, res), type);
        throw new WxPayApiError(
          'WXPAY_BAD_RESPONSE',
          `WeChat Pay ${path}: XML answer where a bill was expected`,
          {
            path,
            transient: false,
          },
        );
      }, o?.deadlineMs);
    },
  };
}
