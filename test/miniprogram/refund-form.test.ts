import { describe, expect, it } from 'vitest';
import { AMOUNT_RULE_MESSAGE, checkRefundForm, REASON_MAX } from '../../miniprogram/utils/refund-form';

const form = (amount: string, reason = '不想要了', contact = '') => ({ amount, reason, contact });

describe('checkRefundForm', () => {
  it('turns a valid form into the applyRefund event in integer fen', () => {
    expect(checkRefundForm('o1', form('12.34', ' 尺码不对 ', ' 138 0000 0000 '), 5000)).toEqual({
      ok: true,
      event: { orderId: 'o1', refundFee: 1234, reason: '尺码不对', contact: '138 0000 0000' },
    });
  });

  it('leaves contact out when it is blank', () => {
    const check = checkRefundForm('o1', form('1', '坏了', '   '), 100);
    expect(check).toEqual({ ok: true, event: { orderId: 'o1', refundFee: 100, reason: '坏了' } });
  });

  it('accepts exactly the refundable rest', () => {
    expect(checkRefundForm('o1', form('0.99'), 99).ok).toBe(true);
  });

  it('refuses one fen above the refundable rest and says how much is left', () => {
    expect(checkRefundForm('o1', form('1.00'), 99)).toEqual({
      ok: false,
      field: 'amount',
      message: '退款金额不能超过可退金额 ¥0.99',
    });
  });

  it.each([
    ['', '请输入退款金额'],
    ['0', '退款金额需大于 0'],
    ['0.00', '退款金额需大于 0'],
    ['-1', AMOUNT_RULE_MESSAGE],
    ['1.001', AMOUNT_RULE_MESSAGE],
    ['1.005', AMOUNT_RULE_MESSAGE],
    ['.5', AMOUNT_RULE_MESSAGE],
    ['5.', AMOUNT_RULE_MESSAGE],
  ])('refuses amount %j with %s', (amount, message) => {
    expect(checkRefundForm('o1', form(amount), 10_000)).toEqual({ ok: false, field: 'amount', message });
  });

  it('requires a reason and caps it at the refund_desc length', () => {
    expect(checkRefundForm('o1', form('1', '   '), 100)).toMatchObject({ ok: false, field: 'reason' });
    expect(checkRefundForm('o1', form('1', '字'.repeat(REASON_MAX)), 100).ok).toBe(true);
    expect(checkRefundForm('o1', form('1', '字'.repeat(REASON_MAX + 1)), 100)).toMatchObject({
      ok: false,
      field: 'reason',
    });
  });

  it('refuses everything when nothing is refundable', () => {
    expect(checkRefundForm('o1', form('0.01'), 0)).toMatchObject({ ok: false, field: 'amount' });
  });
});
