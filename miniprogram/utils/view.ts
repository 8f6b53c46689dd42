/**
 * Display rows built from contract types. WXML cannot call functions, so every label and
 * yuan string a template shows is computed here once.
 */
import type { OrderView, RefundView } from '../../cloudfunctions/shared/contract';
import {
  formatTime,
  ORDER_STATUS_LABEL,
  type ProgressStep,
  REFUND_STATUS_LABEL,
  refundProgress,
} from './labels';
import { fenToYuan } from './money';
import { type Decision, flagNote, historyRows, merchantGuide, shopperNote } from './refund-guide';

export interface OrderRow {
  orderId: string;
  status: OrderView['status'];
  statusLabel: string;
  totalYuan: string;
  refundedYuan: string;
  refundReservedYuan: string;
  refundableYuan: string;
  refundableFee: number;
  summary: string;
  items: { name: string; quantity: number; priceYuan: string }[];
  createdAt: string;
  paidAt: string;
  closedAt: string;
  payable: boolean;
  canRefund: boolean;
  /** Shown to the merchant: money arrived after the order was closed. */
  paidAfterClose: boolean;
}

export function orderRow(o: OrderView): OrderRow {
  const first = o.items[0];
  const summary = first
    ? `${first.name} ×${first.quantity}${o.items.length > 1 ? ` 等${o.items.length}件商品` : ''}`
    : o.description;
  return {
    orderId: o.orderId,
    status: o.status,
    statusLabel: ORDER_STATUS_LABEL[o.status] ?? o.status,
    totalYuan: fenToYuan(o.totalFee),
    refundedYuan: fenToYuan(o.refundedFee),
    refundReservedYuan: fenToYuan(o.refundReservedFee),
    refundableYuan: fenToYuan(o.refundableFee),
    refundableFee: o.refundableFee,
    summary,
    items: o.items.map((i) => ({ name: i.name, quantity: i.quantity, priceYuan: fenToYuan(i.priceFen) })),
    createdAt: formatTime(o.createdAtMs),
    paidAt: formatTime(o.paidAtMs),
    closedAt: formatTime(o.closedAtMs),
    payable: o.payable,
    canRefund: o.status === 'PAID' && o.refundableFee > 0,
    paidAfterClose: o.flag === 'PAID_AFTER_CLOSE',
  };
}

export interface RefundRow {
  refundId: string;
  orderId: string;
  status: RefundView['status'];
  statusLabel: string;
  refundYuan: string;
  totalYuan: string;
  reason: string;
  contact: string;
  comment: string;
  createdAt: string;
  reviewedAt: string;
  finishedAt: string;
  steps: ProgressStep[];
  /** The shopper's neutral line on FAILED/CLOSED/ABNORMAL (never WeChat's reason). */
  note: string;
}

/** The shopper's row: the label, the steps and a neutral line; no failReason, ever. */
export function refundRow(r: RefundView): RefundRow {
  return {
    refundId: r.refundId,
    orderId: r.orderId,
    status: r.status,
    statusLabel: REFUND_STATUS_LABEL[r.status] ?? r.status,
    refundYuan: fenToYuan(r.refundFee),
    totalYuan: fenToYuan(r.totalFee),
    reason: r.reason,
    contact: r.contact ?? '',
    comment: r.comment ?? '',
    createdAt: formatTime(r.createdAtMs),
    reviewedAt: formatTime(r.reviewedAtMs),
    finishedAt: formatTime(r.finishedAtMs),
    steps: refundProgress(r.status),
    note: shopperNote(r)?.zh ?? '',
  };
}

export interface AdminRefundRow extends RefundRow {
  /** WeChat's reason for the current state only; earlier attempts' reasons are in `history`. */
  failReason: string;
  /** What the state means and what to do about it. */
  guide: string;
  actions: { decision: Decision; label: string; needsComment: boolean; primary: boolean }[];
  /** A SUCCESS that WeChat paid after this shop had ended the refund. */
  flagText: string;
  successorId: string;
  predecessorId: string;
  history: { at: string; statusLabel: string; source: string; reason: string }[];
}

/** The merchant's row: every reason, the next steps, the links and the history. */
export function adminRefundRow(r: RefundView): AdminRefundRow {
  const guide = merchantGuide(r);
  return {
    ...refundRow(r),
    note: '',
    failReason: r.failReason ?? '',
    guide: guide.note?.zh ?? '',
    actions: guide.actions.map((a) => ({
      decision: a.decision,
      label: a.label.zh,
      needsComment: a.needsComment,
      primary: a.primary,
    })),
    flagText: flagNote(r)?.zh ?? '',
    successorId: r.successorId ?? '',
    predecessorId: r.predecessorId ?? '',
    history: historyRows(r.history).map((h) => ({
      at: formatTime(h.atMs),
      statusLabel: h.statusLabel,
      source: h.source.zh,
      reason: h.reason,
    })),
  };
}
