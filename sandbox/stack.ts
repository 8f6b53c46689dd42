/**
 * The whole offline shop in one call: CloudBase emulator, WeChat Pay simulator, function
 * runtime and gateway on 127.0.0.1, wired exactly as production is except for endpoints and
 * credentials (docs/ARCHITECTURE.md §1, §7). `npm start`, the integration tests, the benchmarks and
 * the browser test all start it the same way.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { FunctionMap, FunctionName, Result } from '../cloudfunctions/shared/contract';
import { PROVIDER_NAMES, type ProviderName } from '../cloudfunctions/shared/providers/port';
import { nonceStr } from '../cloudfunctions/shared/wxpay/nonce';
import type { SignType } from '../cloudfunctions/shared/wxpay/types';
import { ensureCerts } from './certs';
import { type AdminDb, adminDatabase } from './db';
import { startGateway } from './gateway';
import { DEMO_SUBSCRIBE_TEMPLATES, demoNoticeEnv } from './notice-templates';
import { createFunctionRuntime } from './runtime';
import { COLLECTION_NAMES, DEMO_PRODUCTS } from './seed';
import { startTcbEmulator } from './tcb';
import { ensureV3Material, type SimMerchant, startWxPaySimulator, type WxPaySimulator } from './wxpay';

export const ROOT = resolve(__dirname, '..');

export interface MerchantInfo {
  appid: string;
  mchid: string;
  apiKey: string;
  signType: SignType;
  certPath: string;
  keyPath: string;
  pfxPath: string;
}

/**
 * The merchant's APIv3 material (with `provider: 'v3'`): its API certificate and key are the
 * APIv2 client certificate's (certPath/keyPath), as at WeChat.
 */
export interface V3MerchantInfo {
  apiV3Key: string;
  /** Serial of the merchant API certificate (`serial_no` in the Authorization header). */
  merchantSerial: string;
  privateKeyPath: string;
  /** The WeChat Pay public key (`pub_key.pem`) and its id. */
  publicKeyId: string;
  publicKeyPath: string;
  /** WeChat Pay's platform certificate (older merchants; the simulator signs with the public key unless asked). */
  platformSerial: string;
  platformCertPath: string;
}

export interface CloudPayInfo {
  /** The shop's merchant number, bound to the environment (sub_mch_id). */
  subMchId: string;
  envId: string;
  payFunction: string;
  refundFunction: string;
}

/** `.data/stack.json`: what the console, tests and scripts read (docs/ARCHITECTURE.md §7). */
export interface StackInfo {
  consoleUrl: string;
  gatewayUrl: string;
  tcbServiceUrl: string;
  wxpayBaseUrl: string;
  caCertPath: string;
  shopperOpenid: string;
  adminOpenid: string;
  merchant: MerchantInfo;
  /** How new orders are paid (WXPAY_PROVIDER); v2 by default. */
  provider: ProviderName;
  /**
   * Providers of orders made in earlier runs on this data folder (WXPAY_KEEP_PROVIDERS): they
   * stay enabled, so a shop switched with `npm start -- --provider v3` keeps its APIv2 orders.
   */
  keptProviders?: ProviderName[];
  v3?: V3MerchantInfo;
  cloudPay?: CloudPayInfo;
}

export interface StackOptions {
  /** Persist the database, ledger, certificates and merchant key here; omitted = a temp dir, in memory. */
  dataDir?: string;
  host?: string;
  ports?: { gateway?: number; tcb?: number; wxpay?: number };
  signType?: SignType;
  /**
   * v2 (default: exactly the APIv2 sandbox), v3 (the simulator also speaks APIv3 with the
   * merchant's v3 material, created once in the data folder) or cloudpay (the emulator also
   * answers cloudPay and the simulator calls the named functions back). Sets WXPAY_PROVIDER
   * and that provider's variables for the functions.
   */
  provider?: ProviderName;
  /**
   * Providers to keep enabled for earlier orders. Default: with a data folder, the providers
   * its last run used (a switch keeps the old orders working); without one, none.
   */
  keepProviders?: ProviderName[];
  /** 1 = WeChat's real notify and refund timings. */
  timeScale?: number;
  functionsDir?: string;
  /** Extra or overriding function environment variables. */
  env?: Record<string, string>;
  seed?: boolean;
  timers?: boolean;
  staticDir?: string;
  /** Progress lines while starting. */
  progress?: (line: string) => void;
  /**
   * The runtime's line per invocation and every line the functions print (their JSON logs);
   * default: this process's stdout.
   */
  functionLog?: (line: string) => void;
  /**
   * Extra gateway routes that need the assembled stack (the console's API). Called once the
   * stack is up; until then those requests fall through to the gateway's own routes.
   */
  gatewayExtension?: (stack: Stack) => GatewayRequestHook;
}

/** Answers a gateway request before its built-in routes; resolves true when it did. */
export type GatewayRequestHook = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => boolean | Promise<boolean>;

export interface Stack {
  info: StackInfo;
  env: Record<string, string>;
  simulator: WxPaySimulator;
  emulator: Awaited<ReturnType<typeof startTcbEmulator>>;
  runtime: ReturnType<typeof createFunctionRuntime>;
  gateway: Awaited<ReturnType<typeof startGateway>>;
  /** Direct database access for seeding, the console and assertions. */
  db: AdminDb;
  /** Calls a function as the mini-program would, as `openid`. */
  call<K extends FunctionName>(
    name: K,
    event: FunctionMap[K][0],
    openid: string,
  ): Promise<Result<FunctionMap[K][1]>>;
  close(): Promise<void>;
}

async function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => res(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** A port that is taken gets a clear message instead of EADDRINUSE deep in a stack trace. */
async function checkPort(host: string, port: number, what: string): Promise<number> {
  if (port === 0) return freePort(host);
  await new Promise<void>((res, rej) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) =>
      rej(
        new Error(
          e.code === 'EADDRINUSE'
            ? `port ${port} for the ${what} is taken; choose another (see README)`
            : e.message,
        ),
      ),
    );
    srv.listen(port, host, () => srv.close(() => res()));
  });
  return port;
}

function loadMerchant(
  dir: string,
  signType: SignType | undefined,
): { appid: string; mchid: string; apiKey: string; signType: SignType } {
  const file = join(dir, 'merchant.json');
  if (existsSync(file)) {
    const m = JSON.parse(readFileSync(file, 'utf8'));
    return { ...m, signType: signType ?? m.signType };
  }
  // A fresh key per sandbox: nothing secret is ever committed, and no two sandboxes share one.
  const m = {
    appid: 'wxlocalsandbox0001',
    mchid: '1900000109',
    apiKey: nonceStr(32),
    signType: signType ?? 'HMAC-SHA256',
  };
  writeFileSync(file, `${JSON.stringify(m, null, 2)}\n`, { mode: 0o600 });
  return m;
}

/** The providers the last run on this data folder used (its stack.json), so a switch keeps them. */
function previousProviders(dataDir: string): ProviderName[] {
  try {
    const prev = JSON.parse(readFileSync(join(dataDir, 'stack.json'), 'utf8')) as Partial<StackInfo>;
    return [prev.provider ?? 'v2', ...(prev.keptProviders ?? [])].filter((p): p is ProviderName =>
      (PROVIDER_NAMES as readonly string[]).includes(p),
    );
  } catch {
    return [];
  }
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const host = options.host ?? '127.0.0.1';
  const progress = options.progress ?? (() => {});
  const persistent = options.dataDir !== undefined;
  const dataDir = options.dataDir ? resolve(options.dataDir) : mkdtempSync(join(tmpdir(), 'shop-stack-'));
  mkdirSync(dataDir, { recursive: true });
  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    const merchant = loadMerchant(dataDir, options.signType);
    progress('certificates');
    const certs = await ensureCerts(join(dataDir, 'certs'), { mchId: merchant.mchid });

    const gatewayPort = await checkPort(host, options.ports?.gateway ?? 0, 'gateway');
    const gatewayUrl = `http://${host}:${gatewayPort}`;

    const provider = options.provider ?? 'v2';
    const keptProviders = (options.keepProviders ?? (persistent ? previousProviders(dataDir) : [])).filter(
      (p, i, all) => p !== provider && all.indexOf(p) === i,
    );
    const uses = (p: ProviderName) => p === provider || keptProviders.includes(p);
    const envId = 'local';
    // Started before the simulator, so the cloudPay route finds it through this reference.
    let simulatorRef: WxPaySimulator | undefined;

    progress('CloudBase emulator');
    const emulator = await startTcbEmulator({
      host,
      port: await checkPort(host, options.ports?.tcb ?? 0, 'CloudBase emulator'),
      ...(persistent ? { dataDir: join(dataDir, 'tcb') } : {}),
      collections: [...COLLECTION_NAMES],
      subscribe: {
        templates: DEMO_SUBSCRIBE_TEMPLATES,
        pages: JSON.parse(readFileSync(join(ROOT, 'miniprogram', 'app.json'), 'utf8')).pages,
      },
      ...(uses('cloudpay')
        ? {
            wxPayApi: (call) =>
              simulatorRef!.cloudPay({
                apiName: call.apiName,
                data: call.data,
                ...(call.appid ? { appid: call.appid } : {}),
              }),
          }
        : {}),
    });
    cleanup.push(() => emulator.close());

    const v3Material = uses('v3')
      ? ensureV3Material(join(dataDir, 'certs', 'v3'), {
          caCertPath: certs.caCertPath,
          caKeyPath: join(dataDir, 'certs', 'ca_key.pem'),
          mchId: merchant.mchid,
        })
      : undefined;
    const simMerchant: SimMerchant = {
      appid: merchant.appid,
      mchId: merchant.mchid,
      apiKey: merchant.apiKey,
      signType: merchant.signType,
      refundNotifyUrl: `${gatewayUrl}/http/refund/notify`,
      ...(v3Material
        ? {
            v3: {
              apiV3Key: v3Material.apiV3Key,
              certPem: readFileSync(certs.certPath, 'utf8'),
              refundNotifyUrl: `${gatewayUrl}/http/refund/notify`,
            },
          }
        : {}),
    };

    progress('WeChat Pay simulator');
    const simulator = await startWxPaySimulator({
      host,
      port: await checkPort(host, options.ports?.wxpay ?? 0, 'WeChat Pay simulator'),
      certs,
      merchants: [simMerchant],
      timeScale: options.timeScale ?? 1,
      ...(persistent ? { stateFile: join(dataDir, 'wxpay-ledger.json') } : {}),
      ...(v3Material
        ? {
            v3: {
              publicKey: {
                id: v3Material.publicKeyId,
                privateKeyPem: readFileSync(v3Material.publicKeyPrivatePath, 'utf8'),
              },
              platformCertificate: {
                certPem: readFileSync(v3Material.platformCertPath, 'utf8'),
                privateKeyPem: readFileSync(v3Material.platformKeyPath, 'utf8'),
              },
            },
          }
        : {}),
      ...(uses('cloudpay')
        ? { cloudPay: { bound: [{ subMchId: merchant.mchid, subAppid: merchant.appid }] } }
        : {}),
    });
    simulatorRef = simulator;
    cleanup.push(() => simulator.close());

    const shopperOpenid = 'o_shopper_demo';
    const adminOpenid = 'o_admin_demo';
    const env: Record<string, string> = {
      WXPAY_APPID: merchant.appid,
      WXPAY_MCHID: merchant.mchid,
      WXPAY_API_KEY: merchant.apiKey,
      WXPAY_SIGN_TYPE: merchant.signType,
      WXPAY_NOTIFY_URL: `${gatewayUrl}/http/pay/notify`,
      WXPAY_REFUND_NOTIFY_URL: `${gatewayUrl}/http/refund/notify`,
      WXPAY_CERT_PEM: readFileSync(certs.certPath, 'utf8'),
      WXPAY_KEY_PEM: readFileSync(certs.keyPath, 'utf8'),
      WXPAY_BASE_URL: simulator.url,
      WXPAY_CA_PEM: readFileSync(certs.caCertPath, 'utf8'),
      // WeChat's business timings (notify retries, refund results, the 1-minute refund rule)
      // run scaled in the simulator; the functions' waits follow the same scale. Network and
      // function timeouts stay the production ones.
      SANDBOX_TIME_SCALE: String(options.timeScale ?? 1),
      ADMIN_OPENIDS: adminOpenid,
      ORDER_EXPIRE_MINUTES: '30',
      SHOP_NAME: '小店',
      ...demoNoticeEnv(),
      ...(provider !== 'v2' ? { WXPAY_PROVIDER: provider } : {}),
      ...(keptProviders.length > 0 ? { WXPAY_KEEP_PROVIDERS: keptProviders.join(',') } : {}),
      ...(v3Material
        ? {
            WXPAY_V3_KEY: v3Material.apiV3Key,
            WXPAY_V3_PUBLIC_KEY_ID: v3Material.publicKeyId,
            WXPAY_V3_PUBLIC_KEY_PEM: readFileSync(v3Material.publicKeyPath, 'utf8'),
          }
        : {}),
      ...(uses('cloudpay')
        ? {
            WXPAY_CLOUDPAY_ENV: envId,
            WXPAY_CLOUDPAY_PAY_FUNCTION: 'payNotify',
            WXPAY_CLOUDPAY_REFUND_FUNCTION: 'refundNotify',
          }
        : {}),
      ...options.env,
    };

    progress('function runtime');
    const runtime = createFunctionRuntime({
      functionsDir: options.functionsDir ?? join(ROOT, 'dist', 'cloudfunctions'),
      serviceUrl: emulator.serviceUrl,
      env,
      envId,
      // In-process, so counting a call's database requests needs no extra HTTP round trip.
      takeDbRequestCount: (scope) => emulator.takeRequestCount(scope),
      ...(options.functionLog
        ? {
            log: options.functionLog,
            functionLog: (_fn: string, line: string) => options.functionLog?.(line),
          }
        : {}),
    });
    cleanup.push(() => runtime.close());
    if (uses('cloudpay')) {
      // cloudPay's callbacks are invocations of the named function, marked as the platform's.
      simulator.setFunctionInvoker(async (name, event) => {
        const out = await runtime.invoke(name, event, { SOURCE: 'wx_paycallback' });
        return out.result;
      });
    }

    progress('gateway');
    let extension: GatewayRequestHook | undefined;
    const gateway = await startGateway({
      runtime,
      host,
      port: gatewayPort,
      appid: merchant.appid,
      httpRoutes: { '/pay/notify': 'payNotify', '/refund/notify': 'refundNotify' },
      ...(options.staticDir ? { staticDir: options.staticDir } : {}),
      onRequest: (req, res, url) => extension?.(req, res, url) ?? false,
    });
    cleanup.push(() => gateway.close());

    const db = adminDatabase(emulator.serviceUrl);
    // Seed once: a restarted sandbox keeps whatever the merchant changed.
    if (options.seed !== false && (await db.count('products')) === 0) {
      progress('demo products');
      await db.insertMany('products', DEMO_PRODUCTS as unknown as Record<string, unknown>[]);
    }
    if (options.timers) {
      runtime.startTimers();
      cleanup.push(() => runtime.stopTimers());
    }

    const info: StackInfo = {
      consoleUrl: `${gatewayUrl}/`,
      gatewayUrl,
      tcbServiceUrl: emulator.serviceUrl,
      wxpayBaseUrl: simulator.url,
      caCertPath: certs.caCertPath,
      shopperOpenid,
      adminOpenid,
      merchant: { ...merchant, certPath: certs.certPath, keyPath: certs.keyPath, pfxPath: certs.pfxPath },
      provider,
      ...(keptProviders.length > 0 ? { keptProviders } : {}),
      ...(v3Material
        ? {
            v3: {
              apiV3Key: v3Material.apiV3Key,
              merchantSerial: new X509Certificate(readFileSync(certs.certPath)).serialNumber.toUpperCase(),
              privateKeyPath: certs.keyPath,
              publicKeyId: v3Material.publicKeyId,
              publicKeyPath: v3Material.publicKeyPath,
              platformSerial: v3Material.platformSerial,
              platformCertPath: v3Material.platformCertPath,
            },
          }
        : {}),
      ...(uses('cloudpay')
        ? {
            cloudPay: {
              subMchId: merchant.mchid,
              envId,
              payFunction: 'payNotify',
              refundFunction: 'refundNotify',
            },
          }
        : {}),
    };
    if (persistent) writeFileSync(join(dataDir, 'stack.json'), `${JSON.stringify(info, null, 2)}\n`);

    const stack: Stack = {
      info,
      env,
      simulator,
      emulator,
      runtime,
      gateway,
      db,
      async call(name, event, openid) {
        const out = await runtime.invoke(name, event, {
          OPENID: openid,
          APPID: merchant.appid,
          CLIENTIP: '127.0.0.1',
          SOURCE: 'wx_client',
        });
        return out.result as never;
      },
      async close() {
        for (const c of cleanup.reverse()) await c();
        if (!persistent) rmSync(dataDir, { recursive: true, force: true });
      },
    };
    extension = options.gatewayExtension?.(stack);
    return stack;
  } catch (e) {
    for (const c of cleanup.reverse()) await c();
    if (!persistent) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}
