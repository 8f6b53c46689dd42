import type { OrderStatus, OrderView, RefundStatus, RefundView } from '../../cloudfunctions/shared/contract';

export const ORDER_STATUS_LABEL: Record<OrderStatus, string> = {
  NOTPAY: '待支付',
  PAID: '已支付',
  CLOSED: '已关闭',
};

export const REFUND_STATUS_LABEL: Record<RefundStatus, string> = {
  PENDING_REVIEW: '待审核',
  WITHDRAWN: '已撤销',
  REJECTED: '已拒绝',
  APPROVED: '待退款',
  PROCESSING: '退款中',
  SUCCESS: '退款完成',
  FAILED: '退款失败',
  CLOSED: '退款关闭',
  ABNORMAL: '退款异常',
};

export type StepState = 'done' | 'current' | 'failed' | 'todo';
export interface ProgressStep {
  label: string;
  state: StepState;
}

/**
 * The four steps a shopper sees for one refund. APPROVED still shows 退款中 as "current":
 * the merchant has agreed but WeChat has not accepted the refund yet, so money is not moving.
 */
export function refundProgress(status: RefundStatus): ProgressStep[] {
  const step = (label: string, state: StepState): ProgressStep => ({ label, state });
  switch (status) {
    case 'PENDING_REVIEW':
      return [
        step('提交申请', 'done'),
        step('商家审核', 'current'),
        step('退款中', 'todo'),
        step('退款完成', 'todo'),
      ];
    case 'REJECTED':
      return [step('提交申请', 'done'), step('商家已拒绝', 'failed')];
    case 'WITHDRAWN':
      return [step('提交申请', 'done'), step('已撤销', 'failed')];
    case 'APPROVED':
    case 'PROCESSING':
      return [
        step('提交申请', 'done'),
        step('商家审核', 'done'),
        step('退款中', 'current'),
        step('退款完成', 'todo'),
      ];
    case 'SUCCESS':
      return [
        step('提交申请', 'done'),
        step('商家审核', 'done'),
        step('退款中', 'done'),
        step('退款完成', 'done'),
      ];
    case 'FAILED':
      return [step('提交申请', 'done'), step('商家审核', 'done'), step('退款失败', 'failed')];
    case 'CLOSED':
      return [step('提交申请', 'done'), step('商家审核', 'done'), step('退款关闭', 'failed')];
    case 'ABNORMAL':
      return [step('提交申请', 'done'), step('商家审核', 'done'), step('退款异常', 'failed')];
  }
}

const CHINA_OFFSET_MS = 8 * 3600 * 1000;

/**
 * 'YYYY-MM-DD HH:mm' in China Standard Time (UTC+8, no DST), whatever the phone's zone:
 * the shop, WeChat Pay's time_end and the merchant's bills all use Beijing time.
 */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  const d = new Date(ms + CHINA_OFFSET_MS);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`;
}

/**
 * What an order is to the shopper right now, refunds and the payment window included: an
 * order being refunded no longer reads 已支付, and one whose window ran out no longer reads
 * 待支付 while reconcile has not closed it yet.
 */
export type OrderDisplay =
  | 'NOTPAY'
  | 'EXPIRED'
  | 'CANCELLED'
  | 'PAID'
  | 'REFUNDING'
  | 'PARTLY_REFUNDED'
  | 'REFUNDED'
  | 'CLOSED';

export const ORDER_DISPLAY_LABEL: Record<OrderDisplay, string> = {
  NOTPAY: '待支付',
  EXPIRED: '已过期',
  CANCELLED: '已取消',
  PAID: '已支付',
  REFUNDING: '退款中',
  PARTLY_REFUNDED: '部分退款',
  REFUNDED: '已退款',
  CLOSED: '已关闭',
};

export function orderDisplay(
  o: Pick<
    OrderView,
    'status' | 'payable' | 'expiresAtMs' | 'cancelledAtMs' | 'totalFee' | 'refundedFee' | 'refundReservedFee'
  >,
  nowMs: number,
): OrderDisplay {
  if (o.cancelledAtMs !== undefined && o.status !== 'PAID') return 'CANCELLED';
  if (o.status === 'NOTPAY') return o.payable && o.expiresAtMs > nowMs ? 'NOTPAY' : 'EXPIRED';
  if (o.status === 'CLOSED') return 'CLOSED';
  if (o.refundedFee >= o.totalFee) return 'REFUNDED';
  if (o.refundReservedFee > 0) return 'REFUNDING';
  if (o.refundedFee > 0) return 'PARTLY_REFUNDED';
  return 'PAID';
}

/** Time left to pay, as a counter: '29:59', or '1:05:09' from an hour up; '' when none is left. */
export function countdownText(expiresAtMs: number, nowMs: number): string {
  const left = Math.floor((expiresAtMs - nowMs) / 1000);
  if (!(left > 0)) return '';
  const two = (n: number) => String(n).padStart(2, '0');
  const h = Math.floor(left / 3600);
  const m = Math.floor((left % 3600) / 60);
  const s = left % 60;
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** How long something has waited, for the merchant's queue: '刚刚', '12 分钟', '3 小时', '2 天'. */
export function waitedText(sinceMs: number, nowMs: number): string {
  const minutes = Math.floor((nowMs - sinceMs) / 60_000);
  if (minutes < 1) return '刚刚';
  if (minutes < 60) return `${minutes} 分钟`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} 小时`;
  return `${Math.floor(minutes / (24 * 60))} 天`;
}

/**
 * WeChat returns a refund the way it was paid: "零钱支付的退款20分钟内到账，银行卡支付的退款3个
 * 工作日后重新查询退款状态".
 */
export const CHANGE_ARRIVAL_MS = 20 * 60_000;

export interface TimelineStep {
  label: string;
  state: StepState;
  /** When the step happened ('' when it has not). */
  at: string;
  /** One line under the step ('' when none). */
  note: string;
}

type TimelineRefund = Pick<
  RefundView,
  'status' | 'createdAtMs' | 'reviewedAtMs' | 'submittedAtMs' | 'finishedAtMs' | 'updatedAtMs'
>;

/**
 * The refund's progress with its times, 申请 → 审核 → 退款中 → 到账, read the same way by the
 * shopper and the merchant. Ended applications stop at the step that ended them.
 */
export function refundTimeline(r: TimelineRefund, nowMs: number): TimelineStep[] {
  const step = (label: string, state: StepState, atMs?: number, note = ''): TimelineStep => ({
    label,
    state,
    at: formatTime(atMs),
    note,
  });
  const applied = step('提交申请', 'done', r.createdAtMs);
  const ended = r.finishedAtMs ?? r.updatedAtMs;
  switch (r.status) {
    case 'PENDING_REVIEW':
      return [
        applied,
        step('商家审核', 'current', undefined, '等待商家处理'),
        step('退款中', 'todo'),
        step('退款到账', 'todo'),
      ];
    case 'WITHDRAWN':
      return [applied, step('已撤销', 'failed', ended, '申请已撤销，未退款')];
    case 'REJECTED':
      return [applied, step('商家已拒绝', 'failed', r.reviewedAtMs ?? ended)];
    case 'APPROVED':
      return [
        applied,
        step('商家已同意', 'done', r.reviewedAtMs),
        step('退款中', 'current', undefined, '等待微信支付受理'),
        step('退款到账', 'todo'),
      ];
    case 'PROCESSING': {
      const by = r.submittedAtMs !== undefined ? r.submittedAtMs + CHANGE_ARRIVAL_MS : undefined;
      const expected = by !== undefined && by > nowMs ? `零钱预计 ${formatTime(by).slice(11)} 前到账，` : '';
      return [
        applied,
        step('商家已同意', 'done', r.reviewedAtMs),
        step('退款中', 'current', r.submittedAtMs, '微信支付已受理'),
        step(
          '退款到账',
          'todo',
          undefined,
          `原路退回：${expected || '零钱约 20 分钟内到账，'}银行卡 1–3 个工作日`,
        ),
      ];
    }
    case 'SUCCESS':
      return [
        applied,
        step('商家已同意', 'done', r.reviewedAtMs),
        step('退款中', 'done', r.submittedAtMs),
        step('退款到账', 'done', r.finishedAtMs, '已原路退回支付账户'),
      ];
    case 'FAILED':
    case 'CLOSED':
    case 'ABNORMAL':
      return [
        applied,
        step('商家已同意', 'done', r.reviewedAtMs),
        step(REFUND_STATUS_LABEL[r.status], 'failed', r.updatedAtMs),
        step('退款到账', 'todo'),
      ];
  }
}
