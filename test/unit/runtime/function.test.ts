/**
 * The three function wrappers (callable, notify, timer) in process, with the real
 * wx-server-sdk pointed at an in-process emulator the way the platform points it: the
 * refusal rules, what each kind of function answers, configuration errors, and the wiring
 * each invocation gets.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Budget, Deps } from '../../../cloudfunctions/shared/domain/deps';
import { AppError } from '../../../cloudfunctions/shared/errors';
import { setLogSink } from '../../../cloudfunctions/shared/log';
import { getWxContext, rawDatabase } from '../../../cloudfunctions/shared/runtime/cloud';
import {
  callableFunction,
  notifyFunction,
  timerFunction,
  wiring,
} from '../../../cloudfunctions/shared/runtime/function';
import { Store } from '../../../cloudfunctions/shared/store';
import { XML_MAX_BYTES } from '../../../cloudfunctions/shared/wxpay/xml';
import { startTcbEmulator, type TcbEmulator } from '../../../sandbox/tcb';
import { MD5_MERCHANT, startEnv } from '../../wxpay/fixtures';

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

function setConfig(values: Record<string, string | undefined>): void {
  for (const k of Object.keys(CONFIG)) delete process.env[k];
  for (const [k, v] of Object.entries(values)) if (v !== undefined) process.env[k] = v;
}

beforeAll(async () => {
  emu = await startTcbEmulator({ collections: ['orders'] });
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

  it('builds a WeChat Pay client only for a function that calls WeChat or holds the certificate', () => {
    expect(wiring('listProducts', {})(LATER).wxpay).toBeUndefined();
    // payNotify reads the merchant's key to verify, and calls nothing.
    expect(wiring('payNotify', { wxpay: true })(LATER).wxpay).toBeUndefined();
    expect(wiring('queryOrder', { wxpay: true, calls: true })(LATER).wxpay).toBeDefined();
    setConfig({
      ...CONFIG,
      WXPAY_CERT_PEM: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
      WXPAY_KEY_PEM: '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----',
    });
    expect(wiring('approveRefund', { cert: true })(LATER).wxpay).toBeDefined();
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
      await expect(wxpay!.orderQuery({ out_trade_no: 'NOSUCHORDER1' })).rejects.toMatchObject({
        errCode: 'ORDERNOTEXIST',
      });
      await expect(
        wxpay!.refund({ out_trade_no: 'NOSUCHORDER1', out_refund_no: 'R1', total_fee: 1, refund_fee: 1 }),
      ).rejects.toMatchObject({ errCode: 'ORDERNOTEXIST' });
    } finally {
      await env.close();
    }
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

describe('notifyFunction', () => {
  const REPLY = '<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>';
  function notify(handler?: (deps: Deps, body: Uint8Array) => Promise<{ xml: string; outcome: string }>) {
    const calls: string[] = [];
    const main = notifyFunction(
      'payNotify',
      { wxpay: true },
      handler ??
        (async (_deps, body) => {
          calls.push(Buffer.from(body).toString('utf8'));
          return { xml: REPLY, outcome: 'PAID' };
        }),
    );
    return { main, calls };
  }

  it('answers the handler’s XML as an integration response and logs the outcome', async () => {
    const { main, calls } = notify();
    expect(await main(httpEvent('<xml>hi</xml>'))).toEqual({
      statusCode: 200,
      headers: { 'content-type': 'text/xml; charset=utf-8' },
      body: REPLY,
      isBase64Encoded: false,
    });
    expect(calls).toEqual(['<xml>hi</xml>']);
    expect(lines.at(-1)).toMatchObject({
      level: 'info',
      event: 'payNotify.done',
      outcome: 'PAID',
      dbRequests: 0,
    });
    const ms = lines.at(-1)!['ms'] as number;
    expect(ms).toBeGreaterThanOrEqual(0);
    expect(ms).toBeLessThan(60_000);
  });

  it('decodes a base64 body, accepts a lower-case method, and passes an absent body as empty', async () => {
    const { main, calls } = notify();
    await main(
      httpEvent(Buffer.from('<xml>64</xml>').toString('base64'), {
        isBase64Encoded: true,
        httpMethod: 'post',
      }),
    );
    await main(httpEvent('', { body: null }));
    expect(calls).toEqual(['<xml>64</xml>', '']);
  });

  it('refuses a call from the mini-program (it carries an OPENID) without running the handler', async () => {
    invocation({ OPENID: 'o_shopper', SOURCE: 'wx_client' });
    const { main, calls } = notify();
    const r = await main(httpEvent('<xml/>'));
    expect(r.statusCode).toBe(400);
    expect(r.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(r.body).toContain('not an HTTP notify');
    expect(calls).toEqual([]);
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', event: 'payNotify.rejected', reason: 'NOT_HTTP_ACCESS' }),
    ]);
  });

  it('refuses an event that is not an HTTP request, and any method but POST', async () => {
    const { main, calls } = notify();
    for (const e of [{ body: '<xml/>' }, null, 'x']) {
      const r = await main(e);
      expect(r.statusCode).toBe(400);
      expect(r.headers['content-type']).toBe('text/xml; charset=utf-8');
    }
    const get = await main(httpEvent('<xml/>', { httpMethod: 'GET' }));
    expect(get.statusCode).toBe(405);
    expect(get.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(get.body).toContain('POST only');
    expect(calls).toEqual([]);
  });

  it('refuses a body over the XML limit before decoding it, and takes one exactly at the limit', async () => {
    const { main, calls } = notify();
    const limit = Math.ceil((XML_MAX_BYTES * 4) / 3) + 4;
    const over = await main(httpEvent('a'.repeat(limit + 1)));
    expect(over.statusCode).toBe(413);
    expect(over.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(over.body).toContain('body too large');
    expect(lines.at(-1)).toMatchObject({
      level: 'warn',
      event: 'payNotify.rejected',
      reason: 'XML_TOO_LARGE',
      bytes: limit + 1,
    });
    expect((await main(httpEvent('a'.repeat(limit)))).statusCode).toBe(200);
    expect(calls.map((c) => c.length)).toEqual([limit]);
  });

  it('answers FAIL (so WeChat retries) when the handler throws, logging the error', async () => {
    const { main } = notify(async () => {
      throw new AppError('DB_ERROR', 'database update orders failed');
    });
    const r = await main(httpEvent('<xml/>'));
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(r.body).toContain('temporary error');
    expect(lines.at(-1)).toMatchObject({
      level: 'error',
      event: 'payNotify.error',
      error: { code: 'DB_ERROR' },
      dbRequests: 0,
    });
  });

  it('answers FAIL when configuration is bad, without running the handler', async () => {
    setConfig({ ...CONFIG, WXPAY_APPID: 'not-an-appid' });
    const { main, calls } = notify();
    const r = await main(httpEvent('<xml/>'));
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(r.body).toContain('merchant configuration error');
    expect(calls).toEqual([]);
    expect(lines.at(-1)).toMatchObject({
      level: 'error',
      event: 'payNotify.config_invalid',
      error: { code: 'CONFIG_INVALID' },
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
