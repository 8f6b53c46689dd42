/**
 * payNotify and refundNotify (docs/ARCHITECTURE.md §5). Raw bytes in, XML reply out. Order of checks:
 * size and hardened parse → return_code → authenticity (sign, or req_info decryption) →
 * appid/mch_id → order exists → amount → CAS. A duplicate answers SUCCESS with no second
 * effect; a transient failure answers FAIL so WeChat retries; SUCCESS is never sent before
 * the state change is stored.
 */
import { CryptoError, XmlError } from '../errors';
import { replyXml } from '../wxpay/reply';
import { decryptReqInfo } from '../wxpay/reqinfo';
import { verify } from '../wxpay/sign';
import type { SignType, WxParams } from '../wxpay/types';
import { parseXml } from '../wxpay/xml';
import type { Deps } from './deps';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';
import { markPaid } from './orders';
import { applyWeChatRefund } from './refund-outcome';

export interface NotifyReply {
  /** What WeChat reads. */
  xml: string;
  /** Why, for logs and tests: a stable code. */
  outcome: string;
}

const ok = (outcome: string): NotifyReply => ({ xml: replyXml('SUCCESS'), outcome });
const fail = (outcome: string, msg: string): NotifyReply => ({ xml: replyXml('FAIL', msg), outcome });

function parse(deps: Deps, kind: string, body: Uint8Array): { params: WxParams } | { reply: NotifyReply } {
  try {
    return { params: parseXml(body) };
  } catch (e) {
    const code = e instanceof XmlError ? e.code : 'XML_MALFORMED';
    deps.log('warn', `${kind}.rejected`, { reason: code });
    return { reply: fail(code, 'invalid XML') };
  }
}

function merchantMatches(deps: Deps, p: WxParams): boolean {
  return p['appid'] === deps.config.wxpay.appid && p['mch_id'] === deps.config.wxpay.mchId;
}

/**
 * The sign type the notify verifies with, among those the merchant allows; never the one
 * the notify names (HMAC notifies often omit sign_type, WxJava#1585, and a sender-chosen
 * algorithm invites downgrade games). Pure computation: a forgery costs no database request.
 */
function verifiedSignType(deps: Deps, params: WxParams): SignType | undefined {
  return deps.config.wxpay.notifySignTypes.find((t) => verify(params, deps.config.wxpay.apiKey, t));
}

export async function handlePayNotify(deps: Deps, body: Uint8Array): Promise<NotifyReply> {
  const parsed = parse(deps, 'pay_notify', body);
  if ('reply' in parsed) return parsed.reply;
  const { params } = parsed;
  if (params['return_code'] !== 'SUCCESS') return fail('RETURN_FAIL', 'return_code is not SUCCESS');
  const signType = verifiedSignType(deps, params);
  if (!signType) {
    deps.log('warn', 'pay_notify.rejected', { reason: 'BAD_SIGN', orderId: params['out_trade_no'] });
    return fail('BAD_SIGN', 'invalid sign');
  }
  if (!merchantMatches(deps, params)) {
    deps.log('warn', 'pay_notify.rejected', { reason: 'MERCHANT_MISMATCH', orderId: params['out_trade_no'] });
    return fail('MERCHANT_MISMATCH', 'appid or mch_id mismatch');
  }
  // A verified "payment failed" notice changes nothing; acknowledge it so it stops.
  if (params['result_code'] !== 'SUCCESS') return ok('RESULT_FAIL');
  const orderId = params['out_trade_no'];
  if (!orderId) return fail('NO_ORDER', 'out_trade_no missing');
  const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (!order) {
    deps.log('error', 'pay_notify.rejected', { reason: 'UNKNOWN_ORDER', orderId });
    return fail('UNKNOWN_ORDER', 'order not found');
  }
  // WeChat signs an order's notifies with the sign type the order was created with; a notify
  // for this order under any other type is not WeChat's.
  if (signType !== order.signType) {
    deps.log('warn', 'pay_notify.rejected', { reason: 'SIGN_TYPE_MISMATCH', orderId, signType });
    return fail('SIGN_TYPE_MISMATCH', 'invalid sign');
  }
  const outcome = await markPaid(deps, order, params, 'notify');
  if (outcome === 'AMOUNT_MISMATCH') return fail('AMOUNT_MISMATCH', 'total_fee mismatch');
  return ok(outcome);
}

export async function handleRefundNotify(deps: Deps, body: Uint8Array): Promise<NotifyReply> {
  const parsed = parse(deps, 'refund_notify', body);
  if ('reply' in parsed) return parsed.reply;
  const { params } = parsed;
  if (params['return_code'] !== 'SUCCESS') return fail('RETURN_FAIL', 'return_code is not SUCCESS');
  if (!merchantMatches(deps, params)) {
    deps.log('warn', 'refund_notify.rejected', { reason: 'MERCHANT_MISMATCH' });
    return fail('MERCHANT_MISMATCH', 'appid or mch_id mismatch');
  }
  // No sign on refund notifies: decrypting req_info with md5(apiKey) is the authentication.
  let info: WxParams;
  try {
    info = decryptReqInfo(params['req_info'] ?? '', deps.config.wxpay.apiKey);
  } catch (e) {
    const code = e instanceof CryptoError ? e.code : 'REQ_INFO_INVALID';
    deps.log('warn', 'refund_notify.rejected', { reason: code });
    return fail(code, 'invalid req_info');
  }
  const refundId = info['out_refund_no'];
  if (!refundId) return fail('NO_REFUND', 'out_refund_no missing');
  const refund = await deps.store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
  if (!refund) {
    deps.log('error', 'refund_notify.rejected', { reason: 'UNKNOWN_REFUND', refundId });
    return fail('UNKNOWN_REFUND', 'refund not found');
  }
  const outcome = await applyWeChatRefund(deps, refund, info, 'refundnotify');
  if (outcome === 'MISMATCH') return fail('MISMATCH', 'refund does not match');
  // IGNORED contradicts a final state of ours; it is logged for a person, and answering FAIL
  // would only make WeChat repeat it for a day. A PROCESSING notify is not sent by WeChat.
  return ok(outcome);
}
