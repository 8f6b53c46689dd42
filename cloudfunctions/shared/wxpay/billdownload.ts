/**
 * downloadbill as a stream: the day's bill arrives as lines, gunzipped on the fly when it was
 * asked for with tar_type=GZIP, so a bill of 100,000 trades never sits in memory whole (as
 * text it would be tens of MB, twice that as a JS string). The client's `downloadBill`
 * buffers the body and stays for small bills and tests.
 *
 * The answer is either the CSV (unsigned; TLS to WeChat is its proof), gzip bytes, or an XML
 * failure: "No Bill Exist" (a day without trades), "Bill Creating" (not generated yet; WeChat
 * starts at 9:00 and asks merchants to fetch after 10:00), SYSTEMERROR, or a request error.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { rootCertificates } from 'node:tls';
import { createGunzip } from 'node:zlib';
import { AppError, XmlError } from '../errors';
import { WxPayApiError, WxPayNetworkError } from './client';
import { nonceStr } from './nonce';
import { withSign } from './sign';
import type { SignType } from './types';
import { parseXml, toXml } from './xml';

export interface BillDownloadConfig {
  appid: string;
  mchId: string;
  apiKey: string;
  signType: SignType;
  /** Default 'https://api.mch.weixin.qq.com'. */
  baseUrl?: string;
  caPem?: string;
  /** Default 3000. */
  connectTimeoutMs?: number;
  /** The longest silence allowed while the bill streams in; default 15000. */
  idleTimeoutMs?: number;
  /** Default 3: tries before the first byte of the bill; a bill cut off mid-way is not retried here. */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
  nonce?: () => string;
}

export interface BillRequest {
  bill_date: string;
  bill_type?: 'ALL' | 'SUCCESS' | 'REFUND';
  /** GZIP: WeChat compresses the bill (a CSV of ids compresses about 4:1). */
  tar_type?: 'GZIP';
  /** Epoch ms by which the whole download must be over (from the function's remaining time). */
  deadlineMs?: number;
}

export type BillAnswer =
  | { kind: 'bill'; lines: AsyncIterable<string>; gzip: boolean }
  | { kind: 'no-bill'; message: string }
  | { kind: 'not-ready'; message: string };

const PATH = '/pay/downloadbill';
const XML_ANSWER_MAX_BYTES = 64 * 1024;
/** A sane bound on one line; a bill line is a few hundred bytes. */
const MAX_LINE_CHARS = 64 * 1024;

/** return_msg values that say "try again later" rather than "this request is wrong". */
const NOT_READY = new Set(['Bill Creating']);
const TRANSIENT = new Set(['SYSTEMERROR', 'system error', 'CompressGZip Error', 'UnCompressGZip Error']);

const defaultSleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

interface Opened {
  status: number;
  stream: http.IncomingMessage;
  head: Buffer;
}

export function createBillDownloader(config: BillDownloadConfig) {
  const base = (config.baseUrl ?? 'https://api.mch.weixin.qq.com').replace(/\/+$/, '');
  const connectTimeoutMs = config.connectTimeoutMs ?? 3000;
  const idleTimeoutMs = config.idleTimeoutMs ?? 15_000;
  const maxAttempts = Math.max(1, config.maxAttempts ?? 3);
  const sleep = config.sleep ?? defaultSleep;
  const nonce = config.nonce ?? (() => nonceStr());
  const agent = base.startsWith('https:')
    ? new https.Agent({ keepAlive: true, ca: config.caPem ? [...rootCertificates, config.caPem] : undefined })
    : new http.Agent({ keepAlive: true });

  /** Sends the request and waits for the first bytes of the answer (enough to tell CSV, gzip and XML apart). */
  function open(body: string, deadlineMs: number): Promise<Opened> {
    return new Promise((resolve, reject) => {
      const url = new URL(base + PATH);
      const mod = url.protocol === 'https:' ? https : http;
      const payload = Buffer.from(body, 'utf8');
      let settled = false;
      const fail = (msg: string, status?: number, cause?: unknown) => {
        // A promise settles once; an error after the answer began has failed its stream
        // already, so the flag only saves a second destroy() (its mutants are equivalent).
        // Stryker disable next-line ConditionalExpression: see above.
        if (settled) return;
        // Stryker disable next-line BooleanLiteral: see above.
        settled = true;
        clearTimeout(connectTimer);
        req.destroy();
        reject(new WxPayNetworkError(`WeChat Pay ${PATH}: ${msg}`, { path: PATH, status, cause }));
      };
      const req = mod.request(url, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'text/xml; charset=utf-8', 'content-length': payload.length },
      });
      const remaining = Math.max(1, deadlineMs - Date.now());
      const connectTimer = setTimeout(
        () => fail(`no answer within ${Math.min(connectTimeoutMs + idleTimeoutMs, remaining)} ms`),
        Math.min(connectTimeoutMs + idleTimeoutMs, remaining),
      );
      req.on('error', (e) => fail(`request failed: ${e.message}`, undefined, e));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          if (settled) return;
          settled = true;
          clearTimeout(connectTimer);
          res.off('data', onData);
          res.off('end', done);
          res.pause();
          const head = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, stream: res, head });
        };
        const onData = (c: Buffer) => {
          chunks.push(c);
          size += c.length;
          if (size >= 64) done();
        };
        res.on('data', onData);
        res.on('end', done);
        res.on('error', (e) => fail(`answer interrupted: ${e.message}`, res.statusCode, e));
      });
      req.end(payload);
    });
  }

  async function readAll(o: Opened, deadlineMs: number): Promise<Buffer> {
    const chunks = [o.head];
    let size = o.head.length;
    for await (const c of withTimeouts(o.stream, idleTimeoutMs, deadlineMs)) {
      size += c.length;
      if (size > XML_ANSWER_MAX_BYTES) {
        o.stream.destroy();
        throw new WxPayNetworkError(
          `WeChat Pay ${PATH}: XML answer larger than ${XML_ANSWER_MAX_BYTES} bytes`,
          {
            path: PATH,
            status: o.status,
          },
        );
      }
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  async function attempt(body: string, deadlineMs: number): Promise<BillAnswer> {
    const o = await open(body, deadlineMs);
    const isGzip = o.head.length >= 2 && o.head[0] === 0x1f && o.head[1] === 0x8b;
    const isXml = !isGzip && /^\s*<xml>/.test(o.head.subarray(0, 64).toString('utf8'));
    if (!isXml) {
      if (o.status !== 200) {
        o.stream.destroy();
        throw new WxPayNetworkError(`WeChat Pay ${PATH}: HTTP ${o.status}`, { path: PATH, status: o.status });
      }
      return { kind: 'bill', gzip: isGzip, lines: lines(o, isGzip, idleTimeoutMs, deadlineMs) };
    }
    const raw = await readAll(o, deadlineMs);
    let answer: Record<string, string>;
    try {
      answer = parseXml(raw, { maxBytes: XML_ANSWER_MAX_BYTES });
    } catch (cause) {
      // Stryker disable next-line ConditionalExpression: parseXml throws only XmlError (unreachable).
      if (!(cause instanceof XmlError)) throw cause;
      throw new WxPayNetworkError(`WeChat Pay ${PATH}: answer is not APIv2 XML (${cause.code})`, {
        path: PATH,
        status: o.status,
        cause,
      });
    }
    const msg = answer['return_msg'] ?? '';
    // WeChat's page spells it "NO Bill Exist"; the API sends "No Bill Exist" (WxJava#1241).
    if (/^no bill exist$/i.test(msg.trim())) return { kind: 'no-bill', message: msg };
    if (NOT_READY.has(msg.trim())) return { kind: 'not-ready', message: msg };
    const transient = TRANSIENT.has(msg.trim()) || answer['err_code'] === 'SYSTEMERROR';
    throw new WxPayApiError(
      'WXPAY_RETURN_FAIL',
      `WeChat Pay ${PATH}: ${answer['return_code'] ?? '(no return_code)'}: ${msg}${
        answer['error_code'] ? ` (error_code ${answer['error_code']})` : ''
      }`,
      { path: PATH, transient, raw: answer },
    );
  }

  return {
    /**
     * Asks for one day's bill. Transient failures before the bill starts are retried with the
     * same signed body; after that the caller owns the stream (iterate it to the end).
     */
    async download(p: BillRequest): Promise<BillAnswer> {
      if (!/^\d{8}$/.test(p.bill_date))
        throw new AppError('INVALID_INPUT', `bill_date must be yyyyMMdd, got ${p.bill_date}`);
      const deadlineMs = p.deadlineMs ?? Date.now() + 120_000;
      // Signed once: every retry sends the very same request.
      const body = toXml(
        withSign(
          {
            appid: config.appid,
            mch_id: config.mchId,
            nonce_str: nonce(),
            bill_date: p.bill_date,
            bill_type: p.bill_type ?? 'ALL',
            tar_type: p.tar_type,
            sign_type: config.signType === 'MD5' ? undefined : config.signType,
          },
          config.apiKey,
          config.signType,
        ),
      );
      for (let n = 1; ; n++) {
        try {
          return await attempt(body, deadlineMs);
        } catch (e) {
          const retryable =
            (e instanceof WxPayNetworkError && (e.status === undefined || e.status >= 500)) ||
            (e instanceof WxPayApiError && e.transient);
          const wait = 200 * 3 ** (n - 1);
          if (n >= maxAttempts || !retryable || Date.now() + wait >= deadlineMs) throw e;
          await sleep(wait);
        }
      }
    },
  };
}

export type BillDownloader = ReturnType<typeof createBillDownloader>;

/** Chunks of `stream`, failing when it stays silent for `idleMs` or runs past `deadlineMs`. */
async function* withTimeouts(
  stream: NodeJS.ReadableStream & { destroy(error?: Error): void },
  idleMs: number,
  deadlineMs: number,
): AsyncGenerator<Buffer> {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    const left = deadlineMs - Date.now();
    // Which timer this is is decided now: reading the clock again when it fires can give a
    // millisecond before the deadline (timers run on the loop's own clock), which would call
    // a bill still streaming at its deadline "stalled".
    // Stryker disable next-line EqualityOperator: with both equal, either reason is true.
    const forDeadline = left < idleMs;
    timer = setTimeout(
      () => {
        stream.destroy(
          new WxPayNetworkError(
            forDeadline
              ? `WeChat Pay ${PATH}: the bill did not finish before the deadline`
              : `WeChat Pay ${PATH}: the bill stalled for ${idleMs} ms`,
            { path: PATH },
          ),
        );
      },
      forDeadline ? Math.max(1, left) : idleMs,
    );
  };
  try {
    arm();
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      arm();
      yield chunk;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The bill's lines, decoded as UTF-8 across chunk borders, without their CR/LF. */
async function* lines(o: Opened, gzip: boolean, idleMs: number, deadlineMs: number): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  const emit = function* (text: string): Generator<string> {
    rest += text;
    let from = 0;
    for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n', from)) {
      const end = nl > from && rest.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      yield rest.slice(from, end);
      from = nl + 1;
    }
    rest = rest.slice(from);
    if (rest.length > MAX_LINE_CHARS) {
      throw new AppError('BILL_MALFORMED', `bill line longer than ${MAX_LINE_CHARS} characters`);
    }
  };
  const gunzip = gzip ? createGunzip() : undefined;
  try {
    if (gunzip) {
      // A cut-off gzip body fails in gunzip ("unexpected end of file"), so truncation is caught.
      o.stream.on('error', (e) => gunzip.destroy(e));
      gunzip.write(o.head);
      o.stream.pipe(gunzip);
      for await (const c of withTimeouts(gunzip, idleMs, deadlineMs)) yield* emit(decoder.write(c));
    } else {
      yield* emit(decoder.write(o.head));
      for await (const c of withTimeouts(o.stream, idleMs, deadlineMs)) yield* emit(decoder.write(c));
      // Node 24 fails a response cut short of its length or last chunk ("aborted") before it
      // ends, so this check is for a runtime that would end it quietly: not reachable today.
      // Stryker disable all
      if (!o.stream.complete) {
        throw new WxPayNetworkError(`WeChat Pay ${PATH}: the bill was cut off`, {
          path: PATH,
          status: o.status,
        });
      }
      // Stryker restore all
    }
    yield* emit(decoder.end());
    if (rest !== '') yield rest.replace(/\r$/, '');
  } finally {
    // A consumer that stops early (an error in the check) must not leave the socket open.
    o.stream.destroy();
    gunzip?.destroy();
  }
}
