/**
 * The timer job that makes the books agree with WeChat when a notify never came, a call
 * timed out or a function died mid-way (docs/ARCHITECTURE.md §1). Every step is a CAS or holds a lease,
 * so two runs at once do no harm; batches and a time budget keep one run inside the timeout.
 */
import type { WxParams } from '../wxpay/types';
import { type Deps, requireWxpay, wxFailure } from './deps';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';
import { confirmWithQuery, expireOrder } from './orders';
import { claimSubmitLease, finalizeRefund, releaseStrandedReservations, submitRefund } from './refunds';

/** Longer than any applyRefund call (its function times out in seconds). */
export const STRANDED_MIN_AGE_MS = 10 * 60_000;
/** Each order is looked at for a day after its last change, then no more. */
export const STRANDED_MAX_AGE_MS = 24 * 3600_000;

export interface ReconcileOptions {
  batch?: number;
  budgetMs?: number;
  /** Give the notify this long before asking orderquery. */
  notifyGraceMs?: number;
  /** Ask refundquery about a PROCESSING refund this long after it was accepted. */
  refundQueryDelayMs?: number;
}

export interface ReconcileReport {
  ordersChecked: number;
  ordersPaid: number;
  ordersClosed: number;
  refundsSubmitted: number;
  refundsFinalized: number;
  reservationsReleased: number;
  errors: number;
  outOfTime: boolean;
  dbRequests: number;
}

/** refundquery answers per-refund fields with a `_$n` suffix; pick ours out. */
export function refundInfoFromQuery(res: WxParams, refundId: string): WxParams | undefined {
  const count = Number(res['refund_count'] ?? '0');
  for (let n = 0; n < Math.min(count, 50); n++) {
    if (res[`out_refund_no_${n}`] !== refundId) continue;
    const info: WxParams = {
      out_refund_no: refundId,
      out_trade_no: res['out_trade_no'] ?? '',
      refund_fee: res[`refund_fee_${n}`] ?? '',
      refund_status: res[`refund_status_${n}`] ?? '',
    };
    if (res['total_fee'] !== undefined) info['total_fee'] = res['total_fee'];
    const id = res[`refund_id_${n}`];
    if (id) info['refund_id'] = id;
    const at = res[`refund_success_time_${n}`];
    if (at) info['success_time'] = at;
    return info;
  }
  return undefined;
}

export async function reconcile(deps: Deps, options: ReconcileOptions = {}): Promise<ReconcileReport> {
  const batch = options.batch ?? 50;
  const budgetMs = options.budgetMs ?? 20_000;
  const start = deps.now();
  const report: ReconcileReport = {
    ordersChecked: 0,
    ordersPaid: 0,
    ordersClosed: 0,
    refundsSubmitted: 0,
    refundsFinalized: 0,
    reservationsReleased: 0,
    errors: 0,
    outOfTime: false,
    dbRequests: 0,
  };
  const { store } = deps;
  const _ = store.cmd;
  const wxpay = requireWxpay(deps);
  const inTime = () => {
    if (deps.now() - start < budgetMs) return true;
    report.outOfTime = true;
    return false;
  };
  const guarded = async (what: string, id: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (e) {
      report.errors++;
      deps.log('warn', 'reconcile.step_failed', {
        what,
        id,
        code: wxFailure(e)?.errCode ?? (e as { code?: string })?.code,
        error: e,
      });
    }
  };

  const now = deps.now();
  const orders = await store.find<OrderDoc>(
    COLLECTIONS.orders,
    { status: 'NOTPAY', createdAtMs: _.lt(now - (options.notifyGraceMs ?? 60_000)) },
    { orderBy: [['createdAtMs', 'asc']], limit: batch },
  );
  for (const order of orders) {
    if (!inTime()) break;
    report.ordersChecked++;
    await guarded('order', order._id, async () => {
      const after = await confirmWithQuery(deps, order);
      if (after.status === 'PAID') report.ordersPaid++;
      else if (after.status === 'CLOSED') report.ordersClosed++;
      else if (deps.now() >= order.expiresAtMs) {
        const r = await expireOrder(deps, after);
        if (r === 'CLOSED') report.ordersClosed++;
        if (r === 'PAID') report.ordersPaid++;
      }
    });
  }

  const approved = await store.find<RefundDoc>(
    COLLECTIONS.refunds,
    { status: 'APPROVED', leaseUntilMs: _.lt(deps.now()) },
    { orderBy: [['updatedAtMs', 'asc']], limit: batch },
  );
  for (const refund of approved) {
    if (!inTime()) break;
    await guarded('refund_submit', refund._id, async () => {
      const claimed = await claimSubmitLease(deps, refund);
      if (!claimed) return;
      const after = await submitRefund(deps, claimed);
      if (after.status !== 'APPROVED') report.refundsSubmitted++;
    });
  }

  const processing = await store.find<RefundDoc>(
    COLLECTIONS.refunds,
    { status: 'PROCESSING', updatedAtMs: _.lt(deps.now() - (options.refundQueryDelayMs ?? 60_000)) },
    { orderBy: [['updatedAtMs', 'asc']], limit: batch },
  );
  for (const refund of processing) {
    if (!inTime()) break;
    await guarded('refund_query', refund._id, async () => {
      const res = await wxpay.refundQuery({ out_refund_no: refund._id });
      const info = refundInfoFromQuery(res, refund._id);
      if (!info) return;
      const outcome = await finalizeRefund(deps, refund, info, 'refundquery');
      if (outcome === 'SUCCESS' || outcome === 'FAILED') report.refundsFinalized++;
    });
  }
  const reserved = await store.find<OrderDoc>(
    COLLECTIONS.orders,
    {
      status: 'PAID',
      refundReservedFee: _.gt(0),
      updatedAtMs: _.lt(deps.now() - STRANDED_MIN_AGE_MS).and(_.gt(deps.now() - STRANDED_MAX_AGE_MS)),
    },
    { orderBy: [['updatedAtMs', 'asc']], limit: batch },
  );
  for (const order of reserved) {
    if (!inTime()) break;
    await guarded('stranded_reservation', order._id, async () => {
      report.reservationsReleased += await releaseStrandedReservations(deps, order);
    });
  }

  report.dbRequests = store.requests;
  deps.log('info', 'reconcile.done', { ...report, ms: deps.now() - start });
  return report;
}
