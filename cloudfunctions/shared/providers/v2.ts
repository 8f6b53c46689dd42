/**
 * The payment port over the APIv2 client (../wxpay/client.ts), which is unchanged: this file
 * only translates. APIv2's words become the port's (REFUNDCLOSE → CLOSED, CHANGE → ABNORMAL,
 * err_code → failure class and reason), and its notifies are read here the way the shop's
 * notify handlers read them: hardened XML parse, return_code, signature with the configured
 * sign type (refund notifies: AES-256-ECB req_info with md5(key)), then appid/mch_id and, in
 * service-provider mode, sub_mch_id.
 */
import { CryptoError, XmlError } from '../errors';
import { parseFen } from '../money';
import { WxPayApiError, type WxPayClient, WxPayNetworkError } from '../wxpay/client';
import { paySign } from '../wxpay/paysign';
import { replyXml } from '../wxpay/reply';
import { decryptReqInfo } from '../wxpay/reqinfo';
import { verify } from '../wxpay/sign';
import type { SignType, WxParams } from '../wxpay/types';
import { parseXml } from '../wxpay/xml';
import { ProviderError, V2_ERR_CODES } from './errors';
import type {
  NormalizedEvent,
  NotificationOutcome,
  NotificationReply,
  ParsedNotification,
  PaymentProvider,
  PaymentStatus,
  ProviderCallOptions,
  ProviderRefundStatus,
  TradeState,
} from './port';
import { TRADE_STATES } from './port';
import { billDateDashed, compactBeijing, parseCompactBeijing, parseDashedBeijing } from './time';

export interface V2ProviderOptions {
  client: WxPayClient;
  appid: string;
  mchId: string;
  apiKey: string;
  /** New orders are signed with this type. */
  signType: SignType;
  /**
   * Sign types a pay notify may verify with (default: `signType` only). The event names the
   * one that verified; the order's own must be that one, which keeps in-flight orders payable
   * across a WXPAY_SIGN_TYPE switch without accepting a sender-chosen algorithm.
   */
  notifySignTypes?: readonly SignType[];
  /** Service-provider mode: the sub-merchant every order belongs to (the client must name it too). */
  subMchId?: string;
  /** The sub-merchant's mini program: orders then use `sub_openid`, and paySign signs this appid. */
  subAppid?: string;
  now: () => number;
  nonce: () => string;
}

/** APIv2 refund_status → the port's words. Anything unknown is not final. */
export function v2RefundStatus(s: string | undefined): ProviderRefundStatus {
  switch (s) {
    case 'SUCCESS':
      return 'SUCCESS';
    case 'REFUNDCLOSE':
      return 'CLOSED';
    case 'CHANGE':
      return 'ABNORMAL';
    default:
      return 'PROCESSING';
  }
}

/** Translates the APIv2 client's errors; anything else passes through unchanged. */
export function fromV2Error(e: unknown, operation: string): unknown {
  if (e instanceof WxPayNetworkError) {
    return new ProviderError({
      provider: 'v2',
      failure: 'transient',
      reason: 'NETWORK',
      providerCode: e.status ? `HTTP_${e.status}` : 'NETWORK',
      description: e.message,
      operation,
      ...(e.status ? { httpStatus: e.status } : {}),
      cause: e,
    });
  }
  if (!(e instanceof WxPayApiError)) return e;
  if (e.code === 'WXPAY_BAD_RESPONSE') {
    return new ProviderError({
      provider: 'v2',
      failure: e.transient ? 'transient' : 'definitive',
      reason: 'BAD_RESPONSE',
      providerCode: 'BAD_RESPONSE',
      description: e.message,
      operation,
      cause: e,
    });
  }
  if (e.code === 'WXPAY_RETURN_FAIL') {
    const msg = e.returnMsg ?? '';
    return new ProviderError({
      provider: 'v2',
      failure: 'definitive',
      reason: /签名/.test(msg) ? 'SIGN_ERROR' : 'INVALID_REQUEST',
      providerCode: e.returnCode ?? 'FAIL',
      description: msg,
      operation,
      cause: e,
    });
  }
  const errCode = e.errCode ?? '';
  const known = V2_ERR_CODES[errCode];
  return new ProviderError({
    provider: 'v2',
    failure: known?.failure ?? (e.transient ? 'transient' : 'definitive'),
    reason: known?.reason ?? 'OTHER',
    providerCode: errCode || e.resultCode || 'FAIL',
    description: e.errCodeDes ?? '',
    operation,
    cause: e,
  });
}

async function translated<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw fromV2Error(e, operation);
  }
}

/** The facts of an APIv2 message worth keeping (never sign, nonce or req_info). */
const RECORD_FIELDS = [
  'appid',
  'mch_id',
  'sub_appid',
  'sub_mch_id',
  'out_trade_no',
  'transaction_id',
  'total_fee',
  'cash_fee',
  'coupon_fee',
  'coupon_count',
  'fee_type',
  'time_end',
  'trade_state',
  'trade_type',
  'bank_type',
  'openid',
  'sub_openid',
  'result_code',
  'err_code',
  'err_code_des',
  'out_refund_no',
  'refund_id',
  'refund_fee',
  'settlement_refund_fee',
  'refund_status',
  'success_time',
  'refund_recv_accout',
  'refund_account',
] as const;

function record(fields: WxParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of RECORD_FIELDS) if (fields[k] !== undefined) out[k] = fields[k];
  return out;
}

function tradeState(s: string | undefined): TradeState {
  if (s && (TRADE_STATES as readonly string[]).includes(s)) return s as TradeState;
  throw new ProviderError({
    provider: 'v2',
    failure: 'transient',
    reason: 'BAD_RESPONSE',
    providerCode: 'BAD_RESPONSE',
    description: `orderquery answered an unknown trade_state ${String(s)}`,
    operation: 'orderquery',
  });
}

const deadline = (c: ProviderCallOptions | undefined) =>
  c?.deadlineMs !== undefined ? { deadlineMs: c.deadlineMs } : {};

const refused = (code: string, message: string): ParsedNotification => ({
  verified: false,
  code,
  message,
  retry: false,
});

export function createV2Provider(o: V2ProviderOptions): PaymentProvider {
  const { client } = o;
  const payAppid = o.subAppid ?? o.appid;

  function merchantProblem(p: WxParams): string | undefined {
    if (p['appid'] !== o.appid || p['mch_id'] !== o.mchId) return 'appid or mch_id mismatch';
    // "特约商户号" must be ours too: another sub-merchant of the same service provider is
    // signed with the same key.
    if (o.subMchId && p['sub_mch_id'] !== o.subMchId) return 'sub_mch_id mismatch';
    return undefined;
  }

  const notifyTypes = o.notifySignTypes?.length ? o.notifySignTypes : [o.signType];

  function resign(prepayId: string, signType: SignType = o.signType) {
    return paySign(
      {
        appId: payAppid,
        timeStamp: String(Math.floor(o.now() / 1000)),
        nonceStr: o.nonce(),
        package: `prepay_id=${prepayId}`,
        signType,
      },
      o.apiKey,
    );
  }

  function paymentEvent(p: WxParams, signType: SignType): NormalizedEvent | ParsedNotification {
    const outTradeNo = p['out_trade_no'];
    const totalFen = parseFen(p['total_fee']);
    if (!outTradeNo || totalFen === undefined)
      return refused('MALFORMED', 'out_trade_no or total_fee missing');
    return {
      kind: 'payment',
      outTradeNo,
      transactionId: p['transaction_id'] ?? '',
      totalFen,
      ...((p['sub_openid'] ?? p['openid']) ? { payerOpenid: p['sub_openid'] ?? p['openid'] } : {}),
      ...(parseCompactBeijing(p['time_end']) !== undefined
        ? { paidAtMs: parseCompactBeijing(p['time_end']) }
        : {}),
      signType,
      ...(p['sub_mch_id'] ? { subMchId: p['sub_mch_id'] } : {}),
      record: record(p),
    };
  }

  function parsePay(p: WxParams): ParsedNotification {
    // The sign type is ours, not the notify's: HMAC notifies often omit sign_type (WxJava#1585),
    // and a sender-chosen algorithm invites downgrade games. Pure computation: a forgery costs
    // no database request.
    const signType = notifyTypes.find((t) => verify(p, o.apiKey, t));
    if (!signType) return refused('BAD_SIGN', 'invalid sign');
    const mismatch = merchantProblem(p);
    if (mismatch) return refused('MERCHANT_MISMATCH', mismatch);
    // A verified "payment failed" notice changes nothing; it is acknowledged so it stops.
    if (p['result_code'] !== 'SUCCESS')
      return { verified: true, event: { kind: 'ignored', reason: 'RESULT_FAIL' } };
    const ev = paymentEvent(p, signType);
    return 'verified' in ev ? ev : { verified: true, event: ev };
  }

  function parseRefund(p: WxParams): ParsedNotification {
    const mismatch = merchantProblem(p);
    if (mismatch) return refused('MERCHANT_MISMATCH', mismatch);
    // No sign on refund notifies: decrypting req_info with md5(key) is the authentication.
    let info: WxParams;
    try {
      info = decryptReqInfo(p['req_info'] ?? '', o.apiKey);
    } catch (e) {
      return refused(e instanceof CryptoError ? e.code : 'REQ_INFO_INVALID', 'invalid req_info');
    }
    const refundFen = parseFen(info['refund_fee']);
    if (!info['out_refund_no'] || !info['out_trade_no'] || refundFen === undefined)
      return refused('MALFORMED', 'req_info lacks out_refund_no, out_trade_no or refund_fee');
    const totalFen = parseFen(info['total_fee']);
    const successAtMs = parseDashedBeijing(info['success_time']);
    return {
      verified: true,
      event: {
        kind: 'refund',
        outRefundNo: info['out_refund_no'],
        outTradeNo: info['out_trade_no'],
        refundId: info['refund_id'] ?? '',
        status: v2RefundStatus(info['refund_status']),
        refundFen,
        ...(totalFen !== undefined ? { totalFen } : {}),
        ...(successAtMs !== undefined ? { successAtMs } : {}),
        ...(p['sub_mch_id'] ? { subMchId: p['sub_mch_id'] } : {}),
        record: record({
          ...info,
          appid: p['appid'] ?? '',
          mch_id: p['mch_id'] ?? '',
          ...(p['sub_mch_id'] ? { sub_mch_id: p['sub_mch_id'] } : {}),
        }),
      },
    };
  }

  return {
    name: 'v2',
    capabilities: {
      needsClientCert: true,
      refundNotify: true,
      notifyTransport: 'http',
      minCloseAgeMs: 5 * 60_000,
      canResignPayment: true,
      unsignedCallbacks: false,
      signType: o.signType,
    },

    async createPayment(input, c) {
      const signType = input.signType ?? o.signType;
      const res = await translated('unifiedorder', () =>
        client.unifiedOrder(
          {
            body: input.description,
            out_trade_no: input.outTradeNo,
            total_fee: input.totalFen,
            spbill_create_ip: input.clientIp,
            notify_url: input.notifyUrl ?? '',
            ...(o.subAppid ? { sub_openid: input.payerOpenid } : { openid: input.payerOpenid }),
            trade_type: 'JSAPI',
            time_expire: compactBeijing(input.expiresAtMs),
            ...(input.attach ? { attach: input.attach } : {}),
          },
          // Re-entry repeats the order's first request exactly, sign type included.
          { signType, ...deadline(c) },
        ),
      );
      const prepayId = res['prepay_id']!;
      return { prepayId, payment: resign(prepayId, signType) };
    },

    resignPayment: resign,

    async queryPayment(outTradeNo, c): Promise<PaymentStatus> {
      const res = await translated('orderquery', () =>
        client.orderQuery({ out_trade_no: outTradeNo }, deadline(c)),
      );
      const state = tradeState(res['trade_state']);
      const totalFen = parseFen(res['total_fee']);
      const paidAtMs = parseCompactBeijing(res['time_end']);
      const payer = res['sub_openid'] ?? res['openid'];
      return {
        outTradeNo: res['out_trade_no'] ?? outTradeNo,
        state,
        paid: state === 'SUCCESS' || state === 'REFUND',
        ...(res['transaction_id'] ? { transactionId: res['transaction_id'] } : {}),
        ...(totalFen !== undefined ? { totalFen } : {}),
        ...(payer ? { payerOpenid: payer } : {}),
        ...(paidAtMs !== undefined ? { paidAtMs } : {}),
        record: record(res),
      };
    },

    async closePayment(outTradeNo, c) {
      try {
        await translated('closeorder', () => client.closeOrder({ out_trade_no: outTradeNo }, deadline(c)));
      } catch (e) {
        // "订单已关闭，无需继续调用": the goal is reached.
        if (e instanceof ProviderError && e.reason === 'ORDER_CLOSED') return;
        throw e;
      }
    },

    async refund(input, c) {
      const res = await translated('refund', () =>
        client.refund(
          {
            out_trade_no: input.outTradeNo,
            out_refund_no: input.outRefundNo,
            total_fee: input.totalFen,
            refund_fee: input.refundFen,
            ...(input.reason ? { refund_desc: input.reason } : {}),
            ...(input.notifyUrl ? { notify_url: input.notifyUrl } : {}),
          },
          deadline(c),
        ),
      );
      // APIv2's refund answer is acceptance only; it carries no refund_status.
      return {
        outRefundNo: res['out_refund_no'] ?? input.outRefundNo,
        refundId: res['refund_id'] ?? '',
        status: 'PROCESSING',
        record: record(res),
      };
    },

    async queryRefund(outRefundNo, c) {
      const res = await translated('refundquery', () =>
        client.refundQuery({ out_refund_no: outRefundNo }, deadline(c)),
      );
      // Asked by out_refund_no, WeChat lists exactly that refund, as entry _0.
      const refundFen = parseFen(res['refund_fee_0']);
      if (res['out_refund_no_0'] !== outRefundNo || refundFen === undefined) {
        throw new ProviderError({
          provider: 'v2',
          failure: 'transient',
          reason: 'BAD_RESPONSE',
          providerCode: 'BAD_RESPONSE',
          description: `refundquery did not list ${outRefundNo} as its first refund`,
          operation: 'refundquery',
        });
      }
      const totalFen = parseFen(res['total_fee']);
      const successAtMs = parseDashedBeijing(res['refund_success_time_0']);
      return {
        outRefundNo,
        outTradeNo: res['out_trade_no'] ?? '',
        refundId: res['refund_id_0'] ?? '',
        status: v2RefundStatus(res['refund_status_0']),
        refundFen,
        ...(totalFen !== undefined ? { totalFen } : {}),
        ...(successAtMs !== undefined ? { successAtMs } : {}),
        record: record({
          ...res,
          out_refund_no: outRefundNo,
          refund_id: res['refund_id_0'] ?? '',
          refund_fee: res['refund_fee_0'] ?? '',
          refund_status: res['refund_status_0'] ?? '',
        }),
      };
    },

    async downloadBill(date, type = 'ALL', c) {
      const dashed = billDateDashed(date);
      if (!dashed)
        throw new ProviderError({
          provider: 'v2',
          failure: 'definitive',
          reason: 'INVALID_REQUEST',
          providerCode: 'INVALID_BILL_DATE',
          description: `bill date must be YYYY-MM-DD, got ${date}`,
          operation: 'downloadbill',
        });
      return translated('downloadbill', () =>
        client.downloadBill({ bill_date: dashed.replace(/-/g, ''), bill_type: type }, deadline(c)),
      );
    },

    async parseNotification(input) {
      if (input.transport !== 'http') return refused('WRONG_TRANSPORT', 'APIv2 notifies arrive over HTTP');
      if (input.method.toUpperCase() !== 'POST') return refused('METHOD', 'POST only');
      let p: WxParams;
      try {
        p = parseXml(input.body);
      } catch (e) {
        return refused(e instanceof XmlError ? e.code : 'XML_MALFORMED', 'invalid XML');
      }
      if (p['return_code'] !== 'SUCCESS') return refused('RETURN_FAIL', 'return_code is not SUCCESS');
      return 'req_info' in p ? parseRefund(p) : parsePay(p);
    },

    reply: v2Reply,
  };
}

/** APIv2's acknowledgement: XML, return_code SUCCESS only when the notify's effect is stored. */
export function v2Reply(outcome: NotificationOutcome): NotificationReply {
  // Only return_code SUCCESS stops WeChat's retries; FAIL (any reason) asks for another.
  const body = outcome.ok ? replyXml('SUCCESS') : replyXml('FAIL', outcome.message);
  return {
    transport: 'http',
    statusCode: 200,
    headers: { 'content-type': 'text/xml; charset=utf-8' },
    body,
  };
}
