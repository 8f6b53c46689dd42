import type { WxParams } from '../wxpay/types';
import type { Deps } from './deps';
import { COLLECTIONS, type PaymentEventDoc } from './model';

// What the trade log keeps of a WeChat message: the facts, never sign/nonce/req_info.
const KEPT_FIELDS = [
  'out_trade_no',
  'transaction_id',
  'total_fee',
  'cash_fee',
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
 */
export async function recordEvent(deps: Deps, e: Omit<PaymentEventDoc, '_id' | 'atMs'>): Promise<void> {
  const subject = e.kind === 'order' ? e.orderId : e.refundId;
  const doc: PaymentEventDoc = { _id: `${subject}:${e.to}`, ...e, atMs: deps.now() };
  await deps.store.insert(COLLECTIONS.events, doc);
}
