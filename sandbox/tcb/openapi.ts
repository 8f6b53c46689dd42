/**
 * `wx.openApi`: cloud calls (云调用) such as `cloud.openapi.subscribeMessage.send`.
 *
 * What wx-server-sdk@4.0.2 sends (src/api/openapi/namespace/generic.ts, recorded in
 * test/emulator/openapi.test.ts): the parameters converted to snake_case, each one JSON-encoded
 * as a key/value pair of a protobuf `CommApiData { apiType: OPEN_API, openapiData: { pairs } }`,
 * posted as `requestData` with `apiName` = "subscribeMessage.send".
 *
 * What it expects back: a protobuf `CommOpenApiResp` whose `respData` is WeChat's own JSON
 * answer (`{"errcode":0,"errmsg":"ok"}`, or `{"errcode":43101,"errmsg":"user refuse to accept
 * the msg rid: …"}`) with `contentType` application/json; the SDK turns a non-zero errcode into
 * a rejection with `errCode` = that errcode. A non-zero `errorCode` in the envelope is a
 * platform failure (e.g. -604101, no permission) and rejects without reaching WeChat.
 */
import protobuf from 'protobufjs';
import type { WxApiAnswer, WxApiForm } from './wxapi';

// The messages as the SDK's src/protobuf/openapi.js encodes them (field numbers from its encoders).
const PROTO = `
syntax = "proto3";
message KeyValuePair { string key = 1; bytes value = 2; string contenttype = 3; string filename = 4; }
message OpenApiData { repeated KeyValuePair pairs = 1; }
message CommApiData { int32 apiType = 1; OpenApiData openapiData = 2; string appid = 6; }
message HttpHeader { string key = 1; string value = 2; }
message CommOpenApiResp {
  bytes respData = 1; string contentType = 2; int32 errorCode = 3; uint32 httpCode = 4;
  repeated HttpHeader headers = 5; int32 svrkitErrorCode = 6;
}
`;
const root = protobuf.parse(PROTO, { keepCase: true }).root;
const CommApiData = root.lookupType('CommApiData');
const CommOpenApiResp = root.lookupType('CommOpenApiResp');

const OPEN_API = 0;

/** A WeChat server API answer: its JSON body. */
export type WxJson = Record<string, unknown> & { errcode: number; errmsg: string };

/** One cloud-callable API: the decoded parameters in, WeChat's JSON answer out. */
export type OpenApiHandler = (params: Record<string, unknown>) => WxJson | Promise<WxJson>;

/** WeChat's request id suffix, `rid: 69a509f1-0d6eaf0b-6d509ece`. */
export function rid(): string {
  const hex = () =>
    Math.floor(Math.random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return `rid: ${hex()}-${hex()}-${hex()}`;
}

export function wxError(errcode: number, message: string): WxJson {
  return { errcode, errmsg: `${message} ${rid()}` };
}

/** The parameters of a cloud call, back to the object the caller passed (in snake_case). */
export function decodeOpenApiRequest(requestData: Buffer): {
  params: Record<string, unknown>;
  appid: string;
} {
  const msg = CommApiData.toObject(CommApiData.decode(requestData), { defaults: true }) as {
    apiType: number;
    openapiData?: { pairs?: { key: string; value: Uint8Array }[] };
    appid: string;
  };
  if (msg.apiType !== OPEN_API) throw new Error(`apiType ${msg.apiType} is not OPEN_API`);
  const params: Record<string, unknown> = {};
  for (const p of msg.openapiData?.pairs ?? []) {
    params[p.key] = JSON.parse(Buffer.from(p.value).toString('utf8'));
  }
  return { params, appid: msg.appid };
}

function envelope(fields: Record<string, unknown>): WxApiAnswer {
  return { body: Buffer.from(CommOpenApiResp.encode(CommOpenApiResp.fromObject(fields)).finish()) };
}

export function wxJsonAnswer(json: WxJson): WxApiAnswer {
  return envelope({
    respData: Buffer.from(JSON.stringify(json), 'utf8'),
    contentType: 'application/json; encoding=utf-8',
    httpCode: 200,
  });
}

/** -604100 "API not found", as the platform answers an API it does not know. */
const API_NOT_FOUND = -604100;

/** The `wx.openApi` action: routes by apiName to the registered APIs. */
export function openApiAction(apis: Record<string, OpenApiHandler>) {
  return async (form: WxApiForm): Promise<WxApiAnswer> => {
    const apiName = form.get('apiName')?.toString('utf8') ?? '';
    const handler = apis[apiName];
    if (!handler) return envelope({ errorCode: API_NOT_FOUND });
    let params: Record<string, unknown>;
    try {
      params = decodeOpenApiRequest(form.get('requestData') ?? Buffer.alloc(0)).params;
    } catch {
      return wxJsonAnswer(wxError(47001, 'data format error'));
    }
    return wxJsonAnswer(await handler(params));
  };
}
