import { describe, expect, it } from 'vitest';
import type { OrderView } from '../../cloudfunctions/shared/contract';
import {
  countdownText,
  formatTime,
  orderDisplay,
  REFUND_STATUS_LABEL,
  refundProgress,
  refundTimeline,
  waitedText,
} from '../../miniprogram/utils/labels';
import { classifyPaymentReturn, payOutcome } from '../../miniprogram/utils/payment';

describe('refund labels', () => {
  it('names every refund state in Chinese', () => {
    expect(REFUND_STATUS_LABEL).toEqual({
      PENDING_REVIEW: '待审核',
      WITHDRAWN: '已撤销',
      REJECTED: '已拒绝',
      APPROVED: '待退款',
      PROCESSING: '退款中',
      SUCCESS: '退款完成',
      FAILED: '退款失败',
      CLOSED: '退款关闭',
      ABNORMAL: '退款异常',
    });
  });

  it('shows review as the current step while pending and the refund as current once approved', () => {
    expect(refundProgress('PENDING_REVIEW').map((s) => s.state)).toEqual(['done', 'current', 'todo', 'todo']);
    expect(refundProgress('APPROVED').map((s) => s.state)).toEqual(['done', 'done', 'current', 'todo']);
    expect(refundProgress('SUCCESS').every((s) => s.state === 'done')).toBe(true);
    expect(refundProgress('REJECTED').at(-1)).toEqual({ label: '商家已拒绝', state: 'failed' });
    expect(refundProgress('FAILED').at(-1)).toEqual({ label: '退款失败', state: 'failed' });
  });
});

describe('formatTime', () => {
  it('prints Beijing time whatever the machine zone', () => {
    expect(formatTime(Date.UTC(2024, 0, 31, 16, 5))).toBe('2024-02-01 00:05');
    expect(formatTime(undefined)).toBe('');
  });
});

describe('payment return', () => {
  it('classifies what wx.requestPayment reported', () => {
    expect(classifyPaymentReturn('requestPayment:ok')).toBe('ok');
    expect(classifyPaymentReturn('requestPayment:fail cancel')).toBe('cancel');
    expect(classifyPaymentReturn('requestPayment:cancel')).toBe('cancel');
    expect(classifyPaymentReturn('requestPayment:fail (detail message)')).toBe('fail');
    expect(classifyPaymentReturn(undefined)).toBe('fail');
  });

  it('lets the server order status win over the cashier', () => {
    const order = (status: OrderView['status']) => ({ status }) as OrderView;
    expect(payOutcome('fail', order('PAID'))).toBe('paid');
    expect(payOutcome('ok', order('NOTPAY'))).toBe('pending');
    expect(payOutcome('cancel', order('NOTPAY'))).toBe('cancelled');
    expect(payOutcome('fail', order('NOTPAY'))).toBe('failed');
    expect(payOutcome('ok', null)).toBe('unknown');
  });
});

describe('order display', () => {
  const NOW = Date.UTC(2026, 0, 1, 4, 0);
  const base = {
    status: 'PAID' as const,
    payable: false,
    expiresAtMs: NOW + 60_000,
    totalFee: 1000,
    refundedFee: 0,
    refundReservedFee: 0,
  };
  it('says what the shopper cares about: paying, refunding, refunded', () => {
    expect(orderDisplay({ ...base, status: 'NOTPAY', payable: true }, NOW)).toBe('NOTPAY');
    expect(orderDisplay({ ...base, status: 'NOTPAY', payable: true }, NOW + 60_000)).toBe('EXPIRED');
    expect(orderDisplay({ ...base, status: 'NOTPAY', payable: false, cancelledAtMs: NOW }, NOW)).toBe(
      'CANCELLED',
    );
    expect(orderDisplay({ ...base, status: 'CLOSED', cancelledAtMs: NOW }, NOW)).toBe('CANCELLED');
    expect(orderDisplay({ ...base, status: 'CLOSED' }, NOW)).toBe('CLOSED');
    expect(orderDisplay(base, NOW)).toBe('PAID');
    expect(orderDisplay({ ...base, refundReservedFee: 1 }, NOW)).toBe('REFUNDING');
    expect(orderDisplay({ ...base, refundedFee: 1, refundReservedFee: 1 }, NOW)).toBe('REFUNDING');
    expect(orderDisplay({ ...base, refundedFee: 1 }, NOW)).toBe('PARTLY_REFUNDED');
    expect(orderDisplay({ ...base, refundedFee: 1000 }, NOW)).toBe('REFUNDED');
    // Money that arrived after a cancel is a paid order.
    expect(orderDisplay({ ...base, cancelledAtMs: NOW }, NOW)).toBe('PAID');
  });

  it('counts down in minutes and seconds, hours from an hour up, and stops at zero', () => {
    expect(countdownText(NOW + 29 * 60_000 + 59_999, NOW)).toBe('29:59');
    expect(countdownText(NOW + 3_909_000, NOW)).toBe('1:05:09');
    expect(countdownText(NOW + 999, NOW)).toBe('');
    expect(countdownText(NOW - 5_000, NOW)).toBe('');
  });

  it('says how long a refund has waited', () => {
    expect(waitedText(NOW - 30_000, NOW)).toBe('刚刚');
    expect(waitedText(NOW - 12 * 60_000, NOW)).toBe('12 分钟');
    expect(waitedText(NOW - 3 * 3_600_000, NOW)).toBe('3 小时');
    expect(waitedText(NOW - 3 * 86_400_000, NOW)).toBe('3 天');
  });
});

describe('refund timeline', () => {
  const t = (m: number) => Date.UTC(2025, 4, 1, 3, m); // 11:mm Beijing
  const r = {
    createdAtMs: t(0),
    updatedAtMs: t(30),
    reviewedAtMs: t(5),
    submittedAtMs: t(6),
    finishedAtMs: t(20),
  };
  it('gives each step its time, 申请 → 审核 → 退款中 → 到账', () => {
    const steps = refundTimeline({ ...r, status: 'SUCCESS' }, t(40));
    expect(steps.map((s) => [s.label, s.state, s.at])).toEqual([
      ['提交申请', 'done', '2025-05-01 11:00'],
      ['商家已同意', 'done', '2025-05-01 11:05'],
      ['退款中', 'done', '2025-05-01 11:06'],
      ['退款到账', 'done', '2025-05-01 11:20'],
    ]);
    expect(steps[3]?.note).toBe('已原路退回支付账户');
  });

  it('says when the money is expected while WeChat processes it', () => {
    const steps = refundTimeline({ ...r, status: 'PROCESSING', finishedAtMs: undefined }, t(10));
    expect(steps.map((s) => s.state)).toEqual(['done', 'done', 'current', 'todo']);
    expect(steps[3]?.note).toBe('原路退回：零钱预计 11:26 前到账，银行卡 1–3 个工作日');
    const later = refundTimeline({ ...r, status: 'PROCESSING', finishedAtMs: undefined }, t(50));
    expect(later[3]?.note).toBe('原路退回：零钱约 20 分钟内到账，银行卡 1–3 个工作日');
  });

  it('stops at the step that ended an application', () => {
    expect(refundTimeline({ ...r, status: 'WITHDRAWN' }, t(40)).map((s) => [s.label, s.state, s.at])).toEqual(
      [
        ['提交申请', 'done', '2025-05-01 11:00'],
        ['已撤销', 'failed', '2025-05-01 11:20'],
      ],
    );
    expect(refundTimeline({ ...r, status: 'REJECTED' }, t(40)).at(-1)).toMatchObject({
      label: '商家已拒绝',
      state: 'failed',
      at: '2025-05-01 11:05',
    });
    expect(refundTimeline({ ...r, status: 'PENDING_REVIEW' }, t(40)).map((s) => s.state)).toEqual([
      'done',
      'current',
      'todo',
      'todo',
    ]);
  });
});
