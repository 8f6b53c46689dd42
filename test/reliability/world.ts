/**
 * A whole shop in one process for model-based tests: the domain code over the real
 * wx-server-sdk and the CloudBase emulator, WeChat as the simulator's engine reached through
 * the real APIv2 client (signing, XML, verification, error classification) over an
 * in-process transport, one clock for both sides, and faults and kills under the test's
 * control. Nothing waits on real time, so thousands of sequences fit in a soak run.
 */
import { loadConfig, type ShopConfig } from '../../cloudfunctions/shared/config';
import { type Budget, type Deps, withDeadline } from '../../cloudfunctions/shared/domain/deps';
import { Store } from '../../cloudfunctions/shared/store';
import { createWxPayClient, nonceStr } from '../../cloudfunctions/shared/wxpay';
import { HttpFailure } from '../../cloudfunctions/shared/wxpay/http';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { type ApiPath, DEFAULT_FAULTS, type Faults } from '../../sandbox/wxpay';
import { Ledger } from '../../sandbox/wxpay/ledger';
import { createWxPayCore, type WxPayCore } from '../../sandbox/wxpay/server';
import { connectSdk } from '../emulator/sdk';

export const MERCHANT = {
  appid: 'wxmodel00000000001',
  mchId: '1900000109',
  apiKey: 'MODELKEYMODELKEYMODELKEYMODEL012',
};
const COLLECTIONS = ['products', 'orders', 'refunds', 'payment_events', 'caller_limits'];

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

export interface World {
  now(): number;
  advance(ms: number): void;
  core: WxPayCore;
  /** Notify bodies WeChat has sent and nobody delivered yet. */
  outbox: { kind: 'pay' | 'refund'; body: string }[];
  config: ShopConfig;
  /** Deps for one invocation; with `kill`, its store dies mid-way. */
  deps(kill?: Kill): Deps;
  faults(patch: Partial<Faults>): void;
  reset(): Promise<void>;
  close(): Promise<void>;
  emulator: TcbEmulator;
}

export async function startWorld(): Promise<World> {
  const emulator = await startTcbEmulator({ collections: COLLECTIONS });
  const sdk = connectSdk(emulator.serviceUrl);
  let clock = Date.UTC(2026, 10, 30, 2, 0, 0);
  const now = () => clock;
  const outbox: World['outbox'] = [];
  const ledger = new Ledger();
  const core = createWxPayCore({
    merchants: [
      { ...MERCHANT, signType: 'HMAC-SHA256', refundNotifyUrl: 'http://127.0.0.1:9/http/refund/notify' },
    ],
    ledger,
    notifier: { enqueue: (kind, _url, body) => outbox.push({ kind, body }) },
    now,
    // Rates are 0 or 1 here: every fault is deliberate.
    random: () => 0.5,
    timeScale: 1,
    faults: { refundDelayMs: 365 * 24 * 3600_000 },
  });
  const env = {
    WXPAY_APPID: MERCHANT.appid,
    WXPAY_MCHID: MERCHANT.mchId,
    WXPAY_API_KEY: MERCHANT.apiKey,
    WXPAY_SIGN_TYPE: 'HMAC-SHA256',
    WXPAY_NOTIFY_URL: 'http://127.0.0.1:9/http/pay/notify',
    WXPAY_REFUND_NOTIFY_URL: 'http://127.0.0.1:9/http/refund/notify',
    WXPAY_BASE_URL: 'http://127.0.0.1:9',
    WXPAY_CERT_PEM: '-----BEGIN CERTIFICATE-----\nmodel\n-----END CERTIFICATE-----',
    WXPAY_KEY_PEM: '-----BEGIN PRIVATE KEY-----\nmodel\n-----END PRIVATE KEY-----',
    ADMIN_OPENIDS: 'o_admin',
  };
  const config = loadConfig(env, { wxpay: true, cert: true, calls: true });
  const client = createWxPayClient({
    ...MERCHANT,
    signType: 'HMAC-SHA256',
    baseUrl: env.WXPAY_BASE_URL,
    cert: { certPem: env.WXPAY_CERT_PEM, keyPem: env.WXPAY_KEY_PEM },
    now,
    sleep: async () => {},
    // The HTTP edge, in-process: the simulator answers the exact bytes the client sent.
    transport: async (url, body) => {
      const reply = core.answer(url.pathname as ApiPath, 'POST', Buffer.from(body), MERCHANT.mchId);
      if ('hang' in reply) throw new HttpFailure('timeout', 'no answer (simulated)');
      return { status: reply.status, body: Buffer.from(reply.body), headers: {} };
    },
  });

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
    now,
    advance(ms) {
      clock += ms;
    },
    core,
    outbox,
    config,
    emulator,
    deps(kill) {
      const budget: Budget = { endsAtMs: clock + 30_000, callDeadlineMs: clock + 27_000 };
      const store = new Store(sdk.db);
      return {
        store: kill ? killable(store, kill) : store,
        config,
        wxpay: withDeadline(client, budget.callDeadlineMs),
        now,
        random: (n = 32) => nonceStr(n),
        log: () => {},
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
      core.setFaults({ ...DEFAULT_FAULTS, refundDelayMs: 365 * 24 * 3600_000 });
    },
    close: () => emulator.close(),
  };
}
