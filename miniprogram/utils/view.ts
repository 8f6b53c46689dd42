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
  failReason: string;
  createdAt: string;
  reviewedAt: string;
  finishedAt: string;
  steps: ProgressStep[];
}

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
    failReason: r.failReason ?? '',
    createdAt: formatTime(r.createdAtMs),
    reviewedAt: formatTime(r.reviewedAtMs),
    finishedAt: formatTime(r.finishedAtMs),
    steps: refundProgress(r.status),
  };
}
