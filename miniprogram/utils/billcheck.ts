/**
 * The bill check (对账) for the merchant's page: labels, and for each kind of difference what
 * it means and what to do, in the words of docs/GOING_LIVE.md §8.4.
 */
import type {
  BillActionKind,
  BillCheckView,
  BillDiscrepancyKind,
} from '../../cloudfunctions/shared/contract';
import { formatTime } from './labels';
import { fenToYuan } from './money';

export const DISCREPANCY_LABEL: Record<BillDiscrepancyKind, { title: string; todo: string }> = {
  UNKNOWN_ORDER: {
    title: '微信收款，本店无此订单',
    todo: '在商户平台按微信订单号查明这笔付款；不是本店的交易就在商户平台退款。',
  },
  AMOUNT_MISMATCH: {
    title: '金额与微信不一致',
    todo: '本店未做任何修改。核对订单与商户平台的金额，查明哪边被改动后人工更正。',
  },
  TRANSACTION_MISMATCH: {
    title: '微信订单号不一致',
    todo: '同一订单可能付了两次。在商户平台核对两笔交易，多收的一笔退给用户。',
  },
  PAYMENT_UNCONFIRMED: {
    title: '账单有付款，查询未确认',
    todo: '稍后重新对账这一天；仍不一致请联系微信支付客服。',
  },
  PAID_NOT_IN_BILL: {
    title: '已付款，但账单中没有',
    todo: '微信查询确认已付款。次日重新对账；仍缺失请联系微信支付客服。',
  },
  NOT_PAID_AT_WECHAT: {
    title: '本店记为已付款，微信未收款',
    todo: '不要发货。查明订单为何被记为已付款，确认后人工更正。',
  },
  REFUND_AMOUNT_MISMATCH: {
    title: '退款金额或订单与微信不一致',
    todo: '核对商户平台的退款记录后人工处理。',
  },
  REFUND_UNCONFIRMED: {
    title: '账单有退款结果，查询未确认',
    todo: '稍后重新对账这一天；仍不一致请联系微信支付客服。',
  },
  REFUND_STATE_CONFLICT: {
    title: '退款结果与本店状态冲突',
    todo: '在退款审核里查看这笔退款，按微信的结果处理。',
  },
  REFUND_NOT_IN_BILL: {
    title: '退款成功，但账单中没有',
    todo: '次日重新对账；仍缺失请联系微信支付客服。',
  },
  EXTERNAL_REFUND_ABNORMAL: {
    title: '商户平台退款异常（未到账）',
    todo: '在商户平台按退款单号处理：改为线下转账或重新退款。',
  },
  EXTERNAL_REFUND_NO_ORDER: {
    title: '商户平台退款，本店无对应已付订单',
    todo: '在商户平台查明这笔退款属于哪笔交易。',
  },
  FEE_MISMATCH: {
    title: '手续费与费率不符',
    todo: '核对商户平台的费率；有误请联系微信支付。',
  },
  BILL_TOTALS_MISMATCH: {
    title: '账单汇总与明细不符',
    todo: '重新对账这一天；仍不一致请联系微信支付客服。',
  },
  UNEXPECTED_ROW: {
    title: '账单中有本店不会产生的交易',
    todo: '在商户平台核对这笔交易的来源。',
  },
};

export const ACTION_LABEL: Record<BillActionKind, string> = {
  BOOKED_PAID: '补记付款（支付通知未到）',
  BOOKED_PAID_AFTER_CLOSE: '补记付款（订单关闭后到账，已标记）',
  SETTLED_REFUND: '补记退款成功',
  FINALIZED_REFUND: '补记退款结果',
  EXTERNAL_REFUND: '记录商户平台退款',
};

export interface BillCheckRow {
  billDate: string;
  /** yyyy-MM-dd */
  day: string;
  status: string;
  statusLabel: string;
  /** DONE and nothing to look at. */
  clean: boolean;
  summary: string;
  fixes: { label: string; orderId: string; refundId: string; yuan: string }[];
  issues: { title: string; todo: string; ids: string; detail: string }[];
  moreIssues: number;
  message: string;
  lastRunAt: string;
}

export function billCheckRow(v: BillCheckView): BillCheckRow {
  const t = v.totals;
  const statusLabel =
    v.status === 'DONE'
      ? v.noBill
        ? '当日无交易'
        : v.discrepancyCount > 0
          ? `有差异 ${v.discrepancyCount} 项`
          : '已对平'
      : {
          RUNNING: '对账中',
          INCOMPLETE: '未完成，稍后自动继续',
          NOT_READY: '账单未生成，稍后自动重试',
          FAILED: '对账失败，稍后自动重试',
        }[v.status];
  return {
    billDate: v.billDate,
    day: `${v.billDate.slice(0, 4)}-${v.billDate.slice(4, 6)}-${v.billDate.slice(6, 8)}`,
    status: v.status,
    statusLabel,
    clean: v.status === 'DONE' && v.discrepancyCount === 0,
    summary: v.noBill
      ? '微信账单：当日无交易'
      : `收款 ${t.payments} 笔 ¥${fenToYuan(t.paymentFen)}，退款 ${t.refunds} 笔 ¥${fenToYuan(t.refundFen)}，手续费 ¥${fenToYuan(t.feeFen)}`,
    fixes: v.actions.map((a) => ({
      label: ACTION_LABEL[a.kind] ?? a.kind,
      orderId: a.orderId,
      refundId: a.refundId ?? '',
      yuan: fenToYuan(a.fen),
    })),
    issues: v.discrepancies.map((d) => {
      const label = DISCREPANCY_LABEL[d.kind];
      const amounts =
        d.wechatFen !== undefined || d.localFen !== undefined
          ? `微信 ¥${d.wechatFen === undefined ? '-' : fenToYuan(d.wechatFen)} / 本店 ¥${d.localFen === undefined ? '-' : fenToYuan(d.localFen)}`
          : '';
      return {
        title: label?.title ?? d.kind,
        todo: label?.todo ?? '',
        ids: [d.orderId && `订单 ${d.orderId}`, d.refundId && `退款 ${d.refundId}`]
          .filter(Boolean)
          .join('，'),
        detail: [amounts, d.detail].filter(Boolean).join('；'),
      };
    }),
    moreIssues: Math.max(0, v.discrepancyCount - v.discrepancies.length),
    message: v.message ?? '',
    lastRunAt: formatTime(v.lastRunAtMs),
  };
}

/** Yesterday in Beijing time as yyyy-MM-dd: the day the morning check looks at. */
export function yesterdayBeijing(nowMs: number): string {
  return new Date(nowMs + 8 * 3600_000 - 24 * 3600_000).toISOString().slice(0, 10);
}
