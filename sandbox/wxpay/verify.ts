/**
 * How WeChat Pay judges an incoming APIv2 request before looking at its business fields,
 * and how a merchant judges a pay notify. The simulator uses exactly these; tests use them
 * to prove that what the codec signs with a wrong key is refused.
 */
import { XmlError } from '../../cloudfunctions/shared/errors';
import {
  isSignType,
  parseXml,
  type SignType,
  verify,
  type WxParams,
} from '../../cloudfunctions/shared/wxpay';

export interface SimMerchant {
  appid: string;
  mchId: string;
  apiKey: string;
  /** The merchant's usual sign type (used for pay notifies; requests carry their own). */
  signType: SignType;
  /** Where refund notifies go when the refund request names no notify_url. */
  refundNotifyUrl?: string;
  /** APIv3: the APIv3 key, and the merchant API certificate whose key signs requests and paySigns. */
  v3?: { apiV3Key: string; certPem: string; refundNotifyUrl?: string };
  /** Service-provider mode (服务商): the sub-merchants this merchant may act for. */
  subMerchants?: readonly SubMerchant[];
}

export interface SubMerchant {
  subMchId: string;
  /** The sub-merchant's own mini program, when it has one. */
  subAppid?: string;
}

/** WeChat's return-level error texts (return_code FAIL, return_msg). */
export const RETURN_MSG = {
  POST_DATA_EMPTY: 'post数据为空',
  REQUIRE_POST_METHOD: '请使用post方法',
  XML_FORMAT_ERROR: 'XML格式错误',
  NOT_UTF8: '编码格式错误',
  LACK_PARAMS: '缺少参数',
  MCHID_NOT_EXIST: 'mch_id参数错误',
  APPID_MCHID_NOT_MATCH: 'appid和mch_id不匹配',
  SIGN_TYPE_ERROR: 'sign_type参数错误',
  SIGNERROR: '签名错误',
} as const;

export type RequestRejection = keyof typeof RETURN_MSG;

export type VerifiedRequest =
  | { ok: true; params: WxParams; merchant: SimMerchant; signType: SignType }
  | { ok: false; error: RequestRejection; returnMsg: string };

function reject(error: RequestRejection, detail = ''): VerifiedRequest {
  return { ok: false, error, returnMsg: RETURN_MSG[error] + detail };
}

/**
 * Verifies a request body the way WeChat does: well-formed XML, the envelope fields, the
 * merchant, appid/mch_id pairing, then the signature with the merchant's key and the sign
 * type named by the request's own `sign_type` (MD5 when absent, which is WeChat's default).
 * CDATA is optional, as for WeChat.
 */
export function verifyRequest(body: string | Uint8Array, merchants: readonly SimMerchant[]): VerifiedRequest {
  if ((typeof body === 'string' ? body.trim() : Buffer.from(body).toString('utf8').trim()) === '') {
    return reject('POST_DATA_EMPTY');
  }
  let params: WxParams;
  try {
    params = parseXml(body);
  } catch (e) {
    if (e instanceof XmlError && e.code === 'XML_ENCODING') return reject('NOT_UTF8');
    return reject('XML_FORMAT_ERROR');
  }
  for (const f of ['appid', 'mch_id', 'nonce_str', 'sign'] as const) {
    if (!params[f]) return reject('LACK_PARAMS', f);
  }
  const merchant = merchants.find((m) => m.mchId === params['mch_id']);
  if (!merchant) return reject('MCHID_NOT_EXIST');
  if (merchant.appid !== params['appid']) return reject('APPID_MCHID_NOT_MATCH');
  const signType = params['sign_type'] ?? 'MD5';
  if (!isSignType(signType)) return reject('SIGN_TYPE_ERROR');
  if (!verify(params, merchant.apiKey, signType)) return reject('SIGNERROR');
  return { ok: true, params, merchant, signType };
}

/**
 * A merchant's check of a pay notify: return_code, the signature under the merchant's
 * configured sign type (never guessed from the notify: HMAC notifies often lack sign_type,
 * WxJava#1585), and the appid/mch_id pair.
 */
export function verifyPayNotify(
  body: string | Uint8Array,
  merchant: SimMerchant,
): { ok: true; params: WxParams } | { ok: false; reason: string } {
  let params: WxParams;
  try {
    params = parseXml(body);
  } catch (e) {
    return { ok: false, reason: `not APIv2 XML: ${(e as Error).message}` };
  }
  if (params['return_code'] !== 'SUCCESS') return { ok: false, reason: 'return_code is not SUCCESS' };
  if (!verify(params, merchant.apiKey, merchant.signType))
    return { ok: false, reason: 'signature does not verify' };
  if (params['appid'] !== merchant.appid || params['mch_id'] !== merchant.mchId) {
    return { ok: false, reason: 'appid/mch_id do not match' };
  }
  return { ok: true, params };
}
