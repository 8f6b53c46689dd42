/**
 * A whole shop in one process for model-based tests: the domain code over the real
 * wx-server-sdk and the CloudBase emulator, WeChat as the simulator's engine reached through
 * the real provider (APIv2: signing, XML, verification; APIv3: Authorization, signed answers,
 * encrypted notifies; error classification on both) over an in-process transport, one clock
 * for both sides, and faults and kills under the test's control. Nothing waits on real time,
 * so thousands of sequences fit in a soak run.
 */

import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig, type ShopConfig } from '../../cloudfunctions/shared/config';
import { type Budget, type Deps, type Payments, withDeadline } from '../../cloudfunctions/shared/domain/deps';
import { httpNotification } from '../../cloudfunctions/shared/domain/notify';
import {
  type NotificationInput,
  type ProviderName,
  providersFromConfig,
} from '../../cloudfunctions/shared/providers';
import { signAnswerForTest } from '../../cloudfunctions/shared/providers/v3/testing';
import { Store } from '../../cloudfunctions/shared/store';
import { nonceStr } from '../../cloudfunctions/shared/wxpay';
import { HttpFailure, type HttpResponse } from '../../cloudfunctions/shared/wxpay/http';
import { ensureCerts } from '../../sandbox/certs';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { type ApiPath, DEFAULT_FAULTS, ensureV3Material, type Faults } from '../../sandbox/wxpay';
import { Ledger } from '../../sandbox/wxpay/ledger';
import { createWxPayCore, type WxPayCore } from '../../sandbox/wxpay/server';
import { createV3Side, type V3Side } from '../../sandbox/wxpay/v3';
import { connectSdk } from '../emulator/sdk';
import { PLACEHOLDER_CERT_PEM, PLACEHOLDER_KEY_PEM } from '../fixtures/placeholder-pem';

export const MERCHANT = {
  appid: 'wxmodel00000000001',
  mchId: '1900000109',
  apiKey: 'MODELKEYMODELKEYMODELKEYMODEL012',
};
const COLLECTIONS = [
  'products',
  'orders',
  'refunds',
  'payment_events',
  'caller_limits',
  'notices',
  'bill_checks',
];

/** A function invocation dies after this many database requests (before or after the last one lands). */
export interface Kill {
  afterRequests: number;
  landed: boolean;
}

export class Killed extends Error {
  constructor() {
    super('the function instance was killed');
  }
}

/** A notify WeChat has sent and nobody delivered yet: APIv2 XML, or APIv3 JSON signed at delivery. */
export interface Sent {
  kind: 'pay' | 'refund';
  body: string;
  v3?: boolean;
}

/** One line a domain function logged: what an operator reads in the function's logs. */
export interface LogLine {
  level: 'info' | 'warn' | 'error';
  event: string;
  fields: Record<string, unknown>;
}

export interface World {
  provider: ProviderName;
  /** Every line logged through deps() since the last reset(), oldest first. */
  logs: LogLine[];
  now(): number;
  advance(ms: number): void;
  core: WxPayCore;
  outbox: Sent[];
  /** A sent notify as it reaches the notify function: APIv3's is signed now, as at each WeChat attempt. */
  delivery(n: Sent): NotificationInput;
  config: ShopConfig;
  /** Deps for one invocation; with `kill`, its store dies mid-way. */
  deps(kill?: Kill): Deps;
  faults(patch: Partial<Faults>): void;
  reset(): Promise<void>;
  close(): Promise<void>;
  emulator: TcbEmulator;
}

/**
 * The merchant's APIv3 material (API certificate, APIv3 key, WeChat Pay public key), made
 * once per process: 2048-bit keys take a moment.
 */
let v3Material:
  | Promise<{
      env: Record<string, string>;
      certPem: string;
      apiV3Key: string;
      signer: { serial: string; privateKey: ReturnType<typeof createPrivateKey> };
      pubPem: string;
    }>
  | undefined;
function v3MaterialOnce() {
  v3Material ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'world-v3-'));
    try {
      const certs = await ensureCerts(join(dir, 'certs'), { mchId: MERCHANT.mchId });
      const m = ensureV3Material(join(dir, 'v3'), {
        caCertPath: certs.caCertPath,
        caKeyPath: join(dir, 'certs', 'ca_key.pem'),
        mchId: MERCHANT.mchId,
      });
      const certPem = readFileSync(certs.certPath, 'utf8');
      const pubPem = readFileSync(m.publicKeyPath, 'utf8');
      return {
        certPem,
        apiV3Key: m.apiV3Key,
        pubPem,
        signer: { serial: m.publicKeyId, privateKey: createPrivateKey(readFileSync(m.publicKeyPrivatePath)) },
        env: {
          WXPAY_PROVIDER: 'v3',
          WXPAY_V3_KEY: m.apiV3Key,
          WXPAY_CERT_PEM: certPem,
          WXPAY_KEY_PEM: readFileSync(certs.keyPath, 'utf8'),
          WXPAY_V3_PUBLIC_KEY_ID: m.publicKeyId,
          WXPAY_V3_PUBLIC_KEY_PEM: pubPem,
        },
      };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return v3Material;
}

/** A request to the simulator's APIv3 side without sockets: its handler with stand-ins for req/res. */
async function v3Answer(
  v3: V3Side,
  url: URL,
  options: { method: string; body?: string; headers: Record<string, string> },
  hung: WeakSet<object>,
): Promise<HttpResponse> {
  const headers: Record<string, string> = { host: url.host };
  for (const [k, v] of Object.entries(options.headers)) headers[k.toLowerCase()] = v;
  let status = 0;
  let answerHeaders: Record<string, string> = {};
  let text = '';
  let ended = false;
  const req = { method: options.method, url: `${url.pathname}${url.search}`, headers };
  const res = {
    writeHead(code: number, h: Record<string, string> = {}) {
      status = code;
      answerHeaders = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), String(v)]));
      return res;
    },
    end(body?: string) {
      text = body ?? '';
      ended = true;
    },
    on() {
      return res;
    },
  };
  await v3.handle(
    req as unknown as IncomingMessage,
    res as unknown as ServerResponse,
    Buffer.from(options.body ?? ''),
  );
  if (!ended || hung.has(res)) throw new HttpFailure('timeout', 'no answer (simulated)');
  return {
    status,
    body: Buffer.from(text, 'utf8'),
    headers: answerHeaders,
  };
}

/**
 * One emulator per process, shared by the worlds a file starts one after another (one per
 * provider): wx-server-sdk's init is global and its pooled sockets outlive an emulator, so the
 * next world reuses the same one. Each world empties the collections in reset(); the emulator
 * stops shortly after the last world closes, unless another starts meanwhile.
 */
let backend: Promise<{ emulator: TcbEmulator; sdk: ReturnType<typeof connectSdk> }> | undefined;
let users = 0;
let stopping: NodeJS.Timeout | undefined;
function sharedBackend() {
  users++;
  clearTimeout(stopping);
  backend ??= (async () => {
    const emulator = await startTcbEmulator({ collections: COLLECTIONS });
    return { emulator, sdk: connectSdk(emulator.serviceUrl) };
  })();
  return backend;
}
async function releaseBackend(): Promise<void> {
  if (--users > 0 || !backend) return;
  const current = backend;
  stopping = setTimeout(() => {
    if (users > 0 || backend !== current) return;
    backend = undefined;
    void current.then(({ emulator }) => emulator.close());
  }, 1000);
}

/** The sub-merchant a service-provider world takes payments for (`partner: true`). */
export const SUB_MERCHANT = { subMchId: '1900000119', subAppid: 'wxsubmerchant00001' };

/**
 * One world for the enclosing suite: started before its tests, closed after them. The value
 * returned stands for that world in hooks and tests (it is not there before `beforeAll`).
 */
export function useWorld(options?: Parameters<typeof startWorld>[0]): World {
  let world: World | undefined;
  beforeAll(async () => {
    world = await startWorld(options);
  }, 60_000);
  afterAll(() => world?.close());
  return new Proxy({} as World, {
    get(_target, key) {
      if (world === undefined) throw new Error('the world starts in beforeAll: use it in hooks and tests');
      return Reflect.get(world, key);
    },
  });
}

export async function startWorld(
  options: { provider?: 'v2' | 'v3'; partner?: boolean; signType?: 'MD5' | 'HMAC-SHA256' } = {},
): Promise<World> {
  const signType = options.signType ?? 'HMAC-SHA256';
  const provider = options.provider ?? 'v2';
  const { emulator, sdk } = await sharedBackend();
  let clock = Date.UTC(2026, 10, 30, 2, 0, 0);
  const now = () => clock;
  const outbox: World['outbox'] = [];
  const logs: LogLine[] = [];
  const ledger = new Ledger();
  const v3m = provider === 'v3' ? await v3MaterialOnce() : undefined;
  const merchant = {
    ...MERCHANT,
    signType,
    refundNotifyUrl: 'http://127.0.0.1:9/http/refund/notify',
    ...(v3m ? { v3: { apiV3Key: v3m.apiV3Key, certPem: v3m.certPem } } : {}),
    // Service-provider mode: MERCHANT is the provider, with two sub-merchants of its own.
    ...(options.partner ? { subMerchants: [SUB_MERCHANT, { subMchId: '1900000129' }] } : {}),
  };
  // The APIv3 side and the core refer to each other.
  let coreRef: WxPayCore | undefined;
  const hung = new WeakSet<object>();
  const v3 = v3m
    ? createV3Side({
        engine: () => coreRef!.engine,
        ledger,
        merchants: [merchant],
        options: {
          publicKey: {
            id: v3m.signer.serial,
            privateKeyPem: v3m.signer.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          },
        },
        now,
        random: () => 0.5,
        faults: {
          timeout: (p) => coreRef!.decisions.timeout(p),
          systemError: (p) => coreRef!.decisions.systemError(p),
          hangAfterEffect: (p) => coreRef!.decisions.hangAfterEffect(p),
        },
        hang: (res) => hung.add(res),
        post: async () => ({ status: 500, body: 'not used: the world delivers notifies itself' }),
      })
    : undefined;
  const core = createWxPayCore({
    merchants: [merchant],
    ledger,
    notifier: {
      enqueue: (kind, _url, body, transport) =>
        outbox.push({ kind, body, ...(transport === 'v3' ? { v3: true } : {}) }),
    },
    now,
    // Rates are 0 or 1 here: every fault is deliberate.
    random: () => 0.5,
    timeScale: 1,
    faults: { refundDelayMs: 365 * 24 * 3600_000 },
    ...(v3
      ? {
          hooks: {
            checkPaySign: v3.hooks.checkPaySign,
            payNotify: (order, m) => v3.hooks.payNotify(order, m),
            refundNotify: (r, m) => v3.hooks.refundNotify(r, m),
          },
        }
      : {}),
  });
  coreRef = core;
  const env = {
    WXPAY_APPID: MERCHANT.appid,
    WXPAY_MCHID: MERCHANT.mchId,
    WXPAY_API_KEY: MERCHANT.apiKey,
    WXPAY_SIGN_TYPE: signType,
    WXPAY_NOTIFY_URL: 'http://127.0.0.1:9/http/pay/notify',
    WXPAY_REFUND_NOTIFY_URL: 'http://127.0.0.1:9/http/refund/notify',
    WXPAY_BASE_URL: 'http://127.0.0.1:9',
    WXPAY_CERT_PEM: PLACEHOLDER_CERT_PEM,
    WXPAY_KEY_PEM: PLACEHOLDER_KEY_PEM,
    ADMIN_OPENIDS: 'o_admin',
    ...v3m?.env,
    ...(options.partner
      ? { WXPAY_SUB_MCHID: SUB_MERCHANT.subMchId, WXPAY_SUB_APPID: SUB_MERCHANT.subAppid }
      : {}),
  };
  const config = loadConfig(env, { wxpay: true, cert: true, calls: true });
  const byName = providersFromConfig(config, {
    now,
    nonce: () => nonceStr(32),
    sleep: async () => {},
    // The HTTP edges, in-process: the simulator answers the exact bytes the client sent.
    v2Transport: async (url, body) => {
      const reply = core.answer(url.pathname as ApiPath, 'POST', Buffer.from(body), MERCHANT.mchId);
      if ('hang' in reply) throw new HttpFailure('timeout', 'no answer (simulated)');
      return { status: reply.status, body: Buffer.from(reply.body), headers: {} };
    },
    ...(v3 ? { v3Transport: (url, o) => v3Answer(v3, url, o, hung) } : {}),
  });
  const payments: Payments = { current: byName[config.providers.current]!, byName };

  function killable(store: Store, kill: Kill): Store {
    let made = 0;
    return new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function' || !['get', 'insert', 'cas', 'find'].includes(String(prop)))
          return value;
        return async (...args: unknown[]) => {
          made++;
          if (made > kill.afterRequests) throw new Killed();
          if (made === kill.afterRequests && !kill.landed) throw new Killed();
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (made === kill.afterRequests) throw new Killed();
          return result;
        };
      },
    });
  }

  return {
    provider,
    logs,
    now,
    advance(ms) {
      clock += ms;
    },
    core,
    outbox,
    delivery(n) {
      if (!n.v3 || !v3m) return httpNotification(n.body);
      const headers = signAnswerForTest(v3m.signer, n.body, {
        timestampS: Math.floor(clock / 1000),
        signatureType: true,
      });
      return httpNotification(n.body, headers);
    },
    config,
    emulator,
    deps(kill) {
      const budget: Budget = { endsAtMs: clock + 30_000, callDeadlineMs: clock + 27_000 };
      const store = new Store(sdk.db);
      return {
        store: kill ? killable(store, kill) : store,
        config,
        wxpay: withDeadline(payments, budget.callDeadlineMs),
        now,
        random: (n = 32) => nonceStr(n),
        log: (level, event, fields = {}) => {
          logs.push({ level, event, fields: { ...fields } });
        },
        budget,
      };
    },
    faults(patch) {
      core.setFaults(patch);
    },
    async reset() {
      const _ = sdk.db.command;
      for (const c of COLLECTIONS)
        await sdk.db
          .collection(c)
          .where({ _id: _.exists(true) })
          .remove();
      ledger.clear();
      outbox.length = 0;
      logs.length = 0;
      core.setFaults({ ...DEFAULT_FAULTS, refundDelayMs: 365 * 24 * 3600_000 });
    },
    close: releaseBackend,
  };
}
