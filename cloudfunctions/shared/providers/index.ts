// The payment port and its three providers. Nothing here is wired into the domain yet:
// cloudfunctions/shared/runtime/function.ts builds a provider from configuration (see
// docs/PROVIDERS.md) and passes it to the domain as `Deps.wxpay` today's client is passed.
import { nonceStr } from '../wxpay/nonce';
import { type CloudPayApi, createCloudPayProvider } from './cloudpay';
import type { CloudPayProviderConfig, V3ProviderConfig } from './config';
import type { PaymentProvider } from './port';
import { createV3Client } from './v3/client';
import { merchantPrivateKey, VerifierKeys } from './v3/keys';
import { createV3Provider } from './v3/provider';

export { type CloudPayApi, classifyCloudPayText, createCloudPayProvider } from './cloudpay';
export {
  type CloudPayProviderConfig,
  loadProviderConfig,
  type PartnerConfig,
  PROVIDER_VARIABLES,
  type ProviderConfig,
  type V2ProviderConfig,
  type V3ProviderConfig,
} from './config';
export { isProviderError, ProviderError } from './errors';
export * from './port';
export { createV2Provider, fromV2Error, v2RefundStatus } from './v2';
export { createV3Client, type V3Client } from './v3/client';
export { createV3Provider, type V3Merchant } from './v3/provider';

/** The APIv3 provider from validated configuration. */
export function v3ProviderFromConfig(
  c: V3ProviderConfig,
  o: {
    now?: () => number;
    nonce?: () => string;
    maxAttempts?: number;
    sleep?: (ms: number) => Promise<void>;
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
    now: o.now ?? Date.now,
    nonce: o.nonce ?? (() => nonceStr(32)),
  });
}
