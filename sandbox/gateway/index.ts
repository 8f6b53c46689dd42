/**
 * The local front door, standing in for two CloudBase entrances:
 *
 * - `POST /functions/<name>` plays wx.cloud.callFunction: JSON body = event, the caller's
 *   openid from `x-wx-openid` (the console and tests say who they are; in production WeChat
 *   vouches for it). The function gets OPENID/APPID/CLIENTIP and SOURCE wx_client, and the
 *   event gains `userInfo: {appId, openId}` as the platform adds it.
 * - `ANY /http/<path>` plays HTTP access (云函数 HTTP 访问服务, reference §3): the request
 *   becomes the integration event, and the return value is mapped back the way CloudBase
 *   does (integration response as-is; string → text/plain; anything else → JSON).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve } from 'node:path';
import { FunctionNotFoundError, type FunctionRuntime, type InvokeResult } from '../runtime';

export interface GatewayOptions {
  runtime: FunctionRuntime;
  host?: string;
  port?: number;
  /** The mini-program AppID put into the context of client calls. */
  appid: string;
  /** HTTP access routes: path (matched on whole segments, longest first) → function. */
  httpRoutes?: Record<string, string>;
  /** Served at / (the console). */
  staticDir?: string;
  envId?: string;
  /**
   * SOURCE for HTTP-access invocations. The real value is undocumented ("其他: 非微信端触发",
   * reference §2); what matters is that it is not wx_client and carries no OPENID.
   */
  httpSource?: string;
  /** Request body limit; larger bodies get 413. Default 1 MB. */
  bodyLimitBytes?: number;
  /**
   * Sees every request before the built-in routes; resolves true when it answered. The
   * console's API lives here, so the gateway itself knows nothing of the simulator.
   */
  onRequest?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;
}

export interface Gateway {
  url: string;
  close(): Promise<void>;
}

/** The integration event handed to an HTTP-access function. */
export interface HttpAccessEvent {
  path: string;
  httpMethod: string;
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
  queryStringParameters: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
  requestContext: { requestId: string; envId: string; appId: string; uin: string };
}

class PayloadTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new PayloadTooLarge());
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new PayloadTooLarge());
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolvePromise(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const TEXTUAL = /^(text\/|application\/(json|xml|x-www-form-urlencoded|javascript)|[^;]*\+(json|xml))/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text bodies go as strings; binary or non-UTF-8 bodies as base64 with isBase64Encoded. */
export function encodeHttpBody(
  body: Buffer,
  contentType: string | undefined,
): { body: string; isBase64Encoded: boolean } {
  if (body.length === 0) return { body: '', isBase64Encoded: false };
  if (!contentType || TEXTUAL.test(contentType)) {
    try {
      return { body: utf8.decode(body), isBase64Encoded: false };
    } catch {
      // not UTF-8: fall through to base64
    }
  }
  return { body: body.toString('base64'), isBase64Encoded: true };
}

function isIntegrationResponse(v: unknown): v is {
  statusCode: number;
  headers?: Record<string, string | number | string[]>;
  body?: unknown;
  isBase64Encoded?: boolean;
} {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    typeof (v as { statusCode?: unknown }).statusCode === 'number'
  );
}

/** Maps a function's return value to the HTTP response, as CloudBase HTTP access does (§3.2). */
export function httpResponseFor(result: unknown): {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
} {
  if (isIntegrationResponse(result)) {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(result.headers ?? {}))
      headers[k.toLowerCase()] = Array.isArray(v) ? v : String(v);
    const raw = result.body ?? '';
    const text = typeof raw === 'string' ? raw : JSON.stringify(raw);
    const body = result.isBase64Encoded ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
    return { status: result.statusCode, headers, body };
  }
  if (typeof result === 'string' || typeof result === 'number') {
    return {
      status: 200,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: Buffer.from(String(result)),
    };
  }
  return {
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: Buffer.from(JSON.stringify(result ?? null)),
  };
}

function routeFor(routes: Record<string, string>, path: string): string | undefined {
  const keys = Object.keys(routes).sort((a, b) => b.length - a.length);
  const hit = keys.find((r) => {
    const route = r.replace(/\/+$/, '') || '/';
    return path === route || path.startsWith(route === '/' ? '/' : `${route}/`);
  });
  return hit === undefined ? undefined : routes[hit];
}

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

function serveStatic(res: ServerResponse, dir: string, urlPath: string): boolean {
  const root = resolve(dir);
  const rel = normalize(decodeURIComponent(urlPath)).replace(/^(\.\.[/\\])+/, '');
  let file = join(root, rel);
  if (!file.startsWith(root)) return false;
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  if (!existsSync(file) || !statSync(file).isFile()) return false;
  const body = readFileSync(file);
  res.writeHead(200, {
    'content-type': STATIC_TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': body.length,
  });
  res.end(body);
  return true;
}

function functionFailure(res: ServerResponse, out: InvokeResult): void {
  // What wx.cloud.callFunction rejects with when the function throws or times out.
  sendJson(res, out.error!.code === 'FUNCTION_TIMEOUT' ? 504 : 500, {
    errCode: -504002,
    errMsg: `functions execute fail. ${out.error!.message}`,
    requestId: out.requestId,
  });
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { runtime } = options;
  const routes = options.httpRoutes ?? {};
  const limit = options.bodyLimitBytes ?? 1024 * 1024;
  const envId = options.envId ?? 'local';
  const httpSource = options.httpSource ?? 'tcb_http';

  async function callFunction(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    if (!runtime.has(name)) {
      return sendJson(res, 404, {
        errCode: -501000,
        errMsg: `[ResourceNotFound.Function] function ${name} not found`,
      });
    }
    let event: unknown;
    try {
      const raw = (await readBody(req, limit)).toString('utf8');
      event = raw.trim() === '' ? {} : JSON.parse(raw);
    } catch (e) {
      if (e instanceof PayloadTooLarge)
        return sendJson(res, 413, { errCode: -501007, errMsg: 'request body too large' });
      return sendJson(res, 400, { errCode: -501007, errMsg: 'body must be a JSON event' });
    }
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      return sendJson(res, 400, { errCode: -501007, errMsg: 'the event must be a JSON object' });
    }
    const openid = headerValue(req, 'x-wx-openid');
    const unionid = headerValue(req, 'x-wx-unionid');
    const withUser = {
      ...(event as Record<string, unknown>),
      userInfo: { appId: options.appid, openId: openid },
    };
    const out = await runtime.invoke(name, withUser, {
      ...(openid ? { OPENID: openid } : {}),
      ...(unionid ? { UNIONID: unionid } : {}),
      APPID: options.appid,
      CLIENTIP: clientIp(req),
      SOURCE: 'wx_client',
    });
    if (out.error) return functionFailure(res, out);
    sendJson(res, 200, out.result);
  }

  async function httpAccess(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: URLSearchParams,
  ): Promise<void> {
    const fn = routeFor(routes, path);
    if (!fn || !runtime.has(fn)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`no HTTP access route for ${path}`);
      return;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req, limit);
    } catch (e) {
      res.writeHead(e instanceof PayloadTooLarge ? 413 : 400, {
        'content-type': 'text/plain; charset=utf-8',
      });
      res.end(e instanceof PayloadTooLarge ? 'request body too large' : 'bad request');
      return;
    }
    const headers: Record<string, string> = {};
    const multiValueHeaders: Record<string, string[]> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i]!.toLowerCase();
      const v = req.rawHeaders[i + 1]!;
      const values = [...(multiValueHeaders[k] ?? []), v];
      multiValueHeaders[k] = values;
      headers[k] = values.join(',');
    }
    const queryStringParameters: Record<string, string> = {};
    for (const [k, v] of query) queryStringParameters[k] = v;
    const event: HttpAccessEvent = {
      path,
      httpMethod: req.method ?? 'GET',
      headers,
      multiValueHeaders,
      queryStringParameters,
      ...encodeHttpBody(raw, req.headers['content-type']),
      requestContext: { requestId: randomUUID(), envId, appId: '1250000000', uin: '100000000001' },
    };
    // No user behind an HTTP request: no OPENID/APPID, and a SOURCE that is not wx_client.
    const out = await runtime.invoke(fn, event, { SOURCE: httpSource });
    if (out.error) {
      res.writeHead(502, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ errorCode: -1, errorMessage: out.error.message, requestId: out.requestId }));
      return;
    }
    const mapped = httpResponseFor(out.result);
    res.writeHead(mapped.status, { ...mapped.headers, 'content-length': mapped.body.length });
    res.end(mapped.body);
  }

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://gateway.local');
      const path = url.pathname;
      if (path === '/healthz' && req.method === 'GET') return sendJson(res, 200, { ok: true });
      if (options.onRequest && (await options.onRequest(req, res, url))) return;
      if (options.onRequest && (await options.onRequest(req, res, url))) return;
      const fn = /^\/functions\/([^/]+)\/?$/.exec(path);
      if (fn) {
        if (req.method !== 'POST') return sendJson(res, 405, { errCode: -501007, errMsg: 'use POST' });
        return await callFunction(req, res, decodeURIComponent(fn[1]!));
      }
      if (path === '/http' || path.startsWith('/http/')) {
        return await httpAccess(req, res, path.slice('/http'.length) || '/', url.searchParams);
      }
      if (options.staticDir && req.method === 'GET' && serveStatic(res, options.staticDir, path)) return;
      sendJson(res, 404, { errCode: -1, errMsg: `no route ${req.method} ${path}` });
    } catch (e) {
      if (e instanceof FunctionNotFoundError)
        return sendJson(res, 404, { errCode: -501000, errMsg: e.message });
      if (!res.headersSent)
        sendJson(res, 500, { errCode: -1, errMsg: `gateway error: ${(e as Error).message}` });
      else res.end();
    }
  });

  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolvePromise());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      new Promise<void>((resolvePromise) => {
        server.close(() => resolvePromise());
        server.closeAllConnections();
      }),
  };
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  const trimmed = s?.trim();
  return trimmed ? trimmed : undefined;
}

function clientIp(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}
