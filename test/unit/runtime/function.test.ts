/**
 * The three function wrappers (callable, notify, timer) in process, with the real
 * wx-server-sdk pointed at an in-process emulator the way the platform points it: the
 * refusal rules, what each kind of function answers, configuration errors, and the wiring
 * each invocation gets.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ProvidersConfig } from '../../../cloudfunctions/shared/config';
import type { BillSource } from '../../../cloudfunctions/shared/domain/billcheck';
import type { Budget, Deps, Payments } from '../../../cloudfunctions/shared/domain/deps';
import type { NotifyReply } from '../../../cloudfunctions/shared/domain/notify';
import { AppError } from '../../../cloudfunctions/shared/errors';
import { setLogSink } from '../../../cloudfunctions/shared/log';
import { NOTICE_KINDS } from '../../../cloudfunctions/shared/notices/kinds';
import type { SubscribeMessage, SubscribeSend } from '../../../cloudfunctions/shared/notices/send';
import {
  cloudPayReply,
  type NotificationInput,
  v2Reply,
  v3Reply,
} from '../../../cloudfunctions/shared/providers';
import { ProviderError } from '../../../cloudfunctions/shared/providers/errors';
import type { PaymentProvider, ProviderName } from '../../../cloudfunctions/shared/providers/port';
import { V3_NOTIFY_MAX_BYTES } from '../../../cloudfunctions/shared/providers/v3/provider';
import { withBills } from '../../../cloudfunctions/shared/runtime/bills';
import { getWxContext, rawDatabase } from '../../../cloudfunctions/shared/runtime/cloud';
import {
  budgetFor,
  type CallbackAnswer,
  callableFunction,
  type IntegrationResponse,
  notifyFunction,
  timerFunction,
  wiring,
} from '../../../cloudfunctions/shared/runtime/function';
import { sdkSubscribeSender, subscribeSender } from '../../../cloudfunctions/shared/runtime/subscribe';
import { Store } from '../../../cloudfunctions/shared/store';
import type { BillAnswer } from '../../../cloudfunctions/shared/wxpay/billdownload';
import { parseXml, XML_MAX_BYTES } from '../../../cloudfunctions/shared/wxpay/xml';
import { startTcbEmulator, type TcbEmulator } from '../../../sandbox/tcb';
import type { WxPayApiCall, WxPayApiHandler } from '../../../sandbox/tcb/wxpayapi';
import { MD5_MERCHANT, startEnv } from '../../wxpay/fixtures';

/** Set by a test to stand in for what providersFromConfig builds (or throws). */
const build = vi.hoisted(() => ({ instead: undefined as (() => unknown) | undefined }));
vi.mock('../../../cloudfunctions/shared/providers', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../cloudfunctions/shared/providers')>();
  return {
    ...real,
    providersFromConfig: (...args: Parameters<typeof real.providersFromConfig>) =>
      build.instead ? build.instead() : real.providersFromConfig(...args),
  };
});

/** What the emulator's cloudPay answers (cloud.cloudPay.<api>): set per test. */
let payApi: WxPayApiHandler = () => ({ json: { returnCode: 'FAIL', returnMsg: 'not set up' } });

const CONFIG = {
  WXPAY_APPID: 'wx0123456789abcdef',
  WXPAY_MCHID: '1900000109',
  WXPAY_API_KEY: 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6',
  WXPAY_SIGN_TYPE: 'HMAC-SHA256',
  WXPAY_BASE_URL: 'http://127.0.0.1:9',
  WXPAY_NOTIFY_URL: 'http://127.0.0.1:9/pay/notify',
  WXPAY_REFUND_NOTIFY_URL: 'http://127.0.0.1:9/refund/notify',
  ADMIN_OPENIDS: 'o_admin',
};
const CONTEXT_KEYS = ['WX_OPENID', 'WX_APPID', 'WX_CLIENTIP', 'WX_UNIONID'];
const TEMPLATE = { id: 'T_REFUND', title: '退款通知', keywords: [{ key: 'thing1', name: '商品' }] };
/** A budget that ends well after any test: WeChat calls are bounded only by their own timeout. */
const LATER: Budget = { endsAtMs: Date.now() + 3_600_000, callDeadlineMs: Date.now() + 3_500_000 };

let emu: TcbEmulator;
let lines: Record<string, unknown>[];
let restoreSink: (line: string) => void;
const saved = { ...process.env };

/** What the platform puts in the environment of one invocation, where getWXContext() reads it. */
function invocation(ctx: { OPENID?: string; APPID?: string; SOURCE?: string }): void {
  process.env['WX_CONTEXT_KEYS'] = CONTEXT_KEYS.join(',');
  for (const k of CONTEXT_KEYS) delete process.env[k];
  if (ctx.OPENID !== undefined) process.env['WX_OPENID'] = ctx.OPENID;
  if (ctx.APPID !== undefined) process.env['WX_APPID'] = ctx.APPID;
  if (ctx.SOURCE !== undefined) process.env['TCB_SOURCE'] = ctx.SOURCE;
  else delete process.env['TCB_SOURCE'];
}

let configured: string[] = [];
function setConfig(values: Record<string, string | undefined>): void {
  for (const k of [...Object.keys(CONFIG), ...configured]) delete process.env[k];
  configured = Object.keys(values);
  for (const [k, v] of Object.entries(values)) if (v !== undefined) process.env[k] = v;
}

beforeAll(async () => {
  emu = await startTcbEmulator({
    collections: ['orders', 'caller_limits'],
    subscribe: { templates: [TEMPLATE] },
    wxPayApi: (call) => payApi(call),
  });
  Object.assign(process.env, {
    TENCENTCLOUD_RUNENV: 'SCF',
    TENCENTCLOUD: 'true',
    TENCENTCLOUD_REGION: 'ap-shanghai',
    TENCENTCLOUD_SECRETID: 'local',
    TENCENTCLOUD_SECRETKEY: 'local',
    SCF_NAMESPACE: 'local',
    TCB_ENV: 'local',
    SILENCE: 'true',
    TCB_CONTEXT_CNFG: JSON.stringify({ URL: emu.serviceUrl }),
  });
});
afterAll(async () => {
  process.env = saved;
  await emu.close();
});
beforeEach(() => {
  lines = [];
  restoreSink = setLogSink((l) => lines.push(JSON.parse(l)));
  setConfig(CONFIG);
  invocation({});
});
afterEach(() => {
  setLogSink(restoreSink);
  delete (globalThis as { __FUNCTION_TIMEOUT_MS__?: unknown }).__FUNCTION_TIMEOUT_MS__;
  build.instead = undefined;
  vi.restoreAllMocks();
});

const httpEvent = (body: string, extra: Record<string, unknown> = {}) => ({
  httpMethod: 'POST',
  headers: { 'content-type': 'text/xml' },
  body,
  isBase64Encoded: false,
  ...extra,
});

describe('cloud', () => {
  it('reads the caller from the platform environment, fresh on every call', () => {
    invocation({ OPENID: 'o_one', APPID: 'wx_one', SOURCE: 'wx_client' });
    expect(getWxContext()).toMatchObject({
      OPENID: 'o_one',
      APPID: 'wx_one',
      SOURCE: 'wx_client',
      ENV: 'local',
    });
    invocation({ SOURCE: 'wx_trigger' });
    const timer = getWxContext();
    expect(timer.OPENID).toBeUndefined();
    expect(timer.SOURCE).toBe('wx_trigger');
  });

  it('gives a database where a missing document reads as null, not an error', async () => {
    await rawDatabase()
      .collection('orders')
      .add({ data: { _id: 'c1', v: 1 } });
    const store = new Store(rawDatabase());
    expect(await store.get('orders', 'c1')).toEqual({ _id: 'c1', v: 1 });
    expect(await store.get('orders', 'missing')).toBeNull();
  });

  it('initialises the SDK on first use in a fresh instance', async () => {
    // A cold start: this module anew (and, in the mutation run, the SDK anew too).
    vi.resetModules();
    const fresh = await import('../../../cloudfunctions/shared/runtime/cloud');
    expect(await new Store(fresh.rawDatabase()).get('orders', 'c1')).toEqual({ _id: 'c1', v: 1 });
  });

  it('talks to the environment the function runs in, not the account default', async () => {
    const read = emu.faults.pause({ op: 'get', collection: 'orders' });
    const pending = new Store(rawDatabase()).get('orders', 'c1');
    const held = await read.reached();
    expect(held.request.env).toBe('local');
    held.release();
    await pending;
  });
});

describe('wiring', () => {
  it('validates configuration once and gives every invocation its own store and budget', () => {
    const deps = wiring('createOrder', { wxpay: true, calls: true });
    const a = deps(LATER);
    const other = { endsAtMs: LATER.endsAtMs + 1, callDeadlineMs: LATER.callDeadlineMs + 1 };
    const b = deps(other);
    expect(a.store).toBeInstanceOf(Store);
    expect(a.store).not.toBe(b.store);
    expect(a.config).toBe(b.config);
    expect(a.config.wxpay).toMatchObject({ appid: CONFIG.WXPAY_APPID, signType: 'HMAC-SHA256' });
    expect(a.config.adminOpenids.has('o_admin')).toBe(true);
    expect(a.budget).toBe(LATER);
    expect(b.budget).toBe(other);
    expect(a.wxpay).toBeDefined();
    expect(b.wxpay).toBeDefined();
    expect(a).not.toHaveProperty('notices');
    expect(a.random(24)).toMatch(/^[A-Za-z0-9]{24}$/);
    expect(Math.abs(a.now() - Date.now())).toBeLessThan(1000);
    expect(lines).toEqual([]);
  });

  it('builds the payment providers only for a function that talks to WeChat Pay', () => {
    expect(wiring('listProducts', {})(LATER).wxpay).toBeUndefined();
    // A notify function verifies with its provider and calls nothing: it has one all the same.
    const notify = wiring('payNotify', { wxpay: true })(LATER).wxpay;
    expect(notify?.current.name).toBe('v2');
    expect(Object.keys(notify?.byName ?? {})).toEqual(['v2']);
    expect(wiring('queryOrder', { wxpay: true, calls: true })(LATER).wxpay?.current.name).toBe('v2');
  });

  it('hands the WeChat Pay client the configured CA and client certificate', async () => {
    const env = await startEnv();
    try {
      setConfig({
        ...CONFIG,
        WXPAY_APPID: MD5_MERCHANT.appid,
        WXPAY_MCHID: MD5_MERCHANT.mchId,
        WXPAY_API_KEY: MD5_MERCHANT.apiKey,
        WXPAY_SIGN_TYPE: 'MD5',
        WXPAY_BASE_URL: env.sim.url,
        WXPAY_CA_PEM: readFileSync(env.certs.caCertPath, 'utf8'),
        WXPAY_CERT_PEM: readFileSync(env.certs.certPath, 'utf8'),
        WXPAY_KEY_PEM: readFileSync(env.certs.keyPath, 'utf8'),
      });
      const { wxpay } = wiring('approveRefund', { wxpay: true, cert: true })(LATER);
      // WeChat Pay's own answer, so TLS (its CA) and mutual TLS (our certificate) both worked.
      await expect(wxpay!.current.queryPayment('NOSUCHORDER1')).rejects.toMatchObject({
        providerCode: 'ORDERNOTEXIST',
      });
      await expect(
        wxpay!.current.refund({ outTradeNo: 'NOSUCHORDER1', outRefundNo: 'R1', totalFen: 1, refundFen: 1 }),
      ).rejects.toMatchObject({ providerCode: 'ORDERNOTEXIST' });
    } finally {
      await env.close();
    }
  });

  it('builds every enabled provider, cloudPay through the SDK’s cloud.cloudPay of this environment', async () => {
    const seen: WxPayApiCall[] = [];
    payApi = (call) => {
      seen.push(call);
      return { json: { returnCode: 'FAIL', returnMsg: 'SYSTEMERROR' } };
    };
    setConfig({ ...CONFIG, WXPAY_PROVIDER: 'cloudpay', WXPAY_KEEP_PROVIDERS: 'v2' });
    const { wxpay } = wiring('queryOrder', { wxpay: true, calls: true })(LATER);
    expect(wxpay?.current.name).toBe('cloudpay');
    expect(Object.keys(wxpay?.byName ?? {}).sort()).toEqual(['cloudpay', 'v2']);
    await expect(wxpay!.current.queryPayment('A1')).rejects.toThrow();
    expect(seen).toMatchObject([{ apiName: 'queryOrder', envName: 'local', data: { out_trade_no: 'A1' } }]);
    expect(seen[0]!.appid).toBeUndefined();
    // A shared environment (资源复用) names the mini-program as cloud.cloudPay({appid}).
    setConfig({ ...CONFIG, WXPAY_PROVIDER: 'cloudpay', WXPAY_CLOUDPAY_APPID: 'wx1111111111111111' });
    const shared = wiring('queryOrder', { wxpay: true, calls: true })(LATER).wxpay;
    await expect(shared!.current.queryPayment('A2')).rejects.toThrow();
    expect(seen[1]).toMatchObject({ apiName: 'queryOrder', appid: 'wx1111111111111111' });
  });

  it('refuses every invocation with CONFIG_INVALID when a provider cannot be built from valid settings', () => {
    build.instead = () => {
      throw new Error('key material unreadable');
    };
    const deps = wiring('refundNotify', { wxpay: true });
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'error',
        event: 'config.invalid',
        fn: 'refundNotify',
        problems: ['WeChat Pay could not be set up: key material unreadable'],
      }),
    ]);
    for (let i = 0; i < 2; i++)
      expect(() => deps(LATER)).toThrow(
        expect.objectContaining({
          code: 'CONFIG_INVALID',
          problems: ['WeChat Pay could not be set up: key material unreadable'],
        }),
      );
    expect(lines).toHaveLength(1);
    // A function that does not talk to WeChat Pay never builds one, so never fails on it.
    expect(wiring('listOrders', {})(LATER).store).toBeInstanceOf(Store);
  });

  it('gives no WeChat Pay to a function whose current provider was not built', () => {
    build.instead = () => ({});
    expect(wiring('queryOrder', { wxpay: true, calls: true })(LATER).wxpay).toBeUndefined();
  });

  it('names every configuration problem once at cold start and refuses every invocation', () => {
    setConfig({ ...CONFIG, WXPAY_API_KEY: 'short', WXPAY_MCHID: undefined });
    const deps = wiring('payNotify', { wxpay: true });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', event: 'config.invalid', fn: 'payNotify' });
    expect(lines[0]!['problems']).toEqual([
      expect.stringMatching(/^WXPAY_MCHID is missing/),
      expect.stringMatching(/^WXPAY_API_KEY must be exactly 32/),
    ]);
    for (let i = 0; i < 2; i++)
      expect(() => deps(LATER)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    expect(lines).toHaveLength(1);
  });

  it('lets errors that are not configuration problems escape at cold start', () => {
    process.env['ORDER_EXPIRE_MINUTES'] = '30';
    const broken = new Proxy(process.env, {
      get(target, key) {
        if (key === 'WXPAY_APPID') throw new RangeError('env exploded');
        return Reflect.get(target, key);
      },
    });
    const real = process.env;
    process.env = broken;
    try {
      expect(() => wiring('createOrder', { wxpay: true })).toThrow(RangeError);
    } finally {
      process.env = real;
    }
  });
});

describe('callableFunction', () => {
  it('answers with the handler’s data, the caller coming from the context', async () => {
    invocation({ OPENID: 'o_shopper', APPID: CONFIG.WXPAY_APPID, SOURCE: 'wx_client' });
    const main = callableFunction('whoami', {}, async (deps: Deps, event, caller) => ({
      event,
      openid: caller.openid,
      admin: deps.config.adminOpenids.has(caller.openid ?? ''),
    }));
    expect(await main({ x: 1, userInfo: { openId: 'o_admin' } })).toEqual({
      ok: true,
      data: { event: { x: 1 }, openid: 'o_shopper', admin: false },
    });
  });

  it('answers CONFIG_INVALID naming the problem on every call when configuration is bad', async () => {
    setConfig({ ...CONFIG, WXPAY_SIGN_TYPE: 'SHA1' });
    const main = callableFunction('createOrder', { wxpay: true }, async () => 'never');
    for (let i = 0; i < 2; i++) {
      const r = await main({});
      expect(r).toMatchObject({ ok: false, error: { code: 'CONFIG_INVALID' } });
      expect(!r.ok && r.error.message).toMatch(/WXPAY_SIGN_TYPE must be MD5 or HMAC-SHA256/);
    }
  });
});

/** The answer of an HTTP notify (a cloudPay callback is answered with `{errcode, errmsg}` instead). */
function httpAnswer(r: IntegrationResponse | CallbackAnswer): IntegrationResponse {
  if (!('statusCode' in r)) throw new Error(`not an HTTP answer: ${JSON.stringify(r)}`);
  return r;
}

/** A handler's reply carrying `text` as an HTTP body, for tests that read a value back. */
const textReply = (text: string): NotifyReply => ({
  reply: { transport: 'http', statusCode: 200, headers: {}, body: text },
  ok: true,
  outcome: 'x',
});

describe('notifyFunction', () => {
  const REPLY =
    '<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>';
  const V3_HEADERS = {
    'content-type': 'application/json',
    'Wechatpay-Signature': 'c2lnbmF0dXJl',
    'Wechatpay-Serial': 'PUB_KEY_ID_0114232134912410000000000000',
  };
  function notify(handler?: (deps: Deps, input: NotificationInput) => Promise<NotifyReply>) {
    const calls: string[] = [];
    const inputs: NotificationInput[] = [];
    const main = notifyFunction(
      'payNotify',
      { wxpay: true },
      handler ??
        (async (_deps, input) => {
          inputs.push(input);
          calls.push(input.transport === 'http' ? Buffer.from(input.body).toString('utf8') : 'function');
          const reply = input.transport === 'http' ? v2Reply({ ok: true }) : cloudPayReply({ ok: true });
          return { reply, ok: true, outcome: 'PAID' };
        }),
    );
    return { main, calls, inputs };
  }

  it('answers the handler’s XML as an integration response and logs the outcome', async () => {
    const { main, calls, inputs } = notify();
    expect(await main(httpEvent('<xml>hi</xml>'))).toEqual({
      statusCode: 200,
      headers: { 'content-type': 'text/xml; charset=utf-8' },
      body: REPLY,
      isBase64Encoded: false,
    });
    expect(calls).toEqual(['<xml>hi</xml>']);
    expect(inputs[0]).toMatchObject({
      transport: 'http',
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
    });
    expect(lines.at(-1)).toMatchObject({
      level: 'info',
      event: 'payNotify.done',
      outcome: 'PAID',
      provider: 'v2',
      dbRequests: 0,
    });
    const ms = lines.at(-1)!['ms'] as number;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(60_000);
  });

  it('decodes a base64 body, accepts a lower-case method, and passes an absent body as empty', async () => {
    const { main, calls, inputs } = notify();
    await main(
      httpEvent(Buffer.from('<xml>64</xml>').toString('base64'), {
        isBase64Encoded: true,
        httpMethod: 'post',
      }),
    );
    await main(httpEvent('', { body: null, headers: undefined }));
    expect(calls).toEqual(['<xml>64</xml>', '']);
    expect(inputs.map((i) => i.transport === 'http' && i.method)).toEqual(['POST', 'POST']);
    expect(inputs[1]).toMatchObject({ headers: {} });
  });

  it('refuses a call from the mini-program (it carries an OPENID) without running the handler', async () => {
    const { main, calls } = notify();
    // Whatever it sends and whatever source it names.
    for (const source of ['wx_client', 'wx_paycallback']) {
      invocation({ OPENID: 'o_shopper', SOURCE: source });
      for (const e of [httpEvent('<xml/>'), { outTradeNo: 'A1' }]) {
        const r = httpAnswer(await main(e));
        expect(r.statusCode).toBe(400);
        expect(r.headers['content-type']).toBe('text/xml; charset=utf-8');
        expect(r.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
        expect(r.body).toContain('not a notify');
      }
    }
    expect(calls).toEqual([]);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toEqual(
      expect.objectContaining({
        level: 'warn',
        event: 'payNotify.rejected',
        reason: 'NOT_A_NOTIFY',
        source: 'wx_client',
      }),
    );
  });

  it('refuses an event that is neither an HTTP request nor a cloudPay callback, and any method but POST', async () => {
    const { main, calls } = notify();
    for (const source of [undefined, 'wx_client', 'wx_paycallbacks', 'wx_trigger']) {
      invocation(source === undefined ? {} : { SOURCE: source });
      for (const e of [{ body: '<xml/>' }, null, 'x']) {
        const r = httpAnswer(await main(e));
        expect(r.statusCode).toBe(400);
        expect(r.headers['content-type']).toBe('text/xml; charset=utf-8');
      }
    }
    invocation({});
    const get = httpAnswer(await main(httpEvent('<xml/>', { httpMethod: 'GET' })));
    expect(get.statusCode).toBe(405);
    expect(get.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(get.body).toContain('POST only');
    expect(calls).toEqual([]);
  });

  it('refuses a body over the XML limit before decoding it, and takes one exactly at the limit', async () => {
    const { main, calls } = notify();
    const limit = Math.ceil((XML_MAX_BYTES * 4) / 3) + 4;
    const over = httpAnswer(await main(httpEvent('a'.repeat(limit + 1))));
    expect(over.statusCode).toBe(413);
    expect(over.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(over.body).toContain('body too large');
    expect(lines.at(-1)).toMatchObject({
      level: 'warn',
      event: 'payNotify.rejected',
      reason: 'BODY_TOO_LARGE',
      bytes: limit + 1,
    });
    expect(httpAnswer(await main(httpEvent('a'.repeat(limit)))).statusCode).toBe(200);
    expect(calls.map((c) => c.length)).toEqual([limit]);
  });

  it('answers an APIv3 notify’s refusals in APIv3’s JSON, its size limit checked before decoding', async () => {
    const { main, calls, inputs } = notify(async (_deps, input) => {
      inputs.push(input);
      calls.push(input.transport === 'http' ? Buffer.from(input.body).toString('utf8') : '');
      return { reply: v3Reply({ ok: true }), ok: true, outcome: 'PAID' };
    });
    const v3 = (body: string, extra: Record<string, unknown> = {}) =>
      httpEvent(body, { headers: V3_HEADERS, ...extra });
    const get = httpAnswer(await main(v3('{}', { httpMethod: 'GET' })));
    expect(get).toEqual({
      statusCode: 405,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ code: 'FAIL', message: 'POST only' }),
      isBase64Encoded: false,
    });
    const limit = Math.ceil((V3_NOTIFY_MAX_BYTES * 4) / 3) + 4;
    const over = httpAnswer(await main(v3('a'.repeat(limit + 1))));
    expect(over.statusCode).toBe(413);
    expect(JSON.parse(over.body)).toEqual({ code: 'FAIL', message: 'body too large' });
    expect(httpAnswer(await main(v3('a'.repeat(limit)))).statusCode).toBe(204);
    // The bytes as sent, with the headers WeChat signed them under.
    const sent = '{"id":"EV-1","resource":{}}';
    expect(await main(v3(sent))).toEqual({ statusCode: 204, headers: {}, body: '', isBase64Encoded: false });
    expect(calls.slice(1)).toEqual([sent]);
    expect(inputs[1]).toMatchObject({ transport: 'http', headers: V3_HEADERS });
    expect(lines.at(-1)).toMatchObject({ event: 'payNotify.done', provider: 'v3' });
  });

  it('answers FAIL (so WeChat retries) when the handler throws, logging the error', async () => {
    const { main } = notify(async () => {
      throw new AppError('DB_ERROR', 'database update orders failed');
    });
    const r = httpAnswer(await main(httpEvent('<xml/>')));
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(r.body).toContain('temporary error');
    expect(lines.at(-1)).toMatchObject({
      level: 'error',
      event: 'payNotify.error',
      error: { code: 'DB_ERROR' },
      dbRequests: 0,
    });
    // APIv3 asks for another try with a 5xx.
    expect(await main(httpEvent('{}', { headers: V3_HEADERS }))).toEqual({
      statusCode: 500,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ code: 'FAIL', message: 'temporary error' }),
      isBase64Encoded: false,
    });
  });

  it('answers FAIL when configuration is bad, without running the handler', async () => {
    setConfig({ ...CONFIG, WXPAY_APPID: 'not-an-appid' });
    const { main, calls } = notify();
    const r = httpAnswer(await main(httpEvent('<xml/>')));
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(r.body).toContain('merchant configuration error');
    expect(calls).toEqual([]);
    expect(lines.at(-1)).toMatchObject({
      level: 'error',
      event: 'payNotify.config_invalid',
      error: { code: 'CONFIG_INVALID' },
    });
    const v3 = httpAnswer(await main(httpEvent('{}', { headers: V3_HEADERS })));
    expect(v3.statusCode).toBe(500);
    expect(JSON.parse(v3.body)).toEqual({ code: 'FAIL', message: 'merchant configuration error' });
  });

  describe('cloudPay callbacks', () => {
    const CALLBACK = { returnCode: 'SUCCESS', outTradeNo: 'A1', subMchId: '1900000109' };

    it('passes the platform’s event and source to the handler and answers its {errcode}', async () => {
      const { main, inputs } = notify();
      for (const source of ['wx_paycallback', 'scf,wx_paycallback']) {
        invocation({ SOURCE: source });
        expect(await main(CALLBACK)).toEqual({ errcode: 0, errmsg: 'OK' });
      }
      expect(inputs).toEqual([
        { transport: 'function', event: CALLBACK, source: 'wx_paycallback' },
        { transport: 'function', event: CALLBACK, source: 'scf,wx_paycallback' },
      ]);
      expect(lines.at(-1)).toMatchObject({ event: 'payNotify.done', outcome: 'PAID', provider: 'cloudpay' });
    });

    it('answers a failure the platform retries when the handler throws or configuration is bad', async () => {
      invocation({ SOURCE: 'wx_paycallback' });
      const failing = notify(async () => {
        throw new AppError('DB_ERROR', 'database update orders failed');
      });
      expect(await failing.main(CALLBACK)).toEqual({ errcode: -1, errmsg: 'temporary error' });
      setConfig({ ...CONFIG, WXPAY_APPID: 'not-an-appid' });
      const bad = notify();
      expect(await bad.main(CALLBACK)).toEqual({ errcode: -1, errmsg: 'merchant configuration error' });
      expect(bad.calls).toEqual([]);
    });
  });
});

describe('timerFunction', () => {
  const TIMER = { Type: 'Timer', TriggerName: 'reconcileEvery5Min', Time: '2026-01-01T00:00:00Z' };

  it('runs on its trigger and returns the handler’s result', async () => {
    invocation({ SOURCE: 'wx_trigger' });
    const main = timerFunction('reconcile', {}, async (deps, event) => ({ event, hasStore: !!deps.store }));
    expect(await main(TIMER)).toEqual({ event: TIMER, hasStore: true });
  });

  it('refuses a mini-program caller, a client source (also chained) and an HTTP event', async () => {
    let ran = 0;
    const main = timerFunction('reconcile', {}, async () => {
      ran++;
      return 'ran';
    });
    const refused = { error: 'FORBIDDEN: this function runs on its timer trigger' };
    invocation({ OPENID: 'o_shopper' });
    expect(await main(TIMER)).toEqual(refused);
    for (const source of ['wx_client', 'wx_client,scf', 'scf,wx_client']) {
      invocation({ SOURCE: source });
      expect(await main(TIMER)).toEqual(refused);
    }
    invocation({ SOURCE: 'wx_trigger' });
    expect(await main({ httpMethod: 'POST', body: '' })).toEqual(refused);
    expect(ran).toBe(0);
    expect(lines.filter((l) => l['event'] === 'reconcile.rejected')).toHaveLength(5);
    expect(lines[1]).toMatchObject({ level: 'warn', reason: 'NOT_TIMER', source: 'wx_client' });
    // A source that merely contains the word is not the client.
    invocation({ SOURCE: 'wx_clientele' });
    expect(await main(TIMER)).toBe('ran');
    invocation({});
    expect(await main(TIMER)).toBe('ran');
  });

  it('runs with an event that is empty or not an object (a manual trigger)', async () => {
    invocation({ SOURCE: 'wx_trigger' });
    const seen: unknown[] = [];
    const main = timerFunction('reconcile', {}, async (_deps, event) => {
      seen.push(event);
      return 'ran';
    });
    for (const e of [null, undefined, 'now', 5]) expect(await main(e)).toBe('ran');
    expect(seen).toEqual([null, undefined, 'now', 5]);
  });

  it('returns the error message instead of throwing, and logs it', async () => {
    invocation({ SOURCE: 'wx_trigger' });
    const main = timerFunction('reconcile', {}, async () => {
      throw new Error('orderquery timed out');
    });
    expect(await main(TIMER)).toEqual({ error: 'orderquery timed out' });
    expect(lines.at(-1)).toMatchObject({
      level: 'error',
      event: 'reconcile.error',
      error: { name: 'Error', message: 'orderquery timed out' },
    });
    for (const thrown of ['plain string', undefined, null]) {
      const odd = timerFunction('reconcile', {}, async () => {
        throw thrown;
      });
      expect(await odd(TIMER)).toEqual({ error: String(thrown) });
    }
  });

  it('returns the configuration error instead of running', async () => {
    invocation({ SOURCE: 'wx_trigger' });
    setConfig({ ...CONFIG, WXPAY_NOTIFY_URL: 'http://127.0.0.1:9/n?x=1' });
    const main = timerFunction('reconcile', { wxpay: true }, async () => 'ran');
    expect(await main(TIMER)).toEqual({
      error: expect.stringMatching(/WXPAY_NOTIFY_URL must not have a query string/),
    });
  });
});

describe('budgetFor', () => {
  const built = (v: unknown) => {
    (globalThis as { __FUNCTION_TIMEOUT_MS__?: unknown }).__FUNCTION_TIMEOUT_MS__ = v;
  };

  it('ends at the function’s timeout, keeping back the time to store a WeChat answer', () => {
    expect(budgetFor(1_000_000, undefined, 20_000)).toEqual({
      endsAtMs: 1_020_000,
      callDeadlineMs: 1_018_000,
    });
    expect(budgetFor(1_000_000, {}, 60_000)).toEqual({ endsAtMs: 1_060_000, callDeadlineMs: 1_054_000 });
  });

  it('takes the timeout the build wrote into the bundle, and CloudBase’s 3 s without one', () => {
    expect(budgetFor(0)).toEqual({ endsAtMs: 3000, callDeadlineMs: 1500 });
    built(10_000);
    expect(budgetFor(0)).toEqual({ endsAtMs: 10_000, callDeadlineMs: 8500 });
    for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, '10000', null]) {
      built(bad);
      expect(budgetFor(0).endsAtMs).toBe(3000);
    }
  });

  it('prefers the platform’s own limit, unless it is not a positive number', () => {
    expect(budgetFor(0, { time_limit_in_ms: 6000 }, 20_000)).toEqual({
      endsAtMs: 6000,
      callDeadlineMs: 4500,
    });
    expect(budgetFor(0, { time_limit_in_ms: '6000' }, 20_000).endsAtMs).toBe(6000);
    for (const bad of [0, -1, 'soon', null, undefined, Number.POSITIVE_INFINITY]) {
      expect(budgetFor(0, { time_limit_in_ms: bad }, 20_000).endsAtMs).toBe(20_000);
    }
    expect(budgetFor(0, null, 20_000).endsAtMs).toBe(20_000);
  });

  it('ends sooner when the platform says less time is left (asked as a method of the context)', () => {
    const now = Date.now();
    function getRemainingTimeInMillis(this: { left: unknown }) {
      return this.left;
    }
    const b = budgetFor(now, { left: 2000, getRemainingTimeInMillis }, 20_000);
    expect(b.endsAtMs).toBeGreaterThanOrEqual(now + 2000);
    expect(b.endsAtMs).toBeLessThan(now + 3000);
    // The time kept back follows the function's timeout, not what is left of it.
    expect(b.endsAtMs - b.callDeadlineMs).toBe(2000);
    for (const left of [60_000, 0, -1, Number.NaN, Number.POSITIVE_INFINITY, 'x']) {
      expect(budgetFor(now, { left, getRemainingTimeInMillis }, 20_000).endsAtMs).toBe(now + 20_000);
    }
    expect(budgetFor(now, { getRemainingTimeInMillis: 2000 }, 20_000).endsAtMs).toBe(now + 20_000);
  });

  it('checks at cold start that a WeChat call fits in the timeout the build wrote into the bundle', () => {
    built(3000);
    const deps = wiring('queryOrder', { wxpay: true, calls: true });
    expect(() => deps(LATER)).toThrow(
      /WXPAY_TIMEOUT_MS \(8000 ms\) does not fit a function with a 3 s timeout/,
    );
    built(20_000);
    expect(wiring('queryOrder', { wxpay: true, calls: true })(LATER).wxpay).toBeDefined();
  });

  it('ends every WeChat Pay call by the invocation’s call deadline', async () => {
    const now = Date.now();
    const { wxpay } = wiring('queryOrder', { wxpay: true, calls: true })({
      endsAtMs: now + 100,
      callDeadlineMs: now - 1,
    });
    await expect(wxpay!.current.queryPayment('A1')).rejects.toThrow(
      /no time left before the function's deadline/,
    );
  });

  it('gives each call of every kind of function the budget of its own invocation', async () => {
    const left = (d: Deps) => d.budget.endsAtMs - Date.now();
    invocation({ OPENID: 'o_budget', SOURCE: 'wx_client' });
    const c = callableFunction('queryOrder', {}, async (d) => left(d));
    for (const limit of [6000, 20_000]) {
      const r = await c({}, { time_limit_in_ms: limit });
      expect(r.ok && r.data).toBeGreaterThan(limit - 1000);
      expect(r.ok && r.data).toBeLessThanOrEqual(limit);
    }
    invocation({ SOURCE: 'wx_trigger' });
    const t = timerFunction('reconcile', {}, async (d) => left(d));
    expect(await t({}, { time_limit_in_ms: 6000 })).toBeGreaterThan(5000);
    expect(await t({}, { time_limit_in_ms: 6000 })).toBeLessThanOrEqual(6000);
    invocation({});
    const n = notifyFunction('payNotify', { wxpay: true }, async (d) => textReply(String(left(d))));
    const ms = Number(httpAnswer(await n(httpEvent('<xml/>'), { time_limit_in_ms: 6000 })).body);
    expect(ms).toBeGreaterThan(5000);
    expect(ms).toBeLessThanOrEqual(6000);
  });
});

describe('notices wiring', () => {
  it('gives a function the notice kinds it renders and the sender its index.ts adds, made once per cold start', () => {
    let made = 0;
    const send: SubscribeSend = async () => ({ ok: true });
    const deps = wiring(
      'applyRefund',
      { notices: ['refund_applied'] },
      {
        sendNotices: () => {
          made++;
          return send;
        },
      },
    );
    const a = deps(LATER);
    const b = deps(LATER);
    expect(a.notices).toStrictEqual({ config: a.config.notices, kinds: ['refund_applied'], send });
    expect(a.config.notices.miniprogramState).toBe('formal');
    expect(b.notices?.send).toBe(send);
    expect(made).toBe(1);
    // Without a sender, notices are written for reconcile to send.
    expect(wiring('reconcile', { notices: 'all' })(LATER).notices).toStrictEqual({
      config: a.config.notices,
      kinds: NOTICE_KINDS,
    });
  });

  it('gives no notices to a function that writes none, and never makes its sender', () => {
    let made = 0;
    const d = wiring(
      'listOrders',
      {},
      {
        sendNotices: () => {
          made++;
          return async () => ({ ok: true });
        },
      },
    )(LATER);
    expect(d).not.toHaveProperty('notices');
    expect(made).toBe(0);
  });

  it('hands the sender through each kind of function', async () => {
    const send: SubscribeSend = async () => ({ ok: true });
    const sendNotices = () => send;
    invocation({ OPENID: 'o_notices', SOURCE: 'wx_client' });
    const c = callableFunction('approveRefund', { notices: 'all' }, async (d) => d.notices?.send === send, {
      sendNotices,
    });
    expect(await c({})).toEqual({ ok: true, data: true });
    invocation({ SOURCE: 'wx_trigger' });
    const t = timerFunction('reconcile', { notices: 'all' }, async (d) => d.notices?.send === send, {
      sendNotices,
    });
    expect(await t({})).toBe(true);
    invocation({});
    const n = notifyFunction(
      'refundNotify',
      { wxpay: true, notices: 'all' },
      async (d) => textReply(String(d.notices?.send === send)),
      { sendNotices },
    );
    expect(httpAnswer(await n(httpEvent('<xml/>'))).body).toBe('true');
  });
});

describe('per-caller limits', () => {
  const LIMITS = {
    LIMIT_CREATE_ORDER_PER_MINUTE: '1',
    LIMIT_APPLY_REFUND_PER_MINUTE: '1',
    LIMIT_READS_PER_MINUTE: '1',
    LIMIT_ADMIN_PER_MINUTE: '2',
  };
  beforeEach(() => setConfig({ ...CONFIG, ...LIMITS }));
  const limitsOf = (openid: string) =>
    new Store(rawDatabase()).get<{ calls?: Record<string, number[]> }>('caller_limits', openid);
  const count = (body: () => void) => async () => {
    body();
    return 'ran';
  };

  it('counts a call against the caller’s limit of its kind before the handler runs, and refuses the one over it', async () => {
    let ran = 0;
    const main = callableFunction(
      'listOrders',
      {},
      count(() => ran++),
      { limit: 'reads' },
    );
    invocation({ OPENID: 'o_limits1', SOURCE: 'wx_client' });
    expect(await main({})).toEqual({ ok: true, data: 'ran' });
    const r = await main({});
    expect(r).toMatchObject({
      ok: false,
      error: { code: 'RATE_LIMITED', message: 'too many reads calls: at most 1 a minute' },
    });
    const wait = r.ok ? 0 : r.error.retryAfterSeconds;
    expect(wait).toBeGreaterThanOrEqual(59);
    expect(wait).toBeLessThanOrEqual(60);
    expect(ran).toBe(1);
    expect((await limitsOf('o_limits1'))?.calls).toEqual({ reads: [expect.any(Number)] });
    // Another caller has a limit of their own.
    invocation({ OPENID: 'o_limits2', SOURCE: 'wx_client' });
    expect(await main({})).toEqual({ ok: true, data: 'ran' });
    expect(ran).toBe(2);
  });

  it('counts no call without an openid, and no call of a function without a limit', async () => {
    let ran = 0;
    invocation({});
    const limited = callableFunction(
      'listOrders',
      {},
      count(() => ran++),
      { limit: 'reads' },
    );
    for (let i = 0; i < 3; i++) expect(await limited({})).toMatchObject({ ok: true });
    invocation({ OPENID: 'o_limits3', SOURCE: 'wx_client' });
    const free = callableFunction(
      'whoami',
      {},
      count(() => ran++),
    );
    for (let i = 0; i < 3; i++) expect(await free({})).toMatchObject({ ok: true });
    expect(ran).toBe(6);
    expect(await limitsOf('o_limits3')).toBeNull();
  });

  it('leaves a non-admin’s call of an admin-only function to the handler’s refusal, uncounted, and counts an admin’s', async () => {
    let ran = 0;
    const adminOnly = callableFunction(
      'approveRefund',
      {},
      count(() => ran++),
      { limit: 'reads', adminOnly: true },
    );
    invocation({ OPENID: 'o_limits4', SOURCE: 'wx_client' });
    for (let i = 0; i < 3; i++) expect(await adminOnly({})).toMatchObject({ ok: true });
    expect(ran).toBe(3);
    expect(await limitsOf('o_limits4')).toBeNull();
    invocation({ OPENID: 'o_admin', SOURCE: 'wx_client' });
    for (let i = 0; i < 2; i++) expect(await adminOnly({})).toMatchObject({ ok: true });
    expect(await adminOnly({})).toMatchObject({
      ok: false,
      error: { code: 'RATE_LIMITED', message: 'too many reads calls: at most 2 a minute' },
    });
    expect(ran).toBe(5);
    // Not admin-only: the same shopper is counted.
    const open = callableFunction(
      'listOrders',
      {},
      count(() => ran++),
      { limit: 'reads', adminOnly: false },
    );
    invocation({ OPENID: 'o_limits4', SOURCE: 'wx_client' });
    expect(await open({})).toMatchObject({ ok: true });
    expect(await open({})).toMatchObject({ ok: false, error: { code: 'RATE_LIMITED' } });
    expect(ran).toBe(6);
  });
});

describe('subscribe messages', () => {
  const message = (touser: string): SubscribeMessage => ({
    touser,
    templateId: TEMPLATE.id,
    data: { thing1: { value: '苹果' } },
    miniprogramState: 'formal',
    lang: 'zh_CN',
  });

  it('go out through the SDK’s cloud call and reach the shopper’s inbox', async () => {
    emu.subscribe.grant('o_subscribe1', TEMPLATE.id);
    expect(await subscribeSender()({ ...message('o_subscribe1'), page: 'pages/order/order?id=A1' })).toEqual({
      ok: true,
    });
    expect(emu.subscribe.inbox('o_subscribe1')).toMatchObject([
      {
        templateId: TEMPLATE.id,
        page: 'pages/order/order?id=A1',
        miniprogramState: 'formal',
        lang: 'zh_CN',
        data: { thing1: '苹果' },
      },
    ]);
  });

  it('answer WeChat’s errcode when WeChat refuses', async () => {
    expect(await subscribeSender()(message('o_subscribe2'))).toEqual({
      ok: false,
      errCode: 43101,
      errMsg: expect.stringContaining('refuse'),
    });
  });

  it('pass every field, a page only when there is one, and read any failure', async () => {
    const sent: unknown[] = [];
    let failure: { thrown: unknown } | undefined;
    const cloud = {
      openapi: {
        subscribeMessage: {
          send: async (p: unknown) => {
            sent.push(p);
            if (failure) throw failure.thrown;
            return { errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok' };
          },
        },
      },
    };
    const send = sdkSubscribeSender(cloud);
    const m = message('o_subscribe3');
    expect(await send(m)).toEqual({ ok: true });
    expect(sent[0]).toStrictEqual({
      touser: 'o_subscribe3',
      templateId: TEMPLATE.id,
      data: m.data,
      miniprogramState: 'formal',
      lang: 'zh_CN',
    });
    await send({ ...m, page: 'pages/index/index' });
    expect(sent[1]).toMatchObject({ page: 'pages/index/index' });
    const cases: [unknown, { errCode: number; errMsg: string }][] = [
      [
        { errCode: 47003, errMsg: 'argument invalid', message: 'ignored' },
        { errCode: 47003, errMsg: 'argument invalid' },
      ],
      [new Error('socket hang up'), { errCode: -1, errMsg: 'socket hang up' }],
      [
        { errCode: '40003', message: 'as text' },
        { errCode: -1, errMsg: 'as text' },
      ],
      ['plain', { errCode: -1, errMsg: 'plain' }],
      [null, { errCode: -1, errMsg: 'null' }],
    ];
    for (const [thrown, answer] of cases) {
      failure = { thrown };
      expect(await send(m)).toEqual({ ok: false, ...answer });
    }
  });
});

/** The one bill source of a shop with one merchant account. */
function one(bills: BillSource | readonly BillSource[]): BillSource {
  if (Array.isArray(bills)) throw new Error(`${bills.length} bill sources`);
  return bills as BillSource;
}

describe('bill downloads', () => {
  const NO_BILL =
    '<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[No Bill Exist]]></return_msg></xml>';

  /** A WeChat that answers `answer` (No Bill Exist), from character `splitAt` on after `pauseMs`. */
  async function fakeBills(pauseMs = 0, answer = NO_BILL, splitAt = 20) {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString('utf8');
      });
      req.on('end', () => {
        seen.push(body);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write(answer.slice(0, splitAt));
        setTimeout(() => res.end(answer.slice(splitAt)), pauseMs);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      seen,
      url,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
  }

  it('asks WeChat for payments and refunds in one gzip download, with one downloader per cold start', async () => {
    const fake = await fakeBills();
    try {
      setConfig({ ...CONFIG, WXPAY_BASE_URL: fake.url });
      const d = wiring('billCheck', { wxpay: true, calls: true })(LATER);
      const a = withBills(d);
      expect(a.store).toBe(d.store);
      expect(a.config).toBe(d.config);
      expect(withBills(d).bills).toBe(a.bills);
      expect(await one(a.bills).download({ bill_date: '20260101', deadlineMs: Date.now() + 10_000 })).toEqual(
        {
          kind: 'no-bill',
          message: 'No Bill Exist',
        },
      );
      const { sign: _sign, nonce_str: _nonce, ...sent } = parseXml(fake.seen[0]!);
      expect(sent).toEqual({
        appid: CONFIG.WXPAY_APPID,
        mch_id: CONFIG.WXPAY_MCHID,
        bill_date: '20260101',
        bill_type: 'ALL',
        tar_type: 'GZIP',
        sign_type: 'HMAC-SHA256',
      });
      // Another cold start (its own configuration) gets its own downloader.
      expect(withBills(wiring('billCheck', { wxpay: true, calls: true })(LATER)).bills).not.toBe(a.bills);
    } finally {
      await fake.close();
    }
  });

  it('waits for the next piece of a bill twice WeChat Pay’s call timeout', async () => {
    const csv = '交易时间,公众账号ID\r\n`2026-01-01 10:00:00,`wx0123456789abcdef\r\n总交易单数\r\n`1\r\n';
    // The first piece is more than the 64 bytes that tell a bill from an XML answer.
    const fake = await fakeBills(600, csv, csv.indexOf('总'));
    try {
      setConfig({ ...CONFIG, WXPAY_BASE_URL: fake.url, WXPAY_TIMEOUT_MS: '500' });
      const { bills } = withBills(wiring('billCheck', { wxpay: true, calls: true })(LATER));
      const answer = await one(bills).download({ bill_date: '20260101', deadlineMs: Date.now() + 10_000 });
      const lines: string[] = [];
      if (answer.kind === 'bill') for await (const l of answer.lines) lines.push(l);
      // The 600 ms pause inside the bill did not end the download.
      expect(lines).toEqual(csv.trimEnd().split('\r\n'));
    } finally {
      await fake.close();
    }
  });

  it('reaches WeChat Pay over TLS with the configured CA', async () => {
    const env = await startEnv();
    try {
      setConfig({
        ...CONFIG,
        WXPAY_APPID: MD5_MERCHANT.appid,
        WXPAY_MCHID: MD5_MERCHANT.mchId,
        WXPAY_API_KEY: MD5_MERCHANT.apiKey,
        WXPAY_SIGN_TYPE: 'MD5',
        WXPAY_BASE_URL: env.sim.url,
        WXPAY_CA_PEM: readFileSync(env.certs.caCertPath, 'utf8'),
      });
      const { bills } = withBills(wiring('billCheck', { wxpay: true, calls: true })(LATER));
      // The simulator's own answer for a day without trades: TLS with its CA worked.
      expect(
        await one(bills).download({ bill_date: '20200101', deadlineMs: Date.now() + 10_000 }),
      ).toMatchObject({
        kind: expect.stringMatching(/^(no-bill|bill)$/),
      });
    } finally {
      await env.close();
    }
  });

  /** A provider that answers downloadBill with `answer` (text, or a thrown error), recording each call. */
  function billProvider(name: ProviderName, answer: () => string) {
    const calls: unknown[][] = [];
    const provider = {
      name,
      downloadBill: async (...args: unknown[]) => {
        calls.push(args);
        return answer();
      },
    } as unknown as PaymentProvider;
    return { provider, calls };
  }
  /** The billCheck wiring with the providers and provider settings of a shop using `byName`. */
  function billDeps(byName: Payments['byName'], providers: Partial<ProvidersConfig> = {}): Deps {
    const d = wiring('billCheck', { wxpay: true, calls: true })(LATER);
    const enabled = Object.keys(byName) as ProviderName[];
    return {
      ...d,
      config: { ...d.config, providers: { ...d.config.providers, enabled, ...providers } },
      wxpay: { current: byName[enabled[0]!]!, byName },
    };
  }
  const failure = (providerCode: string, description: string) =>
    new ProviderError({
      provider: 'v3',
      failure: 'definitive',
      reason: 'OTHER',
      providerCode,
      description,
      operation: '/v3/bill/tradebill',
    });
  const day = { bill_date: '20260102', deadlineMs: 1_767_000_000_000 };
  async function linesOf(answer: BillAnswer): Promise<string[]> {
    const out: string[] = [];
    if (answer.kind === 'bill') for await (const l of answer.lines) out.push(l);
    return out;
  }

  it('names the shop’s sub-merchant on the APIv2 bill in service-provider mode', () => {
    setConfig({ ...CONFIG, WXPAY_SUB_MCHID: '1900000119', WXPAY_SUB_APPID: 'wxsubmerchant00001' });
    const d = wiring('billCheck', { wxpay: true, calls: true })(LATER);
    const bill = one(withBills(d).bills);
    expect(bill.provider).toBe('v2');
    expect(bill.owner).toEqual({
      appid: 'wxsubmerchant00001',
      mchId: CONFIG.WXPAY_MCHID,
      subMchId: '1900000119',
    });
    // Without a sub-appid, the sub-merchant's orders are under the shop's own appid.
    setConfig({ ...CONFIG, WXPAY_SUB_MCHID: '1900000119' });
    const plain = one(withBills(wiring('billCheck', { wxpay: true, calls: true })(LATER)).bills);
    expect(plain.owner).toEqual({
      appid: CONFIG.WXPAY_APPID,
      mchId: CONFIG.WXPAY_MCHID,
      subMchId: '1900000119',
    });
    // A direct merchant's bill names no owner: the configured ids are the default.
    setConfig(CONFIG);
    expect(one(withBills(wiring('billCheck', { wxpay: true, calls: true })(LATER)).bills)).not.toHaveProperty(
      'owner',
    );
  });

  it('reads the bill through APIv3 when APIv2 is not enabled, line by line, by the check’s deadline', async () => {
    const csv = '交易时间,公众账号ID\n`2026-01-02 10:00:00,`wx1\n\n总交易单数\n`1';
    const v3 = billProvider('v3', () => csv);
    const bill = one(withBills(billDeps({ v3: v3.provider })).bills);
    expect(bill.provider).toBe('v3');
    expect(bill).not.toHaveProperty('owner');
    const answer = await bill.download(day);
    expect(answer).toMatchObject({ kind: 'bill', gzip: false });
    expect(await linesOf(answer)).toEqual([
      '交易时间,公众账号ID',
      '`2026-01-02 10:00:00,`wx1',
      '',
      '总交易单数',
      '`1',
    ]);
    expect(v3.calls).toEqual([['2026-01-02', 'ALL', { deadlineMs: day.deadlineMs }]]);
    // A bill that ends with its line break has no empty last line; an empty one has none at all.
    for (const [text, lines] of [
      ['a\nb\n', ['a', 'b']],
      ['', []],
      ['\n', ['']],
    ] as const) {
      const src = one(withBills(billDeps({ v3: billProvider('v3', () => text).provider })).bills);
      expect(await linesOf(await src.download(day))).toEqual(lines);
    }
  });

  it('tells “no bill” and “not generated yet” from a failure, in APIv3’s words and cloudPay’s', async () => {
    const cases: [Error, BillAnswer][] = [
      [
        failure('NO_STATEMENT_EXIST', '账单不存在'),
        { kind: 'no-bill', message: 'NO_STATEMENT_EXIST 账单不存在' },
      ],
      [failure('NO_STATEMENT_EXIST', ''), { kind: 'no-bill', message: 'NO_STATEMENT_EXIST' }],
      [failure('FAIL', 'No Bill Exist'), { kind: 'no-bill', message: 'FAIL No Bill Exist' }],
      [failure('', 'no bill exist'), { kind: 'no-bill', message: 'no bill exist' }],
      [
        failure('STATEMENT_CREATING', '账单生成中'),
        { kind: 'not-ready', message: 'STATEMENT_CREATING 账单生成中' },
      ],
      [failure('FAIL', 'Bill Creating'), { kind: 'not-ready', message: 'FAIL Bill Creating' }],
      [failure('', 'Bill Creating'), { kind: 'not-ready', message: 'Bill Creating' }],
    ];
    for (const [thrown, answer] of cases) {
      const src = one(
        withBills(
          billDeps({
            v3: billProvider('v3', () => {
              throw thrown;
            }).provider,
          }),
        ).bills,
      );
      expect(await src.download(day)).toEqual(answer);
    }
    for (const thrown of [
      failure('SYSTEM_ERROR', '系统繁忙'),
      new Error('No Bill Exist'),
      new Error('socket hang up'),
    ]) {
      const src = one(
        withBills(
          billDeps({
            v3: billProvider('v3', () => {
              throw thrown;
            }).provider,
          }),
        ).bills,
      );
      await expect(src.download(day)).rejects.toBe(thrown);
    }
  });

  it('adds cloudPay’s bill, under Tencent’s service provider with the shop as sub-merchant', async () => {
    const cloudpay = billProvider('cloudpay', () => 'x\ny');
    const v2 = billProvider('v2', () => '');
    const both = withBills(billDeps({ v2: v2.provider, cloudpay: cloudpay.provider })).bills;
    expect(Array.isArray(both)).toBe(true);
    const [own, cp] = both as readonly BillSource[];
    expect(own).toMatchObject({ provider: 'v2' });
    expect(own).not.toHaveProperty('owner');
    expect(cp).toMatchObject({
      provider: 'cloudpay',
      owner: { appid: CONFIG.WXPAY_APPID, subMchId: CONFIG.WXPAY_MCHID },
    });
    expect(await linesOf(await cp!.download(day))).toEqual(['x', 'y']);
    expect(cloudpay.calls).toEqual([['2026-01-02', 'ALL', { deadlineMs: day.deadlineMs }]]);
    // APIv2's bill is streamed by its own downloader, never read through the provider.
    expect(v2.calls).toEqual([]);
    // cloudPay alone: its bill is the only one.
    expect(one(withBills(billDeps({ cloudpay: cloudpay.provider })).bills).provider).toBe('cloudpay');
  });

  it('names the sub-merchant on the APIv3 bill in service-provider mode', () => {
    const v3 = billProvider('v3', () => '');
    const partner = { subMchId: '1900000119', subAppid: undefined };
    expect(one(withBills(billDeps({ v3: v3.provider }, { partner })).bills).owner).toEqual({
      appid: CONFIG.WXPAY_APPID,
      mchId: CONFIG.WXPAY_MCHID,
      subMchId: '1900000119',
    });
  });

  it('has no bill to read for a shop without WeChat Pay', () => {
    const d = wiring('billCheck', {})(LATER);
    const noV2 = { ...d, config: { ...d.config, providers: { ...d.config.providers, enabled: [] } } };
    expect(withBills(noV2).bills).toEqual([]);
  });

  it('measures memory as the heap plus the buffers outside it', () => {
    vi.spyOn(process, 'memoryUsage').mockReturnValue({
      rss: 1,
      heapTotal: 2,
      heapUsed: 300,
      external: 40,
      arrayBuffers: 5,
    });
    expect(withBills(wiring('billCheck', { wxpay: true, calls: true })(LATER)).memory?.()).toBe(340);
  });
});
