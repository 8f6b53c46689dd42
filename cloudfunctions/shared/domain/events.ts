import type { WxParams } from '../wxpay/types';
import type { Deps } from './deps';
import { COLLECTIONS, type PaymentEventDoc } from './model';

// What the trade log keeps of a WeChat message: the facts, never sign/nonce/req_info.
const KEPT_FIELDS = [
  'out_trade_no',
  'transaction_id',
  'total_fee',
  'cash_fee',
  'coupon_fee',
  'coupon_count',
  'fee_type',
  'time_end',
  'trade_state',
  'trade_type',
  'bank_type',
  'openid',
  'result_code',
  'err_code',
  'err_code_des',
  'out_refund_no',
  'refund_id',
  'refund_fee',
  'settlement_refund_fee',
  'refund_status',
  'success_time',
  'refund_recv_accout',
  'refund_account',
] as const;

export function keptFields(fields: WxParams | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!fields) return out;
  for (const k of KEPT_FIELDS) if (fields[k] !== undefined) out[k] = fields[k];
  return out;
}

/**
 * Appends a transition to payment_events. The id is `<subject>:<STATUS>`, so however many
 * notifies, queries and reconcile runs race to record the same transition, one entry exists.
 * A state a refund can enter more than once (FAILED, then retried and FAILED again) passes
 * the attempt as `occurrence`, so each attempt keeps its own entry and its own reason.
 */
export async function recordEvent(
  deps: Deps,
  e: Omit<PaymentEventDoc, '_id' | 'atMs'>,
  occurrence = 1,
): Promise<void> {
  const subject = e.kind === 'order' ? e.orderId : e.refundId;
  const id = occurrence > 1 ? `${subject}:${e.to}:${occurrence}` : `${subject}:${e.to}`;
  const doc: PaymentEventDoc = { _id: id, ...e, atMs: deps.now() };
  await deps.store.insert(COLLECTIONS.events, doc);
}
