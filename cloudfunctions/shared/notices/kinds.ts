/**
 * The notices this shop sends, who receives each, the facts the domain hands over for it, and
 * the variables a merchant can map onto the fields of the template they picked.
 */
import type { RefundStatus } from '../contract';
import type { Value, ValueKind } from './rules';

export const ADMIN_KINDS = ['order_paid', 'refund_applied', 'refund_attention', 'bill_mismatch'] as const;
export const SHOPPER_KINDS = [
  'refund_approved',
  'refund_rejected',
  'refund_completed',
  'refund_closed',
] as const;
export const NOTICE_KINDS = [...ADMIN_KINDS, ...SHOPPER_KINDS] as const;
export type AdminKind = (typeof ADMIN_KINDS)[number];
export type ShopperKind = (typeof SHOPPER_KINDS)[number];
export type NoticeKind = (typeof NOTICE_KINDS)[number];

export function isAdminKind(kind: NoticeKind): kind is AdminKind {
  return (ADMIN_KINDS as readonly string[]).includes(kind);
}

/** An order was paid (the merchant's "new order"). */
export interface OrderFacts {
  orderId: string;
  totalFee: number;
  /** The order's description, e.g. 西湖龙井 ×2. */
  product: string;
  atMs: number;
}

/** A refund at the moment of the transition being reported. */
export interface RefundFacts {
  refundId: string;
  orderId: string;
  refundFee: number;
  /** The state the refund entered (for refund_attention: FAILED, CLOSED, ABNORMAL or a flagged SUCCESS). */
  status: RefundStatus;
  atMs: number;
  /** The shopper's reason. */
  reason?: string;
  contact?: string;
  /** The merchant's comment (a rejection's reason). */
  comment?: string;
  /** For the merchant only: WeChat's reason, or why a SUCCESS was flagged. Never sent to a shopper. */
  detail?: string;
  product?: string;
}

/** The daily bill check found differences between WeChat's bill and the shop's books. */
export interface BillFacts {
  /** Any instant of the bill's day (Beijing time). */
  billDayMs: number;
  mismatches: number;
  /** The sum of the differences, when known. */
  amountFen?: number;
  atMs: number;
}

export interface FactsByKind {
  order_paid: OrderFacts;
  refund_applied: RefundFacts;
  refund_attention: RefundFacts;
  bill_mismatch: BillFacts;
  refund_approved: RefundFacts;
  refund_rejected: RefundFacts;
  refund_completed: RefundFacts;
  refund_closed: RefundFacts;
}

/** What the merchant can put into a template field (the right-hand side of `thing3=product`). */
export const VARIABLES = {
  orderId: { kind: 'id', label: '订单号' },
  refundId: { kind: 'id', label: '退款单号' },
  amount: { kind: 'fen', label: '金额' },
  product: { kind: 'text', label: '商品' },
  status: { kind: 'label', label: '状态' },
  time: { kind: 'time', label: '时间' },
  reason: { kind: 'text', label: '退款原因' },
  contact: { kind: 'text', label: '联系方式' },
  comment: { kind: 'text', label: '商家备注' },
  detail: { kind: 'text', label: '异常原因' },
  note: { kind: 'text', label: '提示' },
  shop: { kind: 'text', label: '店铺' },
  date: { kind: 'date', label: '日期' },
  count: { kind: 'count', label: '笔数' },
} as const satisfies Record<string, { kind: ValueKind; label: string }>;
export type Variable = keyof typeof VARIABLES;

const REFUND_COMMON = ['orderId', 'refundId', 'amount', 'product', 'status', 'time', 'note', 'shop'] as const;

/** The variables each kind can fill. */
export const KIND_VARIABLES: Record<NoticeKind, readonly Variable[]> = {
  order_paid: ['orderId', 'amount', 'product', 'status', 'time', 'note', 'shop'],
  refund_applied: [...REFUND_COMMON, 'reason', 'contact'],
  refund_attention: [...REFUND_COMMON, 'reason', 'detail', 'comment'],
  bill_mismatch: ['date', 'count', 'amount', 'status', 'time', 'note', 'shop'],
  refund_approved: [...REFUND_COMMON, 'comment'],
  refund_rejected: [...REFUND_COMMON, 'comment', 'reason'],
  refund_completed: [...REFUND_COMMON],
  refund_closed: [...REFUND_COMMON],
};

/** What each kind is called in logs, the docs and the mini-program's subscribe prompt. */
export const KIND_TITLE: Record<NoticeKind, string> = {
  order_paid: '新订单',
  refund_applied: '退款申请',
  refund_attention: '退款待处理',
  bill_mismatch: '对账异常',
  refund_approved: '退款审核通过',
  refund_rejected: '退款被拒绝',
  refund_completed: '退款完成',
  refund_closed: '退款关闭',
};

/**
 * The page a tap on the notice opens (it must be in app.json, or WeChat answers 41030). A
 * refund the merchant must look at opens on that refund (admin-refund loads it by its id);
 * the merchant's other notices land on the review list.
 */
export function noticePage<K extends NoticeKind>(kind: K, facts: FactsByKind[K]): string {
  if (kind === 'refund_applied' || kind === 'refund_attention')
    return `pages/admin-refund/index?refundId=${encodeURIComponent((facts as RefundFacts).refundId)}`;
  if (isAdminKind(kind)) return 'pages/admin-refunds/index';
  return `pages/order-detail/index?orderId=${encodeURIComponent((facts as RefundFacts).orderId)}`;
}

export const STATUS_WORD: Partial<Record<RefundStatus, string>> = {
  PENDING_REVIEW: '待审核',
  APPROVED: '已同意',
  PROCESSING: '退款中',
  SUCCESS: '退款完成',
  FAILED: '退款失败',
  CLOSED: '退款关闭',
  ABNORMAL: '退款异常',
  REJECTED: '已拒绝',
  WITHDRAWN: '已撤销',
};

/** The state a kind reports, when the kind alone says it (refund_attention reads the refund's). */
const KIND_STATUS: Partial<Record<NoticeKind, string>> = {
  refund_applied: '待审核',
  refund_approved: '已同意',
  refund_rejected: '已拒绝',
  refund_completed: '退款完成',
  refund_closed: '退款关闭',
};

/** The fixed line each kind carries in `note`; shoppers never see WeChat's reasons. */
const NOTE: Record<NoticeKind, string> = {
  order_paid: '顾客已付款，请及时发货',
  refund_applied: '请在小程序中审核',
  refund_attention: '请在小程序中处理',
  bill_mismatch: '请在控制台查看对账差异',
  refund_approved: '商家已同意，款项将原路退回',
  refund_rejected: '商家未同意退款申请',
  refund_completed: '款项已原路退回',
  refund_closed: '退款未完成，请联系商家',
};

function text(t: string | undefined): Value {
  return { kind: 'text', text: t ?? '' };
}

/** The value of `variable` for one notice; undefined for a variable the kind cannot fill. */
export function variableValue<K extends NoticeKind>(
  kind: K,
  facts: FactsByKind[K],
  variable: Variable,
  shopName: string,
): Value | undefined {
  if (!KIND_VARIABLES[kind].includes(variable)) return undefined;
  if (variable === 'note') return text(NOTE[kind]);
  if (variable === 'shop') return text(shopName);
  if (kind === 'order_paid') {
    const f = facts as OrderFacts;
    if (variable === 'orderId') return { kind: 'id', text: f.orderId };
    if (variable === 'amount') return { kind: 'fen', fen: f.totalFee };
    if (variable === 'product') return text(f.product);
    if (variable === 'status') return { kind: 'label', text: '已支付' };
    if (variable === 'time') return { kind: 'time', ms: f.atMs };
    return undefined;
  }
  if (kind === 'bill_mismatch') {
    const f = facts as BillFacts;
    if (variable === 'date') return { kind: 'date', ms: f.billDayMs };
    if (variable === 'count') return { kind: 'count', n: f.mismatches };
    if (variable === 'amount') return { kind: 'fen', fen: f.amountFen ?? 0 };
    if (variable === 'status') return { kind: 'label', text: '对账异常' };
    if (variable === 'time') return { kind: 'time', ms: f.atMs };
    return undefined;
  }
  const f = facts as RefundFacts;
  switch (variable) {
    case 'orderId':
      return { kind: 'id', text: f.orderId };
    case 'refundId':
      return { kind: 'id', text: f.refundId };
    case 'amount':
      return { kind: 'fen', fen: f.refundFee };
    case 'product':
      return text(f.product);
    case 'status':
      return { kind: 'label', text: KIND_STATUS[kind] ?? STATUS_WORD[f.status] ?? '' };
    case 'time':
      return { kind: 'time', ms: f.atMs };
    case 'reason':
      return text(f.reason);
    case 'contact':
      return text(f.contact);
    case 'comment':
      return text(f.comment);
    case 'detail':
      return text(f.detail);
    default:
      return undefined;
  }
}
