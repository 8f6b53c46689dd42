/**
 * A local CloudBase (TCB) emulator that the unmodified wx-server-sdk talks to.
 *
 * Point the SDK at `serviceUrl` (cloud.init({serviceUrl}) or TCB_CONTEXT_CNFG={"URL":…}).
 * For per-invocation accounting, give each caller its own URL from `scopedServiceUrl(scope)`
 * (`…/inv/<scope>/admin`): the node-sdk re-reads TCB_CONTEXT_CNFG on every request
 * (@cloudbase/node-sdk tcbapiendpoint.ts → getServerInjectUrl), and requests are counted by
 * that path prefix.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ActionRequest, type ActionResponse, handleAction } from './actions';
import { DbFaults, describeRequest, faultError, type Interception } from './faults';
import { handleFaultRoute } from './faults-http';
import { Journal, recover } from './journal';
import { openApiAction } from './openapi';
import { type IndexSpec, Store } from './store';
import { type SubscribeOptions, SubscribeService } from './subscribe';
import { handleWxApi, isMultipart, type WxApiHandler } from './wxapi';
import { type WxPayApiHandler, wxPayApiAction } from './wxpayapi';

export type {
  DbFaultEffect,
  DbFaultError,
  DbFaultMatch,
  DbFaultSpec,
  DbFaults,
  DbRequestInfo,
  FaultHit,
  FaultRule,
} from './faults';
export type { IndexSpec } from './store';

export interface TcbEmulatorOptions {
  host?: string;
  port?: number;
  /** Persist here (snapshot + journal). Omitted: in memory only. */
  dataDir?: string;
  /** Unique indexes per collection, like the console's 索引管理. Defaults to none. */
  indexes?: Record<string, IndexSpec[]>;
  /** Collections created at start if missing (CloudBase has no auto-create). */
  collections?: string[];
  /** Compact the journal into the snapshot past this size. */
  compactBytes?: number;
  transactionLifetimeMs?: number;
  now?: () => number;
  /** Subscribe message templates and pages (cloud.openapi.subscribeMessage.send). */
  subscribe?: Omit<SubscribeOptions, 'dataDir' | 'now'>;
  /** Answers cloudPay's `wx.wxPayApi` calls (multipart); see wxpayapi.ts. */
  wxPayApi?: WxPayApiHandler;
}

export interface TcbEmulator {
  /** What cloud.init({serviceUrl}) or TCB_CONTEXT_CNFG.URL gets. */
  serviceUrl: string;
  /** Base URL of the server (no path). */
  url: string;
  /** A serviceUrl whose requests are counted under `scope`. */
  scopedServiceUrl(scope: string): string;
  /** Database requests received: all, or those sent to scopedServiceUrl(scope). */
  requestCount(scope?: string): number;
  /** Reads and forgets one scope's count (so per-invocation scopes do not pile up). */
  takeRequestCount(scope: string): number;
  collections(): string[];
  /**
   * Database faults: fail, drop, lose the answer of, or hold requests that match (faults.ts).
   * The same registry answers over HTTP under `/_emulator/faults` (faults-http.ts).
   */
  faults: DbFaults;
  /** Subscribe messages: acceptances, inboxes, faults (also at /_emulator/subscribe/*). */
  subscribe: SubscribeService;
  close(): Promise<void>;
  /** Tests only: stop like a killed process, without the final compaction. */
  crash(): Promise<void>;
}

const BODY_LIMIT = 16 * 1024 * 1024;

/** The seed config checked into the repo: which collections exist and their unique indexes. */
export interface SeedConfig {
  collections?: string[];
  indexes?: Record<string, IndexSpec[]>;
}

export function loadSeedConfig(
  path = join(dirname(fileURLToPath(import.meta.url)), 'indexes.json'),
): Required<SeedConfig> {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as SeedConfig;
  return { collections: raw.collections ?? [], indexes: raw.indexes ?? {} };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

const ADMIN_PATH = /^\/(?:inv\/([^/]+)\/)?admin\/?$/;

/**
 * Carries out what a fault rule decided for one request. A held request waits here; if its
 * caller disconnects first (the function was killed), it is abandoned and never run.
 */
async function serveIntercepted(
  x: Interception,
  res: ServerResponse,
  run: () => Promise<ActionResponse>,
): Promise<void> {
  res.once('close', () => {
    if (!res.writableEnded) x.callerGone();
  });
  const effect = await x.effect;
  if (effect === 'abandoned') {
    res.destroy();
    return;
  }
  switch (effect.action) {
    case 'proceed': {
      const response = await run();
      send(res, 200, response);
      x.settle({ state: 'answered', response });
      return;
    }
    case 'fail': {
      // Errors travel as HTTP 200 {code, message}, like every database error (actions.ts).
      const response = { requestId: randomUUID(), ...faultError(effect.error) };
      send(res, 200, response);
      x.settle({ state: 'failed', response });
      return;
    }
    case 'drop':
      res.destroy();
      x.settle({ state: 'dropped' });
      return;
    case 'loseAnswer': {
      const response = await run();
      // hang: the response stays open until the caller gives up or the emulator stops.
      if (effect.how !== 'hang') res.destroy();
      x.settle({ state: 'lost', response });
      return;
    }
  }
}

export async function startTcbEmulator(options: TcbEmulatorOptions = {}): Promise<TcbEmulator> {
  const now = options.now ?? Date.now;
  const store = new Store({
    indexes: options.indexes ?? {},
    transactionLifetimeMs: options.transactionLifetimeMs,
    now,
  });
  let journal: Journal | null = null;
  if (options.dataDir) {
    const recovered = recover(options.dataDir);
    store.load(recovered.snapshot, recovered.entries);
    if (recovered.droppedTornTail) {
      console.warn(`[tcb-emulator] dropped a torn last journal line in ${options.dataDir} (crash mid-write)`);
    }
    journal = await Journal.open(
      options.dataDir,
      () => store.snapshot(),
      options.compactBytes ?? 8 * 1024 * 1024,
    );
    const j = journal;
    store.setPersist((entry) => j.append(entry));
  }
  for (const name of options.collections ?? []) {
    if (!store.collectionNames().includes(name)) await store.createCollection(name);
  }

  const subscribe = new SubscribeService({
    ...options.subscribe,
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    now,
  });
  const wxApis: Record<string, WxApiHandler> = {
    'wx.openApi': openApiAction({ 'subscribeMessage.send': (p) => subscribe.send(p) }),
    ...(options.wxPayApi ? { 'wx.wxPayApi': wxPayApiAction(options.wxPayApi) } : {}),
  };

  let total = 0;
  const perScope = new Map<string, number>();
  const faults = new DbFaults();

  const server = createServer(async (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path === '/healthz') return send(res, 200, { ok: true });
    if (path.startsWith('/_emulator/faults') && (await handleFaultRoute(faults, req, res, path))) return;
    // The function runtime reads each invocation's count here when it runs in another process.
    const countPath = /^\/_emulator\/requests\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && countPath) {
      const scope = decodeURIComponent(countPath[1]!);
      const count = perScope.get(scope) ?? 0;
      perScope.delete(scope);
      return send(res, 200, { scope, count });
    }
    if (await subscribe.handleControl(req, res)) return;
    const m = ADMIN_PATH.exec(path);
    if (!m || req.method !== 'POST')
      return send(res, 404, { code: 'NOT_FOUND', message: `no route ${req.method} ${path}` });
    // Cloud calls (wx.*) come as multipart forms; the database's actions as JSON.
    if (isMultipart(req)) return handleWxApi(req, res, wxApis);
    let body: ActionRequest;
    try {
      body = JSON.parse((await readBody(req)).toString('utf8')) as ActionRequest;
    } catch {
      return send(res, 400, { code: 'INVALID_PARAM', message: 'body must be JSON' });
    }
    // Counted on arrival: the SDK awaits every response, so when a function's main() has
    // resolved, all of its requests have been counted.
    const scope = m[1] ? decodeURIComponent(m[1]) : undefined;
    if (typeof body.action === 'string' && body.action.startsWith('database.')) {
      total += 1;
      if (scope !== undefined) perScope.set(scope, (perScope.get(scope) ?? 0) + 1);
    }
    const intercepted =
      faults.armed() && typeof body === 'object' && body !== null
        ? faults.intercept(describeRequest(body as Record<string, unknown>, scope))
        : undefined;
    // The clock is read when the request runs, so a held write stamps its release time.
    if (!intercepted) return send(res, 200, await handleAction(store, body, now()));
    await serveIntercepted(intercepted, res, () => handleAction(store, body, now()));
  });
  // The SDK's agent keeps idle sockets for 4.8 s. A server closing them at 5 s races that
  // timer: on a loaded machine the agent reuses a socket the server has just closed, and the
  // request fails with ECONNRESET, which CloudBase's own front end (idle timeouts of a minute
  // and more) never causes. close() ends idle sockets itself (closeAllConnections below).
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;

  const stopServer = () =>
    new Promise<void>((resolve) => {
      // Held requests never run once the database is going away.
      faults.abandonAll();
      server.close(() => resolve());
      server.closeAllConnections();
    });

  return {
    url,
    serviceUrl: `${url}/admin`,
    scopedServiceUrl: (scope) => `${url}/inv/${encodeURIComponent(scope)}/admin`,
    requestCount: (scope) => (scope === undefined ? total : (perScope.get(scope) ?? 0)),
    takeRequestCount: (scope) => {
      const n = perScope.get(scope) ?? 0;
      perScope.delete(scope);
      return n;
    },
    collections: () => store.collectionNames(),
    faults,
    subscribe,
    close: async () => {
      await stopServer();
      store.close();
      await journal?.close();
    },
    crash: async () => {
      await stopServer();
      store.close();
      await journal?.abandon();
    },
  };
}
