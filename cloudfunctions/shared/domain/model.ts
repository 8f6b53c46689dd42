/** Documents as stored (docs/ARCHITECTURE.md §4). Amounts are integer fen; times are epoch ms (suffix Ms). */
import type {
  ExternalRefundView,
  OrderItemView,
  OrderStatus,
  OrderView,
  ProductView,
  RefundHistoryEntry,
  RefundStatus,
  RefundView,
} from '../contract';
import type { ProviderName, ProviderPayment } from '../providers/port';

export const COLLECTIONS = {
  products: 'products',
  orders: 'orders',
  refunds: 'refunds',
  events: 'payment_events',
  billChecks: 'bill_checks',
  notices: 'notices',
  callerLimits: 'caller_limits',
} as const;

export interface ProductDoc {
  _id: string;
  name: string;
  priceFen: number;
  image: string;
  description?: string;
  onSale: boolean;
  sort: number;
}

export interface OrderDoc {
  /** = out_trade_no */
  _id: string;
  openid: string;
  status: OrderStatus;
  items: OrderItemView[];
  totalFee: number;
  description: string;
  clientIp: string;
  /**
   * The provider that made it (WXPAY_PROVIDER then); its queries, closes, refunds and bills
   * go through that one for good. Absent on orders stored before providers existed: APIv2.
   */
  provider?: ProviderName;
  /** What wx.requestPayment was signed with: APIv2's MD5 or HMAC-SHA256 (the order's notifies too), RSA (v3). */
  signType: ProviderPayment['signType'];
  /** Service-provider mode and cloudPay: the sub-merchant it was made for; its notifies must name it. */
  subMchId?: string;
  /** unifiedorder re-entry must repeat every parameter (else 201), even after a config change. */
  notifyUrl?: string;
  createdAtMs: number;
  updatedAtMs: number;
  expiresAtMs: number;
  prepayId: string | null;
  prepayExpiresAtMs: number;
  /** WeChat's time_end when it said so (the one-year refund window runs from it), else when we learnt it. */
  paidAtMs?: number;
  transactionId?: string;
  closedAtMs?: number;
  closeReason?: string;
  /** The shopper cancelled it: not payable from then on; closed at WeChat as soon as WeChat allows. */
  cancelledAtMs?: number;
  flag?: 'PAID_AFTER_CLOSE';
  /** While NOTPAY: when reconcile next asks WeChat about it (absent once PAID or CLOSED). */
  nextCheckAtMs?: number;
  /** How many times reconcile looked at it, for the backoff. */
  checkCount?: number;
  /** Refunds not settled or released yet: pending, approved, processing, failed, closed (unretried). */
  refundReservedFee: number;
  /** Money WeChat returned (SUCCESS) or sent out (ABNORMAL: it left the merchant). */
  refundedFee: number;
  /** reserved + refunded, kept as one field so a reservation is one conditional update. */
  refundUsedFee: number;
  /**
   * Refunds that are, or may still become, refunds at WeChat (reserved or settled); a rejected or
   * withdrawn application gives its place back. WeChat allows 50 partial refunds per order.
   */
  refundCount: number;
  /** Applications whose reservation is neither settled nor released yet. */
  refundOpenCount?: number;
  /** One entry per refund of this order: its amount and where it stands (refund-book.ts). */
  refundBook: Record<string, RefundBookEntry>;
  /** No refund call for this order before then: "同一笔订单多次退款的请求需相隔1分钟". */
  refundCallUntilMs?: number;
  /** When reconcile checks this order's reservations for one stranded by a crash. */
  reservationCheckAtMs?: number;
  /** Refunds made outside the shop (merchant platform), recorded by the bill check: counted in refundedFee. */
  externalRefunds?: ExternalRefundView[];
}

export interface RefundBookEntry {
  fee: number;
  state: 'reserved' | 'settled' | 'released' | 'moved';
  atMs: number;
  /** Settled after it had been released or moved: WeChat paid a refund we had let go of. */
  late?: boolean;
  /** With `moved`: the refund that took the reservation over. */
  to?: string;
  /** A refund made outside the shop (merchant platform), found in WeChat's bill. */
  external?: boolean;
}

export interface RefundDoc {
  /** = out_refund_no */
  _id: string;
  orderId: string;
  openid: string;
  /** The client's id of the form submission that created it (idempotency). */
  requestId?: string;
  /** Its order's provider, copied when applied for (absent: APIv2). */
  provider?: ProviderName;
  refundFee: number;
  totalFee: number;
  /** The preset's label and the shopper's note, as shown to the merchant and sent as refund_desc. */
  reason: string;
  /** The preset reason (REFUND_REASONS), kept apart from the text for the merchant's statistics. */
  reasonCode?: string;
  contact?: string;
  status: RefundStatus;
  comment?: string;
  /** The reason of the current FAILED / CLOSED / ABNORMAL state only; older ones are in `history`. */
  failReason?: string;
  reviewer?: string;
  wxRefundId?: string;
  createdAtMs: number;
  updatedAtMs: number;
  reviewedAtMs?: number;
  submittedAtMs?: number;
  finishedAtMs?: number;
  /** While APPROVED: nobody else submits to WeChat before this (double clicks, reconcile). */
  leaseUntilMs: number;
  submitAttempts: number;
  /**
   * An attempt ended without an answer (timeout, lost reply, SYSTEMERROR): WeChat may have
   * accepted it. Until refundquery says otherwise, no refusal is taken as final.
   */
  outcomeUnknown?: boolean;
  /** Some attempt's outcome was ever unknown: rejecting it later asks refundquery first. */
  hadUnknownOutcome?: boolean;
  /** When reconcile next looks at it (absent when nothing is owed: final, or waiting for the merchant). */
  nextCheckAtMs?: number;
  checkCount?: number;
  flag?: 'SUCCESS_AFTER_FINAL';
  flaggedFrom?: RefundStatus;
  successorId?: string;
  predecessorId?: string;
  history: RefundHistoryEntry[];
}

export interface PaymentEventDoc {
  /**
   * `<orderId|refundId>:<NEW_STATUS>`, plus `:<attempt>` for a state a refund can enter again
   * (APPROVED, FAILED after a retry): one entry per transition, whoever wins it.
   */
  _id: string;
  kind: 'order' | 'refund';
  orderId: string;
  refundId?: string;
  from: string;
  to: string;
  source:
    | 'notify'
    | 'orderquery'
    | 'closeorder'
    | 'refundnotify'
    | 'refundquery'
    | 'refund'
    | 'review'
    | 'resolve'
    | 'withdraw'
    | 'reconcile'
    | 'unifiedorder';
  /** The verified WeChat fields behind the transition (never the key or a signature). */
  fields: Record<string, string>;
  atMs: number;
}

export const MAX_REFUNDS_PER_ORDER = 50;
/** Re-signing a prepay_id this close to its 2 h end risks the cashier failing mid-payment. */
export const PREPAY_MARGIN_MS = 5 * 60_000;
/** prepay_id validity: "prepay_id只有两小时的有效期". */
export const PREPAY_TTL_MS = 2 * 60 * 60_000;

export function productView(p: ProductDoc): ProductView {
  const v: ProductView = { id: p._id, name: p.name, priceFen: p.priceFen, image: p.image };
  if (p.description) v.description = p.description;
  return v;
}

/**
 * Whether `createOrder {orderId}` can still bring up the cashier for it. The open-orders limit
 * (limits.ts) counts exactly these, so an order that stops being payable frees its place.
 */
export function isPayable(
  o: Pick<OrderDoc, 'status' | 'expiresAtMs' | 'cancelledAtMs'>,
  nowMs: number,
): boolean {
  return o.status === 'NOTPAY' && o.expiresAtMs > nowMs && o.cancelledAtMs === undefined;
}

export function orderView(o: OrderDoc, nowMs: number): OrderView {
  const v: OrderView = {
    orderId: o._id,
    status: o.status,
    totalFee: o.totalFee,
    items: o.items,
    description: o.description,
    createdAtMs: o.createdAtMs,
    expiresAtMs: o.expiresAtMs,
    refundReservedFee: o.refundReservedFee,
    refundedFee: o.refundedFee,
    refundableFee: o.status === 'PAID' ? Math.max(0, o.totalFee - o.refundUsedFee) : 0,
    payable: isPayable(o, nowMs),
  };
  if (o.paidAtMs !== undefined) v.paidAtMs = o.paidAtMs;
  if (o.transactionId) v.transactionId = o.transactionId;
  if (o.closedAtMs !== undefined) v.closedAtMs = o.closedAtMs;
  if (o.cancelledAtMs !== undefined) v.cancelledAtMs = o.cancelledAtMs;
  if (o.flag) v.flag = o.flag;
  if (o.externalRefunds?.length) v.externalRefunds = o.externalRefunds;
  return v;
}

/**
 * The shopper's view (admin = false) never carries WeChat's reasons nor the history: a
 * merchant's balance problem (NOTENOUGH: 基本账户余额不足) is the merchant's business.
 */
export function refundView(r: RefundDoc, admin = false): RefundView {
  const v: RefundView = {
    refundId: r._id,
    orderId: r.orderId,
    refundFee: r.refundFee,
    totalFee: r.totalFee,
    reason: r.reason,
    status: r.status,
    createdAtMs: r.createdAtMs,
    updatedAtMs: r.updatedAtMs,
  };
  if (r.reasonCode) v.reasonCode = r.reasonCode;
  if (r.contact) v.contact = r.contact;
  if (r.comment) v.comment = r.comment;
  if (r.reviewedAtMs !== undefined) v.reviewedAtMs = r.reviewedAtMs;
  if (r.submittedAtMs !== undefined) v.submittedAtMs = r.submittedAtMs;
  if (r.finishedAtMs !== undefined) v.finishedAtMs = r.finishedAtMs;
  if (r.successorId) v.successorId = r.successorId;
  if (r.predecessorId) v.predecessorId = r.predecessorId;
  if (admin) {
    if (r.flag) v.flag = r.flag;
    if (r.flaggedFrom) v.flaggedFrom = r.flaggedFrom;
    if (r.failReason && (r.status === 'FAILED' || r.status === 'CLOSED' || r.status === 'ABNORMAL'))
      v.failReason = r.failReason;
    v.history = r.history ?? [];
    v.openid = r.openid;
  }
  return v;
}
