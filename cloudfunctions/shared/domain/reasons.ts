/**
 * Refund reasons in the domain: reading an application's reason against the shop's presets,
 * and the list the mini-program shows (refundReasons).
 */
import type { RefundReasonsResult } from '../contract';
import { OTHER_REASON } from '../reasons';
import type { Caller } from '../runtime/callable';
import type { Deps } from './deps';
import { invalid, onlyFields, optionalString, requireOpenid } from './validate';

/** WeChat's refund_desc holds 80 characters; the note is cut to fit after the label. */
const NOTE_MAX = 200;

/**
 * The application's reason: a preset code (kept for the merchant's statistics) and the text
 * the merchant reads, the label followed by the shopper's note. No code means OTHER, whose
 * note is required, so a client that only sends free text keeps working.
 */
export function applicationReason(
  deps: Deps,
  event: Record<string, unknown>,
): { reasonCode: string; reason: string } {
  const code = optionalString(event, 'reasonCode', { max: 32 }) ?? OTHER_REASON;
  const preset = deps.config.refunds.reasons.find((r) => r.code === code);
  if (!preset) {
    throw invalid(`reasonCode must be one of ${deps.config.refunds.reasons.map((r) => r.code).join(', ')}`);
  }
  const note = optionalString(event, 'reason', { max: NOTE_MAX });
  if (code === OTHER_REASON) {
    if (!note) throw invalid('reason is required: say why in a few words');
    return { reasonCode: code, reason: note };
  }
  return { reasonCode: code, reason: note ? `${preset.label}：${note}` : preset.label };
}

export async function refundReasons(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<RefundReasonsResult> {
  const openid = requireOpenid(caller);
  onlyFields(event, []);
  const { reasons, rejectReasons } = deps.config.refunds;
  return {
    apply: reasons.map((r) => ({ code: r.code, label: r.label, noteRequired: r.code === OTHER_REASON })),
    reject: deps.config.adminOpenids.has(openid) ? [...rejectReasons] : [],
  };
}
