/**
 * A refund WeChat made that this shop never asked for: the merchant refunded by hand on the
 * merchant platform (商户平台 → 交易中心 → 退款), so no refund document exists here and no
 * notify came. The bill check finds it in WeChat's bill and confirms it with refundquery;
 * here it is recorded on its order, counted in refundedFee (and refundUsedFee, so the shop
 * never refunds the same money again), and listed in `externalRefunds` for the merchant.
 */
import type { ExternalRefundView } from '../contract';
import { AppError } from '../errors';
import type { TradeRecord } from '../providers/port';
import type { Deps } from './deps';
import { recordEvent } from './events';
import { COLLECTIONS, type OrderDoc, type RefundBookEntry } from './model';

export interface ExternalRefundInput {
  /** out_refund_no, as WeChat reports it. */
  refundId: string;
  orderId: string;
  refundFee: number;
  status: 'SUCCESS' | 'CHANGE';
  billDate: string;
  /** refundquery's verified facts behind it, for the trade log. */
  fields: TradeRecord;
}

export type ExternalRefundOutcome = 'RECORDED' | 'ALREADY' | 'ORDER_MISSING' | 'ORDER_NOT_PAID';

/** The order's refund-book entry that makes the recording happen once, however often the check runs. */
const entryOf = (refundId: string) => `refundBook.${refundId}`;

/**
 * Records the external refund exactly once, as a settled entry of the order's refund book:
 *
 *   check A ─ event(R:SUCCESS) ─ CAS {PAID, refundBook.R absent} ✔ (+fee, entry settled, external)
 *   check B ─ event duplicate  ─ CAS {PAID, refundBook.R absent} ✘ ─ re-read: entry → ALREADY
 *
 * The event goes first under its deterministic id, as every money transition does, so a
 * crash between the two writes is finished by the next run and never counted twice.
 * Nothing limits the amount: WeChat already moved the money, and the books must say so even
 * when a pending refund here had reserved the same amount (WeChat will refuse that one).
 */
export async function recordExternalRefund(
  deps: Deps,
  r: ExternalRefundInput,
): Promise<ExternalRefundOutcome> {
  const { store } = deps;
  const _ = store.cmd;
  const order = await store.get<OrderDoc>(COLLECTIONS.orders, r.orderId);
  if (!order) return 'ORDER_MISSING';
  if (order.refundBook?.[r.refundId]) return 'ALREADY';
  if (order.status !== 'PAID') return 'ORDER_NOT_PAID';
  await recordEvent(deps, {
    kind: 'refund',
    orderId: r.orderId,
    refundId: r.refundId,
    from: 'EXTERNAL',
    to: r.status === 'SUCCESS' ? 'SUCCESS' : 'ABNORMAL',
    source: 'refundquery',
    fields: r.fields,
  });
  const now = deps.now();
  const entry: ExternalRefundView = {
    refundId: r.refundId,
    refundFee: r.refundFee,
    status: r.status,
    billDate: r.billDate,
    recordedAtMs: now,
  };
  const settled: RefundBookEntry = { fee: r.refundFee, state: 'settled', atMs: now, external: true };
  const won = await store.cas(
    COLLECTIONS.orders,
    { _id: r.orderId, status: 'PAID', [entryOf(r.refundId)]: _.exists(false) },
    {
      refundedFee: _.inc(r.refundFee),
      refundUsedFee: _.inc(r.refundFee),
      // It is a refund at WeChat, so it counts toward WeChat's 50 per order.
      refundCount: _.inc(1),
      [entryOf(r.refundId)]: settled,
      // An array, so the SDK never reads the entry as push modifiers (each/slice/sort).
      externalRefunds: _.push([entry]),
      updatedAtMs: now,
    },
  );
  if (won) {
    deps.log('warn', 'order.external_refund', {
      orderId: r.orderId,
      refundId: r.refundId,
      refundFee: r.refundFee,
      wxStatus: r.status,
      billDate: r.billDate,
      dbRequests: store.requests,
    });
    return 'RECORDED';
  }
  const latest = await store.get<OrderDoc>(COLLECTIONS.orders, r.orderId);
  if (latest?.refundBook?.[r.refundId]) return 'ALREADY';
  throw new AppError('CONFLICT', `order ${r.orderId} changed while recording external refund ${r.refundId}`);
}
