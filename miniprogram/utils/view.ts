/**
 * Display rows built from contract types. WXML cannot call functions, so every label and
 * yuan string a template shows is computed here once.
 */
import type { OrderView, RefundView } from '../../cloudfunctions/shared/contract';
import {
  countdownText,
  formatTime,
  ORDER_DISPLAY_LABEL,
  type OrderDisplay,
  orderDisplay,
  type ProgressStep,
  REFUND_STATUS_LABEL,
  refundProgress,
  refundTimeline,
  type TimelineStep,
  waitedText,
} from './labels';
import { fenToYuan } from './money';
import { type Decision, flagNote, historyRows, merchantGuide, shopperNote } from './refund-guide';

export interface OrderRow {
  orderId: string;
  status: OrderView['status'];
  /** What the shopper reads: refunds and the payment window included (labels.ts orderDisplay). */
  display: OrderDisplay;
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
  /** When the payment window ends (payable orders), for the countdown. */
  expiresAtMs: number;
  /** Time left to pay, '' unless payable. */
  countdown: string;
  /** An unpaid order the shopper can still cancel. */
  cancellable: boolean;
  canRefund: boolean;
  /** WeChat's 微信支付单号, once paid. */
  transactionId: string;
  /** Shown to the merchant: money arrived after the order was closed. */
  paidAfterClose: boolean;
}

export function orderRow(o: OrderView, nowMs: number = Date.now()): OrderRow {
  const first = o.items[0];
  const summary = first
    ? `${first.name} ×${first.quantity}${o.items.length > 1 ? ` 等${o.items.length}件商品` : ''}`
    : o.description;
  const display = orderDisplay(o, nowMs);
  return {
    orderId: o.orderId,
    status: o.status,
    display,
    statusLabel: ORDER_DISPLAY_LABEL[display],
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
    payable: display === 'NOTPAY',
    expiresAtMs: o.expiresAtMs,
    countdown: display === 'NOTPAY' ? countdownText(o.expiresAtMs, nowMs) : '',
    cancellable: display === 'NOTPAY',
    canRefund: o.status === 'PAID' && o.refundableFee > 0,
    transactionId: o.transactionId ?? '',
    paidAfterClose: o.flag === 'PAID_AFTER_CLOSE',
  };
}

/**
 * The countdown fields of the rows that are still payable, as setData paths (`at(i)` is the
 * path of row i): a tick touches those rows only, and a row whose time ran out turns 已过期
 * in the same update.
 */
export function countdownPatch(
  rows: readonly (Pick<OrderRow, 'payable' | 'expiresAtMs'> | null)[],
  at: (i: number) => string,
  nowMs: number,
): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  rows.forEach((r, i) => {
    if (!r?.payable) return;
    const text = countdownText(r.expiresAtMs, nowMs);
    patch[`${at(i)}.countdown`] = text;
    if (text === '') {
      patch[`${at(i)}.payable`] = false;
      patch[`${at(i)}.cancellable`] = false;
      patch[`${at(i)}.display`] = 'EXPIRED';
      patch[`${at(i)}.statusLabel`] = ORDER_DISPLAY_LABEL.EXPIRED;
    }
  });
  return patch;
}

export interface RefundRow {
  refundId: string;
  orderId: string;
  status: RefundView['status'];
  statusLabel: string;
  refundYuan: string;
  totalYuan: string;
  reason: string;
  reasonCode: string;
  contact: string;
  comment: string;
  createdAt: string;
  reviewedAt: string;
  finishedAt: string;
  steps: ProgressStep[];
  /** 申请 → 审核 → 退款中 → 到账, each with its time. */
  timeline: TimelineStep[];
  /** The shopper's neutral line on FAILED/CLOSED/ABNORMAL (never WeChat's reason). */
  note: string;
  /** Still waiting for review: the shopper may withdraw it. */
  canWithdraw: boolean;
}

/** The shopper's row: the label, the steps and a neutral line; no failReason, ever. */
export function refundRow(r: RefundView, nowMs: number = Date.now()): RefundRow {
  return {
    refundId: r.refundId,
    orderId: r.orderId,
    status: r.status,
    statusLabel: REFUND_STATUS_LABEL[r.status] ?? r.status,
    refundYuan: fenToYuan(r.refundFee),
    totalYuan: fenToYuan(r.totalFee),
    reason: r.reason,
    reasonCode: r.reasonCode ?? '',
    contact: r.contact ?? '',
    comment: r.comment ?? '',
    createdAt: formatTime(r.createdAtMs),
    reviewedAt: formatTime(r.reviewedAtMs),
    finishedAt: formatTime(r.finishedAtMs),
    steps: refundProgress(r.status),
    timeline: refundTimeline(r, nowMs),
    note: shopperNote(r)?.zh ?? '',
    canWithdraw: r.status === 'PENDING_REVIEW',
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
  /** How long it has waited for the merchant ('' once reviewed). */
  waited: string;
}

/** The merchant's row: every reason, the next steps, the links and the history. */
export function adminRefundRow(r: RefundView, nowMs: number = Date.now()): AdminRefundRow {
  const guide = merchantGuide(r);
  return {
    ...refundRow(r, nowMs),
    note: '',
    canWithdraw: false,
    waited: r.status === 'PENDING_REVIEW' ? waitedText(r.createdAtMs, nowMs) : '',
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
