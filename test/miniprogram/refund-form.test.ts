import { describe, expect, it } from 'vitest';
import type { RefundReasonOption } from '../../cloudfunctions/shared/contract';
import { AMOUNT_RULE_MESSAGE, checkRefundForm, REASON_MAX } from '../../miniprogram/utils/refund-form';

const REASONS: RefundReasonOption[] = [
  { code: 'NOT_WANTED', label: '不想要了', noteRequired: false },
  { code: 'OTHER', label: '其他', noteRequired: true },
];
const form = (amount: string, reasonCode = 'NOT_WANTED', reason = '', contact = '') => ({
  amount,
  reasonCode,
  reason,
  contact,
});
const check = (f: ReturnType<typeof form>, refundable: number) =>
  checkRefundForm('o1', f, refundable, REASONS);

describe('checkRefundForm', () => {
  it('turns a valid form into the applyRefund event in integer fen, with the preset code', () => {
    expect(check(form('12.34', 'NOT_WANTED', ' 尺码不对 ', ' 138 0000 0000 '), 5000)).toEqual({
      ok: true,
      event: {
        orderId: 'o1',
        refundFee: 1234,
        reasonCode: 'NOT_WANTED',
        reason: '尺码不对',
        contact: '138 0000 0000',
      },
    });
  });

  it('leaves the note and contact out when they are blank', () => {
    expect(check(form('1', 'NOT_WANTED', '  ', '   '), 100)).toEqual({
      ok: true,
      event: { orderId: 'o1', refundFee: 100, reasonCode: 'NOT_WANTED' },
    });
  });

  it('accepts exactly the refundable rest', () => {
    expect(check(form('0.99'), 99).ok).toBe(true);
  });

  it('refuses one fen above the refundable rest and says how much is left', () => {
    expect(check(form('1.00'), 99)).toEqual({
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
    expect(check(form(amount), 10_000)).toEqual({ ok: false, field: 'amount', message });
  });

  it('needs a reason from the list, and words of its own for 其他', () => {
    expect(check(form('1', ''), 100)).toEqual({ ok: false, field: 'reasonCode', message: '请选择退款原因' });
    expect(check(form('1', 'NOT_A_PRESET'), 100)).toMatchObject({ ok: false, field: 'reasonCode' });
    expect(check(form('1', 'OTHER', '   '), 100)).toEqual({
      ok: false,
      field: 'reason',
      message: '请说明退款原因',
    });
    expect(check(form('1', 'OTHER', '拍错了'), 100)).toMatchObject({
      ok: true,
      event: { reasonCode: 'OTHER', reason: '拍错了' },
    });
  });

  it('caps the note at the refund_desc length', () => {
    expect(check(form('1', 'OTHER', '字'.repeat(REASON_MAX)), 100).ok).toBe(true);
    expect(check(form('1', 'OTHER', '字'.repeat(REASON_MAX + 1)), 100)).toMatchObject({
      ok: false,
      field: 'reason',
    });
  });

  it('refuses everything when nothing is refundable', () => {
    expect(check(form('0.01'), 0)).toMatchObject({ ok: false, field: 'amount' });
  });
});
