/**
 * The only module that touches wx-server-sdk. Its typings are incomplete (DYNAMIC_CURRENT_ENV
 * is a symbol, throwOnNotFound is undeclared, every call is typed `Promise | void | string`),
 * so the rest of the code sees this small typed surface instead.
 *
 * Locally the same SDK is pointed at the emulator through TCB_CONTEXT_CNFG; nothing here
 * knows the difference.
 */
import * as sdk from 'wx-server-sdk';
import type { CloudPayApi } from '../providers/cloudpay';

export interface WxContext {
  OPENID?: string;
  APPID?: string;
  UNIONID?: string;
  CLIENTIP?: string;
  CLIENTIPV6?: string;
  SOURCE?: string;
  ENV?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the SDK's own types are wrong, see above.
type AnySdk = any;
const cloud = sdk as AnySdk;
let initialised = false;

// Equivalent mutants (TESTING.md): init is idempotent, so initialising again changes nothing
// but time; DYNAMIC_CURRENT_ENV is what the SDK assumes inside SCF anyway; throwOnNotFound
// is set both here and in rawDatabase(), each making the other redundant.
export function initCloud(): AnySdk {
  // Stryker disable next-line ConditionalExpression: init is idempotent.
  if (!initialised) {
    // Stryker disable next-line ObjectLiteral,BooleanLiteral: the SDK's default env inside SCF; throwOnNotFound repeated in rawDatabase().
    cloud.init({ env: cloud.DYNAMIC_CURRENT_ENV, throwOnNotFound: false });
    // Stryker disable next-line BooleanLiteral: init is idempotent.
    initialised = true;
  }
  return cloud;
}

/** Trusted caller identity, injected by the platform (never read identity from the event). */
export function getWxContext(): WxContext {
  return initCloud().getWXContext() as WxContext;
}

/** The raw SDK database; wrap it with the typed store before use. */
export function rawDatabase(): AnySdk {
  // Stryker disable next-line ObjectLiteral: initCloud() sets throwOnNotFound:false already.
  return initCloud().database({ throwOnNotFound: false });
}

/**
 * `cloud.cloudPay` (云开发 微信支付): a proxy in the SDK, so every API name reaches the
 * platform; `cloud.cloudPay({appid})` for a shared environment (资源复用).
 */
export function cloudPayApi(): CloudPayApi | ((opts: { appid: string }) => CloudPayApi) {
  return initCloud().cloudPay as CloudPayApi | ((opts: { appid: string }) => CloudPayApi);
}
