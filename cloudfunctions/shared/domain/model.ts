/** Documents as stored (DESIGN.md §4). Amounts are integer fen; times are epoch ms (suffix Ms). */
import type {
  ExternalRefundView,
  OrderItemView,
  OrderStatus,
  OrderView,
  ProductView,
  RefundStatus,
  RefundView,
} from '../contract';
import type { SignType } from '../wxpay/types';

export const COLLECTIONS = {
  products: 'products',
  orders: 'orders',
  refunds: 'refunds',
  events: 'payment_events',
  billChecks: 'bill_checks',
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
  signType: SignType;
  /** unifiedorder re-entry must repeat every parameter (else 201), even after a config change. */
  notifyUrl?: string;
  createdAtMs: number;
  updatedAtMs: number;
  expiresAtMs: number;
  prepayId: string | null;
  prepayExpiresAtMs: number;
  paidAtMs?: number;
  transactionId?: string;
  closedAtMs?: number;
  closeReason?: string;
  flag?: 'PAID_AFTER_CLOSE';
  /** Pending, approved, processing and failed (unresolved) refunds. */
  refundReservedFee: number;
  refundedFee: number;
  /** reserved + refunded, kept as one field so a reservation is one conditional update. */
  refundUsedFee: number;
  /** Refund applications so far; WeChat allows 50 partial refunds per order. */
  refundCount: number;
  /** Applied bookkeeping steps (`reserve:R`, `settle:R`, `release:R`): makes each step idempotent. */
  refundOps: string[];
  /** Refunds made outside the shop (merchant platform), recorded by the bill check (`external:R` in refundOps). */
  externalRefunds?: ExternalRefundView[];
}

export interface RefundDoc {
  /** = out_refund_no */
  _id: string;
  orderId: string;
  openid: string;
  refundFee: number;
  totalFee: number;
  reason: string;
  contact?: string;
  status: RefundStatus;
  comment?: string;
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
}

export interface PaymentEventDoc {
  /** `<orderId|refundId>:<NEW_STATUS>`: one entry per transition, whoever wins it. */
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
    payable: o.status === 'NOTPAY' && o.expiresAtMs > nowMs,
  };
  if (o.paidAtMs !== undefined) v.paidAtMs = o.paidAtMs;
  if (o.transactionId) v.transactionId = o.transactionId;
  if (o.closedAtMs !== undefined) v.closedAtMs = o.closedAtMs;
  if (o.flag) v.flag = o.flag;
  if (o.externalRefunds?.length) v.externalRefunds = o.externalRefunds;
  return v;
}

export function refundView(r: RefundDoc, withOpenid = false): RefundView {
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
  if (r.contact) v.contact = r.contact;
  if (r.comment) v.comment = r.comment;
  if (r.failReason) v.failReason = r.failReason;
  if (r.reviewedAtMs !== undefined) v.reviewedAtMs = r.reviewedAtMs;
  if (r.finishedAtMs !== undefined) v.finishedAtMs = r.finishedAtMs;
  if (withOpenid) v.openid = r.openid;
  return v;
}
