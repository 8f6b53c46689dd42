import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../../sandbox/gateway';
import { createFunctionRuntime, type FunctionRuntime } from '../../sandbox/runtime';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { writeFixtureFunctions } from './fixtures';

let emu: TcbEmulator;
let runtime: FunctionRuntime;
let gateway: Gateway;
let functionsDir: string;

beforeAll(async () => {
  emu = await startTcbEmulator({ collections: ['items'] });
  functionsDir = writeFixtureFunctions();
  runtime = createFunctionRuntime({ functionsDir, serviceUrl: emu.serviceUrl, log: () => {} });
  gateway = await startGateway({
    runtime,
    appid: 'wx_app',
    httpRoutes: { '/pay/notify': 'http', '/refund/notify': 'http' },
    bodyLimitBytes: 4096,
    onRequest: (_req, res, url) => {
      if (url.pathname !== '/console/api/ping') return false;
      res.end('pong');
      return true;
    },
  });
});
afterAll(async () => {
  await gateway.close();
  await runtime.close();
  await emu.close();
  rmSync(functionsDir, { recursive: true, force: true });
});

const post = (path: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
  fetch(`${gateway.url}${path}`, { method: 'POST', body, headers });

describe('POST /functions/<name> (callFunction)', () => {
  it('invokes with the header openid, the gateway appid, the client ip and SOURCE wx_client', async () => {
    const res = await post('/functions/ctx', JSON.stringify({ a: 1, userInfo: { openId: 'forged' } }), {
      'content-type': 'application/json',
      'x-wx-openid': 'o_alice',
      'x-wx-unionid': 'u_alice',
    });
    expect(res.status).toBe(200);
    const out = (await res.json()) as Record<string, unknown>;
    expect(out['after']).toEqual({
      OPENID: 'o_alice',
      APPID: 'wx_app',
      UNIONID: 'u_alice',
      CLIENTIP: '127.0.0.1',
      ENV: 'local',
      SOURCE: 'wx_client',
    });
    // The platform's userInfo replaces whatever the client put there.
    expect(out['event']).toEqual({ a: 1, userInfo: { appId: 'wx_app', openId: 'o_alice' } });
  });

  it('answers 404 for an unknown function and 400 for a body that is not a JSON object', async () => {
    const missing = await post('/functions/nope', '{}');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ errCode: -501000 });
    expect((await post('/functions/ctx', '{not json')).status).toBe(400);
    expect((await post('/functions/ctx', '[1,2]')).status).toBe(400);
  });

  it('answers 500 with callFunction’s errCode when the function throws', async () => {
    const res = await post('/functions/boom', '{}');
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ errCode: -504002, errMsg: 'functions execute fail. kaboom' });
  });
});

describe('ANY /http/<path> (HTTP access)', () => {
  it('builds the integration event from a text request, with no user and a non-client SOURCE', async () => {
    const res = await post('/http/pay/notify?x=1&y=two', '<xml><a>中文</a></xml>', {
      'content-type': 'text/xml',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    const { event, ctx } = (await res.json()) as {
      event: Record<string, unknown>;
      ctx: Record<string, unknown>;
    };
    expect(event).toMatchObject({
      path: '/pay/notify',
      httpMethod: 'POST',
      queryStringParameters: { x: '1', y: 'two' },
      body: '<xml><a>中文</a></xml>',
      isBase64Encoded: false,
      requestContext: {
        requestId: expect.any(String),
        envId: 'local',
        appId: expect.any(String),
        uin: expect.any(String),
      },
    });
    expect((event['headers'] as Record<string, string>)['content-type']).toBe('text/xml');
    expect(ctx['OPENID']).toBeUndefined();
    expect(ctx['APPID']).toBeUndefined();
    expect(ctx['SOURCE']).not.toBe('wx_client');
  });

  it('base64-encodes binary and non-UTF-8 bodies', async () => {
    const bytes = new Uint8Array([0x3c, 0xff, 0xfe, 0x00, 0x3e]);
    for (const type of ['application/octet-stream', 'text/xml']) {
      const res = await post('/http/refund/notify', bytes, { 'content-type': type });
      const { event } = (await res.json()) as { event: { body: string; isBase64Encoded: boolean } };
      expect(event.isBase64Encoded).toBe(true);
      expect(Buffer.from(event.body, 'base64')).toEqual(Buffer.from(bytes));
    }
  });

  it('uses an integration response as-is', async () => {
    const res = await post('/http/pay/notify?reply=integration', '<xml/>');
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('text/xml');
    expect(res.headers.get('x-trace')).toBe('t1');
    expect(await res.text()).toBe('<xml><return_code>SUCCESS</return_code></xml>');
  });

  it('decodes a base64 integration response body to bytes', async () => {
    const res = await fetch(`${gateway.url}/http/pay/notify?reply=binary`);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from([0, 1, 254, 255]));
  });

  it('turns a returned string into 200 text/plain', async () => {
    const res = await fetch(`${gateway.url}/http/pay/notify?reply=text`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toBe('plain words');
  });

  it('refuses a body over the limit with 413 and an unrouted path with 404', async () => {
    expect((await post('/http/pay/notify', 'x'.repeat(5000), { 'content-type': 'text/plain' })).status).toBe(
      413,
    );
    expect((await post('/http/elsewhere', 'x')).status).toBe(404);
  });
});

it('an onRequest hook answers its own routes before the built-in ones and passes the rest on', async () => {
  expect(await (await fetch(`${gateway.url}/console/api/ping`)).text()).toBe('pong');
  expect((await fetch(`${gateway.url}/console/api/other`)).status).toBe(404);
});

it('GET /healthz answers ok', async () => {
  expect(await (await fetch(`${gateway.url}/healthz`)).json()).toEqual({ ok: true });
});
