/**
 * The one port between the shop's domain and WeChat Pay. Three transports implement it:
 * APIv2 (XML, MD5/HMAC-SHA256, client certificate for refunds), APIv3 (JSON, RSA-SHA256
 * Authorization, answers and notifies verified with the WeChat Pay public key or platform
 * certificates) and CloudBase cloudPay (no keys; callbacks invoke a named cloud function).
 *
 * Everything that crosses this port is already normalized: money in integer fen, WeChat's
 * own words mapped onto one vocabulary (trade states, refund states, failure classes), times
 * as epoch ms. What each provider said verbatim is kept in `record` for the trade log.
 *
 * Idempotency keys are the shop's: out_trade_no and out_refund_no. Every method may be
 * retried with the same arguments; WeChat then answers about the same order or refund.
 */

export type ProviderName = 'v2' | 'v3' | 'cloudpay';
export const PROVIDER_NAMES: readonly ProviderName[] = ['v2', 'v3', 'cloudpay'];

/** Exactly what `wx.requestPayment` takes (appId is signed but not passed). */
export interface ProviderPayment {
  timeStamp: string;
  nonceStr: string;
  /** `prepay_id=...` */
  package: string;
  /** v2 and cloudPay: MD5 or HMAC-SHA256; v3: RSA ("仅支持RSA"). */
  signType: 'MD5' | 'HMAC-SHA256' | 'RSA';
  paySign: string;
}

// ---- inputs ----

export interface CreatePaymentInput {
  /** ≤32 of [0-9A-Za-z_-|*]; the order's id. */
  outTradeNo: string;
  /** Shown in the cashier and the shopper's bill (v2 `body`, v3 `description`). */
  description: string;
  totalFen: number;
  /** The payer's openid under the mini program's appid (`getWXContext().OPENID`). */
  payerOpenid: string;
  clientIp: string;
  /** WeChat stops accepting payment after this. Must be the same on every re-entry. */
  expiresAtMs: number;
  /**
   * Where the pay notify goes (v2, v3). Store it with the order and pass the stored value
   * again: re-entering an order with different parameters is refused. cloudPay ignores it.
   */
  notifyUrl?: string;
  attach?: string;
  /**
   * APIv2 only: the sign type the order was first placed with. Re-entry must repeat it, even
   * after the merchant changed WXPAY_SIGN_TYPE (else WeChat answers 商户订单号重复).
   */
  signType?: 'MD5' | 'HMAC-SHA256';
}

/** Per call: a cloud function is killed at its timeout, so every call ends by `deadlineMs` (epoch ms). */
export interface ProviderCallOptions {
  deadlineMs?: number;
}

export interface RefundInput {
  outTradeNo: string;
  /** ≤64 of [0-9A-Za-z_-|*@]; fixed before the first call and reused on every retry. */
  outRefundNo: string;
  refundFen: number;
  totalFen: number;
  /** Shown to the shopper (v3 `reason`, v2 `refund_desc`), ≤80 characters. */
  reason?: string;
  /** Overrides the merchant platform's refund notify URL (v2, v3). */
  notifyUrl?: string;
}

export type BillType = 'ALL' | 'SUCCESS' | 'REFUND';

// ---- normalized answers ----

/** WeChat's trade_state, the same words on every provider. */
export type TradeState = 'SUCCESS' | 'REFUND' | 'NOTPAY' | 'CLOSED' | 'REVOKED' | 'USERPAYING' | 'PAYERROR';
export const TRADE_STATES: readonly TradeState[] = [
  'SUCCESS',
  'REFUND',
  'NOTPAY',
  'CLOSED',
  'REVOKED',
  'USERPAYING',
  'PAYERROR',
];

/**
 * A refund's state at WeChat. v2 says REFUNDCLOSE for CLOSED and CHANGE for ABNORMAL; v3
 * uses these words. PROCESSING is the only one that is not final.
 */
export type ProviderRefundStatus = 'PROCESSING' | 'SUCCESS' | 'CLOSED' | 'ABNORMAL';

/** Flat, verified facts for the trade log (never a key, signature or ciphertext). */
export type TradeRecord = Record<string, string>;

export interface PaymentStatus {
  outTradeNo: string;
  state: TradeState;
  /** True for SUCCESS and REFUND: the money arrived. */
  paid: boolean;
  transactionId?: string;
  /** What the order was for, from WeChat: compare with the stored order before booking. */
  totalFen?: number;
  payerOpenid?: string;
  /** WeChat's time of payment (v2 time_end, v3 success_time). */
  paidAtMs?: number;
  record: TradeRecord;
}

export interface PreparedPayment {
  prepayId: string;
  payment: ProviderPayment;
}

export interface RefundAccepted {
  outRefundNo: string;
  refundId: string;
  /** PROCESSING on v2 and cloudPay (acceptance only); v3 may already say SUCCESS or CLOSED. */
  status: ProviderRefundStatus;
  record: TradeRecord;
}

export interface RefundStatusResult {
  outRefundNo: string;
  outTradeNo: string;
  refundId: string;
  status: ProviderRefundStatus;
  refundFen: number;
  /** The order's total, when WeChat says it. */
  totalFen?: number;
  successAtMs?: number;
  record: TradeRecord;
}

// ---- notifications ----

/**
 * What reached the notify endpoint, as the transport delivered it. HTTP bodies must be the
 * raw bytes: APIv3 signatures cover them exactly, and a re-serialised body never verifies.
 */
export type NotificationInput =
  | {
      transport: 'http';
      method: string;
      /** Names in any case. */
      headers: Readonly<Record<string, string | undefined>>;
      body: Uint8Array;
    }
  | {
      /** cloudPay: the platform invoked a cloud function with this event. */
      transport: 'function';
      event: unknown;
      /** `getWXContext().SOURCE` of that invocation; a cloudPay callback says wx_paycallback. */
      source?: string;
    };

export type NormalizedEvent =
  | {
      kind: 'payment';
      outTradeNo: string;
      transactionId: string;
      totalFen: number;
      payerOpenid?: string;
      paidAtMs?: number;
      /** APIv2: the sign type the notify verified with (the order's own must be the same). */
      signType?: 'MD5' | 'HMAC-SHA256';
      /** Service-provider mode and cloudPay: the sub-merchant the message is about. */
      subMchId?: string;
      record: TradeRecord;
    }
  | {
      kind: 'refund';
      outRefundNo: string;
      outTradeNo: string;
      refundId: string;
      status: ProviderRefundStatus;
      refundFen: number;
      totalFen?: number;
      successAtMs?: number;
      subMchId?: string;
      record: TradeRecord;
    }
  /** Authentic, but nothing to act on (a v2 "payment failed" notice, an event type we do not use). */
  | { kind: 'ignored'; reason: string };

/**
 * The outcome of reading a notification. `verified` means its authenticity was proven
 * (signature, decryption with the merchant's key, or, for unsigned cloudPay callbacks, a
 * query to WeChat that returned the same facts). Anything else names why it was refused and
 * whether WeChat should be asked to send it again (`retry`: a transient failure on our side)
 * or not (a forgery, a probe, another merchant's message).
 */
export type ParsedNotification =
  | { verified: true; event: NormalizedEvent }
  | { verified: false; code: string; message: string; retry: boolean };

/** How the domain finished with a notification; the provider turns it into the transport's answer. */
export type NotificationOutcome =
  /** Stored (or already stored): stop sending it. */
  | { ok: true }
  /** Refused for good reasons (forged, unknown, mismatched): WeChat may retry, nothing will change. */
  | { ok: false; retry: false; message: string }
  /** A transient failure on our side: please send it again. */
  | { ok: false; retry: true; message: string };

/** The transport's own acknowledgement. */
export type NotificationReply =
  | {
      transport: 'http';
      statusCode: number;
      headers: Record<string, string>;
      body: string;
    }
  | { transport: 'function'; value: { errcode: number; errmsg: string } };

// ---- failures ----

/**
 * How a failure should be handled:
 * - `transient`: WeChat may or may not have acted; send the same request again (same
 *   out_trade_no / out_refund_no), or query first;
 * - `rate-limited`: WeChat refused for now and did nothing; try again later, same parameters;
 * - `definitive`: WeChat decided; the same request will fail the same way.
 */
export type FailureClass = 'transient' | 'rate-limited' | 'definitive';

/**
 * WeChat's reasons that the shop's rules depend on, in one vocabulary. Everything else is
 * `OTHER` (the provider's own code is still in `ProviderError.providerCode`).
 */
export type FailureReason =
  | 'ORDER_NOT_FOUND'
  | 'ORDER_PAID'
  | 'ORDER_CLOSED'
  | 'ORDER_NO_REUSED'
  | 'REFUND_NOT_FOUND'
  | 'NOT_ENOUGH'
  | 'USER_ACCOUNT_ABNORMAL'
  | 'TRADE_OVERDUE'
  | 'INVALID_REQUEST'
  | 'SIGN_ERROR'
  | 'NO_AUTH'
  | 'SYSTEM_ERROR'
  | 'RATE_LIMITED'
  | 'NETWORK'
  | 'BAD_RESPONSE'
  | 'OTHER';

export interface Capabilities {
  /** v2 refunds need the merchant API client certificate (mutual TLS). */
  needsClientCert: boolean;
  /** WeChat sends a refund notify (all three do). */
  refundNotify: boolean;
  /** 'http' for v2/v3 (HTTP access), 'function' for cloudPay (a named cloud function). */
  notifyTransport: 'http' | 'function';
  /** closeorder is refused this soon after creation ("最短调用时间间隔为5分钟"). */
  minCloseAgeMs: number;
  /** The paySign can be remade for a stored prepay_id without calling WeChat (not cloudPay). */
  canResignPayment: boolean;
  /** Callbacks carry no signature, so they are confirmed with a query (cloudPay). */
  unsignedCallbacks: boolean;
  signType: ProviderPayment['signType'];
}

export interface PaymentProvider {
  readonly name: ProviderName;
  readonly capabilities: Capabilities;

  /**
   * Places (or re-enters) the order at WeChat and returns what wx.requestPayment takes.
   * Re-entering with the same input within its expiry gives back the same prepay_id.
   */
  createPayment(input: CreatePaymentInput, o?: ProviderCallOptions): Promise<PreparedPayment>;
  /**
   * Signs wx.requestPayment parameters for a stored prepay_id (only when `canResignPayment`).
   * APIv2 signs with `signType` (the order's), default the configured one.
   */
  resignPayment(prepayId: string, signType?: 'MD5' | 'HMAC-SHA256'): ProviderPayment;
  queryPayment(outTradeNo: string, o?: ProviderCallOptions): Promise<PaymentStatus>;
  /** Resolves when WeChat closed it (or it was already closed). */
  closePayment(outTradeNo: string, o?: ProviderCallOptions): Promise<void>;
  /** Acceptance only: the final state comes from the refund notify or `queryRefund`. */
  refund(input: RefundInput, o?: ProviderCallOptions): Promise<RefundAccepted>;
  queryRefund(outRefundNo: string, o?: ProviderCallOptions): Promise<RefundStatusResult>;
  /** The trade bill as WeChat's CSV text (amounts in yuan), date `YYYY-MM-DD`. */
  downloadBill(date: string, type?: BillType, o?: ProviderCallOptions): Promise<string>;

  /**
   * Verifies, decrypts and normalizes a notification. Never throws for hostile input.
   * cloudPay confirms with a query, which ends by `o.deadlineMs`.
   */
  parseNotification(input: NotificationInput, o?: ProviderCallOptions): Promise<ParsedNotification>;
  /** The acknowledgement WeChat (or the cloudPay platform) expects for `outcome`. */
  reply(outcome: NotificationOutcome): NotificationReply;
}
