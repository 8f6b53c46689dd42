/**
 * The SDK paths the shop uses besides the database, from the trimmed bundle: subscribe
 * messages (`cloud.openapi`), cloudPay (`cloud.cloudPay`) and, through a deferred module,
 * cloud storage. A probe is bundled with the build's own options and run in a fresh process
 * from a folder no node_modules can be found from; a local server stands in for CloudBase's
 * API and answers as the platform does. The same probe built with the SDK external (the
 * unmodified package from node_modules) must send the same requests and get the same results.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { platformEnvironment } from '../../sandbox/runtime';
import { bundleEntries, type SdkMode } from '../../scripts/build';
import { TRIMMED_CODE } from '../../scripts/sdk-trim';

const ROOT = join(__dirname, '..', '..');
const PROBE = join(__dirname, 'fixtures', 'sdk-probe.ts');
const ENV = 'shop-env';

interface Captured {
  /** `action` of a TCB request (wx.openApi, wx.wxPayApi, storage.getUploadMetadata) or `PUT`. */
  action: string;
  apiName?: string;
  /** Multipart fields other than action and apiName, as bytes. */
  parts: Record<string, Buffer>;
  json?: Record<string, unknown>;
}

/** Just enough protobuf: varints and length-delimited fields, keyed by field number. */
function protoFields(buf: Buffer): Map<number, (number | Buffer)[]> {
  const fields = new Map<number, (number | Buffer)[]>();
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const tag = varint();
    let value: number | Buffer;
    if ((tag & 7) === 0) value = varint();
    else if ((tag & 7) === 2) {
      const len = varint();
      value = buf.subarray(i, i + len);
      i += len;
    } else throw new Error(`protobuf wire type ${tag & 7} not expected here`);
    fields.set(tag >>> 3, [...(fields.get(tag >>> 3) ?? []), value]);
  }
  return fields;
}

function protoBytes(field: number, data: Buffer): Buffer {
  const len: number[] = [];
  let n = data.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), data]);
}

/** The subscribe message's fields, as the SDK encodes them (CommApiData → OpenApiData pairs). */
function openApiPairs(requestData: Buffer): Record<string, unknown> {
  const openapiData = protoFields(requestData).get(2)?.[0] as Buffer;
  const out: Record<string, unknown> = {};
  for (const pair of protoFields(openapiData).get(1) ?? []) {
    const kv = protoFields(pair as Buffer);
    out[String(kv.get(1)?.[0])] = JSON.parse(String(kv.get(2)?.[0]));
  }
  return out;
}

function multipart(body: Buffer, contentType: string): Record<string, Buffer> {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const out: Record<string, Buffer> = {};
  const sep = Buffer.from(`--${boundary}`);
  let at = body.indexOf(sep);
  while (at >= 0) {
    const next = body.indexOf(sep, at + sep.length);
    if (next < 0) break;
    const part = body.subarray(at + sep.length + 2, next - 2);
    const headEnd = part.indexOf('\r\n\r\n');
    const name = /name="([^"]+)"/.exec(part.subarray(0, headEnd).toString())?.[1];
    if (name) out[name] = part.subarray(headEnd + 4);
    at = next;
  }
  return out;
}

/** CloudBase's API as far as these calls need it: every request recorded, then answered. */
function fakeCloudBase(record: (c: Captured) => void): Server {
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'PUT') {
        // COS: an empty 200 is a successful upload.
        record({ action: 'PUT', parts: { body } });
        res.end();
        return;
      }
      const type = req.headers['content-type'] ?? '';
      if (type.startsWith('multipart/form-data')) {
        const parts = multipart(body, type);
        const action = String(parts['action']);
        const apiName = String(parts['apiName']);
        delete parts['action'];
        delete parts['apiName'];
        record({ action, apiName, parts });
        if (action === 'wx.openApi') {
          // CommOpenApiResp { respData = 1, contentType = 2 }: WeChat's JSON answer, wrapped.
          const answer = Buffer.from(JSON.stringify({ errcode: 0, errmsg: 'ok', msgid: 3001 }));
          res.end(Buffer.concat([protoBytes(1, answer), protoBytes(2, Buffer.from('application/json'))]));
        } else {
          res.end(
            JSON.stringify({
              return_code: 'SUCCESS',
              result_code: 'SUCCESS',
              sub_mch_id: '1900000109',
              ...(apiName === 'unifiedOrder'
                ? {
                    payment: {
                      time_stamp: '1767240000',
                      nonce_str: 'n0',
                      package: 'prepay_id=wx1',
                      pay_sign: 'S',
                    },
                  }
                : { refund_id: '50300000000000000000000000000' }),
            }),
          );
        }
        return;
      }
      const json = JSON.parse(body.toString()) as Record<string, unknown>;
      record({ action: String(json['action']), parts: {}, json });
      const host = req.headers.host;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          requestId: 'req-1',
          data: {
            url: `http://${host}/cos/bills/2026-01-01.csv`,
            token: 'cos-token',
            authorization: 'cos-auth',
            fileId: `cloud://${ENV}.bucket/bills/2026-01-01.csv`,
            cosFileId: 'cos-file-id',
          },
        }),
      );
    });
  });
  return server;
}

const STEPS = ['subscribeMessage', 'cloudPayUnifiedOrder', 'cloudPayRefund', 'uploadFile', 'ai'];

async function runProbe(dir: string, sdk: SdkMode, serviceUrl: string) {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require(process.argv[1]).run(${JSON.stringify(STEPS)}).then((r) => process.stdout.write('\\n@@' + JSON.stringify(r)))`,
      join(dir, sdk, 'index.js'),
    ],
    {
      cwd: dir,
      env: {
        PATH: process.env['PATH'] ?? '',
        // The external build finds the unmodified SDK here; the bundled one must need nothing.
        NODE_PATH: sdk === 'external' ? join(ROOT, 'node_modules') : '',
        ...platformEnvironment({ envId: ENV, functionName: 'probe', serviceUrl }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0 || !stdout.includes('@@')) throw new Error(`probe (${sdk}) exited ${code}: ${stderr}`);
  return JSON.parse(stdout.split('@@').pop()!) as Record<
    string,
    { ok: boolean; value?: Record<string, unknown>; code?: unknown; message?: string }
  >;
}

/** What differs between two runs by design (random multipart boundaries, sequence ids). */
function comparable(c: Captured) {
  const parts: Record<string, string> = {};
  for (const [k, v] of Object.entries(c.parts)) parts[k] = v.toString('base64');
  return { action: c.action, apiName: c.apiName, parts, json: c.json };
}

let dir: string;
let server: Server;
let serviceUrl: string;
const captured: Record<SdkMode, Captured[]> = { bundled: [], external: [] };
const results: Partial<Record<SdkMode, Awaited<ReturnType<typeof runProbe>>>> = {};

beforeAll(async () => {
  // Under /tmp, so that no node_modules can be reached by walking up from the bundle.
  dir = mkdtempSync(join(tmpdir(), 'sdk-paths-'));
  for (let d = dir; d !== dirname(d); d = dirname(d)) expect(existsSync(join(d, 'node_modules'))).toBe(false);
  await bundleEntries({ bundled: PROBE }, dir, 'bundled');
  await bundleEntries({ external: PROBE }, dir, 'external');
  let current: Captured[] = [];
  server = fakeCloudBase((c) => current.push(c));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serviceUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin`;
  for (const sdk of ['bundled', 'external'] as const) {
    current = captured[sdk];
    results[sdk] = await runProbe(dir, sdk, serviceUrl);
  }
}, 120_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('wx-server-sdk paths from the trimmed bundle', () => {
  it('the bundle requires nothing but Node built-ins', () => {
    const code = readFileSync(join(dir, 'bundled', 'index.js'), 'utf8');
    const required = new Set([...code.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!));
    expect([...required].filter((r) => !/^(node:)?[a-z_]+(\/[a-z_]+)?$/.test(r))).toEqual([]);
    expect([...required]).not.toContain('wx-server-sdk');
  });

  it('sends a subscribe message through cloud.openapi exactly as the unmodified SDK does', () => {
    const sent = captured.bundled.find((c) => c.action === 'wx.openApi');
    expect(sent?.apiName).toBe('subscribeMessage.send');
    expect(openApiPairs(sent!.parts['requestData']!)).toEqual({
      touser: 'o_shopper_demo',
      template_id: 'tmpl-order-paid',
      page: 'pages/orders/detail?id=o1',
      data: { thing1: { value: '西湖龙井 明前 100g' }, amount2: { value: '68.00元' } },
      miniprogram_state: 'developer',
    });
    expect(results.bundled!['subscribeMessage']).toEqual({
      ok: true,
      value: { msgid: 3001, errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok' },
    });
  });

  it('places a cloudPay order and a cloudPay refund exactly as the unmodified SDK does', () => {
    const calls = captured.bundled.filter((c) => c.action === 'wx.wxPayApi');
    expect(calls.map((c) => c.apiName)).toEqual(['unifiedOrder', 'refund']);
    expect(JSON.parse(String(calls[0]!.parts['requestData']))).toMatchObject({
      out_trade_no: '20260101120000123abcDEF456',
      sub_mch_id: '1900000109',
      total_fee: 6800,
      function_name: 'payCallback',
    });
    expect(JSON.parse(String(calls[1]!.parts['requestData']))).toMatchObject({
      out_refund_no: 'r20260101120000123abcDEF456',
      refund_fee: 3400,
      function_name: 'refundCallback',
    });
    expect(results.bundled!['cloudPayUnifiedOrder']).toMatchObject({
      ok: true,
      value: { returnCode: 'SUCCESS', payment: { package: 'prepay_id=wx1' }, errCode: 0 },
    });
    expect(results.bundled!['cloudPayRefund']).toMatchObject({
      ok: true,
      value: { resultCode: 'SUCCESS', refundId: '50300000000000000000000000000', errCode: 0 },
    });
  });

  it('still uploads to cloud storage, whose XML reader is loaded only on first use', () => {
    const put = captured.bundled.find((c) => c.action === 'PUT');
    expect(String(put?.parts['body'])).toBe('a,b\n1,2\n');
    expect(results.bundled!['uploadFile']).toMatchObject({
      ok: true,
      value: { fileID: `cloud://${ENV}.bucket/bills/2026-01-01.csv`, errMsg: 'uploadFile:ok' },
    });
  });

  it('sends the same requests and gets the same answers as the SDK installed from npm', () => {
    expect(captured.bundled.map(comparable)).toEqual(captured.external.map(comparable));
    const { ai: _a, ...bundled } = results.bundled!;
    const { ai: _b, ...external } = results.external!;
    expect(bundled).toEqual(external);
  });

  it('fails loudly, naming the trim, if code reaches a part of the SDK that was left out', () => {
    expect(results.bundled!['ai']).toMatchObject({ ok: false, code: TRIMMED_CODE });
    expect(results.bundled!['ai']!.message).toContain('scripts/sdk-trim.ts');
    expect(results.external!['ai']!.ok).toBe(true);
  });
});
