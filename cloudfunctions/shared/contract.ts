/**
 * The function contract (DESIGN.md §6). The mini-program imports it type-only; the one value
 * here (ERROR_CODES) is plain data, so the file stays free of Node and of side effects. Amounts are integer fen; times are epoch ms.
 */

/** Exactly what `wx.requestPayment` takes (appId is signed but not passed). */
export interface RequestPaymentParams {
  timeStamp: string;
  nonceStr: string;
  /** `prepay_id=...` */
  package: string;
  signType: 'MD5' | 'HMAC-SHA256';
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
  'INVALID_STATE',
  'CONFLICT',
  'WXPAY_UNAVAILABLE',
  'WXPAY_ERROR',
  'CONFIG_INVALID',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ApiError {
  code: ErrorCode;
  message: string;
}

export type Result<T> = { ok: true; data: T } | { ok: false; error: ApiError };

export type OrderStatus = 'NOTPAY' | 'PAID' | 'CLOSED';
export type RefundStatus = 'PENDING_REVIEW' | 'REJECTED' | 'APPROVED' | 'PROCESSING' | 'SUCCESS' | 'FAILED';

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
  /** Whether `createOrder {orderId}` can still bring up the cashier. */
  payable: boolean;
}

export interface RefundView {
  refundId: string;
  orderId: string;
  refundFee: number;
  totalFee: number;
  reason: string;
  contact?: string;
  status: RefundStatus;
  /** The merchant's comment on approve/reject. */
  comment?: string;
  /** WeChat's reason for a FAILED refund (err_code or refund_status and its description). */
  failReason?: string;
  createdAtMs: number;
  updatedAtMs: number;
  reviewedAtMs?: number;
  finishedAtMs?: number;
  /** Only in admin listings. */
  openid?: string;
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
  cursor?: string;
}
export type ListOrdersResult = Page<OrderView>;

export interface ApplyRefundEvent {
  orderId: string;
  refundFee: number;
  reason: string;
  contact?: string;
}
export interface ApplyRefundResult {
  refund: RefundView;
}

export interface ApproveRefundEvent {
  refundId: string;
  decision: 'approve' | 'reject';
  comment?: string;
}
export interface ApproveRefundResult {
  refund: RefundView;
}

export interface ListRefundsEvent {
  status?: RefundStatus;
  cursor?: string;
}
export type ListRefundsResult = Page<RefundView & { order?: OrderView }>;

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
}
export type FunctionName = keyof FunctionMap;
