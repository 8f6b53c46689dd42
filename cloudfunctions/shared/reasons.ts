/**
 * The shop's preset refund reasons: what a shopper picks when applying (a code kept on the
 * refund for the merchant's statistics, and a label shown to both sides) and the comments a
 * merchant can pick when rejecting. Both come from configuration, read at cold start.
 */

export interface RefundReason {
  code: string;
  label: string;
}

/** The catch-all every list ends with: the shopper then says what it is in their own words. */
export const OTHER_REASON = 'OTHER';

export const DEFAULT_REFUND_REASONS =
  'NOT_WANTED:不想要了,WRONG_ITEM:拍错/多拍,QUALITY:质量问题,NOT_AS_DESCRIBED:与商品描述不符,' +
  'NOT_RECEIVED:未收到货,SLOW_DELIVERY:发货太慢,OTHER:其他';

export const DEFAULT_REJECT_REASONS =
  '商品已发货，请收货后申请退货退款,已超过售后期限,商品已使用，不支持退款,请补充凭证后重新申请';

const CODE = /^[A-Z][A-Z0-9_]{1,31}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_REASONS = 20;
const LABEL_MAX = 20;
const REJECT_MAX = 10;
const REJECT_LABEL_MAX = 40;

/** `CODE:标签,CODE:标签`; problems are pushed with the variable's name, as the rest of the config does. */
export function parseRefundReasons(text: string, problems: string[]): RefundReason[] {
  const name = 'REFUND_REASONS';
  const reasons: RefundReason[] = [];
  const entries = text.split(',').map((e) => e.trim());
  if (entries.length > MAX_REASONS) problems.push(`${name} lists more than ${MAX_REASONS} reasons`);
  for (const entry of entries) {
    const at = entry.indexOf(':');
    const code = at < 0 ? entry : entry.slice(0, at).trim();
    const label = at < 0 ? '' : entry.slice(at + 1).trim();
    if (!CODE.test(code)) {
      problems.push(`${name}: "${entry}" must be CODE:label with a code of 2-32 of A-Z, 0-9 and _`);
      continue;
    }
    if (label === '' || Array.from(label).length > LABEL_MAX || CONTROL.test(label) || label.includes(':')) {
      problems.push(`${name}: the label of ${code} must be 1 to ${LABEL_MAX} characters, without ":"`);
      continue;
    }
    if (reasons.some((r) => r.code === code)) {
      problems.push(`${name} names ${code} twice`);
      continue;
    }
    reasons.push({ code, label });
  }
  if (!reasons.some((r) => r.code === OTHER_REASON)) {
    problems.push(`${name} must include ${OTHER_REASON} (the reason a shopper writes in their own words)`);
  }
  return reasons;
}

/** Comma-separated comments a merchant can pick when rejecting. */
export function parseRejectReasons(text: string, problems: string[]): string[] {
  const name = 'REFUND_REJECT_REASONS';
  const labels = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (labels.length > REJECT_MAX) problems.push(`${name} lists more than ${REJECT_MAX} comments`);
  for (const label of labels) {
    if (Array.from(label).length > REJECT_LABEL_MAX || CONTROL.test(label)) {
      problems.push(`${name}: "${label.slice(0, 20)}…" must be at most ${REJECT_LABEL_MAX} characters`);
    }
  }
  return labels.slice(0, REJECT_MAX);
}
