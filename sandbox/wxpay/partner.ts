/**
 * Service-provider mode (服务商) in the simulator. A service provider acting for one
 * sub-merchant is, to the engine, one more merchant: a "view" whose account is
 * `<sp mch_id>/<sub_mch_id>` (so each sub-merchant's out_trade_no space is its own, as at
 * WeChat), whose appid is the one the paySign must name (sub_appid, else the provider's),
 * and whose keys are the provider's. What goes on the wire (answers, notifies) carries
 * the provider's appid/mch_id plus sub_appid/sub_mch_id, built here.
 */
import { randomBytes } from 'node:crypto';
import { encryptReqInfo, sign, toXml, type WxParamsIn } from '../../cloudfunctions/shared/wxpay';
import type { ForeignNotify } from './engine';
import { refundReqInfo, type SimOrder, type SimRefund } from './ledger';
import { compactTime } from './time';
import type { SimMerchant, SubMerchant } from './verify';

export interface PartnerInfo {
  spMchId: string;
  spAppid: string;
  subMchId: string;
  subAppid?: string;
}

export type MerchantView = SimMerchant & { partner?: PartnerInfo };

export function viewAccount(spMchId: string, subMchId: string): string {
  return `${spMchId}/${subMchId}`;
}

export function partnerView(sp: SimMerchant, sub: SubMerchant): MerchantView {
  return {
    ...sp,
    appid: sub.subAppid ?? sp.appid,
    mchId: viewAccount(sp.mchId, sub.subMchId),
    subMerchants: [],
    partner: {
      spMchId: sp.mchId,
      spAppid: sp.appid,
      subMchId: sub.subMchId,
      ...(sub.subAppid ? { subAppid: sub.subAppid } : {}),
    },
  };
}

/** Every view of every service provider, to register with the engine beside the merchants. */
export function partnerViews(merchants: readonly SimMerchant[]): MerchantView[] {
  return merchants.flatMap((sp) => (sp.subMerchants ?? []).map((sub) => partnerView(sp, sub)));
}

/** The view a request names with sub_mch_id (and sub_appid), or undefined when not bound. */
export function findView(
  sp: SimMerchant,
  subMchId: string,
  subAppid: string | undefined,
): MerchantView | undefined {
  const sub = (sp.subMerchants ?? []).find((s) => s.subMchId === subMchId);
  if (!sub) return undefined;
  if (subAppid !== undefined && subAppid !== '' && sub.subAppid !== subAppid) return undefined;
  return partnerView(sp, sub);
}

/** The head of an APIv2 answer or notify: the provider's ids plus the sub-merchant's. */
export function partnerHead(p: PartnerInfo): WxParamsIn {
  return {
    appid: p.spAppid,
    mch_id: p.spMchId,
    sub_appid: p.subAppid,
    sub_mch_id: p.subMchId,
  };
}

/** Renames the payer of an answer: `sub_openid` when the order was placed with one. */
export function partnerPayer(o: SimOrder): WxParamsIn {
  return o.request['sub_openid'] ? { openid: undefined, sub_openid: o.openid } : { openid: o.openid };
}

/** APIv2 pay notify of a service-provider order, signed with the provider's key. */
export function partnerPayNotify(o: SimOrder, m: MerchantView): ForeignNotify | undefined {
  if (!m.partner) return undefined;
  const fields: WxParamsIn = {
    ...partnerHead(m.partner),
    attach: o.attach,
    bank_type: 'OTHERS',
    cash_fee: o.totalFee,
    fee_type: 'CNY',
    is_subscribe: 'N',
    nonce_str: randomBytes(16).toString('hex'),
    ...partnerPayer(o),
    out_trade_no: o.outTradeNo,
    result_code: 'SUCCESS',
    return_code: 'SUCCESS',
    time_end: compactTime(o.paidAtMs!),
    total_fee: o.totalFee,
    trade_type: 'JSAPI',
    transaction_id: o.transactionId,
  };
  return { url: o.notifyUrl, body: toXml({ ...fields, sign: sign(fields, m.apiKey, o.signType) }) };
}

/** APIv2 refund notify of a service-provider refund: req_info under md5 of the provider's key. */
export function partnerRefundNotify(r: SimRefund, m: MerchantView): ForeignNotify | undefined {
  if (!m.partner || !r.notifyUrl) return undefined;
  const info = refundReqInfo(r);
  return {
    url: r.notifyUrl,
    body: toXml({
      return_code: 'SUCCESS',
      ...partnerHead(m.partner),
      nonce_str: randomBytes(16).toString('hex'),
      req_info: encryptReqInfo(info, m.apiKey),
    }),
  };
}
