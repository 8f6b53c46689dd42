// The payment port and its three providers. cloudfunctions/shared/runtime/function.ts builds
// every enabled provider once per cold start (`providersFromConfig`) and gives the domain each
// invocation's copy bound to its deadline (`withDeadline`).
import type { ShopConfig } from '../config';
import { createWxPayClient } from '../wxpay/client';
import type { HttpResponse, PostOptions, RequestOptions } from '../wxpay/http';
import { nonceStr } from '../wxpay/nonce';
import { type CloudPayApi, createCloudPayProvider } from './cloudpay';
import type { CloudPayProviderConfig, V3ProviderConfig } from './config';
import type { PaymentProvider, ProviderCallOptions, ProviderName } from './port';
import { createV2Provider } from './v2';
import { createV3Client } from './v3/client';
import { merchantPrivateKey, VerifierKeys } from './v3/keys';
import { createV3Provider } from './v3/provider';

export { type CloudPayApi, classifyCloudPayText, cloudPayReply, createCloudPayProvider } from './cloudpay';
export type { CloudPayProviderConfig, PartnerConfig, V3ProviderConfig } from './config';
export { isProviderError, ProviderError } from './errors';
export * from './port';
export { createV2Provider, fromV2Error, v2RefundStatus, v2Reply } from './v2';
export { createV3Client, type V3Client } from './v3/client';
export { createV3Provider, type V3Merchant, v3Reply } from './v3/provider';

export interface ProviderWiring {
  /** `cloud.cloudPay` of wx-server-sdk, asked for only when cloudPay is enabled. */
  cloudPay?: () => CloudPayApi | ((opts: { appid: string }) => CloudPayApi);
  now?: () => number;
  nonce?: () => string;
  /** In-process HTTP edges for tests (the model test's world); default real sockets. */
  v2Transport?: (url: URL, body: string, options: PostOptions) => Promise<HttpResponse>;
  v3Transport?: (url: URL, options: RequestOptions) => Promise<HttpResponse>;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Every provider the configuration enables (WXPAY_PROVIDER and WXPAY_KEEP_PROVIDERS), built
 * once per cold start. Building checks nothing against WeChat and opens no connection.
 */
export function providersFromConfig(
  config: ShopConfig,
  o: ProviderWiring = {},
): Partial<Record<ProviderName, PaymentProvider>> {
  const now = o.now ?? Date.now;
  const nonce = o.nonce ?? (() => nonceStr(32));
  const out: Partial<Record<ProviderName, PaymentProvider>> = {};
  const { providers: p, wxpay: w } = config;
  for (const name of p.enabled) {
    if (name === 'v2') {
      const partner = p.partner
        ? { subMchId: p.partner.subMchId, ...(p.partner.subAppid ? { subAppid: p.partner.subAppid } : {}) }
        : {};
      const client = createWxPayClient({
        appid: w.appid,
        mchId: w.mchId,
        apiKey: w.apiKey,
        signType: w.signType,
        baseUrl: w.baseUrl,
        ...(w.caPem ? { caPem: w.caPem } : {}),
        ...(config.cert ? { cert: config.cert } : {}),
        totalTimeoutMs: w.timeoutMs,
        now,
        ...partner,
        ...(o.v2Transport ? { transport: o.v2Transport } : {}),
        ...(o.sleep ? { sleep: o.sleep } : {}),
      });
      out.v2 = createV2Provider({
        client,
        appid: w.appid,
        mchId: w.mchId,
        apiKey: w.apiKey,
        signType: w.signType,
        notifySignTypes: w.notifySignTypes,
        ...partner,
        now,
        nonce,
      });
    } else if (name === 'v3' && p.v3) {
      out.v3 = v3ProviderFromConfig(p.v3, {
        now,
        nonce,
        ...(o.sleep ? { sleep: o.sleep } : {}),
        ...(o.v3Transport ? { transport: o.v3Transport } : {}),
      });
    } else if (name === 'cloudpay' && p.cloudpay) {
      if (!o.cloudPay) throw new Error('cloudPay is enabled but no cloud.cloudPay was wired');
      out.cloudpay = cloudPayProviderFromConfig(p.cloudpay, o.cloudPay(), { now, nonce });
    }
  }
  return out;
}

/**
 * The provider with every call ending by `deadlineMs` (a tighter deadline passed by the
 * caller still wins), so no call outlives the function that made it.
 */
export function withDeadline(p: PaymentProvider, deadlineMs: number): PaymentProvider {
  const o = (c?: ProviderCallOptions): ProviderCallOptions => ({
    deadlineMs: Math.min(deadlineMs, c?.deadlineMs ?? Number.POSITIVE_INFINITY),
  });
  return {
    name: p.name,
    capabilities: p.capabilities,
    createPayment: (input, c) => p.createPayment(input, o(c)),
    resignPayment: (prepayId, signType) => p.resignPayment(prepayId, signType),
    queryPayment: (id, c) => p.queryPayment(id, o(c)),
    closePayment: (id, c) => p.closePayment(id, o(c)),
    refund: (input, c) => p.refund(input, o(c)),
    queryRefund: (id, c) => p.queryRefund(id, o(c)),
    downloadBill: (date, type, c) => p.downloadBill(date, type, o(c)),
    parseNotification: (input, c) => p.parseNotification(input, o(c)),
    reply: (outcome) => p.reply(outcome),
  };
}

/** The APIv3 provider from validated configuration. */
export function v3ProviderFromConfig(
  c: V3ProviderConfig,
  o: {
    now?: () => number;
    nonce?: () => string;
    maxAttempts?: number;
    sleep?: (ms: number) => Promise<void>;
    transport?: (url: URL, options: RequestOptions) => Promise<HttpResponse>;
  } = {},
): PaymentProvider {
  const now = o.now ?? Date.now;
  const nonce = o.nonce ?? (() => nonceStr(32));
  const privateKey = merchantPrivateKey(c.privateKeyPem);
  const verifiers = new VerifierKeys(c.verifiers);
  const client = createV3Client({
    mchid: c.mchid,
    merchantSerial: c.merchantSerial,
    privateKey,
    verifiers,
    baseUrl: c.baseUrl,
    ...(c.caPem ? { caPem: c.caPem } : {}),
    totalTimeoutMs: c.timeoutMs,
    now,
    nonce,
    ...(o.maxAttempts ? { maxAttempts: o.maxAttempts } : {}),
    ...(o.sleep ? { sleep: o.sleep } : {}),
    ...(o.transport ? { transport: o.transport } : {}),
  });
  return createV3Provider({
    client,
    merchant: c.merchant,
    apiV3Key: c.apiV3Key,
    privateKey,
    verifiers,
    payNotifyUrl: c.payNotifyUrl,
    refundNotifyUrl: c.refundNotifyUrl,
    now,
    nonce,
  });
}

/** The cloudPay provider from validated configuration and the SDK's `cloud.cloudPay`. */
export function cloudPayProviderFromConfig(
  c: CloudPayProviderConfig,
  cloudPay: CloudPayApi | ((opts: { appid: string }) => CloudPayApi),
  o: { now?: () => number; nonce?: () => string } = {},
): PaymentProvider {
  // In a shared environment (资源复用) the appid travels as cloud.cloudPay({appid}), not in the body.
  const api =
    c.appid && typeof cloudPay === 'function' ? cloudPay({ appid: c.appid }) : (cloudPay as CloudPayApi);
  return createCloudPayProvider({
    api,
    subMchId: c.subMchId,
    envId: c.envId,
    payFunction: c.payFunction,
    refundFunction: c.refundFunction,
    timeoutMs: c.timeoutMs,
    now: o.now ?? Date.now,
    nonce: o.nonce ?? (() => nonceStr(32)),
  });
}
