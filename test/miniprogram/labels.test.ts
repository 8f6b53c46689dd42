import { describe, expect, it } from 'vitest';
import type { OrderView } from '../../cloudfunctions/shared/contract';
import { formatTime, REFUND_STATUS_LABEL, refundProgress } from '../../miniprogram/utils/labels';
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
