import type { OrderStatus, RefundStatus } from '../../cloudfunctions/shared/contract';

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
