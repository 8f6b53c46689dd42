import type { ApplyRefundEvent, RefundReasonOption } from '../../cloudfunctions/shared/contract';
import { fenToYuan, parseYuanToFen } from './money';

/** WeChat Pay APIv2 refund_desc is at most 80 characters; the reason is sent as refund_desc. */
export const REASON_MAX = 80;
export const CONTACT_MAX = 50;

export interface RefundFormInput {
  amount: string;
  /** The picked preset ('' while none is picked). */
  reasonCode: string;
  /** The shopper's note: optional, required with a preset that asks for one (其他). */
  reason: string;
  contact: string;
}

/** The application as the form checked it; the page adds the submission's requestId. */
export type RefundFormEvent = Omit<ApplyRefundEvent, 'requestId'>;

export type RefundFormCheck =
  | { ok: true; event: RefundFormEvent }
  | { ok: false; field: keyof RefundFormInput; message: string };

/** The amount rule, said the same way wherever an amount is refused for its form. */
export const AMOUNT_RULE_MESSAGE = '金额为数字，最多两位小数，如 12 或 12.50';

/**
 * Everything the server would refuse, checked before a call is sent, each refusal saying
 * the rule it enforces. The server checks again against the order as stored; refundableFee
 * here may be stale. The mini-program and the sandbox console both use this one check.
 */
export function checkRefundForm(
  orderId: string,
  input: RefundFormInput,
  refundableFee: number,
  reasons: readonly RefundReasonOption[],
): RefundFormCheck {
  const parsed = parseYuanToFen(input.amount);
  if (!parsed.ok) {
    const message =
      parsed.reason === 'empty'
        ? '请输入退款金额'
        : parsed.reason === 'too_large'
          ? `退款金额不能超过可退金额 ¥${fenToYuan(refundableFee)}`
          : AMOUNT_RULE_MESSAGE;
    return { ok: false, field: 'amount', message };
  }
  if (parsed.fen <= 0) return { ok: false, field: 'amount', message: '退款金额需大于 0' };
  if (parsed.fen > refundableFee) {
    return { ok: false, field: 'amount', message: `退款金额不能超过可退金额 ¥${fenToYuan(refundableFee)}` };
  }
  const preset = reasons.find((r) => r.code === input.reasonCode);
  if (!preset) return { ok: false, field: 'reasonCode', message: '请选择退款原因' };
  const reason = input.reason.trim();
  if (preset.noteRequired && reason === '') return { ok: false, field: 'reason', message: '请说明退款原因' };
  if (reason.length > REASON_MAX)
    return { ok: false, field: 'reason', message: `退款说明最多 ${REASON_MAX} 字` };
  const contact = input.contact.trim();
  if (contact.length > CONTACT_MAX)
    return { ok: false, field: 'contact', message: `联系方式最多 ${CONTACT_MAX} 字` };
  const event: RefundFormEvent = { orderId, refundFee: parsed.fen, reasonCode: preset.code };
  if (reason !== '') event.reason = reason;
  if (contact !== '') event.contact = contact;
  return { ok: true, event };
}
