/**
 * The function contract (docs/ARCHITECTURE.md §6). The mini-program imports it type-only; the one value
 * here (ERROR_CODES) is plain data, so the file stays free of Node and of side effects. Amounts are integer fen; times are epoch ms.
 */

/** Exactly what `wx.requestPayment` takes (appId is signed but not passed). */
export interface RequestPaymentParams {
  timeStamp: string;
  nonceStr: string;
  /** `prepay_id=...` */
  package: string;
  /** APIv2 and cloudPay: MD5 or HMAC-SHA256; APIv3: RSA. Pass it to wx.requestPayment unchanged. */
  signType: 'MD5' | 'HMAC-SHA256' | 'RSA';
  paySign: string;
}

/** Every stable error code a callable function answers with. */
export const ERROR_CODES = [
  'INVALID_INPUT',
  'NOT_FOUND',
  'FORBIDDEN',
  'UNAUTHENTICATED',
  'ORDER_NOT_PAYABLE',
  'ORDER_EXPIRED',
  'REFUND_EXCEEDS_PAID',
  'REFUND_NOT_ALLOWED',
  'TOO_MANY_OPEN_REFUNDS',
  'INVALID_STATE',
  'CONFLICT',
  'RATE_LIMITED',
  'WXPAY_UNAVAILABLE',
  'WXPAY_ERROR',
  'CONFIG_INVALID',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ApiError {
  code: ErrorCode;
  message: string;
  /** With RATE_LIMITED: when the same call may succeed again. */
  retryAfterSeconds?: number;
  /**
   * With RATE_LIMITED from createOrder when the caller's unpaid orders fill every place: how
   * many of them to pay or cancel before a new order is taken (retryAfterSeconds is then when
   * the first of them expires by itself).
   */
  payOrCancelFirst?: number;
}

export type Result<T> = { ok: true; data: T } | { ok: false; error: ApiError };

export type OrderStatus = 'NOTPAY' | 'PAID' | 'CLOSED';
/**
 * PENDING_REVIEW 待审核 → APPROVED 待退款 (WeChat has not accepted it yet) → PROCESSING 退款中 →
 * SUCCESS 退款完成 | CLOSED 退款关闭 (no money moved) | ABNORMAL 退款异常 (money left the merchant,
 * the shopper's account refused it). FAILED 退款失败 is WeChat's definitive refusal of the
 * application; REJECTED 已拒绝 and WITHDRAWN 已撤销 end an application before money moves.
 */
export type RefundStatus =
  | 'PENDING_REVIEW'
  | 'WITHDRAWN'
  | 'REJECTED'
  | 'APPROVED'
  | 'PROCESSING'
  | 'SUCCESS'
  | 'FAILED'
  | 'CLOSED'
  | 'ABNORMAL';

/** One step in a refund's life, with the reason that step had (WeChat's, or the merchant's comment). */
export interface RefundHistoryEntry {
  atMs: number;
  /** The state the refund entered (or kept, for a retried attempt). */
  status: RefundStatus;
  /** What moved it: the shopper, the merchant, WeChat's answer, its notify or a query. */
  source:
    | 'apply'
    | 'review'
    | 'refund'
    | 'refundnotify'
    | 'refundquery'
    | 'resolve'
    | 'withdraw'
    | 'reconcile';
  /** WeChat's err_code and description, or the merchant's comment. Admin views only. */
  reason?: string;
}

export interface ProductView {
  id: string;
  name: string;
  priceFen: number;
  image: string;
  description?: string;
}

export interface OrderItemView {
  productId: string;
  name: string;
  priceFen: number;
  quantity: number;
}

export interface OrderView {
  orderId: string;
  status: OrderStatus;
  totalFee: number;
  items: OrderItemView[];
  description: string;
  createdAtMs: number;
  /** The order can no longer be paid after this (prepay_id validity and the shop's expiry). */
  expiresAtMs: number;
  paidAtMs?: number;
  transactionId?: string;
  closedAtMs?: number;
  /** Pending + approved + processing refunds. */
  refundReservedFee: number;
  /** Refunds that WeChat confirmed. */
  refundedFee: number;
  /** totalFee - refundReservedFee - refundedFee, when PAID; else 0. */
  refundableFee: number;
  /** Money arrived after the order was closed; the merchant must look at it. */
  flag?: 'PAID_AFTER_CLOSE';
  /**
   * Refunds WeChat made for this order that the shop never asked for (made by hand on the
   * merchant platform), found by the daily bill check. Counted in `refundedFee`.
   */
  externalRefunds?: ExternalRefundView[];
  /** Whether `createOrder {orderId}` can still bring up the cashier. */
  payable: boolean;
  /**
   * The shopper cancelled it (cancelOrder): it stopped being payable then. While still NOTPAY
   * it is being closed at WeChat, which allows that only 5 minutes after the order was made.
   */
  cancelledAtMs?: number;
}

export interface RefundView {
  refundId: string;
  orderId: string;
  refundFee: number;
  totalFee: number;
  /** What the shopper gave as the reason: the preset's label, then their note if any. */
  reason: string;
  /** The preset reason's code (refundReasons), for the merchant's statistics; absent on older refunds. */
  reasonCode?: string;
  contact?: string;
  status: RefundStatus;
  /** The merchant's comment on approve/reject. */
  comment?: string;
  /**
   * WeChat's reason for the current FAILED, CLOSED or ABNORMAL state (err_code and its
   * description). Admin views only: the shopper sees the label and a neutral line instead.
   */
  failReason?: string;
  createdAtMs: number;
  updatedAtMs: number;
  reviewedAtMs?: number;
  /** When WeChat accepted it (PROCESSING). */
  submittedAtMs?: number;
  finishedAtMs?: number;
  /**
   * WeChat reported SUCCESS for a refund this shop had already ended (REJECTED, FAILED,
   * CLOSED): the money went back anyway and is booked; the merchant should look at it.
   */
  flag?: 'SUCCESS_AFTER_FINAL';
  /** With `flag`: the state the refund was in when WeChat's SUCCESS arrived. */
  flaggedFrom?: RefundStatus;
  /** A CLOSED refund retried as a new refund (new out_refund_no): the new one. */
  successorId?: string;
  /** The CLOSED refund this one retries. */
  predecessorId?: string;
  /** Every step with its own reason, oldest first. Admin views only. */
  history?: RefundHistoryEntry[];
  /** Only in admin listings. */
  openid?: string;
}

export interface ExternalRefundView {
  /** WeChat's out_refund_no (the merchant platform makes one up). */
  refundId: string;
  refundFee: number;
  /** SUCCESS, or CHANGE: the money left the merchant but did not reach the shopper. */
  status: 'SUCCESS' | 'CHANGE';
  /** The bill (yyyyMMdd, Beijing) it was found in. */
  billDate: string;
  recordedAtMs: number;
}

/**
 * One day's comparison of the books with WeChat's bill (对账), by Beijing date.
 * RUNNING: a run holds it now. DONE: every row compared and every fix made. INCOMPLETE: a
 * run ran out of time or WeChat was unreachable for some items; the timer runs it again.
 * NOT_READY: WeChat has not generated the bill yet ("Bill Creating"). FAILED: the bill could
 * not be read (see `message`); the timer tries again.
 */
export type BillCheckStatus = 'RUNNING' | 'DONE' | 'INCOMPLETE' | 'NOT_READY' | 'FAILED';

/** What the check found that it must not fix by itself; docs/GOING_LIVE.md §8.4 says what to do. */
export type BillDiscrepancyKind =
  | 'UNKNOWN_ORDER'
  | 'AMOUNT_MISMATCH'
  | 'TRANSACTION_MISMATCH'
  | 'PAYMENT_UNCONFIRMED'
  | 'PAID_NOT_IN_BILL'
  | 'NOT_PAID_AT_WECHAT'
  | 'REFUND_AMOUNT_MISMATCH'
  | 'REFUND_UNCONFIRMED'
  | 'REFUND_STATE_CONFLICT'
  | 'REFUND_NOT_IN_BILL'
  | 'EXTERNAL_REFUND_ABNORMAL'
  | 'EXTERNAL_REFUND_NO_ORDER'
  | 'FEE_MISMATCH'
  | 'BILL_TOTALS_MISMATCH'
  | 'UNEXPECTED_ROW';

export interface BillDiscrepancy {
  kind: BillDiscrepancyKind;
  orderId?: string;
  refundId?: string;
  /** WeChat's transaction_id, when the bill row has one. */
  transactionId?: string;
  /** The amount in WeChat's bill or answer, and the one in the books. */
  wechatFen?: number;
  localFen?: number;
  /** One line for the merchant: what differs. */
  detail: string;
}

/** What the check changed, each through the same exactly-once transition a notify uses. */
export type BillActionKind =
  | 'BOOKED_PAID'
  | 'BOOKED_PAID_AFTER_CLOSE'
  | 'SETTLED_REFUND'
  | 'FINALIZED_REFUND'
  | 'EXTERNAL_REFUND';

export interface BillAction {
  kind: BillActionKind;
  orderId: string;
  refundId?: string;
  fen: number;
  atMs: number;
}

/** Sums of the bill's rows, in fen. */
export interface BillTotals {
  rows: number;
  payments: number;
  /** 订单金额 of the payment rows. */
  paymentFen: number;
  /** 应结订单金额: what settles to the merchant (after coupons). */
  settledFen: number;
  refunds: number;
  /** 申请退款金额 of the refund rows. */
  refundFen: number;
  /** 退款金额 of the rows whose 退款状态 is SUCCESS. */
  refundSuccessFen: number;
  /** 手续费, rounded to the fen. */
  feeFen: number;
}

export interface BillCheckView {
  /** yyyyMMdd, Beijing time. */
  billDate: string;
  status: BillCheckStatus;
  /** WeChat said "No Bill Exist": no trade that day. */
  noBill: boolean;
  message?: string;
  runs: number;
  lastRunAtMs: number;
  finishedAtMs?: number;
  totals: BillTotals;
  discrepancyCount: number;
  discrepancyCounts: Partial<Record<BillDiscrepancyKind, number>>;
  /** The first ones (the list is capped so the record stays small). */
  discrepancies: BillDiscrepancy[];
  /** Every fix the check made for this date, over all its runs. */
  actions: BillAction[];
  /** Items left for the next run (WeChat busy, out of time, a refund still processing). */
  pending: number;
  /** What the last run cost. */
  lastRun?: BillCheckRunStats;
}

export interface BillCheckRunStats {
  trigger: 'timer' | 'admin';
  /** The admin who ran it. */
  by?: string;
  durationMs: number;
  dbRequests: number;
  /** Of durationMs, the time spent waiting for the database. */
  dbMs: number;
  wxCalls: number;
  /** Peak JS heap plus buffers seen during the run, in MB (and at its start). */
  peakHeapMb?: number;
  startHeapMb?: number;
}

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null at the end. */
  nextCursor: string | null;
}

// ---- events and results, one pair per callable function ----

export interface ListProductsEvent {
  cursor?: string;
}
export type ListProductsResult = Page<ProductView>;

export type WhoamiEvent = Record<string, never>;
export interface WhoamiResult {
  isAdmin: boolean;
  openid: string;
}

export type CreateOrderEvent = { items: { productId: string; quantity: number }[] } | { orderId: string };
export interface CreateOrderResult {
  orderId: string;
  totalFee: number;
  /** Exactly what wx.requestPayment takes. */
  payment: RequestPaymentParams;
}

export interface QueryOrderEvent {
  orderId: string;
}
export interface QueryOrderResult {
  order: OrderView;
  refunds: RefundView[];
}

export interface ListOrdersEvent {
  status?: OrderStatus;
  /**
   * payable: unpaid orders that can still be paid (not expired, not cancelled), the 待支付 tab.
   * afterSale: orders with refunds in progress or refunded (退款中, 部分退款, 已退款), the 售后 tab.
   */
  filter?: 'payable' | 'afterSale';
  cursor?: string;
}
export type ListOrdersResult = Page<OrderView>;

export interface ApplyRefundEvent {
  orderId: string;
  refundFee: number;
  /**
   * One of the shop's preset reasons (refundReasons' `apply` codes). Without one the reason is
   * OTHER (其他), which needs `reason`.
   */
  reasonCode?: string;
  /** The shopper's own words: optional with a preset reason, required with OTHER (or no code). */
  reason?: string;
  contact?: string;
  /**
   * 8–64 of [A-Za-z0-9_-], made by the client once per form submission and reused on every
   * retry of it: the same shopper and requestId give the same refund, never a second one.
   */
  requestId: string;
}
export interface ApplyRefundResult {
  refund: RefundView;
}

/**
 * `approve`: a PENDING_REVIEW refund, or a retry of a FAILED one (same out_refund_no) or of a
 * CLOSED one (a new refund with a new out_refund_no takes over its reservation; the result is
 * the new refund). `reject`: a PENDING_REVIEW or FAILED one. `resolve`: an ABNORMAL one the
 * merchant has settled by hand on the merchant platform.
 */
export interface ApproveRefundEvent {
  refundId: string;
  decision: 'approve' | 'reject' | 'resolve';
  comment?: string;
}
export interface ApproveRefundResult {
  refund: RefundView;
}

export interface ListRefundsEvent {
  status?: RefundStatus;
  cursor?: string;
  /** newest (default) or oldest first: a review queue is worked oldest first. */
  order?: 'newest' | 'oldest';
  /** Only this order's refunds (search by order number). */
  orderId?: string;
}
export type ListRefundsResult = Page<RefundView & { order?: OrderView }> & {
  /** Refunds waiting for the merchant's review (PENDING_REVIEW), in the whole shop. */
  pendingCount: number;
};

/** The caller's own refund (the shopper's view), or any refund for an admin (every reason and the history). */
export interface GetRefundEvent {
  refundId: string;
}
export interface GetRefundResult {
  refund: RefundView;
  order: OrderView;
}

/** The shopper takes back an application the merchant has not reviewed yet (PENDING_REVIEW only). */
export interface WithdrawRefundEvent {
  refundId: string;
}
export interface WithdrawRefundResult {
  /** WITHDRAWN; its amount is refundable again. */
  refund: RefundView;
}

/** The shopper cancels an unpaid order. */
export interface CancelOrderEvent {
  orderId: string;
}
export interface CancelOrderResult {
  order: OrderView;
  /**
   * CLOSED: closed here and at WeChat (or WeChat never had it). CLOSING: no longer payable;
   * WeChat allows closing only 5 minutes after the order was made (or did not answer), and
   * reconcile finishes it. PAID: the payment arrived first; the order is paid (apply for a
   * refund instead).
   */
  outcome: 'CLOSED' | 'CLOSING' | 'PAID';
}

export type RefundReasonsEvent = Record<string, never>;
export interface RefundReasonOption {
  code: string;
  label: string;
  /** OTHER: the shopper must say what it is. */
  noteRequired: boolean;
}
export interface RefundReasonsResult {
  /** What a shopper picks from when applying, in the shop's order. */
  apply: RefundReasonOption[];
  /** Comments the merchant can pick when rejecting (shown to the shopper); empty unless admin. */
  reject: string[];
}

export type NoticeTemplatesEvent = Record<string, never>;
/** A subscribe message template the user can accept (wx.requestSubscribeMessage's tmplIds). */
export interface NoticeTemplateOffer {
  templateId: string;
  /** What it notifies of, e.g. 退款完成、退款关闭 (several notices may share one template). */
  title: string;
}
export interface NoticeTemplatesResult {
  /** The shopper's refund notices. */
  shopper: NoticeTemplateOffer[];
  /** The merchant's notices; empty unless the caller is an admin. */
  admin: NoticeTemplateOffer[];
}

export interface ListBillChecksEvent {
  cursor?: string;
}
/** Newest bill date first. */
export type ListBillChecksResult = Page<BillCheckView>;

export interface RunBillCheckEvent {
  /** yyyyMMdd (Beijing), a past day. */
  date: string;
}
export interface RunBillCheckResult {
  check: BillCheckView;
  /** false when another run of the same date holds it right now (the view is that run's last state). */
  ran: boolean;
}

/** Name → [event, result], for typed wrappers of wx.cloud.callFunction. */
export interface FunctionMap {
  listProducts: [ListProductsEvent, ListProductsResult];
  whoami: [WhoamiEvent, WhoamiResult];
  createOrder: [CreateOrderEvent, CreateOrderResult];
  queryOrder: [QueryOrderEvent, QueryOrderResult];
  listOrders: [ListOrdersEvent, ListOrdersResult];
  applyRefund: [ApplyRefundEvent, ApplyRefundResult];
  approveRefund: [ApproveRefundEvent, ApproveRefundResult];
  listRefunds: [ListRefundsEvent, ListRefundsResult];
  getRefund: [GetRefundEvent, GetRefundResult];
  withdrawRefund: [WithdrawRefundEvent, WithdrawRefundResult];
  cancelOrder: [CancelOrderEvent, CancelOrderResult];
  refundReasons: [RefundReasonsEvent, RefundReasonsResult];
  noticeTemplates: [NoticeTemplatesEvent, NoticeTemplatesResult];
  listBillChecks: [ListBillChecksEvent, ListBillChecksResult];
  runBillCheck: [RunBillCheckEvent, RunBillCheckResult];
}
export type FunctionName = keyof FunctionMap;
