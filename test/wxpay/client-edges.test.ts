/**
 * The WeChat Pay client's edges, against a scriptable fake WeChat: timeouts of each kind,
 * connection reuse, every shape of failure answer and what the caller gets to read from
 * it, configuration mistakes, and the bill download's special cases. Found by mutation
 * testing (TESTING.md): each case was a bug no other test noticed.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createWxPayClient,
  parseXml,
  sign,
  toXml,
  type WxParamsIn,
  type WxPayClientConfig,
} from '../../cloudfunctions/shared/wxpay';
import { HttpFailure, post, request } from '../../cloudfunctions/shared/wxpay/http';
import { type Env, MD5_MERCHANT, startEnv } from './fixtures';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  port: number;
}
interface Answer {
  status?: number;
  body?: string;
  delayMs?: number;
  /** Send the headers and part of the body, then cut the connection. */
  cut?: boolean;
  /** Never answer. */
  hang?: boolean;
}

/** A fake WeChat on 127.0.0.1 (plain HTTP, or HTTPS with the simulator's certificates). */
async function fakeWeChat(answer: (n: number) => Answer, tls = false) {
  const seen: Seen[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        port: req.socket.remotePort ?? 0,
      });
      const a = answer(seen.length);
      if (a.hang) return;
      setTimeout(() => {
        if (a.cut) {
          res.writeHead(200, { 'content-length': '1000' });
          res.write('<xml>');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        res.writeHead(a.status ?? 200, { 'content-type': 'text/xml' });
        res.end(a.body ?? '');
      }, a.delayMs ?? 0);
    });
  };
  const server = tls
    ? https.createServer(
        {
          cert: readFileSync(env.certs.serverCertPath),
          key: readFileSync(env.certs.serverKeyPath),
          requestCert: true,
          rejectUnauthorized: false,
        },
        handler,
      )
    : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function answer(fields: WxParamsIn, key = MD5_MERCHANT.apiKey): string {
  const p: WxParamsIn = {
    return_code: 'SUCCESS',
    return_msg: 'OK',
    appid: MD5_MERCHANT.appid,
    mch_id: MD5_MERCHANT.mchId,
    nonce_str: 'x',
    ...fields,
  };
  return toXml({ ...p, sign: sign(p, key, 'MD5') });
}

const noSleep = { sleep: async () => {} };
const client = (baseUrl: string, extra: Partial<WxPayClientConfig> = {}) =>
  createWxPayClient(env.config(MD5_MERCHANT, { baseUrl, ...extra }));

async function rejection(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('expected a rejection');
}

const QUERY_OK = () => ({ body: answer({ result_code: 'SUCCESS', trade_state: 'NOTPAY' }) });

describe('one HTTP exchange (post)', () => {
  const options = (agent: http.Agent, extra: Partial<Parameters<typeof post>[2]> = {}) => ({
    agent,
    connectTimeoutMs: 1000,
    totalTimeoutMs: 2000,
    maxResponseBytes: 1000,
    contentType: 'text/xml; charset=utf-8',
    ...extra,
  });

  it('sends the body with its content type and length', async () => {
    const fake = await fakeWeChat(() => ({ body: 'ok' }));
    try {
      const res = await post(new URL(`${fake.url}/p`), '<xml>中</xml>', options(new http.Agent()));
      expect(res).toEqual({
        status: 200,
        body: Buffer.from('ok'),
        headers: expect.objectContaining({ 'content-type': 'text/xml' }),
      });
      expect(fake.seen[0]).toMatchObject({ url: '/p', body: '<xml>中</xml>' });
      expect(fake.seen[0]!.headers['content-type']).toBe('text/xml; charset=utf-8');
      expect(fake.seen[0]!.headers['content-length']).toBe(String(Buffer.byteLength('<xml>中</xml>')));
    } finally {
      await fake.close();
    }
  });

  it('gives up on a silent server after the total timeout', async () => {
    const fake = await fakeWeChat(() => ({ hang: true }));
    try {
      const e = await rejection(
        post(new URL(fake.url), 'x', options(new http.Agent(), { totalTimeoutMs: 80 })),
      );
      expect(e).toBeInstanceOf(HttpFailure);
      expect(e).toMatchObject({ reason: 'timeout', message: 'no complete answer within 80 ms' });
    } finally {
      await fake.close();
    }
  });

  it('gives up on a connection that never opens after the connect timeout', async () => {
    // A socket that stays "connecting" forever, as a dropped SYN would leave it.
    class Stuck extends http.Agent {
      override createConnection(): Socket {
        const s = new Socket();
        Object.defineProperty(s, 'connecting', { value: true });
        return s;
      }
    }
    const e = await rejection(
      post(new URL('http://127.0.0.1:9/'), 'x', options(new Stuck(), { connectTimeoutMs: 50 })),
    );
    expect(e).toMatchObject({ reason: 'connect-timeout', message: 'could not connect within 50 ms' });
  });

  it('lets a slow answer through once connected, on a fresh and on a reused connection', async () => {
    const fake = await fakeWeChat(() => ({ body: 'slow', delayMs: 150 }));
    const agent = new http.Agent({ keepAlive: true });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await post(new URL(fake.url), 'x', options(agent, { connectTimeoutMs: 50 }));
        expect(res.body.toString()).toBe('slow');
      }
      expect(fake.seen[1]!.port).toBe(fake.seen[0]!.port);
    } finally {
      agent.destroy();
      await fake.close();
    }
  });

  it('reports a refused connection with the system’s reason', async () => {
    const fake = await fakeWeChat(() => ({}));
    await fake.close();
    const e = await rejection(post(new URL(fake.url), 'x', options(new http.Agent())));
    expect(e).toMatchObject({
      reason: 'network',
      message: `request failed: connect ECONNREFUSED 127.0.0.1:${fake.port}`,
    });
    expect(e['cause']).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('takes an answer of exactly the size limit and refuses one byte more', async () => {
    const fake = await fakeWeChat((n) => ({ body: 'x'.repeat(n === 1 ? 10 : 11) }));
    try {
      const agent = new http.Agent();
      expect(
        (await post(new URL(fake.url), 'x', options(agent, { maxResponseBytes: 10 }))).body,
      ).toHaveLength(10);
      const e = await rejection(post(new URL(fake.url), 'x', options(agent, { maxResponseBytes: 10 })));
      expect(e).toMatchObject({ reason: 'too-large', message: 'answer is larger than 10 bytes' });
    } finally {
      await fake.close();
    }
  });

  it('gives each answer header as one string, a repeated one joined with commas', async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.setHeader('x-one', 'v');
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const res = await post(new URL(`http://127.0.0.1:${port}/`), 'x', options(new http.Agent()));
      expect(res.headers).toMatchObject({ 'set-cookie': 'a=1, b=2', 'x-one': 'v' });
    } finally {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    }
  });

  it('sends a request without a body (APIv3 GET) with no length and nothing written', async () => {
    const seen: { method?: string; length?: string; body: string }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        seen.push({ method: req.method, length: req.headers['content-length'], body });
        res.end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const res = await request(new URL(`http://127.0.0.1:${port}/v3/x`), {
        method: 'GET',
        headers: { accept: 'application/json' },
        agent: new http.Agent(),
        connectTimeoutMs: 1000,
        totalTimeoutMs: 2000,
        maxResponseBytes: 1000,
      });
      expect(res).toMatchObject({ status: 200, body: Buffer.from('{"ok":true}') });
      expect(seen).toEqual([{ method: 'GET', length: undefined, body: '' }]);
    } finally {
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    }
  });

  it('reports an answer cut off half-way', async () => {
    const fake = await fakeWeChat(() => ({ cut: true }));
    try {
      const e = await rejection(post(new URL(fake.url), 'x', options(new http.Agent())));
      expect(e).toMatchObject({ reason: 'network', message: 'answer interrupted: aborted' });
      expect(e['cause']).toBeDefined();
    } finally {
      await fake.close();
    }
  });
});

describe('client configuration', () => {
  it('names what is missing or wrong', () => {
    const m = MD5_MERCHANT;
    const cases: [Partial<WxPayClientConfig>, string][] = [
      [{ appid: '', mchId: '', apiKey: '' }, 'WeChat Pay client config is missing: appid, mchId, apiKey'],
      [{ apiKey: '' }, 'WeChat Pay client config is missing: apiKey'],
      [{ signType: 'SHA1' as never }, 'WeChat Pay signType must be MD5 or HMAC-SHA256, got SHA1'],
      [{ subAppid: 'wx0000000000000001' }, 'WeChat Pay subAppid needs subMchId (service-provider mode)'],
      [{ baseUrl: 'ftp://127.0.0.1/' }, 'WeChat Pay baseUrl must be http(s), got ftp:'],
    ];
    for (const [patch, message] of cases) {
      let e: unknown;
      try {
        createWxPayClient({ appid: m.appid, mchId: m.mchId, apiKey: m.apiKey, signType: 'MD5', ...patch });
      } catch (err) {
        e = err;
      }
      expect(e).toMatchObject({ code: 'CONFIG_INVALID', message });
    }
  });

  it('defaults to WeChat Pay’s own host', () => {
    const m = MD5_MERCHANT;
    expect(() =>
      createWxPayClient({ appid: m.appid, mchId: m.mchId, apiKey: m.apiKey, signType: 'MD5' }),
    ).not.toThrow();
  });

  it('ignores trailing slashes of the base URL, and keeps one connection alive between calls', async () => {
    const fake = await fakeWeChat(QUERY_OK);
    try {
      const c = client(`${fake.url}//`);
      await c.orderQuery({ out_trade_no: 'A' });
      await c.orderQuery({ out_trade_no: 'B' });
      expect(fake.seen.map((s) => s.url)).toEqual(['/pay/orderquery', '/pay/orderquery']);
      expect(fake.seen[1]!.port).toBe(fake.seen[0]!.port);
      expect(fake.seen[0]!.headers['content-type']).toBe('text/xml; charset=utf-8');
    } finally {
      await fake.close();
    }
  });
});

describe('client answers', () => {
  async function failure(answers: (n: number) => Answer, extra: Partial<WxPayClientConfig> = {}) {
    const fake = await fakeWeChat(answers);
    try {
      const e = await rejection(client(fake.url, { ...noSleep, ...extra }).orderQuery({ out_trade_no: 'A' }));
      return { e, attempts: fake.seen.length };
    } finally {
      await fake.close();
    }
  }

  it('treats HTTP 500 as unavailability, whatever the body says, and retries it', async () => {
    const { e, attempts } = await failure(() => ({ status: 500, ...QUERY_OK() }));
    expect(e).toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
      status: 500,
      path: '/pay/orderquery',
      message: 'WeChat Pay /pay/orderquery: HTTP 500',
      details: { path: '/pay/orderquery', status: 500 },
    });
    expect(attempts).toBe(3);
  });

  it('does not retry a 4xx page, and quotes its start with whitespace collapsed', async () => {
    const { e, attempts } = await failure(() => ({
      status: 400,
      body: '<html>\n  <head>400   Bad</head></html>',
    }));
    expect(e).toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
      status: 400,
      message:
        'WeChat Pay /pay/orderquery: HTTP 400 answer is not APIv2 XML (XML_ROOT): <html> <head>400 Bad</head></html>',
    });
    expect(e['cause']).toMatchObject({ code: 'XML_ROOT' });
    expect(attempts).toBe(1);
  });

  it('reports an unreachable WeChat with the reason and the path', async () => {
    const fake = await fakeWeChat(() => ({}));
    await fake.close();
    const e = await rejection(client(fake.url, noSleep).orderQuery({ out_trade_no: 'A' }));
    expect(e).toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
      message: `WeChat Pay /pay/orderquery: request failed: connect ECONNREFUSED 127.0.0.1:${fake.port}`,
      details: { path: '/pay/orderquery' },
    });
    expect(e['cause']).toBeInstanceOf(HttpFailure);
  });

  it('accepts answers up to 1 MB', async () => {
    const fake = await fakeWeChat(() => ({
      body: answer({ result_code: 'SUCCESS', trade_state: 'NOTPAY', attach: 'a'.repeat(200_000) }),
    }));
    try {
      expect((await client(fake.url).orderQuery({ out_trade_no: 'A' }))['attach']).toHaveLength(200_000);
    } finally {
      await fake.close();
    }
  });

  it('words a communication failure with what WeChat said, or that it said nothing', async () => {
    const missing = await failure(() => ({ body: toXml({ return_msg: '参数格式错误' }) }));
    expect(missing.e).toMatchObject({
      code: 'WXPAY_RETURN_FAIL',
      message: 'WeChat Pay /pay/orderquery: return_code (missing): 参数格式错误',
      returnCode: undefined,
      returnMsg: '参数格式错误',
      transient: false,
      details: { path: '/pay/orderquery' },
    });
    const bare = await failure(() => ({ body: toXml({ return_code: 'FAIL' }) }));
    expect(bare.e['message']).toBe('WeChat Pay /pay/orderquery: return_code FAIL: ');
  });

  it('reports an unsigned business failure as the failure it says, with every field', async () => {
    for (const sign of [undefined, '']) {
      const { e, attempts } = await failure(() => ({
        body: toXml({
          return_code: 'SUCCESS',
          result_code: 'FAIL',
          err_code: 'ORDERNOTEXIST',
          err_code_des: '订单不存在',
          sign,
        }),
      }));
      expect(e).toMatchObject({
        code: 'WXPAY_RESULT_FAIL',
        message: 'WeChat Pay /pay/orderquery: ORDERNOTEXIST: 订单不存在',
        returnCode: 'SUCCESS',
        resultCode: 'FAIL',
        errCode: 'ORDERNOTEXIST',
        errCodeDes: '订单不存在',
        transient: false,
      });
      expect(attempts).toBe(1);
    }
  });

  it('words a failure without err_code by its result_code, or says result_code is missing', async () => {
    const noErr = await failure(() => ({ body: answer({ result_code: 'FAIL' }) }));
    expect(noErr.e).toMatchObject({ message: 'WeChat Pay /pay/orderquery: FAIL: ', transient: false });
    expect(noErr.e['errCode']).toBeUndefined();
    const noResult = await failure(() => ({ body: answer({}) }));
    expect(noResult.e['message']).toBe('WeChat Pay /pay/orderquery: result_code missing: ');
  });

  it('retries BIZERR_NEED_RETRY like SYSTEMERROR', async () => {
    const fake = await fakeWeChat((n) =>
      n === 1
        ? { body: answer({ result_code: 'FAIL', err_code: 'BIZERR_NEED_RETRY', err_code_des: '并发' }) }
        : QUERY_OK(),
    );
    try {
      await expect(client(fake.url, noSleep).orderQuery({ out_trade_no: 'A' })).resolves.toMatchObject({
        trade_state: 'NOTPAY',
      });
      expect(fake.seen).toHaveLength(2);
    } finally {
      await fake.close();
    }
  });

  it('refuses a call-level sign type APIv2 does not have, before sending anything', async () => {
    const fake = await fakeWeChat(QUERY_OK);
    try {
      const e = await rejection(
        client(fake.url).orderQuery({ out_trade_no: 'A' }, { signType: 'SHA1' as never }),
      );
      expect(e).toMatchObject({
        code: 'CONFIG_INVALID',
        message: 'WeChat Pay signType must be MD5 or HMAC-SHA256, got SHA1',
      });
      expect(fake.seen).toHaveLength(0);
    } finally {
      await fake.close();
    }
  });

  it('refuses a correctly signed answer for another sub-merchant in service-provider mode', async () => {
    const mine = { subMchId: '1900000109', subAppid: 'wx0000000000000001' };
    const ok = await fakeWeChat(() => ({
      body: answer({ result_code: 'SUCCESS', trade_state: 'NOTPAY', sub_mch_id: '1900000109' }),
    }));
    try {
      await expect(client(ok.url, mine).orderQuery({ out_trade_no: 'A' })).resolves.toMatchObject({
        trade_state: 'NOTPAY',
      });
      // Every request names the sub-merchant and its appid, signed with the rest.
      expect(parseXml(ok.seen[0]!.body)).toMatchObject({
        mch_id: MD5_MERCHANT.mchId,
        sub_mch_id: '1900000109',
        sub_appid: 'wx0000000000000001',
      });
      await client(ok.url).orderQuery({ out_trade_no: 'A' });
      expect(parseXml(ok.seen[1]!.body)).not.toHaveProperty('sub_mch_id');
    } finally {
      await ok.close();
    }
    const { e } = await failure(
      () => ({ body: answer({ result_code: 'SUCCESS', trade_state: 'NOTPAY', sub_mch_id: '1900000110' }) }),
      { ...mine, maxAttempts: 1 },
    );
    expect(e).toMatchObject({
      code: 'WXPAY_BAD_RESPONSE',
      message: 'WeChat Pay /pay/orderquery: answer is for another sub_mch_id',
    });
  });

  it('refuses a correctly signed answer for another appid', async () => {
    const other = { appid: 'wx0000000000000000' };
    const { e } = await failure(() => ({ body: answer({ result_code: 'SUCCESS', ...other }) }));
    expect(e).toMatchObject({
      code: 'WXPAY_BAD_RESPONSE',
      message: 'WeChat Pay /pay/orderquery: answer is for another appid/mch_id',
    });
  });

  it('waits 200 ms before retrying when no sleep is injected', async () => {
    const fake = await fakeWeChat((n) => (n === 1 ? { status: 503, body: 'busy' } : QUERY_OK()));
    try {
      const started = Date.now();
      await client(fake.url, { maxAttempts: 2, sleep: undefined }).orderQuery({ out_trade_no: 'A' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      await fake.close();
    }
  });

  it('refuses amounts that are not positive whole fen, naming the field', async () => {
    const c = client('http://127.0.0.1:9');
    const order = {
      body: 'x',
      out_trade_no: 'A',
      spbill_create_ip: '127.0.0.1',
      notify_url: 'http://127.0.0.1:9/n',
      openid: 'o',
    };
    for (const v of [0, -1, 1.5]) {
      await expect(c.unifiedOrder({ ...order, total_fee: v })).rejects.toMatchObject({
        code: 'INVALID_INPUT',
        message: `total_fee must be a positive integer amount in fen, got ${v}`,
      });
    }
    const refund = { out_trade_no: 'A', out_refund_no: 'R', total_fee: 1, refund_fee: 1 };
    await expect(c.refund({ ...refund, total_fee: 0 })).rejects.toMatchObject({
      message: 'total_fee must be a positive integer amount in fen, got 0',
    });
    await expect(c.refund({ ...refund, refund_fee: 0 })).rejects.toMatchObject({
      message: 'refund_fee must be a positive integer amount in fen, got 0',
    });
  });

  it('treats a SUCCESS without prepay_id as an unknown outcome to retry', async () => {
    const fake = await fakeWeChat(() => ({ body: answer({ result_code: 'SUCCESS', trade_type: 'JSAPI' }) }));
    try {
      const e = await rejection(
        client(fake.url, noSleep).unifiedOrder({
          body: 'x',
          out_trade_no: 'A',
          total_fee: 1,
          spbill_create_ip: '127.0.0.1',
          notify_url: 'http://127.0.0.1:9/n',
          openid: 'o',
        }),
      );
      expect(e).toMatchObject({
        code: 'WXPAY_BAD_RESPONSE',
        message: 'WeChat Pay /pay/unifiedorder: SUCCESS without prepay_id',
        path: '/pay/unifiedorder',
        transient: true,
        resultCode: 'SUCCESS',
      });
    } finally {
      await fake.close();
    }
  });

  it('asks refundquery about the refund it names', async () => {
    const fake = await fakeWeChat(() => ({ body: answer({ result_code: 'SUCCESS', refund_count: '0' }) }));
    try {
      await expect(client(fake.url).refundQuery({ out_refund_no: 'R1' })).resolves.toMatchObject({
        refund_count: '0',
      });
      expect(fake.seen[0]!.url).toBe('/pay/refundquery');
      expect(fake.seen[0]!.body).toContain('<out_refund_no><![CDATA[R1]]></out_refund_no>');
    } finally {
      await fake.close();
    }
  });
});

describe('refunds: the client certificate', () => {
  const refund = { out_trade_no: 'A', out_refund_no: 'R', total_fee: 1, refund_fee: 1 };
  const refundOk = () => ({ body: answer({ result_code: 'SUCCESS', refund_id: '5000' }) });

  it('is not needed by a plain-HTTP endpoint, and is refused as a message that says what to configure', async () => {
    const fake = await fakeWeChat(refundOk);
    try {
      await expect(client(fake.url).refund(refund)).resolves.toMatchObject({ refund_id: '5000' });
      const e = await rejection(client(fake.url, { cert: undefined }).refund(refund));
      expect(e).toMatchObject({
        code: 'CONFIG_INVALID',
        message:
          '/secapi/pay/refund needs the merchant API client certificate (apiclient_cert): configure cert { certPem, keyPem } or { pfx, passphrase } (the passphrase is the mch_id)',
      });
    } finally {
      await fake.close();
    }
  });

  it('is loaded once and its TLS connection reused between refunds', async () => {
    const fake = await fakeWeChat(refundOk, true);
    try {
      const c = client(fake.url);
      await c.refund(refund);
      await c.refund(refund);
      expect(fake.seen[1]!.port).toBe(fake.seen[0]!.port);
    } finally {
      await fake.close();
    }
  });

  it('says which material failed to load', async () => {
    const pem = {
      certPem: readFileSync(env.certs.certPath, 'utf8'),
      keyPem: readFileSync(env.certs.caCertPath, 'utf8'),
    };
    const e = await rejection(client(env.sim.url, { cert: pem }).refund(refund));
    expect(e['message']).toMatch(
      /^the merchant API client certificate could not be loaded \(PEM certificate and key\): .+/,
    );
    const pfx = { pfx: readFileSync(env.certs.pfxPath), passphrase: 'wrong' };
    const p12 = await rejection(client(env.sim.url, { cert: pfx }).refund(refund));
    expect(p12['message']).toMatch(
      /^the merchant API client certificate could not be loaded \(PKCS#12 with the configured passphrase\): .+/,
    );
  });
});

describe('downloadBill', () => {
  async function bill(answers: (n: number) => Answer, billType?: 'SUCCESS') {
    const fake = await fakeWeChat(answers);
    try {
      const c = client(fake.url, noSleep);
      const out: { csv?: string; e?: Record<string, unknown> } = await c
        .downloadBill({ bill_date: '20260101', ...(billType ? { bill_type: billType } : {}) })
        .then(
          (csv) => ({ csv }),
          (e: Record<string, unknown>) => ({ e }),
        );
      return { ...out, seen: fake.seen };
    } finally {
      await fake.close();
    }
  }

  it('asks for the bill type given, ALL by default', async () => {
    const a = await bill(() => ({ body: 'csv' }), 'SUCCESS');
    expect(a.seen[0]!.body).toContain('<bill_type><![CDATA[SUCCESS]]></bill_type>');
    const b = await bill(() => ({ body: 'csv' }));
    expect(b.seen[0]!.body).toContain('<bill_type><![CDATA[ALL]]></bill_type>');
    expect(b.csv).toBe('csv');
  });

  it('reads an XML answer after leading whitespace, and only one that starts with <xml>', async () => {
    const fail = await bill(() => ({
      body: '\n  <xml><return_code>FAIL</return_code><return_msg>No Bill Exist</return_msg></xml>',
    }));
    expect(fail.e).toMatchObject({ code: 'WXPAY_RETURN_FAIL', returnMsg: 'No Bill Exist' });
    const text = await bill(() => ({ body: 'x<xml></xml>' }));
    expect(text.csv).toBe('x<xml></xml>');
  });

  it('reports a text answer with an error status as unavailability', async () => {
    const r = await bill(() => ({ status: 404, body: 'not found' }));
    expect(r.e).toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
      status: 404,
      message: 'WeChat Pay /pay/downloadbill: HTTP 404',
      details: { path: '/pay/downloadbill', status: 404 },
    });
  });

  it('refuses a signed SUCCESS where a bill was expected, for good', async () => {
    const r = await bill(() => ({ body: answer({ result_code: 'SUCCESS' }) }));
    expect(r.e).toMatchObject({
      code: 'WXPAY_BAD_RESPONSE',
      message: 'WeChat Pay /pay/downloadbill: XML answer where a bill was expected',
      path: '/pay/downloadbill',
      transient: false,
      returnCode: undefined,
      errCode: undefined,
    });
    expect(r.seen).toHaveLength(1);
  });
});
