/**
 * The payment port over CloudBase cloudPay (云开发 微信支付): `cloud.cloudPay.*` in
 * wx-server-sdk. No key and no certificate: the shop's merchant is a sub-merchant (sub_mch_id)
 * of Tencent's service provider, and it is APIv2 underneath (JSON in camelCase, MD5 paySign).
 *
 * Three traps, each handled here:
 * - every call resolves `errCode: 0` when the transport worked; the business result is in
 *   `returnCode`/`resultCode`, and WeChat's own err_code is overwritten by that 0 (the SDK
 *   assigns it last), so failures are classified from `errCodeDes`/`returnMsg`;
 * - the pay and refund callbacks arrive as ordinary function invocations, unsigned: every
 *   callback is confirmed with queryOrder / queryRefund, and only the query's answer counts;
 * - the callback function must answer `{errcode: 0}`; anything else is retried for two days.
 */
import { parseFen } from '../money';
import { ProviderError, V2_ERR_CODES } from './errors';
import type {
  FailureClass,
  FailureReason,
  NormalizedEvent,
  NotificationOutcome,
  NotificationReply,
  ParsedNotification,
  PaymentProvider,
  PaymentStatus,
  ProviderCallOptions,
  ProviderPayment,
  RefundStatusResult,
  TradeRecord,
  TradeState,
} from './port';
import { TRADE_STATES } from './port';
import { billDateDashed, compactBeijing, parseCompactBeijing, parseDashedBeijing } from './time';
import { v2RefundStatus } from './v2';

type Json = Record<string, unknown>;

/** `cloud.cloudPay` (or `cloud.cloudPay({appid})` in a shared environment), as far as we use it. */
export interface CloudPayApi {
  unifiedOrder(data: Json): Promise<Json>;
  queryOrder(data: Json): Promise<Json>;
  closeOrder(data: Json): Promise<Json>;
  refund(data: Json): Promise<Json>;
  queryRefund(data: Json): Promise<Json>;
  downloadBill(data: Json): Promise<Json>;
}

export interface CloudPayProviderOptions {
  api: CloudPayApi;
  /** The shop's merchant number, bound to the environment in the CloudBase console. */
  subMchId: string;
  /** The environment whose functions receive the callbacks. */
  envId: string;
  /** The cloud function the pay callback invokes. */
  payFunction: string;
  /** The cloud function the refund callback invokes (may be the same one). */
  refundFunction: string;
  now: () => number;
  nonce: () => string;
  /**
   * Longest wait for one call (default 8000 ms). The SDK call cannot be cancelled; past this
   * (or the call's deadline) its answer is no longer waited for, and the outcome is unknown.
   */
  timeoutMs?: number;
}

// What WeChat's descriptions say, since cloudPay loses err_code (see above).
const TEXT_RULES: readonly [RegExp, FailureReason, FailureClass][] = [
  [/频率|请求数过多|屏蔽|FREQUENCY_LIMITED|INVALID_REQ_TOO_MUCH/, 'RATE_LIMITED', 'rate-limited'],
  [
    /系统(超时|繁忙|错误|异常)|相同参数再次调用|稍后(再试|重试)|SYSTEMERROR|BIZERR_NEED_RETRY/,
    'SYSTEM_ERROR',
    'transient',
  ],
  // REFUNDNOTEXIST's err_code_des is "退款订单查询失败" (申请退款/查询退款 docs).
  [/退款.{0,6}不存在|退款订单查询失败|REFUNDNOTEXIST/, 'REFUND_NOT_FOUND', 'definitive'],
  [/订单不存在|ORDERNOTEXIST/, 'ORDER_NOT_FOUND', 'definitive'],
  [/已支付|ORDERPAID/, 'ORDER_PAID', 'definitive'],
  [/已关闭|ORDERCLOSED/, 'ORDER_CLOSED', 'definitive'],
  [/余额不足|NOTENOUGH/, 'NOT_ENOUGH', 'definitive'],
  [/账号.{0,4}(异常|注销)|USER_ACCOUNT_ABNORMAL/, 'USER_ACCOUNT_ABNORMAL', 'definitive'],
  [/退款期限|TRADE_OVERDUE/, 'TRADE_OVERDUE', 'definitive'],
  [/订单号重复|OUT_TRADE_NO_USED/, 'ORDER_NO_REUSED', 'definitive'],
  [/签名/, 'SIGN_ERROR', 'definitive'],
  [/受理关系不存在|未授权|权限/, 'NO_AUTH', 'definitive'],
];

/** APIv2's err_code for a normalized reason (the first one listed for it). */
function v2Word(reason: FailureReason): string | undefined {
  if (reason === 'OTHER') return undefined;
  return Object.entries(V2_ERR_CODES).find(([, v]) => v.reason === reason)?.[0];
}

export function classifyCloudPayText(text: string): { reason: FailureReason; failure: FailureClass } {
  for (const [re, reason, failure] of TEXT_RULES) if (re.test(text)) return { reason, failure };
  return { reason: 'OTHER', failure: 'definitive' };
}

function s(o: Json, ...keys: string[]): string | undefined {
  for (const k of keys) {
    const v = o[k];
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return undefined;
}

/** Amounts arrive as numbers in callbacks and may be strings in answers. */
function fenOf(o: Json, ...keys: string[]): number | undefined {
  return parseFen(s(o, ...keys));
}

/** The facts worth keeping, flat and stringly, without the SDK's errCode/errMsg or any signature. */
function record(o: Json): TradeRecord {
  const out: TradeRecord = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'errCode' || k === 'errMsg' || k === 'sign' || k === 'nonceStr' || k === 'payment') continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
  }
  return out;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const refused = (code: string, message: string, retry = false): ParsedNotification => ({
  verified: false,
  code,
  message,
  retry,
});

const MIN_ATTEMPT_MS = 300;

export function createCloudPayProvider(o: CloudPayProviderOptions): PaymentProvider {
  const { api } = o;
  const timeoutMs = o.timeoutMs ?? 8000;

  function fail(
    operation: string,
    f: { reason: FailureReason; failure: FailureClass },
    code: string,
    text: string,
    cause?: unknown,
  ) {
    return new ProviderError({
      provider: 'cloudpay',
      failure: f.failure,
      reason: f.reason,
      providerCode: code,
      description: text,
      operation,
      cause,
    });
  }

  /**
   * The SDK's answer, or a transient failure once `timeoutMs` or the deadline passes: the
   * platform may still act on the call, which is why every caller treats that as unknown.
   */
  async function bounded(
    operation: keyof CloudPayApi,
    data: Json,
    c: ProviderCallOptions | undefined,
  ): Promise<Json> {
    const limit = Math.min(
      timeoutMs,
      c?.deadlineMs === undefined ? Number.POSITIVE_INFINITY : c.deadlineMs - o.now(),
    );
    if (limit < MIN_ATTEMPT_MS) {
      throw fail(
        operation,
        { reason: 'NETWORK', failure: 'transient' },
        'TIMEOUT',
        "no time left before the function's deadline",
      );
    }
    const pending = api[operation](data);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            fail(
              operation,
              { reason: 'NETWORK', failure: 'transient' },
              'TIMEOUT',
              `no answer within ${Math.round(limit)} ms`,
            ),
          ),
        limit,
      );
    });
    // A late rejection of the abandoned call must not become an unhandled one.
    pending.catch(() => {});
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Calls one cloudPay API and judges the answer: resolves only on returnCode and resultCode SUCCESS. */
  async function call(operation: keyof CloudPayApi, data: Json, c?: ProviderCallOptions): Promise<Json> {
    let res: Json;
    try {
      res = await bounded(operation, { subMchId: o.subMchId, nonceStr: o.nonce(), ...data }, c);
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      // The SDK rejects with CloudSDKError when the platform could not be reached or refused
      // the call itself (-501001 resource system error, -501007 invalid parameters, …).
      const errCode = isObject(e) ? (e as { errCode?: unknown }).errCode : undefined;
      const errMsg = isObject(e)
        ? String((e as { errMsg?: unknown }).errMsg ?? (e as { message?: unknown }).message ?? '')
        : String(e);
      const definitive = errCode === -501007 || /access_token|invalid param/i.test(errMsg);
      throw fail(
        operation,
        {
          reason: definitive ? 'INVALID_REQUEST' : 'NETWORK',
          failure: definitive ? 'definitive' : 'transient',
        },
        `SDK_${String(errCode ?? 'ERROR')}`,
        errMsg,
        e,
      );
    }
    if (!isObject(res))
      throw fail(
        operation,
        { reason: 'BAD_RESPONSE', failure: 'transient' },
        'BAD_RESPONSE',
        'answer is not an object',
      );
    if (res['returnCode'] !== 'SUCCESS') {
      const text = s(res, 'returnMsg') ?? 'returnCode is not SUCCESS';
      throw fail(operation, classifyCloudPayText(text), 'RETURN_FAIL', text);
    }
    if (res['resultCode'] !== 'SUCCESS') {
      const text = s(res, 'errCodeDes', 'returnMsg') ?? 'resultCode is not SUCCESS';
      const judged = classifyCloudPayText(text);
      // It is APIv2 underneath: name the failure with APIv2's err_code, recovered from its text,
      // so the merchant reads the same words as on APIv2 (NOTENOUGH: 基本账户余额不足…).
      throw fail(operation, judged, v2Word(judged.reason) ?? 'RESULT_FAIL', text);
    }
    // Another sub-merchant's answer must never be booked as ours.
    const sub = s(res, 'subMchId');
    if (sub !== undefined && sub !== o.subMchId) {
      throw fail(
        operation,
        { reason: 'BAD_RESPONSE', failure: 'transient' },
        'BAD_RESPONSE',
        'answer is for another sub_mch_id',
      );
    }
    return res;
  }

  function paymentStatus(res: Json, outTradeNo: string): PaymentStatus {
    const state = s(res, 'tradeState');
    if (!state || !(TRADE_STATES as readonly string[]).includes(state)) {
      throw fail(
        'queryOrder',
        { reason: 'BAD_RESPONSE', failure: 'transient' },
        'BAD_RESPONSE',
        `unknown tradeState ${String(state)}`,
      );
    }
    const totalFen = fenOf(res, 'totalFee');
    const paidAtMs = parseCompactBeijing(s(res, 'timeEnd'));
    const payer = s(res, 'subOpenid', 'openid');
    const transactionId = s(res, 'transactionId');
    return {
      outTradeNo: s(res, 'outTradeNo') ?? outTradeNo,
      state: state as TradeState,
      paid: state === 'SUCCESS' || state === 'REFUND',
      ...(transactionId ? { transactionId } : {}),
      ...(totalFen !== undefined ? { totalFen } : {}),
      ...(payer ? { payerOpenid: payer } : {}),
      ...(paidAtMs !== undefined ? { paidAtMs } : {}),
      record: record(res),
    };
  }

  function refundStatus(res: Json, outRefundNo: string): RefundStatusResult {
    // refundquery lists refunds as field_0, field_1…; the SDK camel-cases only `_[a-z]`, so
    // `refund_status_0` arrives as `refundStatus_0`.
    const at = (name: string) => s(res, `${name}_0`, `${name}0`);
    const refundFen = parseFen(at('refundFee'));
    if (at('outRefundNo') !== outRefundNo || refundFen === undefined) {
      throw fail(
        'queryRefund',
        { reason: 'BAD_RESPONSE', failure: 'transient' },
        'BAD_RESPONSE',
        `queryRefund did not list ${outRefundNo} first`,
      );
    }
    const totalFen = fenOf(res, 'totalFee');
    const successAtMs = parseDashedBeijing(at('refundSuccessTime'));
    return {
      outRefundNo,
      outTradeNo: s(res, 'outTradeNo') ?? '',
      refundId: at('refundId') ?? '',
      status: v2RefundStatus(at('refundStatus')),
      refundFen,
      ...(totalFen !== undefined ? { totalFen } : {}),
      ...(successAtMs !== undefined ? { successAtMs } : {}),
      record: record(res),
    };
  }

  async function confirmPayment(
    event: Json,
    c: ProviderCallOptions | undefined,
  ): Promise<ParsedNotification> {
    const outTradeNo = s(event, 'outTradeNo', 'out_trade_no');
    if (!outTradeNo) return refused('MALFORMED', 'callback lacks outTradeNo');
    let status: PaymentStatus;
    try {
      status = paymentStatus(await call('queryOrder', { outTradeNo }, c), outTradeNo);
    } catch (e) {
      const known = e instanceof ProviderError && e.reason === 'ORDER_NOT_FOUND';
      return refused(
        known ? 'NOT_CONFIRMED' : 'QUERY_FAILED',
        known ? 'WeChat knows no such order' : 'confirming query failed',
        !known,
      );
    }
    if (!status.paid || status.totalFen === undefined) {
      // WeChat does not (yet) say it is paid: a forgery, or the query ran ahead of replication.
      return refused('NOT_CONFIRMED', `queryOrder says ${status.state}`, true);
    }
    // The callback's own claims must agree with WeChat's answer, or something is off.
    const claimedFee = fenOf(event, 'totalFee', 'total_fee');
    const claimedTx = s(event, 'transactionId', 'transaction_id');
    if (
      (claimedFee !== undefined && claimedFee !== status.totalFen) ||
      (claimedTx && status.transactionId && claimedTx !== status.transactionId)
    ) {
      return refused('MISMATCH', 'callback disagrees with queryOrder');
    }
    const ev: NormalizedEvent = {
      kind: 'payment',
      outTradeNo,
      transactionId: status.transactionId ?? '',
      totalFen: status.totalFen,
      ...(status.payerOpenid ? { payerOpenid: status.payerOpenid } : {}),
      ...(status.paidAtMs !== undefined ? { paidAtMs: status.paidAtMs } : {}),
      subMchId: o.subMchId,
      record: { ...status.record, confirmed_by: 'queryOrder' },
    };
    return { verified: true, event: ev };
  }

  async function confirmRefund(event: Json, c: ProviderCallOptions | undefined): Promise<ParsedNotification> {
    const outRefundNo = s(event, 'outRefundNo', 'out_refund_no');
    if (!outRefundNo) return refused('MALFORMED', 'refund callback lacks outRefundNo');
    let r: RefundStatusResult;
    try {
      r = refundStatus(await call('queryRefund', { outRefundNo }, c), outRefundNo);
    } catch (e) {
      const known = e instanceof ProviderError && e.reason === 'REFUND_NOT_FOUND';
      return refused(
        known ? 'NOT_CONFIRMED' : 'QUERY_FAILED',
        known ? 'WeChat knows no such refund' : 'confirming query failed',
        !known,
      );
    }
    if (r.status === 'PROCESSING') return refused('NOT_CONFIRMED', 'queryRefund still says PROCESSING', true);
    const ev: NormalizedEvent = {
      kind: 'refund',
      outRefundNo,
      outTradeNo: r.outTradeNo,
      refundId: r.refundId,
      status: r.status,
      refundFen: r.refundFen,
      ...(r.totalFen !== undefined ? { totalFen: r.totalFen } : {}),
      ...(r.successAtMs !== undefined ? { successAtMs: r.successAtMs } : {}),
      subMchId: o.subMchId,
      record: { ...r.record, confirmed_by: 'queryRefund' },
    };
    return { verified: true, event: ev };
  }

  return {
    name: 'cloudpay',
    capabilities: {
      needsClientCert: false,
      refundNotify: true,
      notifyTransport: 'function',
      minCloseAgeMs: 5 * 60_000,
      canResignPayment: false,
      unsignedCallbacks: true,
      signType: 'MD5',
    },

    async createPayment(input, c) {
      const res = await call(
        'unifiedOrder',
        {
          body: input.description,
          outTradeNo: input.outTradeNo,
          spbillCreateIp: input.clientIp,
          totalFee: input.totalFen,
          envId: o.envId,
          functionName: o.payFunction,
          tradeType: 'JSAPI',
          openid: input.payerOpenid,
          timeExpire: compactBeijing(input.expiresAtMs),
          ...(input.attach ? { attach: input.attach } : {}),
        },
        c,
      );
      const p = isObject(res['payment']) ? res['payment'] : undefined;
      const payment: ProviderPayment | undefined =
        p &&
        typeof p['timeStamp'] === 'string' &&
        typeof p['nonceStr'] === 'string' &&
        typeof p['package'] === 'string' &&
        typeof p['paySign'] === 'string' &&
        (p['signType'] === 'MD5' || p['signType'] === 'HMAC-SHA256')
          ? {
              timeStamp: p['timeStamp'],
              nonceStr: p['nonceStr'],
              package: p['package'],
              signType: p['signType'],
              paySign: p['paySign'],
            }
          : undefined;
      const prepayId = s(res, 'prepayId') ?? payment?.package.replace(/^prepay_id=/, '');
      if (!payment || !prepayId) {
        throw fail(
          'unifiedOrder',
          { reason: 'BAD_RESPONSE', failure: 'transient' },
          'BAD_RESPONSE',
          'answer lacks payment or prepayId',
        );
      }
      // Passed through as signed by the platform: there is no key here to sign anything with.
      return { prepayId, payment };
    },

    resignPayment() {
      // Paying again means calling unifiedOrder again with the same outTradeNo (it re-enters).
      throw fail(
        'resign',
        { reason: 'INVALID_REQUEST', failure: 'definitive' },
        'NOT_SUPPORTED',
        'cloudPay payments can only be signed by the platform',
      );
    },

    async queryPayment(outTradeNo, c) {
      return paymentStatus(await call('queryOrder', { outTradeNo }, c), outTradeNo);
    },

    async closePayment(outTradeNo, c) {
      try {
        await call('closeOrder', { outTradeNo }, c);
      } catch (e) {
        if (e instanceof ProviderError && e.reason === 'ORDER_CLOSED') return;
        throw e;
      }
    },

    async refund(input, c) {
      const res = await call(
        'refund',
        {
          envId: o.envId,
          functionName: o.refundFunction,
          outTradeNo: input.outTradeNo,
          outRefundNo: input.outRefundNo,
          totalFee: input.totalFen,
          refundFee: input.refundFen,
          ...(input.reason ? { refundDesc: input.reason } : {}),
        },
        c,
      );
      return {
        outRefundNo: s(res, 'outRefundNo') ?? input.outRefundNo,
        refundId: s(res, 'refundId') ?? '',
        status: 'PROCESSING',
        record: record(res),
      };
    },

    async queryRefund(outRefundNo, c) {
      return refundStatus(await call('queryRefund', { outRefundNo }, c), outRefundNo);
    },

    async downloadBill(date, type = 'ALL', c) {
      const day = billDateDashed(date);
      if (!day)
        throw fail(
          'downloadBill',
          { reason: 'INVALID_REQUEST', failure: 'definitive' },
          'INVALID_BILL_DATE',
          `bill date must be YYYY-MM-DD, got ${date}`,
        );
      let res: Json;
      try {
        res = await bounded(
          'downloadBill',
          {
            subMchId: o.subMchId,
            nonceStr: o.nonce(),
            billDate: day.replace(/-/g, ''),
            billType: type,
          },
          c,
        );
      } catch (e) {
        if (e instanceof ProviderError) throw e;
        throw fail(
          'downloadBill',
          { reason: 'NETWORK', failure: 'transient' },
          'SDK_ERROR',
          String((e as { errMsg?: unknown })?.errMsg ?? e),
          e,
        );
      }
      // Success is the CSV as `data`; a failure is a JSON answer with returnCode FAIL.
      if (typeof res['data'] === 'string') return res['data'];
      const text = s(res, 'returnMsg', 'errCodeDes') ?? 'no bill in the answer';
      throw fail('downloadBill', classifyCloudPayText(text), 'RETURN_FAIL', text);
    },

    async parseNotification(input, c) {
      if (input.transport !== 'function')
        return refused('WRONG_TRANSPORT', 'cloudPay callbacks arrive as function events');
      // The platform marks its callbacks; a mini-program user calling the function directly does not.
      if (input.source !== undefined && !input.source.split(',').includes('wx_paycallback')) {
        return refused('NOT_A_CALLBACK', `invocation source ${input.source} is not wx_paycallback`);
      }
      if (!isObject(input.event)) return refused('MALFORMED', 'callback event is not an object');
      const event = input.event;
      const sub = s(event, 'subMchId', 'sub_mch_id');
      if (sub !== o.subMchId) return refused('MERCHANT_MISMATCH', 'subMchId is not ours');
      const isRefund =
        s(event, 'outRefundNo', 'out_refund_no', 'refundStatus', 'refund_status', 'reqInfo', 'req_info') !==
        undefined;
      if (!isRefund && s(event, 'resultCode') !== undefined && event['resultCode'] !== 'SUCCESS') {
        return { verified: true, event: { kind: 'ignored', reason: 'RESULT_FAIL' } };
      }
      // Unsigned: the callback is only a hint to ask WeChat, and WeChat's answer decides.
      return isRefund ? confirmRefund(event, c) : confirmPayment(event, c);
    },

    reply: cloudPayReply,
  };
}

/** cloudPay's acknowledgement, returned by the callback function. */
export function cloudPayReply(outcome: NotificationOutcome): NotificationReply {
  // "0 表示正常,其他表示异常,异常时支付回调会持续重试最多两天".
  return {
    transport: 'function',
    value: outcome.ok ? { errcode: 0, errmsg: 'OK' } : { errcode: -1, errmsg: outcome.message },
  };
}
