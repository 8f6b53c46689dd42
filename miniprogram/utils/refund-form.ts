import type { ApplyRefundEvent } from '../../cloudfunctions/shared/contract';
import { fenToYuan, parseYuanToFen } from './money';

/** WeChat Pay APIv2 refund_desc is at most 80 characters; the reason is sent as refund_desc. */
export const REASON_MAX = 80;
export const CONTACT_MAX = 50;

export interface RefundFormInput {
  amount: string;
  reason: string;
  contact: string;
}

export type RefundFormCheck =
  | { ok: true; event: Omit<ApplyRefundEvent, 'requestId'> }
  | { ok: false; field: keyof RefundFormInput; message: string };

/**
 * Everything the server would refuse, checked before a call is sent. The server checks
 * again against the order as stored (DESIGN.md §4); refundableFee here may be stale.
 */
export function checkRefundForm(
  orderId: string,
  input: RefundFormInput,
  refundableFee: number,
): RefundFormCheck {
  const parsed = parseYuanToFen(input.amount);
  if (!parsed.ok) {
    const message =
      parsed.reason === 'empty'
        ? '请输入退款金额'
        : parsed.reason === 'decimals'
          ? '金额最多两位小数'
          : parsed.reason === 'too_large'
            ? `退款金额不能超过可退金额 ¥${fenToYuan(refundableFee)}`
            : '请输入正确的金额，如 12.50';
    return { ok: false, field: 'amount', message };
  }
  if (parsed.fen <= 0) return { ok: false, field: 'amount', message: '退款金额需大于 0' };
  if (parsed.fen > refundableFee) {
    return { ok: false, field: 'amount', message: `退款金额不能超过可退金额 ¥${fenToYuan(refundableFee)}` };
  }
  const reason = input.reason.trim();
  if (reason === '') return { ok: false, field: 'reason', message: '请填写退款原因' };
  if (reason.length > REASON_MAX)
    return { ok: false, field: 'reason', message: `退款原因最多 ${REASON_MAX} 字` };
  const contact = input.contact.trim();
  if (contact.length > CONTACT_MAX)
    return { ok: false, field: 'contact', message: `联系方式最多 ${CONTACT_MAX} 字` };
  const event: Omit<ApplyRefundEvent, 'requestId'> = { orderId, refundFee: parsed.fen, reason };
  if (contact !== '') event.contact = contact;
  return { ok: true, event };
}
