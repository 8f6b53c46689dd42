/**
 * The streaming bill downloader against a local server that answers whatever a test tells it
 * to: the request it signs, how it tells a bill, gzip and an XML answer apart, which failures
 * it retries (and how long it waits), its limits and timeouts, and how it cuts the bill into
 * lines. The simulator's side of downloadbill is in bills.test.ts.
 */
import { lookup } from 'node:dns/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AppError, XmlError } from '../../cloudfunctions/shared/errors';
import { parseXml, toXml, verify } from '../../cloudfunctions/shared/wxpay';
import {
  type BillAnswer,
  type BillDownloadConfig,
  createBillDownloader,
} from '../../cloudfunctions/shared/wxpay/billdownload';
import { WxPayApiError, WxPayNetworkError } from '../../cloudfunctions/shared/wxpay/client';

const KEY = '192006250b4c09247ec02edce69f6a2d';
const DAY = '20260310';

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
  port: number;
}

let server: http.Server;
let url = '';
let seen: Seen[] = [];
/** What the server answers to the n-th request (1-based). */
let answer: (res: http.ServerResponse, n: number) => void = () => {};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        contentType: req.headers['content-type'],
        body: Buffer.concat(chunks).toString('utf8'),
        port: req.socket.remotePort ?? 0,
      });
      answer(res, seen.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(
  () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
);
beforeEach(() => {
  seen = [];
});

let sleeps: number[] = [];
function downloader(extra: Partial<BillDownloadConfig> = {}) {
  sleeps = [];
  return createBillDownloader({
    appid: 'wx2421b1c4370ec43b',
    mchId: '10000100',
    apiKey: KEY,
    signType: 'MD5',
    baseUrl: url,
    nonce: () => 'nonce1',
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
}

function xml(res: http.ServerResponse, params: Record<string, string>, status = 200): void {
  res.writeHead(status, { 'content-type': 'text/xml' });
  res.end(toXml(params));
}

function text(res: http.ServerResponse, body: string | Buffer, status = 200): void {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
}

async function collect(a: BillAnswer): Promise<string[]> {
  if (a.kind !== 'bill') throw new Error(`no bill: ${a.kind}`);
  const out: string[] = [];
  for await (const line of a.lines) out.push(line);
  return out;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('the request', () => {
  it('posts one signed XML body to /pay/downloadbill, asking for the ALL bill by default', async () => {
    answer = (res) => text(res, 'a\r\nb\r\n');
    await collect(await downloader({ baseUrl: `${url}//` }).download({ bill_date: DAY }));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: '/pay/downloadbill',
      contentType: 'text/xml; charset=utf-8',
    });
    const sent = parseXml(seen[0]!.body);
    expect(sent).toEqual({
      appid: 'wx2421b1c4370ec43b',
      mch_id: '10000100',
      nonce_str: 'nonce1',
      bill_date: DAY,
      bill_type: 'ALL',
      sign: expect.any(String),
    });
    expect(verify(sent, KEY, 'MD5')).toBe(true);
  });

  it('names the bill type, GZIP and an HMAC sign type when asked', async () => {
    answer = (res) => text(res, 'a\r\n');
    const d = downloader({ signType: 'HMAC-SHA256' });
    await collect(await d.download({ bill_date: DAY, bill_type: 'REFUND', tar_type: 'GZIP' }));
    const sent = parseXml(seen[0]!.body);
    expect(sent).toMatchObject({ bill_type: 'REFUND', tar_type: 'GZIP', sign_type: 'HMAC-SHA256' });
    expect(verify(sent, KEY, 'HMAC-SHA256')).toBe(true);
  });

  it.each(['2026031', '202603101', 'x20260310', '2026-03-10'])(
    'refuses the bill date %j before asking WeChat',
    async (bill_date) => {
      const e = await failure(downloader().download({ bill_date }));
      expect(e).toBeInstanceOf(AppError);
      expect(e).toMatchObject({
        code: 'INVALID_INPUT',
        message: `bill_date must be yyyyMMdd, got ${bill_date}`,
      });
      expect(seen).toHaveLength(0);
    },
  );
});

describe('the answer', () => {
  it('reads "No Bill Exist" in any letter case as a day without trades', async () => {
    for (const msg of ['No Bill Exist', 'NO Bill Exist', ' no bill exist ']) {
      answer = (res) => xml(res, { return_code: 'FAIL', return_msg: msg, error_code: '20002' });
      expect(await downloader().download({ bill_date: DAY })).toEqual({ kind: 'no-bill', message: msg });
    }
    answer = (res) => xml(res, { return_code: 'FAIL', return_msg: 'No Bill Exist yet' });
    expect(await failure(downloader().download({ bill_date: DAY }))).toBeInstanceOf(WxPayApiError);
  });

  it('reads "Bill Creating" as a bill not generated yet, after leading whitespace', async () => {
    answer = (res) => text(res, `\r\n  ${toXml({ return_code: 'FAIL', return_msg: 'Bill Creating' })}`);
    expect(await downloader().download({ bill_date: DAY })).toEqual({
      kind: 'not-ready',
      message: 'Bill Creating',
    });
    expect(seen).toHaveLength(1);
  });

  it('fails any other answer with what WeChat said, without retrying it', async () => {
    answer = (res) => xml(res, { return_code: 'FAIL', return_msg: 'invalid bill_date', error_code: '20001' });
    const e = (await failure(downloader().download({ bill_date: DAY }))) as WxPayApiError;
    expect(e).toBeInstanceOf(WxPayApiError);
    expect(e).toMatchObject({
      code: 'WXPAY_RETURN_FAIL',
      message: 'WeChat Pay /pay/downloadbill: FAIL: invalid bill_date (error_code 20001)',
      path: '/pay/downloadbill',
      transient: false,
      raw: { return_code: 'FAIL', return_msg: 'invalid bill_date', error_code: '20001' },
    });
    expect(seen).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('says when an answer has no return_code, no return_msg or no error_code', async () => {
    answer = (res) => xml(res, { other: 'x' });
    expect(await failure(downloader().download({ bill_date: DAY }))).toMatchObject({
      code: 'WXPAY_RETURN_FAIL',
      message: 'WeChat Pay /pay/downloadbill: (no return_code): ',
      transient: false,
    });
  });

  it.each([
    [{ return_msg: 'SYSTEMERROR' }],
    [{ return_msg: 'system error' }],
    [{ return_msg: ' CompressGZip Error ' }],
    [{ return_msg: 'UnCompressGZip Error' }],
    [{ return_msg: 'busy', err_code: 'SYSTEMERROR' }],
  ])('retries %j three times in all, waiting 200 ms then 600 ms', async (fault) => {
    answer = (res) => xml(res, { return_code: 'FAIL', ...fault });
    const e = await failure(downloader().download({ bill_date: DAY }));
    expect(e).toMatchObject({ code: 'WXPAY_RETURN_FAIL', transient: true });
    expect(seen).toHaveLength(3);
    expect(sleeps).toEqual([200, 600]);
    // The very same signed request each time.
    expect(new Set(seen.map((s) => s.body)).size).toBe(1);
  });

  it('returns the bill once a retry gets it', async () => {
    answer = (res, n) =>
      n === 1 ? xml(res, { return_code: 'FAIL', return_msg: 'SYSTEMERROR' }) : text(res, 'a\r\n');
    expect(await collect(await downloader().download({ bill_date: DAY }))).toEqual(['a']);
    expect(seen).toHaveLength(2);
  });

  it('tries at least once and at most maxAttempts times, backing off by three', async () => {
    answer = (res) => xml(res, { return_code: 'FAIL', return_msg: 'SYSTEMERROR' });
    await failure(downloader({ maxAttempts: 0 }).download({ bill_date: DAY }));
    expect(seen).toHaveLength(1);
    seen = [];
    await failure(downloader({ maxAttempts: 1 }).download({ bill_date: DAY }));
    expect(seen).toHaveLength(1);
    seen = [];
    await failure(downloader({ maxAttempts: 5 }).download({ bill_date: DAY }));
    expect(seen).toHaveLength(5);
    expect(sleeps).toEqual([200, 600, 1800, 5400]);
  });

  it('does not wait past the deadline for another try', async () => {
    answer = (res) => xml(res, { return_code: 'FAIL', return_msg: 'SYSTEMERROR' });
    // Waits of 200, 600, 1800, 5400 and 16200 ms end before it; 48600 would not.
    const d = downloader({ maxAttempts: 10 });
    await failure(d.download({ bill_date: DAY, deadlineMs: Date.now() + 20_000 }));
    expect(sleeps).toEqual([200, 600, 1800, 5400, 16_200]);
    expect(seen).toHaveLength(6);
  });

  it('retries a server error and gives up on a client error', async () => {
    answer = (res) => text(res, 'oops', 503);
    const e = await failure(downloader().download({ bill_date: DAY }));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({
      code: 'WXPAY_UNAVAILABLE',
      message: 'WeChat Pay /pay/downloadbill: HTTP 503',
      status: 503,
      path: '/pay/downloadbill',
    });
    expect(seen).toHaveLength(3);
    seen = [];
    answer = (res) => text(res, 'oops', 500);
    await failure(downloader().download({ bill_date: DAY }));
    expect(seen).toHaveLength(3);
    seen = [];
    answer = (res) => text(res, '<html>not found</html>', 404);
    expect(await failure(downloader().download({ bill_date: DAY }))).toMatchObject({
      message: 'WeChat Pay /pay/downloadbill: HTTP 404',
      status: 404,
    });
    expect(seen).toHaveLength(1);
  });

  it('reads an XML answer on a non-200 status as WeChat’s word', async () => {
    answer = (res) => xml(res, { return_code: 'FAIL', return_msg: 'No Bill Exist' }, 500);
    expect(await downloader().download({ bill_date: DAY })).toMatchObject({ kind: 'no-bill' });
  });

  it('refuses an XML answer that is not APIv2 XML as a network failure, with the codec’s reason', async () => {
    answer = (res) => text(res, '<xml><a><b>1</b></a></xml>', 404);
    const e = await failure(downloader().download({ bill_date: DAY }));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({
      message: 'WeChat Pay /pay/downloadbill: answer is not APIv2 XML (XML_NESTED)',
      status: 404,
    });
    expect(e.cause).toBeInstanceOf(XmlError);
    expect(seen).toHaveLength(1);
  });

  it('reads an XML answer of up to 64 KiB, and refuses a larger one', async () => {
    const body = (size: number) => {
      const head = '<xml><return_msg>No Bill Exist</return_msg><pad>';
      const tail = '</pad></xml>';
      return head + 'p'.repeat(size - head.length - tail.length) + tail;
    };
    answer = (res) => text(res, body(64 * 1024));
    expect(await downloader().download({ bill_date: DAY })).toMatchObject({ kind: 'no-bill' });
    answer = (res) => text(res, body(64 * 1024 + 1));
    const e = await failure(downloader().download({ bill_date: DAY }));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({
      message: 'WeChat Pay /pay/downloadbill: XML answer larger than 65536 bytes',
      status: 200,
    });
  });

  it('reads gzip only by its magic bytes', async () => {
    answer = (res) => text(res, gzipSync('a,b\r\n`1,`2\r\n'));
    const zipped = await downloader().download({ bill_date: DAY });
    expect(zipped).toMatchObject({ kind: 'bill', gzip: true });
    expect(await collect(zipped)).toEqual(['a,b', '`1,`2']);
    // 0x1f without 0x8b is text (the unit separator), as is a body of one 0x1f byte.
    for (const body of [Buffer.from([0x1f, 0x41, 0x0a, 0x42]), Buffer.from([0x1f])]) {
      answer = (res) => text(res, body);
      const plain = await downloader().download({ bill_date: DAY });
      expect(plain).toMatchObject({ kind: 'bill', gzip: false });
      expect(await collect(plain)).toEqual(body.toString('latin1').split('\n'));
    }
  });

  it('reads a text answer that only mentions <xml> later as a bill', async () => {
    answer = (res) => text(res, 'x<xml>\r\n');
    expect(await collect(await downloader().download({ bill_date: DAY }))).toEqual(['x<xml>']);
  });
});

describe('the lines', () => {
  it('strips CRLF or LF, keeps empty lines, and yields a last line without a line break', async () => {
    answer = (res) => text(res, 'a\r\n\r\nb\nc\r\n\nd\r');
    expect(await collect(await downloader().download({ bill_date: DAY }))).toEqual([
      'a',
      '',
      'b',
      'c',
      '',
      'd',
    ]);
    answer = (res) => text(res, '\r\nx');
    expect(await collect(await downloader().download({ bill_date: DAY }))).toEqual(['', 'x']);
    answer = (res) => text(res, 'x\r\n');
    expect(await collect(await downloader().download({ bill_date: DAY }))).toEqual(['x']);
  });

  it('keeps a CR that is not at a line end', async () => {
    answer = (res) => text(res, 'a\rb\r\n');
    expect(await collect(await downloader().download({ bill_date: DAY }))).toEqual(['a\rb']);
  });

  it('reads a line of 64 Ki characters and refuses a longer one', async () => {
    const max = 64 * 1024;
    answer = (res) => text(res, `${'a'.repeat(max)}\r\n${'b'.repeat(max)}`);
    expect((await collect(await downloader().download({ bill_date: DAY }))).map((l) => l.length)).toEqual([
      max,
      max,
    ]);
    answer = (res) => text(res, `x\r\n${'a'.repeat(max + 1)}`);
    const e = await failure(collect(await downloader().download({ bill_date: DAY })));
    expect(e).toMatchObject({ code: 'BILL_MALFORMED', message: 'bill line longer than 65536 characters' });
  });

  it('keeps the connection open between requests that end in an XML answer', async () => {
    answer = (res) => xml(res, { return_code: 'FAIL', return_msg: 'No Bill Exist' });
    const d = downloader();
    await d.download({ bill_date: DAY });
    await d.download({ bill_date: '20260311' });
    expect(seen).toHaveLength(2);
    expect(seen[1]!.port).toBe(seen[0]!.port);
  });

  it('closes the connection when the reader stops early', async () => {
    let closed: Promise<void> = Promise.resolve();
    answer = (res) => {
      closed = new Promise((r) => res.on('close', () => r()));
      res.writeHead(200, { 'content-type': 'text/plain' });
      // The rest of the bill never comes: only closing the socket ends this response.
      res.write(`${'line\r\n'.repeat(50)}`);
    };
    const a = await downloader().download({ bill_date: DAY });
    if (a.kind !== 'bill') throw new Error(a.kind);
    for await (const line of a.lines) {
      expect(line).toBe('line');
      break;
    }
    await closed;
  });
});

describe('defaults', () => {
  it('waits 200 ms before trying again when no sleep is given', async () => {
    answer = (res, n) =>
      n === 1 ? xml(res, { return_code: 'FAIL', return_msg: 'SYSTEMERROR' }) : text(res, 'a\r\n');
    const started = Date.now();
    const a = await downloader({ sleep: undefined }).download({ bill_date: DAY });
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    expect(await collect(a)).toEqual(['a']);
    expect(seen).toHaveLength(2);
  });

  it('asks api.mch.weixin.qq.com when no base URL is given', async () => {
    // Offline here, so the name does not resolve and the failure names the host it tried.
    const offline = await lookup('api.mch.weixin.qq.com').then(
      () => false,
      () => true,
    );
    if (!offline) return;
    const e = await failure(downloader({ baseUrl: undefined, maxAttempts: 1 }).download({ bill_date: DAY }));
    expect(e.message).toMatch(/^WeChat Pay \/pay\/downloadbill: request failed: .*api\.mch\.weixin\.qq\.com/);
  });
});

describe('timeouts and broken connections', () => {
  it('gives up on a server that never answers after the connect and idle time', async () => {
    answer = () => {};
    const d = downloader({ connectTimeoutMs: 100, idleTimeoutMs: 150, maxAttempts: 1 });
    const e = await failure(d.download({ bill_date: DAY }));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({
      message: 'WeChat Pay /pay/downloadbill: no answer within 250 ms',
      status: undefined,
    });
  });

  it('gives up at the deadline when that comes first, and does not try again after it', async () => {
    answer = () => {};
    const d = downloader({ connectTimeoutMs: 10_000, idleTimeoutMs: 10_000 });
    const started = Date.now();
    const e = await failure(d.download({ bill_date: DAY, deadlineMs: started + 300 }));
    expect(e.message).toMatch(/^WeChat Pay \/pay\/downloadbill: no answer within \d+ ms$/);
    expect(Number(/(\d+) ms/.exec(e.message)![1])).toBeLessThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(seen).toHaveLength(1);
  });

  it('fails a request that cannot connect, retrying it', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const e = await failure(downloader({ baseUrl: `http://127.0.0.1:${port}` }).download({ bill_date: DAY }));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e.message).toMatch(/^WeChat Pay \/pay\/downloadbill: request failed: .*ECONNREFUSED/);
    expect(e).toMatchObject({ status: undefined });
    expect(e.cause).toBeInstanceOf(Error);
    expect(sleeps).toEqual([200, 600]);
  });

  it('fails an answer that breaks off before its first bytes are in', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
      res.write('short');
      setTimeout(() => res.destroy(), 20);
    };
    const e = await failure(downloader({ maxAttempts: 1 }).download({ bill_date: DAY }));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e).toMatchObject({ status: 200 });
    expect(e.message).toMatch(/^WeChat Pay \/pay\/downloadbill: answer interrupted: /);
  });

  it('reads a bill whole that ends before its deadline, the deadline nearer than the idle time', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      // Past the 64 bytes read before the bill is told from an XML answer.
      res.write(`${'a'.repeat(100)}\r\n`);
      setTimeout(() => res.write('b\r\n'), 30);
      setTimeout(() => res.end('c\r\n'), 60);
    };
    const a = await downloader({ idleTimeoutMs: 5000 }).download({
      bill_date: DAY,
      deadlineMs: Date.now() + 1500,
    });
    expect(await collect(a)).toEqual(['a'.repeat(100), 'b', 'c']);
  });

  it('fails a bill still streaming at the deadline, saying so', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`${'x'.repeat(100)}\r\n`);
      const t = setInterval(() => res.write('y'), 20);
      res.on('close', () => clearInterval(t));
    };
    const a = await downloader({ idleTimeoutMs: 5000 }).download({
      bill_date: DAY,
      deadlineMs: Date.now() + 1500,
    });
    const e = await failure(collect(a));
    expect(e).toBeInstanceOf(WxPayNetworkError);
    expect(e.message).toBe('WeChat Pay /pay/downloadbill: the bill did not finish before the deadline');
  });

  it('fails a bill reaching its deadline to the millisecond for the deadline, not as stalled', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`${'x'.repeat(100)}\r\n`);
      const t = setInterval(() => res.write('y'), 20);
      res.on('close', () => clearInterval(t));
    };
    const deadlineMs = Date.now() + 1500;
    const a = await downloader({ idleTimeoutMs: 5000 }).download({ bill_date: DAY, deadlineMs });
    // The clock stands at the deadline itself while the bill streams: the reader's timer fires
    // at once, and the time left is nothing, not a millisecond of silence.
    const now = vi.spyOn(Date, 'now').mockReturnValue(deadlineMs);
    try {
      const e = await failure(collect(a));
      expect(e.message).toBe('WeChat Pay /pay/downloadbill: the bill did not finish before the deadline');
    } finally {
      now.mockRestore();
    }
  });

  it('fails a bill that stalls, naming the idle time', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`${'x'.repeat(100)}\r\n`);
    };
    const a = await downloader({ idleTimeoutMs: 200 }).download({ bill_date: DAY });
    const e = await failure(collect(a));
    expect(e.message).toBe('WeChat Pay /pay/downloadbill: the bill stalled for 200 ms');
    // Retried later as WeChat being unreachable, and the operator reads which call it was.
    expect(e).toMatchObject({ code: 'WXPAY_UNAVAILABLE', transient: true, path: '/pay/downloadbill' });
  });

  it('fails a plain bill cut off before its announced length', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5000 });
      res.write(`${'x'.repeat(100)}\r\n`);
      setTimeout(() => res.destroy(), 20);
    };
    const a = await downloader().download({ bill_date: DAY });
    const e = await failure(collect(a));
    // Node reports the missing bytes itself ("aborted"); the reader's own check covers a
    // stream that ends without that error.
    expect(e.message).toMatch(/aborted|cut off/);
  });
});
