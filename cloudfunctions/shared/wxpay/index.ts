// The APIv2 codec (pure functions, no I/O) and the HTTP client built on it.
export { BILL_ALL_COLUMNS, BILL_SUMMARY_COLUMNS, type Bill, formatBill, parseBill } from './bill';
export { canonicalString } from './canonical';
export {
  type CallOptions,
  createWxPayClient,
  type RefundParams,
  type UnifiedOrderParams,
  WxPayApiError,
  type WxPayApiErrorCode,
  type WxPayClient,
  type WxPayClientConfig,
  WxPayNetworkError,
} from './client';
export { nonceStr } from './nonce';
export { type PaySignInput, paySign, type RequestPaymentParams } from './paysign';
export { replyXml } from './reply';
export { decryptReqInfo, encryptReqInfo } from './reqinfo';
export { sign, verify, withSign } from './sign';
export { encryptRefundNotifyForTest, type NotifyKeys, signPayNotifyForTest } from './testing';
export { isSignType, SIGN_TYPES, type SignType, type WxParams, type WxParamsIn } from './types';
export { type ParseXmlOptions, parseXml, toXml, XML_MAX_BYTES } from './xml';
