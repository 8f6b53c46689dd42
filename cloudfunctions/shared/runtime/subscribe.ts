/**
 * Subscribe messages through cloud calls (云调用): `cloud.openapi.subscribeMessage.send`, with
 * no access token to manage. The function that runs this must declare
 * `"permissions": { "openapi": ["subscribeMessage.send"] }` in its config.json, or the platform
 * answers -604101; `npm run build` refuses a bundle that calls it without the declaration,
 * and finds the call by the property chain below, so keep it written out in full.
 */
import type { SendResult, SubscribeMessage, SubscribeSend } from '../notices/send';
import { initCloud } from './cloud';

// biome-ignore lint/suspicious/noExplicitAny: the SDK's openapi is an untyped proxy.
type Cloud = any;

/**
 * The SDK answers `{ errCode: 0, errMsg: 'openapi.subscribeMessage.send:ok' }` and rejects with
 * `errCode` = WeChat's errcode (43101, 47003, …) or CloudBase's (-501001, -604101, …).
 */
export function sdkSubscribeSender(cloud: Cloud): SubscribeSend {
  return async (m: SubscribeMessage): Promise<SendResult> => {
    try {
      await cloud.openapi.subscribeMessage.send({
        touser: m.touser,
        templateId: m.templateId,
        ...(m.page ? { page: m.page } : {}),
        data: m.data,
        miniprogramState: m.miniprogramState,
        lang: m.lang,
      });
      return { ok: true };
    } catch (e) {
      const x = (e ?? {}) as { errCode?: unknown; errMsg?: unknown; message?: unknown };
      return {
        ok: false,
        errCode: typeof x.errCode === 'number' ? x.errCode : -1,
        errMsg: String(x.errMsg ?? x.message ?? e),
      };
    }
  };
}

/** The sender for a deployed function: the SDK as initialised for this environment. */
export function subscribeSender(): SubscribeSend {
  return sdkSubscribeSender(initCloud());
}
