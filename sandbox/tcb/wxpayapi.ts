/**
 * cloudPay on the emulator's admin API. wx-server-sdk 4.0.2 sends `cloud.cloudPay.<api>(data)`
 * through @cloudbase/node-sdk 3.17.2 as a multipart/form-data POST to the same admin URL as the
 * database (recorded from the real SDK; see test/providers/cloudpay.test.ts):
 *
 *   action      wx.wxPayApi
 *   apiName     unifiedOrder | queryOrder | closeOrder | refund | queryRefund | downloadBill | …
 *   apiOptions  protobuf ApiOptions { 1: appid } (empty unless cloud.cloudPay({appid}))
 *   requestData JSON of the call's data, camelCase already turned into snake_case
 *   envName, wxCloudApiToken, …
 *
 * How the SDK reads the answer decides how it must be sent. The node-sdk parses a body whose
 * content-type is exactly `application/json; charset=utf-8` into an object, and wx-server-sdk
 * takes any object for a failure (`{code, message}` → a platform error; anything else →
 * "unknown response"). WeChat's answers therefore travel as bytes (octet-stream): JSON bytes
 * are WeChat's answer (camel-cased, `errCode: 0` added); other bytes are raw, which only
 * downloadBill accepts (the bill's CSV). Platform errors go as that exact JSON type.
 */
import type { WxApiForm, WxApiHandler } from './wxapi';

export interface WxPayApiCall {
  apiName: string;
  data: Record<string, unknown>;
  /** From apiOptions, when the function named an appid (shared environment). */
  appid?: string;
  envName?: string;
}

/** `hang`: never answer, as the platform sometimes does (the caller's timeout decides). */
type WxPayApiAnswer = { json: Record<string, unknown> } | { text: string } | { hang: true };

export type WxPayApiHandler = (call: WxPayApiCall) => WxPayApiAnswer | Promise<WxPayApiAnswer>;

export interface RawAnswer {
  status: number;
  contentType: string;
  body: string;
}

const platformError = (code: string, message: string): RawAnswer => ({
  status: 200,
  contentType: 'application/json; charset=utf-8',
  body: JSON.stringify({ code, message }),
});

/** protobuf `ApiOptions { string appid = 1; }`; other fields are skipped. */
export function decodeApiOptions(bytes: Uint8Array): { appid?: string } {
  let i = 0;
  const varint = (): number => {
    let n = 0;
    let shift = 0;
    for (;;) {
      if (i >= bytes.length) throw new Error('truncated varint');
      const b = bytes[i++]!;
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
      shift += 7;
    }
  };
  const out: { appid?: string } = {};
  while (i < bytes.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 2) {
      const len = varint();
      const value = bytes.subarray(i, i + len);
      i += len;
      if (tag >>> 3 === 1) out.appid = Buffer.from(value).toString('utf8');
    } else break;
  }
  return out;
}

/**
 * Answers one `wx.wxPayApi` call from its multipart form (parsed by wxapi.ts, which dispatches
 * the emulator's `wx.*` actions); never throws: a bad call gets a platform error the SDK
 * understands.
 */
export async function answerWxPayApi(form: WxApiForm, handler: WxPayApiHandler): Promise<RawAnswer> {
  const text = (name: string) => form.get(name)?.toString('utf8') ?? '';
  const apiName = text('apiName');
  if (apiName === '') return platformError('INVALID_PARAM', 'apiName is required');
  let data: unknown;
  try {
    data = JSON.parse(text('requestData') || '{}');
  } catch {
    return platformError('INVALID_PARAM', 'requestData is not JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return platformError('INVALID_PARAM', 'requestData must be a JSON object');
  }
  let appid: string | undefined;
  try {
    appid = decodeApiOptions(form.get('apiOptions') ?? Buffer.alloc(0)).appid || undefined;
  } catch {
    return platformError('INVALID_PARAM', 'apiOptions is not ApiOptions protobuf');
  }
  const envName = text('envName');
  try {
    const answer = await handler({
      apiName,
      data: data as Record<string, unknown>,
      ...(appid ? { appid } : {}),
      ...(envName ? { envName } : {}),
    });
    // Closing the emulator ends the request that is left waiting.
    if ('hang' in answer) return await new Promise<never>(() => {});
    const body = 'text' in answer ? answer.text : JSON.stringify(answer.json);
    return { status: 200, contentType: 'application/octet-stream', body };
  } catch (e) {
    return platformError('SYS_ERR', `cloudPay emulation failed: ${(e as Error).message}`);
  }
}

/** The emulator's `wx.wxPayApi` action. */
export function wxPayApiAction(handler: WxPayApiHandler): WxApiHandler {
  return async (form) => {
    const a = await answerWxPayApi(form, handler);
    return { body: Buffer.from(a.body, 'utf8'), contentType: a.contentType };
  };
}
