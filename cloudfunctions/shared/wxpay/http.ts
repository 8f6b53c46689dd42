/**
 * One HTTP request over node:http/https with a connect timeout and a total timeout. Not the global
 * fetch: refunds need the merchant's client certificate and the sandbox an extra CA on the
 * TLS connection, which node:https takes per agent and fetch takes only through undici's own
 * dispatcher (one more dependency in every bundle). Knows nothing about WeChat.
 */
import * as http from 'node:http';
import * as https from 'node:https';

export interface HttpResponse {
  status: number;
  body: Buffer;
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>;
}

export class HttpFailure extends Error {
  constructor(
    readonly reason: 'connect-timeout' | 'timeout' | 'network' | 'too-large',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PostOptions {
  agent: http.Agent;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  maxResponseBytes: number;
  contentType: string;
}

export function post(url: URL, body: string, opts: PostOptions): Promise<HttpResponse> {
  return request(url, {
    method: 'POST',
    body,
    headers: { 'content-type': opts.contentType },
    agent: opts.agent,
    connectTimeoutMs: opts.connectTimeoutMs,
    totalTimeoutMs: opts.totalTimeoutMs,
    maxResponseBytes: opts.maxResponseBytes,
  });
}

export interface RequestOptions {
  method: 'GET' | 'POST';
  /** Sent as UTF-8 with a content-length; omit for none. */
  body?: string;
  headers: Record<string, string>;
  agent: http.Agent;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  maxResponseBytes: number;
}

export function request(url: URL, opts: RequestOptions): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    // The agent decides the protocol (Node checks the two agree), so picking the module by
    // URL only keeps the intent readable: its mutants are equivalent.
    // Stryker disable next-line ConditionalExpression,EqualityOperator,StringLiteral: the agent decides.
    const mod = url.protocol === 'https:' ? https : http;
    let settled = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const finish = (err: HttpFailure | undefined, res?: HttpResponse): void => {
      // A promise settles once anyway; the flag only saves a second destroy and clearTimeout.
      // Stryker disable next-line ConditionalExpression,BooleanLiteral: equivalent, see above.
      if (settled) return;
      // Stryker disable next-line BooleanLiteral: equivalent, see above.
      settled = true;
      clearTimeout(totalTimer);
      clearTimeout(connectTimer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(res!);
    };
    // Stryker disable next-line StringLiteral: utf8 is Buffer.from's default (equivalent).
    const payload = opts.body === undefined ? undefined : Buffer.from(opts.body, 'utf8');
    const req = mod.request(url, {
      method: opts.method,
      agent: opts.agent,
      headers: payload ? { ...opts.headers, 'content-length': String(payload.length) } : opts.headers,
    });
    const totalTimer = setTimeout(
      () => finish(new HttpFailure('timeout', `no complete answer within ${opts.totalTimeoutMs} ms`)),
      opts.totalTimeoutMs,
    );
    req.on('socket', (socket) => {
      if (!socket.connecting) return;
      connectTimer = setTimeout(
        () =>
          finish(new HttpFailure('connect-timeout', `could not connect within ${opts.connectTimeoutMs} ms`)),
        opts.connectTimeoutMs,
      );
      socket.once('connect', () => clearTimeout(connectTimer));
    });
    req.on('error', (cause) =>
      finish(new HttpFailure('network', `request failed: ${(cause as Error).message}`, { cause })),
    );
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > opts.maxResponseBytes) {
          finish(new HttpFailure('too-large', `answer is larger than ${opts.maxResponseBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (cause) =>
        finish(new HttpFailure('network', `answer interrupted: ${cause.message}`, { cause })),
      );
      res.on('end', () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) {
          // Stryker disable next-line ConditionalExpression: Node lists only headers it has a value for; undefined is in the type alone.
          if (v === undefined) continue;
          headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
        }
        finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers });
      });
    });
    req.end(payload);
  });
}
