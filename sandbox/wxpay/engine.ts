/**
 * WeChat Pay's side of APIv2, without HTTP: each handler takes a verified request and
 * returns the answer's business fields. Rules and error texts follow WeChat Pay's APIv2
 * documentation (pay.weixin.qq.com/wiki/doc/api/jsapi.php: 统一下单, 查询订单, 关闭订单, 申请退款,
 * 查询退款, 下载对账单, and their error code tables).
 */
import { randomBytes } from 'node:crypto';
import {
  encryptReqInfo,
  isSignType,
  type RequestPaymentParams,
  sign,
  toXml,
  type WxParams,
  type WxParamsIn,
} from '../../cloudfunctions/shared/wxpay';
import {
  type Ledger,
  type NotifyTransport,
  type RefundStatus,
  refundReqInfo,
  type SimOrder,
  type SimRefund,
} from './ledger';
import type { NotifyFaults } from './notifier';
import { compactTime, dashedTime, parseCompactTime } from './time';
import type { SimMerchant } from './verify';

export const API_PATHS = [
  '/pay/unifiedorder',
  '/pay/orderquery',
  '/pay/closeorder',
  '/secapi/pay/refund',
  '/pay/refundquery',
  '/pay/downloadbill',
] as const;
export type ApiPath = (typeof API_PATHS)[number];

/** A probability, for every API path or per path. */
export type Rate = number | Partial<Record<ApiPath, number>>;

export interface Faults extends NotifyFaults {
  /** Chance that an API call answers result_code FAIL / err_code SYSTEMERROR without any effect. */
  systemErrorRate: Rate;
  /** The next N API calls answer SYSTEMERROR (deterministic version of the rate). */
  systemErrorNext: number;
  /** Chance that an API call never answers (the client's timeout fires). */
  timeoutRate: Rate;
  /**
   * Chance that an API call takes effect (ledger updated) and then never answers: a reply
   * lost between WeChat's effect and the merchant, e.g. a function killed mid-call.
   */
  hangAfterEffectRate: Rate;
  /** How PROCESSING refunds end. */
  refundOutcome: 'SUCCESS' | 'REFUNDCLOSE' | 'CHANGE';
  /**
   * Refund calls fail with this err_code (e.g. NOTENOUGH, USER_ACCOUNT_ABNORMAL) until cleared.
   * Rate and retry codes (FREQUENCY_LIMITED, INVALID_REQ_TOO_MUCH, SYSTEMERROR,
   * BIZERR_NEED_RETRY) hit repeats of an accepted out_refund_no too; the others only new ones.
   */
  refundError: string | null;
  /** The next refund calls fail with these err_codes, one each, in order (same rules as refundError). */
  refundErrorQueue: string[];
  /**
   * refundError and the queue also hit a repeat of an out_refund_no WeChat already accepted:
   * the definitive error a resubmission can meet although the first attempt went through.
   */
  refundErrorOnRepeat: boolean;
  /** A declined payment (cashier outcome FAIL) also sends a pay notify with result_code FAIL. */
  notifyPayFailures: boolean;
  /** Wall-clock ms from acceptance to the refund's result; null = 60 s × timeScale. */
  refundDelayMs: number | null;
}

export const DEFAULT_FAULTS: Faults = {
  dropPayNotifies: false,
  dropRefundNotifies: false,
  notifyDelayMs: 0,
  duplicateNotifies: 0,
  reorderNotifies: false,
  systemErrorRate: 0,
  systemErrorNext: 0,
  timeoutRate: 0,
  hangAfterEffectRate: 0,
  refundOutcome: 'SUCCESS',
  refundError: null,
  refundErrorQueue: [],
  refundErrorOnRepeat: false,
  notifyPayFailures: false,
  refundDelayMs: null,
};

/** Error codes that are not a decision about the refund, so a repeat of an accepted one can get them too. */
const REPEATABLE_REFUND_ERRORS = new Set([
  'FREQUENCY_LIMITED',
  'INVALID_REQ_TOO_MUCH',
  'SYSTEMERROR',
  'BIZERR_NEED_RETRY',
]);
const MAX_TIMER_MS = 2_147_483_647;
/** "同一笔订单多次退款的请求需相隔1分钟" (申请退款 doc). */
const REFUND_SPACING_MS = 60_000;
/** "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟" (关闭订单 doc). */
const CLOSE_MIN_AGE_MS = 5 * 60_000;

const REFUND_ERROR_DES: Record<string, string> = {
  NOTENOUGH: '基本账户余额不足，请充值后重新发起',
  USER_ACCOUNT_ABNORMAL: '退款请求失败，用户账号已注销',
  TRADE_OVERDUE: '订单已经超过退款期限',
  SYSTEMERROR: '系统超时，请不要更换商户退款单号，请使用相同参数再次调用API',
  BIZERR_NEED_RETRY: '并发情况下，业务被拒绝，请使用相同参数再次调用API',
  INVALID_REQ_TOO_MUCH: '连续错误请求数过多被系统短暂屏蔽，请1分钟后再试',
  FREQUENCY_LIMITED: '频率限制，请降低请求频率',
};

/** "prepay_id只有两小时的有效期" (time_expire field doc, quoted in reference §4.3). */
export const PREPAY_TTL_MS = 2 * 3600 * 1000;
/** "每个支付订单的部分退款次数不能超过50次" (申请退款 doc). */
export const MAX_REFUNDS_PER_ORDER = 50;
/** "交易时间超过一年的订单无法提交退款". */
const REFUND_WINDOW_MS = 365 * 24 * 3600 * 1000;
/** time_expire: "建议：最短失效时间间隔大于1分钟". */
const MIN_EXPIRE_MS = 60 * 1000;

export class ResultFail {
  constructor(
    readonly errCode: string,
    readonly errCodeDes: string,
  ) {}
}

/** A request WeChat refuses at the communication level (return_code FAIL). */
export class ReturnFail {
  constructor(readonly returnMsg: string) {}
}

export type ApiOutcome = WxParamsIn | ResultFail | ReturnFail;

/** Where the engine's notifies go: the HTTP notifier, or a test's own list. */
export interface NotifySink {
  enqueue(kind: 'pay' | 'refund', url: string, body: string, transport?: NotifyTransport): void;
}

/** A notify in another API's format (see `EngineHooks`). */
export interface ForeignNotify {
  url: string;
  body: string;
  transport?: NotifyTransport;
}

/**
 * Where APIv3, service-provider mode and cloudPay differ from APIv2 (sandbox/wxpay/v3.ts,
 * cloudpay.ts): the engine's rules and ledger stay one; only the paySign check of APIv3
 * orders and the format of notifies for orders and refunds they made come from outside.
 */
export interface EngineHooks {
  /** Checks an APIv3 order's RSA paySign; returns why it fails, or undefined when it holds. */
  checkPaySign?(order: SimOrder, payment: Record<string, string | undefined>): string | undefined;
  /** The pay notify for an order APIv2 does not own, or undefined for APIv2's XML. */
  payNotify?(order: SimOrder, m: SimMerchant): ForeignNotify | undefined;
  /** The refund notify for a refund APIv2 does not own, or undefined for APIv2's XML. */
  refundNotify?(refund: SimRefund, m: SimMerchant): ForeignNotify | undefined;
}

export interface EngineOptions {
  merchants: readonly SimMerchant[];
  ledger: Ledger;
  notifier: NotifySink;
  now: () => number;
  timeScale: number;
  faults: () => Faults;
  hooks?: EngineHooks;
  /** Lets the engine use up one-shot faults (refundErrorQueue). */
  setFaults: (patch: Partial<Faults>) => void;
}

export interface PayOptions {
  /** Paid partly with a coupon (代金券): cash_fee = total_fee − couponFee. */
  couponFee?: number;
}

export type PayOutcome = 'SUCCESS' | 'CANCEL' | 'FAIL' | 'USERPAYING' | 'PAYERROR';

export class Engine {
  private readonly settleTimers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly o: EngineOptions) {
    for (const r of o.ledger.refunds.values()) if (r.status === 'PROCESSING') this.armSettle(r);
  }

  close(): void {
    for (const t of this.settleTimers.values()) clearTimeout(t);
    this.settleTimers.clear();
  }

  /** Every API but downloadbill, whose success is a file (see bills.ts). */
  handle(path: Exclude<ApiPath, '/pay/downloadbill'>, p: WxParams, m: SimMerchant): ApiOutcome {
    switch (path) {
      case '/pay/unifiedorder':
        return this.unifiedOrder(p, m);
      case '/pay/orderquery':
        return this.orderQuery(p, m);
      case '/pay/closeorder':
        return this.closeOrder(p, m);
      case '/secapi/pay/refund':
        return this.refund(p, m);
      case '/pay/refundquery':
        return this.refundQuery(p, m);
    }
  }

  // --- unifiedorder -------------------------------------------------------------------

  private unifiedOrder(p: WxParams, m: SimMerchant): ApiOutcome {
    const tradeType = p['trade_type'];
    const required = ['body', 'out_trade_no', 'total_fee', 'spbill_create_ip', 'notify_url', 'trade_type'];
    if (tradeType === 'JSAPI') required.push('openid');
    const lack = required.find((f) => !p[f]);
    if (lack) return new ResultFail('LACK_PARAMS', `缺少参数${lack}`);
    if (tradeType !== 'JSAPI') return new ReturnFail('trade_type参数错误（模拟器只支持JSAPI）');
    if (!/^[0-9A-Za-z_\-|*]{1,32}$/.test(p['out_trade_no']!))
      return new ReturnFail('out_trade_no参数格式错误');
    if (!/^[1-9]\d{0,9}$/.test(p['total_fee']!)) return new ReturnFail('total_fee参数格式错误');
    if (!/^(https?):\/\/[^?#]+$/.test(p['notify_url']!)) return new ReturnFail('notify_url参数格式错误');
    const now = this.o.now();
    let expiresAtMs: number | undefined;
    if (p['time_expire']) {
      expiresAtMs = parseCompactTime(p['time_expire']);
      if (expiresAtMs === undefined) return new ResultFail('INVALID_REQUEST', 'time_expire时间格式错误');
    }

    // Re-entry: "订单重入时，要求参数值与原请求一致"; every field but nonce_str and sign counts.
    const request: Record<string, string> = { sign_type: 'MD5', ...p };
    delete request['nonce_str'];
    delete request['sign'];
    const existing = this.o.ledger.order(m.mchId, p['out_trade_no']!);
    if (existing) {
      if (existing.tradeState === 'SUCCESS' || existing.tradeState === 'REFUND')
        return new ResultFail('ORDERPAID', '该订单已支付');
      if (existing.tradeState === 'CLOSED')
        return new ResultFail('ORDERCLOSED', '该订单已关闭，请使用新的商户订单号下单');
      if (!sameFields(existing.request, request))
        return new ResultFail('INVALID_REQUEST', '201 商户订单号重复');
      if (existing.expiresAtMs !== undefined && now >= existing.expiresAtMs)
        return new ResultFail('ORDERCLOSED', '订单已过期（time_expire），请使用新的商户订单号下单');
      // Past its 2 hours, re-entering is how one gets a fresh prepay_id (reference §4.3).
      if (now - existing.prepayIssuedAtMs >= PREPAY_TTL_MS) {
        existing.prepayId = newPrepayId(now);
        existing.prepayIssuedAtMs = now;
      }
      this.o.ledger.putOrder(existing);
      return { trade_type: 'JSAPI', prepay_id: existing.prepayId };
    }
    if (expiresAtMs !== undefined && expiresAtMs - now < MIN_EXPIRE_MS)
      return new ResultFail('INVALID_REQUEST', 'time_expire时间过短，最短失效时间间隔需大于1分钟');

    const order: SimOrder = {
      mchId: m.mchId,
      appid: m.appid,
      outTradeNo: p['out_trade_no']!,
      request,
      signType: request['sign_type'] as SimOrder['signType'],
      totalFee: Number(p['total_fee']),
      openid: p['openid']!,
      notifyUrl: p['notify_url']!,
      attach: p['attach'],
      body: p['body']!,
      prepayId: newPrepayId(now),
      prepayIssuedAtMs: now,
      expiresAtMs,
      tradeState: 'NOTPAY',
      createdAtMs: now,
    };
    this.o.ledger.putOrder(order);
    return { trade_type: 'JSAPI', prepay_id: order.prepayId };
  }

  // --- the phone: wx.requestPayment ---------------------------------------------------

  /**
   * What the WeChat client does with wx.requestPayment: find the order by prepay_id, check
   * the paySign (the second signature, over appId/timeStamp/nonceStr/package/signType with
   * the sign type of the order), then let the user pay.
   */
  pay(
    payment: Partial<RequestPaymentParams> | undefined,
    outcome: PayOutcome = 'SUCCESS',
    options: PayOptions = {},
  ): { errMsg: string } {
    const fail = (why: string) => ({ errMsg: `requestPayment:fail ${why}` });
    if (!payment || typeof payment !== 'object') return fail('parameter error: payment is required');
    const { timeStamp, nonceStr, package: pkg, signType, paySign } = payment;
    for (const [k, v] of Object.entries({ timeStamp, nonceStr, package: pkg, signType, paySign })) {
      if (typeof v !== 'string' || v === '')
        return fail(`parameter error: ${k} should be a non-empty string`);
    }
    const prepayId = /^prepay_id=(.+)$/.exec(pkg!)?.[1];
    if (!prepayId) return fail('parameter error: package should be "prepay_id=..."');
    const order = this.o.ledger.orderByPrepayId(prepayId);
    if (!order || order.prepayId !== prepayId) return fail('prepay_id 无效或已被新的 prepay_id 取代');
    const m = this.merchant(order.mchId);
    if (order.api === 'v3') {
      // APIv3 orders are paid with an RSA paySign ("仅支持RSA"), checked by the v3 side.
      const check = this.o.hooks?.checkPaySign;
      const why = check
        ? check(order, { timeStamp, nonceStr, package: pkg, signType, paySign })
        : 'APIv3 is not enabled';
      if (why) return fail(why);
    } else {
      // "signType…注意此处需与统一下单的签名类型一致".
      if (!isSignType(signType) || signType !== order.signType)
        return fail('支付验证签名失败（signType 与统一下单不一致）');
      const expected = sign(
        { appId: order.appid, timeStamp, nonceStr, package: pkg, signType },
        m.apiKey,
        signType,
      );
      if (expected !== paySign!.toUpperCase()) return fail('支付验证签名失败');
    }
    const now = this.o.now();
    if (now - order.prepayIssuedAtMs >= PREPAY_TTL_MS) return fail('prepay_id 已过期（2小时），请重新下单');
    if (order.tradeState === 'SUCCESS' || order.tradeState === 'REFUND') return fail('该订单已支付');
    if (order.tradeState === 'CLOSED') return fail('该订单已关闭');
    if (order.expiresAtMs !== undefined && now >= order.expiresAtMs) return fail('该订单已过期');

    switch (outcome) {
      case 'CANCEL':
        return { errMsg: 'requestPayment:fail cancel' };
      case 'FAIL':
        // A declined card: the user can try again, so the order stays payable (NOTPAY).
        if (this.o.faults().notifyPayFailures)
          this.o.notifier.enqueue('pay', order.notifyUrl, this.payFailedNotifyXml(order, m));
        return fail('支付失败，请稍后再试');
      case 'USERPAYING':
      case 'PAYERROR':
        order.tradeState = outcome;
        this.o.ledger.putOrder(order);
        return fail(outcome === 'USERPAYING' ? '用户支付中' : '支付失败（银行返回失败）');
      case 'SUCCESS':
        break;
      default:
        return fail(`unknown outcome ${String(outcome)}`);
    }
    const coupon = options.couponFee ?? 0;
    if (!Number.isSafeInteger(coupon) || coupon < 0 || coupon >= order.totalFee)
      return fail('parameter error: couponFee must be a whole number of fen below the order total');
    order.tradeState = 'SUCCESS';
    order.paidAtMs = now;
    if (coupon > 0) order.couponFee = coupon;
    order.transactionId = `4200${compactTime(now).slice(0, 8)}${digits(16)}`;
    this.o.ledger.putOrder(order);
    const foreign = this.o.hooks?.payNotify?.(order, m);
    if (foreign) this.o.notifier.enqueue('pay', foreign.url, foreign.body, foreign.transport);
    else this.o.notifier.enqueue('pay', order.notifyUrl, this.payNotifyXml(order, m));
    return { errMsg: 'requestPayment:ok' };
  }

  private payFailedNotifyXml(o: SimOrder, m: SimMerchant): string {
    const fields: WxParamsIn = {
      appid: o.appid,
      mch_id: o.mchId,
      nonce_str: randomBytes(16).toString('hex'),
      openid: o.openid,
      out_trade_no: o.outTradeNo,
      return_code: 'SUCCESS',
      result_code: 'FAIL',
      err_code: 'BANKERROR',
      err_code_des: '银行系统异常',
      total_fee: o.totalFee,
      trade_type: 'JSAPI',
    };
    return toXml({ ...fields, sign: sign(fields, m.apiKey, o.signType) });
  }

  private payNotifyXml(o: SimOrder, m: SimMerchant): string {
    const fields: WxParamsIn = {
      appid: o.appid,
      attach: o.attach,
      bank_type: 'OTHERS',
      ...couponFields(o),
      fee_type: 'CNY',
      is_subscribe: 'N',
      mch_id: o.mchId,
      nonce_str: randomBytes(16).toString('hex'),
      openid: o.openid,
      out_trade_no: o.outTradeNo,
      result_code: 'SUCCESS',
      return_code: 'SUCCESS',
      time_end: compactTime(o.paidAtMs!),
      total_fee: o.totalFee,
      trade_type: 'JSAPI',
      transaction_id: o.transactionId,
    };
    // Signed with the order's sign type, and without a sign_type field: real HMAC notifies
    // arrive like that (WxJava#1585), so a handler must use its configured sign type.
    return toXml({ ...fields, sign: sign(fields, m.apiKey, o.signType) });
  }

  // --- orderquery / closeorder --------------------------------------------------------

  private findOrder(p: WxParams, m: SimMerchant): SimOrder | ResultFail {
    if (!p['out_trade_no'] && !p['transaction_id'])
      return new ResultFail('LACK_PARAMS', '缺少参数out_trade_no或transaction_id');
    const o = p['transaction_id']
      ? this.o.ledger.orderByTransactionId(m.mchId, p['transaction_id'])
      : this.o.ledger.order(m.mchId, p['out_trade_no']!);
    return o ?? new ResultFail('ORDERNOTEXIST', '订单不存在');
  }

  private orderQuery(p: WxParams, m: SimMerchant): ApiOutcome {
    const o = this.findOrder(p, m);
    if (o instanceof ResultFail) return o;
    const paid = o.tradeState === 'SUCCESS' || o.tradeState === 'REFUND';
    return {
      out_trade_no: o.outTradeNo,
      trade_state: o.tradeState,
      trade_state_desc: TRADE_STATE_DESC[o.tradeState],
      trade_type: 'JSAPI',
      openid: o.openid,
      total_fee: o.totalFee,
      fee_type: 'CNY',
      attach: o.attach,
      is_subscribe: paid ? 'N' : undefined,
      bank_type: paid ? 'OTHERS' : undefined,
      ...(paid ? couponFields(o) : {}),
      transaction_id: o.transactionId,
      time_end: o.paidAtMs === undefined ? undefined : compactTime(o.paidAtMs),
    };
  }

  private closeOrder(p: WxParams, m: SimMerchant): ApiOutcome {
    if (!p['out_trade_no']) return new ResultFail('LACK_PARAMS', '缺少参数out_trade_no');
    const o = this.o.ledger.order(m.mchId, p['out_trade_no']);
    if (!o) return new ResultFail('ORDERNOTEXIST', '订单不存在');
    if (o.tradeState === 'SUCCESS' || o.tradeState === 'REFUND')
      return new ResultFail('ORDERPAID', '订单已支付，不能发起关单，请当作已支付的正常交易');
    if (o.tradeState === 'CLOSED') return new ResultFail('ORDERCLOSED', '订单已关闭，无需继续调用');
    if (o.tradeState === 'USERPAYING') return new ResultFail('USERPAYING', '用户支付中，请稍后再关单');
    // WeChat documents the 5-minute rule but no err_code for breaking it; an answer that says
    // "try the same again later" is what a client must be ready for.
    if (this.o.now() - o.createdAtMs < CLOSE_MIN_AGE_MS * this.o.timeScale)
      return new ResultFail('SYSTEMERROR', '订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟');
    o.tradeState = 'CLOSED';
    o.closedAtMs = this.o.now();
    this.o.ledger.putOrder(o);
    return {};
  }

  // --- refund -------------------------------------------------------------------------

  private refund(p: WxParams, m: SimMerchant): ApiOutcome {
    const lack = ['out_refund_no', 'total_fee', 'refund_fee'].find((f) => !p[f]);
    if (lack) return new ResultFail('LACK_PARAMS', `缺少参数${lack}`);
    if (!/^[1-9]\d{0,9}$/.test(p['total_fee']!) || !/^[1-9]\d{0,9}$/.test(p['refund_fee']!))
      return new ResultFail('PARAM_ERROR', 'total_fee和refund_fee必须是正整数（单位：分）');
    const o = this.findOrder(p, m);
    if (o instanceof ResultFail) return o;
    const totalFee = Number(p['total_fee']);
    const refundFee = Number(p['refund_fee']);

    const faults = this.o.faults();
    const queued = faults.refundErrorQueue[0];
    const refundError = queued ?? faults.refundError;
    const failWith = (code: string) => {
      if (queued !== undefined) this.o.setFaults({ refundErrorQueue: faults.refundErrorQueue.slice(1) });
      return new ResultFail(code, REFUND_ERROR_DES[code] ?? '申请退款业务发生错误（模拟）');
    };
    if (refundError && (REPEATABLE_REFUND_ERRORS.has(refundError) || faults.refundErrorOnRepeat))
      return failWith(refundError);

    // "同一退款单号多次请求只退一笔": a repeat answers as the first time did.
    const previous = this.o.ledger.refund(m.mchId, p['out_refund_no']!);
    if (previous) {
      if (
        previous.outTradeNo !== o.outTradeNo ||
        previous.refundFee !== refundFee ||
        previous.totalFee !== totalFee
      )
        return new ResultFail('INVALID_REQUEST', '订单金额或退款金额与之前请求不一致，请核实后再试');
      return refundAnswer(previous, o);
    }
    if (o.tradeState !== 'SUCCESS' && o.tradeState !== 'REFUND')
      return new ResultFail('ERROR', '订单未支付，不能退款');
    if (totalFee !== o.totalFee)
      return new ResultFail('INVALID_REQUEST', '订单金额total_fee与支付金额不一致');
    const now = this.o.now();
    if (now - o.paidAtMs! > REFUND_WINDOW_MS)
      return new ResultFail('TRADE_OVERDUE', '订单已经超过退款期限（支付后一年内可退款）');
    if (refundError) return failWith(refundError);
    const siblings = this.o.ledger.refundsOf(m.mchId, o.outTradeNo);
    const last = Math.max(0, ...siblings.map((r) => r.createdAtMs));
    if (siblings.length > 0 && now - last < REFUND_SPACING_MS * this.o.timeScale)
      return new ResultFail('FREQUENCY_LIMITED', '同一笔订单多次退款的请求需相隔1分钟');
    const effective = this.o.ledger
      .refundsOf(m.mchId, o.outTradeNo)
      .filter((r) => r.status !== 'REFUNDCLOSE');
    if (effective.length >= MAX_REFUNDS_PER_ORDER)
      return new ResultFail('ERROR', `该订单已超过${MAX_REFUNDS_PER_ORDER}次部分退款的限制`);
    const refunded = effective.reduce((s, r) => s + r.refundFee, 0);
    if (refunded >= o.totalFee) return new ResultFail('ERROR', '订单已全额退款');
    if (refunded + refundFee > o.totalFee)
      return new ResultFail('ERROR', `累计退款金额大于支付金额（可退${o.totalFee - refunded}分）`);

    const delayMs = this.o.faults().refundDelayMs ?? 60_000 * this.o.timeScale;
    const r: SimRefund = {
      mchId: m.mchId,
      appid: m.appid,
      outRefundNo: p['out_refund_no']!,
      outTradeNo: o.outTradeNo,
      transactionId: o.transactionId!,
      refundId: `50${digits(27)}`,
      refundFee,
      totalFee,
      refundDesc: p['refund_desc'],
      notifyUrl: p['notify_url'] || m.refundNotifyUrl,
      status: 'PROCESSING',
      createdAtMs: now,
      settleAtMs: Date.now() + delayMs,
    };
    o.tradeState = 'REFUND';
    this.o.ledger.putOrder(o, false);
    this.o.ledger.putRefund(r);
    this.armSettle(r);
    return refundAnswer(r, o);
  }

  private armSettle(r: SimRefund): void {
    const id = `${r.mchId}/${r.outRefundNo}`;
    clearTimeout(this.settleTimers.get(id));
    // setTimeout fires at once for delays past 2^31-1 ms (24.8 days): wait in slices.
    const t = setTimeout(
      () => {
        this.settleTimers.delete(id);
        if (Date.now() < r.settleAtMs) this.armSettle(r);
        else this.settle(r);
      },
      Math.min(MAX_TIMER_MS, Math.max(0, r.settleAtMs - Date.now())),
    );
    t.unref();
    this.settleTimers.set(id, t);
  }

  /** Finishes every PROCESSING refund now; returns how many. */
  settleAll(): number {
    const processing = [...this.o.ledger.refunds.values()].filter((r) => r.status === 'PROCESSING');
    for (const r of processing) this.settle(r);
    return processing.length;
  }

  /** Finishes one PROCESSING refund now with `outcome` (default: faults.refundOutcome); false if none. */
  settleOne(outRefundNo: string, outcome?: Faults['refundOutcome']): boolean {
    const r = [...this.o.ledger.refunds.values()].find((x) => x.outRefundNo === outRefundNo);
    if (r?.status !== 'PROCESSING') return false;
    this.settle(r, outcome);
    return true;
  }

  private settle(r: SimRefund, outcome?: Faults['refundOutcome']): void {
    if (r.status !== 'PROCESSING') return;
    const id = `${r.mchId}/${r.outRefundNo}`;
    clearTimeout(this.settleTimers.get(id));
    this.settleTimers.delete(id);
    r.status = outcome ?? this.o.faults().refundOutcome;
    r.settledAtMs = this.o.now();
    const o = this.o.ledger.order(r.mchId, r.outTradeNo);
    if (o && r.status === 'REFUNDCLOSE') {
      // A closed refund moved no money; the order is back to plain SUCCESS if nothing else was refunded.
      const others = this.o.ledger.refundsOf(r.mchId, r.outTradeNo).filter((x) => x.status !== 'REFUNDCLOSE');
      if (others.length === 0) o.tradeState = 'SUCCESS';
      this.o.ledger.putOrder(o, false);
    }
    this.o.ledger.putRefund(r);
    // "当商户申请的退款有结果后（退款状态为：退款成功、退款关闭、退款异常）" a notify goes out.
    if (r.notifyUrl) {
      const foreign = this.o.hooks?.refundNotify?.(r, this.merchant(r.mchId));
      if (foreign) this.o.notifier.enqueue('refund', foreign.url, foreign.body, foreign.transport);
      else this.o.notifier.enqueue('refund', r.notifyUrl, this.refundNotifyXml(r));
    }
  }

  private refundNotifyXml(r: SimRefund): string {
    const m = this.merchant(r.mchId);
    const info = refundReqInfo(r);
    // Refund notifies carry no sign: the AES-256-ECB req_info is the proof (退款结果通知 doc).
    return toXml({
      return_code: 'SUCCESS',
      appid: r.appid,
      mch_id: r.mchId,
      nonce_str: randomBytes(16).toString('hex'),
      req_info: encryptReqInfo(info, m.apiKey),
    });
  }

  private refundQuery(p: WxParams, m: SimMerchant): ApiOutcome {
    const keys = ['out_refund_no', 'refund_id', 'out_trade_no', 'transaction_id'];
    if (!keys.some((k) => p[k])) return new ResultFail('LACK_PARAMS', `缺少参数（${keys.join('/')}四选一）`);
    let refunds: SimRefund[];
    if (p['out_refund_no'] || p['refund_id']) {
      const r = p['out_refund_no']
        ? this.o.ledger.refund(m.mchId, p['out_refund_no'])
        : [...this.o.ledger.refunds.values()].find(
            (x) => x.mchId === m.mchId && x.refundId === p['refund_id'],
          );
      refunds = r ? [r] : [];
    } else {
      const o = this.findOrder(p, m);
      refunds = o instanceof ResultFail ? [] : this.o.ledger.refundsOf(m.mchId, o.outTradeNo);
    }
    if (refunds.length === 0) return new ResultFail('REFUNDNOTEXIST', '退款订单查询失败');
    // A result that is due but whose timer has not fired yet (e.g. right after a restart).
    for (const r of refunds) if (r.status === 'PROCESSING' && Date.now() >= r.settleAtMs) this.settle(r);
    const first = refunds[0]!;
    const out: WxParamsIn = {
      transaction_id: first.transactionId,
      out_trade_no: first.outTradeNo,
      total_fee: first.totalFee,
      settlement_total_fee: first.totalFee,
      fee_type: 'CNY',
      cash_fee: first.totalFee,
      refund_count: refunds.length,
      total_refund_count: this.o.ledger.refundsOf(m.mchId, first.outTradeNo).length,
    };
    refunds.forEach((r, n) => {
      out[`out_refund_no_${n}`] = r.outRefundNo;
      out[`refund_id_${n}`] = r.refundId;
      out[`refund_channel_${n}`] = 'ORIGINAL';
      out[`refund_fee_${n}`] = r.refundFee;
      out[`settlement_refund_fee_${n}`] = r.refundFee;
      out[`refund_status_${n}`] = r.status;
      out[`refund_account_${n}`] = 'REFUND_SOURCE_RECHARGE_FUNDS';
      out[`refund_recv_accout_${n}`] = '支付用户零钱';
      if (r.status === 'SUCCESS') out[`refund_success_time_${n}`] = dashedTime(r.settledAtMs!);
    });
    return out;
  }

  /** Takes a refund made outside the API (merchant platform, see bills.ts) and settles it like any other. */
  acceptRefund(r: SimRefund): void {
    const o = this.o.ledger.order(r.mchId, r.outTradeNo);
    if (o) {
      o.tradeState = 'REFUND';
      this.o.ledger.putOrder(o, false);
    }
    this.o.ledger.putRefund(r);
    this.armSettle(r);
  }

  private merchant(mchId: string): SimMerchant {
    const m = this.o.merchants.find((x) => x.mchId === mchId);
    if (!m) throw new Error(`unknown merchant ${mchId}`);
    return m;
  }
}

const TRADE_STATE_DESC: Record<SimOrder['tradeState'], string> = {
  NOTPAY: '订单未支付',
  SUCCESS: '支付成功',
  REFUND: '转入退款',
  CLOSED: '订单已关闭',
  USERPAYING: '用户支付中',
  PAYERROR: '支付失败',
};

/** What a coupon-paid order's notify and orderquery carry: WeChat's total_fee stays the order amount. */
function couponFields(o: SimOrder): WxParamsIn {
  const coupon = o.couponFee ?? 0;
  if (coupon === 0) return { cash_fee: o.totalFee };
  return {
    cash_fee: o.totalFee - coupon,
    coupon_fee: coupon,
    coupon_count: 1,
    coupon_type_0: 'NO_CASH',
    coupon_id_0: '10000',
    coupon_fee_0: coupon,
  };
}

function refundAnswer(r: SimRefund, o: SimOrder): WxParamsIn {
  // A coupon-paid order refunds cash and coupon in proportion.
  const couponRefund = o.couponFee ? Math.floor((r.refundFee * o.couponFee) / o.totalFee) : 0;
  return {
    transaction_id: r.transactionId,
    out_trade_no: r.outTradeNo,
    out_refund_no: r.outRefundNo,
    refund_id: r.refundId,
    refund_channel: '',
    refund_fee: r.refundFee,
    settlement_refund_fee: r.refundFee,
    total_fee: o.totalFee,
    settlement_total_fee: o.totalFee,
    fee_type: 'CNY',
    cash_fee: o.totalFee - (o.couponFee ?? 0),
    cash_refund_fee: r.refundFee - couponRefund,
    coupon_refund_fee: couponRefund,
    coupon_refund_count: couponRefund > 0 ? 1 : 0,
  };
}

function sameFields(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) if ((a[k] ?? '') !== (b[k] ?? '')) return false;
  return true;
}

function newPrepayId(now: number): string {
  return `wx${compactTime(now)}${randomBytes(11).toString('hex').slice(0, 22)}`;
}

function digits(n: number): string {
  let s = '';
  for (const b of randomBytes(n)) s += String(b % 10);
  return s;
}

export type { RefundStatus };
