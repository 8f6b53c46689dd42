/**
 * The APIv3 HTTP client: signs every request (WECHATPAY2-SHA256-RSA2048), sends
 * `Wechatpay-Serial` when a WeChat Pay public key is configured (so WeChat signs its answers
 * with that key), and verifies every 2xx answer before anyone reads it: the timestamp within
 * 5 minutes, a nonce not seen before, and the signature with the key `Wechatpay-Serial`
 * names. Non-2xx answers are failures whatever they say; they are classified, never trusted.
 * node:https only (Node 16 has no fetch).
 */

import type { KeyObject } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { HttpFailure, type HttpResponse, type RequestOptions, request } from '../../wxpay/http';
import { nonceStr } from '../../wxpay/nonce';
import { ProviderError } from '../errors';
import type { FailureClass, FailureReason } from '../port';
import { answerMessage, authorizationHeader, requestMessage, signSha256Rsa, verifySha256Rsa } from './crypto';
import type { VerifierKeys } from './keys';
import { ReplayGuard } from './replay';

export const DEFAULT_V3_BASE_URL = 'https://api.mch.weixin.qq.com';
/** SDKs refuse |now − Wechatpay-Timestamp| ≥ 300 s (wechatpay-go consts.FiveMinute, axios-plugin). */
export const MAX_CLOCK_SKEW_S = 300;
/** The probe WeChat sends on purpose to catch merchants that skip verification. */
export const SIGNTEST_PREFIX = 'WECHATPAY/SIGNTEST/';
const JSON_MAX_BYTES = 1024 * 1024;
/** An attempt with less time than this left is not started: it could only time out. */
const MIN_ATTEMPT_MS = 300;
const BILL_MAX_BYTES = 50 * 1024 * 1024;

export interface V3ClientConfig {
  /** The calling merchant: a direct merchant's mchid, or the service provider's sp_mchid. */
  mchid: string;
  /** Serial of the merchant API certificate (apiclient_cert.pem), not a platform serial. */
  merchantSerial: string;
  privateKey: KeyObject;
  verifiers: VerifierKeys;
  /** Default https://api.mch.weixin.qq.com; http:// only for tests. */
  baseUrl?: string;
  /** An extra trusted CA (the simulator's), added to Node's default CAs. */
  caPem?: string;
  connectTimeoutMs?: number;
  /** Per attempt; default 8000. */
  totalTimeoutMs?: number;
  /** Default 3: one try and two retries of transient failures. */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Epoch ms. */
  now?: () => number;
  nonce?: () => string;
  /** Remembers verified nonces for the replay window; one per client by default. */
  replayGuard?: ReplayGuard;
  /** The HTTP edge; default node:http/https. Tests pass an in-process one. */
  transport?: (url: URL, options: RequestOptions) => Promise<HttpResponse>;
}

export interface V3Answer {
  status: number;
  /** The parsed JSON body; undefined for 204. */
  json: unknown;
  /** The raw body, exactly as received. */
  raw: Buffer;
  /** `Request-ID`, for WeChat support. */
  requestId: string | undefined;
}

export interface V3CallOptions {
  /** For errors and logs, e.g. `refund`. */
  operation: string;
  /** What a 404 RESOURCE_NOT_EXISTS means on this path. */
  notFound?: FailureReason;
  /**
   * Epoch ms by which the call is over, retries included (a cloud function is killed at its
   * timeout): attempts are cut short and no retry starts that could not finish in time.
   */
  deadlineMs?: number;
}

const V3_CODES: Readonly<Record<string, { reason: FailureReason; failure?: FailureClass }>> = {
  ORDER_NOT_EXIST: { reason: 'ORDER_NOT_FOUND' },
  ORDERNOTEXIST: { reason: 'ORDER_NOT_FOUND' },
  ORDERPAID: { reason: 'ORDER_PAID' },
  ORDER_PAID: { reason: 'ORDER_PAID' },
  ORDER_CLOSED: { reason: 'ORDER_CLOSED' },
  OUT_TRADE_NO_USED: { reason: 'ORDER_NO_REUSED' },
  NOT_ENOUGH: { reason: 'NOT_ENOUGH' },
  USER_ACCOUNT_ABNORMAL: { reason: 'USER_ACCOUNT_ABNORMAL' },
  TRADE_OVERDUE: { reason: 'TRADE_OVERDUE' },
  PARAM_ERROR: { reason: 'INVALID_REQUEST' },
  INVALID_REQUEST: { reason: 'INVALID_REQUEST' },
  APPID_MCHID_NOT_MATCH: { reason: 'INVALID_REQUEST' },
  MCH_NOT_EXISTS: { reason: 'INVALID_REQUEST' },
  SIGN_ERROR: { reason: 'SIGN_ERROR' },
  NO_AUTH: { reason: 'NO_AUTH' },
  // "系统异常,请用相同参数重新调用"; 5xx are retried whatever the code.
  SYSTEM_ERROR: { reason: 'SYSTEM_ERROR', failure: 'transient' },
  SYSTEMERROR: { reason: 'SYSTEM_ERROR', failure: 'transient' },
  SERVICE_UNAVAILABLE: { reason: 'SYSTEM_ERROR', failure: 'transient' },
  BIZERR_NEED_RETRY: { reason: 'SYSTEM_ERROR', failure: 'transient' },
  FREQUENCY_LIMITED: { reason: 'RATE_LIMITED', failure: 'rate-limited' },
  RATELIMIT_EXCEEDED: { reason: 'RATE_LIMITED', failure: 'rate-limited' },
};

const defaultSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

export function headerOf(
  headers: Readonly<Record<string, string | undefined>>,
  name: string,
): string | undefined {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === want) return v;
  return undefined;
}

export type SignatureCheck =
  | { ok: true; serial: string }
  | {
      ok: false;
      code: 'MISSING_HEADERS' | 'SIGNTEST' | 'STALE' | 'REPLAYED' | 'UNKNOWN_SERIAL' | 'BAD_SIGNATURE';
      message: string;
    };

/**
 * The check every answer and notify passes: headers present, not a SIGNTEST probe, timestamp
 * within five minutes of `nowMs`, nonce not seen in that window, known serial, and the
 * signature over the raw body bytes. The nonce is remembered only once everything else holds.
 */
export function checkSignature(
  headers: Readonly<Record<string, string | undefined>>,
  body: Uint8Array,
  keys: VerifierKeys,
  nowMs: number,
  guard: ReplayGuard | undefined,
): SignatureCheck {
  const timestamp = headerOf(headers, 'wechatpay-timestamp');
  const nonce = headerOf(headers, 'wechatpay-nonce');
  const signature = headerOf(headers, 'wechatpay-signature');
  const serial = headerOf(headers, 'wechatpay-serial');
  const type = headerOf(headers, 'wechatpay-signature-type');
  if (!timestamp || !nonce || !signature || !serial) {
    return {
      ok: false,
      code: 'MISSING_HEADERS',
      message: 'Wechatpay-Timestamp/Nonce/Signature/Serial missing',
    };
  }
  if (type !== undefined && type !== 'WECHATPAY2-SHA256-RSA2048') {
    return { ok: false, code: 'BAD_SIGNATURE', message: `unsupported Wechatpay-Signature-Type ${type}` };
  }
  // WeChat signs a few answers and notifies wrongly on purpose to find merchants that skip
  // verification; they must be refused like any bad signature (4xx/5xx), and are not alarms.
  if (signature.startsWith(SIGNTEST_PREFIX)) {
    return { ok: false, code: 'SIGNTEST', message: 'WECHATPAY/SIGNTEST/ probe refused' };
  }
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - Number(timestamp)) >= MAX_CLOCK_SKEW_S) {
    return { ok: false, code: 'STALE', message: 'Wechatpay-Timestamp is more than 5 minutes from now' };
  }
  if (nonce.length > 64) return { ok: false, code: 'BAD_SIGNATURE', message: 'Wechatpay-Nonce is too long' };
  const key = keys.get(serial);
  if (!key) {
    return {
      ok: false,
      code: 'UNKNOWN_SERIAL',
      message: `Wechatpay-Serial ${serial} is not a configured WeChat Pay key`,
    };
  }
  if (!verifySha256Rsa(answerMessage(timestamp, nonce, body), signature, key.key)) {
    return { ok: false, code: 'BAD_SIGNATURE', message: `signature does not verify with ${serial}` };
  }
  if (guard && !guard.remember(`${timestamp}\n${nonce}`, Number(timestamp) * 1000, nowMs)) {
    return { ok: false, code: 'REPLAYED', message: 'this Wechatpay-Nonce was already used' };
  }
  return { ok: true, serial: key.serial };
}

export interface V3Client {
  readonly mchid: string;
  /** Signs, sends, retries transient failures with the same body, verifies and parses. */
  call(
    method: 'GET' | 'POST',
    pathAndQuery: string,
    body: object | undefined,
    opts: V3CallOptions,
  ): Promise<V3Answer>;
  /** A bill file from a `download_url`: signed like any GET; the answer is unsigned by design. */
  download(url: string, opts: V3CallOptions): Promise<Buffer>;
  /** The Authorization value for a request (exposed for the doctor and tests). */
  authorize(method: string, pathAndQuery: string, body: string): string;
}

export function createV3Client(config: V3ClientConfig): V3Client {
  const base = new URL((config.baseUrl ?? DEFAULT_V3_BASE_URL).replace(/\/+$/, ''));
  if (base.protocol !== 'https:' && base.protocol !== 'http:') {
    throw new ProviderError({
      provider: 'v3',
      failure: 'definitive',
      reason: 'INVALID_REQUEST',
      providerCode: 'CONFIG_INVALID',
      description: `APIv3 baseUrl must be http(s), got ${base.protocol}`,
      operation: 'config',
    });
  }
  const now = config.now ?? Date.now;
  const nonce = config.nonce ?? (() => nonceStr(32));
  const sleep = config.sleep ?? defaultSleep;
  const maxAttempts = Math.max(1, config.maxAttempts ?? 3);
  const connectTimeoutMs = config.connectTimeoutMs ?? 3000;
  const totalTimeoutMs = config.totalTimeoutMs ?? 8000;
  const guard = config.replayGuard ?? new ReplayGuard();
  const transport = config.transport ?? request;
  const ca = config.caPem ? [...rootCertificates, config.caPem] : undefined;
  const agent: http.Agent =
    base.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxFreeSockets: 4, ca })
      : new http.Agent({ keepAlive: true, maxFreeSockets: 4 });

  function authorize(method: string, pathAndQuery: string, body: string): string {
    const timestamp = String(Math.floor(now() / 1000));
    const nonce_str = nonce();
    return authorizationHeader({
      mchid: config.mchid,
      nonce_str,
      timestamp,
      serial_no: config.merchantSerial,
      signature: signSha256Rsa(
        requestMessage(method, pathAndQuery, timestamp, nonce_str, body),
        config.privateKey,
      ),
    });
  }

  function headers(method: string, pathAndQuery: string, body: string | undefined): Record<string, string> {
    const h: Record<string, string> = {
      authorization: authorize(method, pathAndQuery, body ?? ''),
      accept: 'application/json',
      'user-agent': 'wxpay-cloud-shop (node)',
    };
    if (body !== undefined) h['content-type'] = 'application/json';
    // With the public key configured, ask for answers signed by it: without this header
    // WeChat keeps signing answers with the platform certificate during a switch-over.
    if (config.verifiers.publicKeyId) h['wechatpay-serial'] = config.verifiers.publicKeyId;
    return h;
  }

  function failure(
    f: { failure: FailureClass; reason: FailureReason; code: string; description: string; status?: number },
    opts: V3CallOptions,
    cause?: unknown,
  ): ProviderError {
    return new ProviderError({
      provider: 'v3',
      failure: f.failure,
      reason: f.reason,
      providerCode: f.code,
      description: f.description,
      operation: opts.operation,
      ...(f.status !== undefined ? { httpStatus: f.status } : {}),
      cause,
    });
  }

  async function send(
    method: 'GET' | 'POST',
    url: URL,
    body: string | undefined,
    opts: V3CallOptions,
    maxBytes: number,
  ): Promise<HttpResponse> {
    const pathAndQuery = `${url.pathname}${url.search}`;
    const left = opts.deadlineMs === undefined ? totalTimeoutMs : opts.deadlineMs - now();
    if (left < MIN_ATTEMPT_MS) {
      throw failure(
        {
          failure: 'transient',
          reason: 'NETWORK',
          code: 'NETWORK',
          description: "no time left before the function's deadline",
        },
        opts,
      );
    }
    const attemptMs = Math.min(totalTimeoutMs, left);
    try {
      return await transport(url, {
        method,
        ...(body !== undefined ? { body } : {}),
        headers: headers(method, pathAndQuery, body),
        agent,
        connectTimeoutMs: Math.min(connectTimeoutMs, attemptMs),
        totalTimeoutMs: attemptMs,
        maxResponseBytes: maxBytes,
      });
    } catch (cause) {
      throw failure(
        {
          failure: 'transient',
          reason: 'NETWORK',
          code: 'NETWORK',
          description: cause instanceof HttpFailure ? cause.message : 'request failed',
        },
        opts,
        cause,
      );
    }
  }

  function errorFrom(res: HttpResponse, opts: V3CallOptions): ProviderError {
    let code = `HTTP_${res.status}`;
    let message = '';
    try {
      const j = JSON.parse(res.body.toString('utf8')) as { code?: unknown; message?: unknown };
      if (typeof j.code === 'string') code = j.code;
      if (typeof j.message === 'string') message = j.message;
    } catch {
      message = res.body.subarray(0, 120).toString('utf8');
    }
    const known = V3_CODES[code];
    let reason: FailureReason = known?.reason ?? 'OTHER';
    if (code === 'RESOURCE_NOT_EXISTS') reason = opts.notFound ?? 'ORDER_NOT_FOUND';
    let cls: FailureClass = known?.failure ?? 'definitive';
    // 5xx: "使用原请求参数重试即可"; 429: later, same parameters.
    if (res.status >= 500) {
      cls = 'transient';
      if (reason === 'OTHER') reason = 'SYSTEM_ERROR';
    } else if (res.status === 429) {
      cls = 'rate-limited';
      reason = 'RATE_LIMITED';
    }
    return failure({ failure: cls, reason, code, description: message, status: res.status }, opts);
  }

  function verified(res: HttpResponse, opts: V3CallOptions): V3Answer {
    const check = checkSignature(res.headers, res.body, config.verifiers, now(), guard);
    if (!check.ok) {
      // An answer we cannot trust: the outcome is unknown, and the same request is safe to
      // send again (same out_trade_no / out_refund_no).
      throw failure(
        {
          failure: 'transient',
          reason: 'BAD_RESPONSE',
          code: check.code,
          description: check.message,
          status: res.status,
        },
        opts,
      );
    }
    let json: unknown;
    if (res.body.length > 0) {
      try {
        json = JSON.parse(res.body.toString('utf8'));
      } catch (cause) {
        throw failure(
          {
            failure: 'transient',
            reason: 'BAD_RESPONSE',
            code: 'BAD_JSON',
            description: 'answer is not JSON',
            status: res.status,
          },
          opts,
          cause,
        );
      }
    }
    return { status: res.status, json, raw: res.body, requestId: res.headers['request-id'] };
  }

  async function withRetries<T>(attempt: () => Promise<T>, deadlineMs: number | undefined): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        if (n >= maxAttempts || !(e instanceof ProviderError) || e.failure !== 'transient') throw e;
        const pause = 200 * 3 ** (n - 1);
        // A retry that cannot get a real attempt in before the deadline is not made.
        if (deadlineMs !== undefined && now() + pause + MIN_ATTEMPT_MS > deadlineMs) throw e;
        await sleep(pause);
      }
    }
  }

  return {
    mchid: config.mchid,
    authorize,
    call(method, pathAndQuery, body, opts) {
      const url = new URL(base.toString().replace(/\/$/, '') + pathAndQuery);
      // Serialised once: the bytes signed are the bytes sent, on every attempt
      // ("请使用真实发送的JSON报文"; re-serialising is a classic 401 SIGN_ERROR).
      const text = body === undefined ? undefined : JSON.stringify(body);
      return withRetries(async () => {
        const res = await send(method, url, text, opts, JSON_MAX_BYTES);
        if (res.status < 200 || res.status > 299) throw errorFrom(res, opts);
        return verified(res, opts);
      }, opts.deadlineMs);
    },
    download(downloadUrl, opts) {
      const url = new URL(downloadUrl);
      // The Authorization header goes to WeChat only, never to a host named in an answer.
      if (url.origin !== base.origin) {
        throw failure(
          {
            failure: 'definitive',
            reason: 'BAD_RESPONSE',
            code: 'FOREIGN_DOWNLOAD_URL',
            description: `download_url is not on ${base.origin}`,
          },
          opts,
        );
      }
      return withRetries(async () => {
        const res = await send('GET', url, undefined, opts, BILL_MAX_BYTES);
        if (res.status < 200 || res.status > 299) throw errorFrom(res, opts);
        return res.body;
      }, opts.deadlineMs);
    },
  };
}
