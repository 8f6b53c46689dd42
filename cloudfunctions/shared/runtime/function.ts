/**
 * Turns domain handlers into cloud function `main`s. Configuration is validated once per
 * cold start (a clear CONFIG_INVALID naming every problem, logged at start and answered on
 * every call); database, WeChat Pay client, clock and randomness are wired here and nowhere else.
 */
import { ConfigError, type ConfigNeeds, loadConfig, type ShopConfig } from '../config';
import type { Result } from '../contract';
import type { Deps } from '../domain/deps';
import type { NotifyReply } from '../domain/notify';
import { log } from '../log';
import { Store } from '../store';
import { createWxPayClient } from '../wxpay/client';
import { nonceStr } from '../wxpay/nonce';
import { replyXml } from '../wxpay/reply';
import { XML_MAX_BYTES } from '../wxpay/xml';
import { type Caller, callable } from './callable';
import { getWxContext, rawDatabase } from './cloud';

/** Built once per cold start; `deps()` gives each invocation a fresh store (and request count). */
export function wiring(fn: string, needs: ConfigNeeds): () => Deps {
  let loaded: ShopConfig | ConfigError;
  try {
    loaded = loadConfig(process.env, needs);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    loaded = e;
    log('error', 'config.invalid', { fn, problems: e.problems });
  }
  if (loaded instanceof ConfigError) {
    const error = loaded;
    return () => {
      throw error;
    };
  }
  const config = loaded;
  const wxpay =
    needs.wxpay || needs.cert
      ? createWxPayClient({
          appid: config.wxpay.appid,
          mchId: config.wxpay.mchId,
          apiKey: config.wxpay.apiKey,
          signType: config.wxpay.signType,
          baseUrl: config.wxpay.baseUrl,
          ...(config.wxpay.caPem ? { caPem: config.wxpay.caPem } : {}),
          ...(config.cert ? { cert: config.cert } : {}),
          totalTimeoutMs: config.wxpay.timeoutMs,
        })
      : undefined;
  return () => ({ store: new Store(rawDatabase()), config, wxpay, now: Date.now, random: nonceStr, log });
}

export type DomainHandler<T> = (deps: Deps, event: Record<string, unknown>, caller: Caller) => Promise<T>;

/** A function the mini-program calls with wx.cloud.callFunction. */
export function callableFunction<T>(fn: string, needs: ConfigNeeds, handler: DomainHandler<T>) {
  const deps = wiring(fn, needs);
  return callable<T>(fn, (event, caller) => handler(deps(), event, caller)) as (
    event: unknown,
  ) => Promise<Result<T>>;
}

export interface HttpAccessEvent {
  httpMethod?: string;
  body?: string | null;
  isBase64Encoded?: boolean;
  headers?: Record<string, string>;
}

export interface IntegrationResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: false;
}

function xmlResponse(body: string, statusCode = 200): IntegrationResponse {
  return { statusCode, headers: { 'content-type': 'text/xml; charset=utf-8' }, body, isBase64Encoded: false };
}

/**
 * A WeChat Pay notify endpoint behind HTTP access (云函数 HTTP 访问). Answers are always XML;
 * a call from the mini-program (it carries an OPENID) or without an HTTP body is refused.
 */
export function notifyFunction(
  fn: string,
  needs: ConfigNeeds,
  handler: (deps: Deps, body: Uint8Array) => Promise<NotifyReply>,
) {
  const deps = wiring(fn, needs);
  return async (event: unknown): Promise<IntegrationResponse> => {
    const started = Date.now();
    const e = (typeof event === 'object' && event !== null ? event : {}) as HttpAccessEvent;
    if (getWxContext().OPENID || typeof e.httpMethod !== 'string') {
      log('warn', `${fn}.rejected`, { reason: 'NOT_HTTP_ACCESS' });
      return xmlResponse(replyXml('FAIL', 'not an HTTP notify'), 400);
    }
    if (e.httpMethod.toUpperCase() !== 'POST') return xmlResponse(replyXml('FAIL', 'POST only'), 405);
    const raw = typeof e.body === 'string' ? e.body : '';
    // Refuse floods before decoding: base64 is 4/3 of the bytes it carries.
    if (raw.length > Math.ceil((XML_MAX_BYTES * 4) / 3) + 4) {
      log('warn', `${fn}.rejected`, { reason: 'XML_TOO_LARGE', bytes: raw.length });
      return xmlResponse(replyXml('FAIL', 'body too large'), 413);
    }
    // Stryker disable next-line StringLiteral: Buffer.from(text, '') is utf8 too (equivalent).
    const body = e.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
    let d: Deps;
    try {
      d = deps();
    } catch (err) {
      log('error', `${fn}.config_invalid`, { error: err });
      return xmlResponse(replyXml('FAIL', 'merchant configuration error'));
    }
    try {
      const reply = await handler(d, body);
      log('info', `${fn}.done`, {
        outcome: reply.outcome,
        dbRequests: d.store.requests,
        ms: Date.now() - started,
      });
      return xmlResponse(reply.xml);
    } catch (err) {
      // Transient (database, network): FAIL makes WeChat retry on its schedule.
      log('error', `${fn}.error`, { error: err, dbRequests: d.store.requests });
      return xmlResponse(replyXml('FAIL', 'temporary error'));
    }
  };
}

/** A timer-triggered function: its return value goes nowhere, so everything is logged. */
export function timerFunction<T>(
  fn: string,
  needs: ConfigNeeds,
  handler: (deps: Deps, event: unknown) => Promise<T>,
) {
  const deps = wiring(fn, needs);
  return async (event: unknown): Promise<T | { error: string }> => {
    // A timer run carries no user and no HTTP request. Any mini-program user can callFunction
    // any function by name unless a deploy rule forbids it; refusing here as well keeps a
    // shopper from driving the merchant's WeChat API calls at will (as notifyFunction does).
    const ctx = getWxContext();
    const isHttp = typeof event === 'object' && event !== null && 'httpMethod' in event;
    // Stryker disable next-line StringLiteral: any stand-in for a missing SOURCE is not wx_client (equivalent).
    if (ctx.OPENID || (ctx.SOURCE ?? '').split(',').includes('wx_client') || isHttp) {
      log('warn', `${fn}.rejected`, { reason: 'NOT_TIMER', source: ctx.SOURCE });
      return { error: 'FORBIDDEN: this function runs on its timer trigger' };
    }
    try {
      return await handler(deps(), event);
    } catch (err) {
      log('error', `${fn}.error`, { error: err });
      return { error: (err as Error)?.message ?? String(err) };
    }
  };
}
