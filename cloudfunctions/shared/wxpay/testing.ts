/**
 * Builders for correctly signed and encrypted WeChat Pay messages, so every test and the
 * simulator speak with real signatures instead of skipping verification.
 */
import { encryptReqInfo } from './reqinfo';
import { sign, withSign } from './sign';
import type { SignType, WxParamsIn } from './types';
import { toXml } from './xml';

export interface NotifyKeys {
  appid: string;
  mchId: string;
  apiKey: string;
  signType: SignType;
}

/** A pay-success notify body as WeChat posts it. Override any field; `sign` is computed last. */
export function signPayNotifyForTest(
  keys: NotifyKeys,
  fields: { out_trade_no: string; total_fee: number | string; openid?: string } & WxParamsIn,
  options: { includeSignType?: boolean } = {},
): string {
  const params: WxParamsIn = {
    appid: keys.appid,
    mch_id: keys.mchId,
    nonce_str: 'testnonce0000000000000000000000',
    result_code: 'SUCCESS',
    return_code: 'SUCCESS',
    openid: 'o_test_openid',
    trade_type: 'JSAPI',
    bank_type: 'OTHERS',
    fee_type: 'CNY',
    cash_fee: fields.total_fee,
    is_subscribe: 'N',
    time_end: '20260101120000',
    transaction_id: `4200000000${String(fields.out_trade_no).padStart(18, '0').slice(-18)}`,
    ...fields,
  };
  // WeChat often omits sign_type on HMAC notifies (WxJava#1585); tests can choose.
  if (options.includeSignType === false) {
    delete params['sign_type'];
    return toXml({ ...params, sign: sign(params, keys.apiKey, keys.signType) });
  }
  return toXml(withSign(params, keys.apiKey, keys.signType));
}

/** A refund-result notify body: no sign; the fields are AES-256-ECB encrypted in req_info. */
export function encryptRefundNotifyForTest(
  keys: Pick<NotifyKeys, 'appid' | 'mchId' | 'apiKey'>,
  info: {
    out_refund_no: string;
    out_trade_no: string;
    refund_fee: number | string;
    total_fee: number | string;
    refund_status: 'SUCCESS' | 'CHANGE' | 'REFUNDCLOSE';
  } & WxParamsIn,
): string {
  const fields: WxParamsIn = {
    refund_id: `50000000${String(info.out_refund_no).padStart(20, '0').slice(-20)}`,
    transaction_id: `4200000000${String(info.out_trade_no).padStart(18, '0').slice(-18)}`,
    settlement_refund_fee: info.refund_fee,
    settlement_total_fee: info.total_fee,
    refund_recv_accout: '支付用户零钱',
    refund_account: 'REFUND_SOURCE_RECHARGE_FUNDS',
    refund_request_source: 'API',
    success_time: info.refund_status === 'SUCCESS' ? '2026-01-01 12:00:00' : undefined,
    ...info,
  };
  return toXml({
    return_code: 'SUCCESS',
    appid: keys.appid,
    mch_id: keys.mchId,
    nonce_str: 'testnonce0000000000000000000000',
    req_info: encryptReqInfo(fields, keys.apiKey),
  });
}
