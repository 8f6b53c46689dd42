/**
 * WeChat's word on a refund, from the refund notify or refundquery, applied to our books.
 * WeChat's word wins: a verified SUCCESS (or CHANGE, money that left the merchant) is booked
 * whatever state we had the refund in, and flagged for the merchant when we had already
 * ended it. Money moves before the status: the event goes first (deterministic id), then the
 * order's refund book settles (once), then the refund's CAS; a crash at any point is finished
 * by WeChat's next notify or the next reconcile, and nothing is counted twice.
 */
import type { RefundStatus } from '../contract';
import { tellRefund } from '../notices/transitions';
import type { ProviderName, ProviderRefundStatus, TradeRecord } from '../providers/port';
import type { Deps } from './deps';
import { recordEvent } from './events';
import type { RefundDoc } from './model';
import { settle } from './refund-book';
import { getRefund, stepRefund } from './refund-steps';
import { gapMs, REFUND_QUERY_GAPS_MS } from './schedule';

export type WeChatRefundOutcome =
  | 'SUCCESS'
  | 'ABNORMAL'
  | 'CLOSED'
  | 'PROCESSING'
  /** Our books already say what WeChat says. */
  | 'ALREADY'
  /** Not final yet, or a status this code does not know: nothing is guessed from it. */
  | 'STILL_PROCESSING'
  /** The message is not about this refund (order, amount): refused. */
  | 'MISMATCH'
  /** Contradicts a final state of ours that cannot change (logged for a person). */
  | 'IGNORED';

/**
 * WeChat's word on a refund, normalized by its order's provider (a refund notify, or a
 * refundquery answer): the same shape from APIv2, APIv3 and cloudPay.
 */
export interface RefundFacts {
  status: ProviderRefundStatus;
  outTradeNo: string;
  refundFen: number;
  /** The order's total, when WeChat says it. */
  totalFen?: number;
  refundId: string;
  /** The verified facts, for payment_events. */
  record: TradeRecord;
}

/** States in which we had let the refund go: money WeChat moved anyway is flagged. */
const ENDED: readonly RefundStatus[] = ['PENDING_REVIEW', 'REJECTED', 'WITHDRAWN', 'FAILED', 'CLOSED'];

/** The merchant's reasons, in the words of the refund's own provider (APIv2: REFUNDCLOSE, CHANGE). */
function reasons(provider: ProviderName | undefined) {
  const v3 = provider === 'v3';
  return {
    CLOSED: `${v3 ? 'CLOSED' : 'REFUNDCLOSE'}: 退款关闭，没有资金退回；可重新发起（新的退款单号）`,
    ABNORMAL: `${v3 ? 'ABNORMAL' : 'CHANGE'}: 退款异常，资金已从商户退出但未能到达用户账户，需到商户平台 交易中心 手动处理`,
  } as const;
}

export async function applyWeChatRefund(
  deps: Deps,
  refund: RefundDoc,
  info: RefundFacts,
  source: 'refundnotify' | 'refundquery',
): Promise<WeChatRefundOutcome> {
  const target: RefundStatus = info.status;
  // WeChat sends no PROCESSING notify; a notify that says so changes nothing.
  if (target === 'PROCESSING' && source === 'refundnotify') return 'STILL_PROCESSING';
  if (
    info.outTradeNo !== refund.orderId ||
    info.refundFen !== refund.refundFee ||
    (info.totalFen !== undefined && info.totalFen !== refund.totalFee)
  ) {
    deps.log('error', 'refund.mismatch', { refundId: refund._id, source, got: info.record });
    return 'MISMATCH';
  }
  let current: RefundDoc | null = refund;
  // Another writer may move the refund between our read and our CAS (a notify racing a
  // query or an admin): apply to the state it is really in, a few times at most.
  for (let attempt = 0; attempt < 4 && current; attempt++) {
    const out = await applyTo(deps, current, target, info, source);
    if (out !== 'RETRY') return out;
    current = await getRefund(deps, refund._id);
  }
  throw new Error(`refund ${refund._id} kept changing while applying WeChat's ${info.status}`);
}

async function applyTo(
  deps: Deps,
  r: RefundDoc,
  target: RefundStatus,
  info: RefundFacts,
  source: 'refundnotify' | 'refundquery',
): Promise<WeChatRefundOutcome | 'RETRY'> {
  if (r.status === target) return 'ALREADY';
  const fields = info.record;
  const REASON = reasons(r.provider);
  const log = (level: 'info' | 'warn' | 'error', event: string, extra = {}) =>
    deps.log(level, event, {
      refundId: r._id,
      orderId: r.orderId,
      from: r.status,
      to: target,
      source,
      dbRequests: deps.store.requests,
      ...extra,
    });
  const wxRefundId = info.refundId || r.wxRefundId || '';

  if (target === 'SUCCESS' || target === 'ABNORMAL') {
    // (ABNORMAL for an ABNORMAL refund, like SUCCESS for a SUCCESS one, was ALREADY above.)
    if (r.status === 'SUCCESS') {
      log('error', 'refund.contradicts_final', { wxStatus: info.status });
      return 'IGNORED';
    }
    let flagged = ENDED.includes(r.status);
    await recordEvent(deps, {
      kind: 'refund',
      orderId: r.orderId,
      refundId: r._id,
      from: r.status,
      to: target,
      source,
      fields,
    });
    // ABNORMAL already counted the money as gone; SUCCESS after it moves nothing.
    if (r.status !== 'ABNORMAL') {
      const booked = await settle(deps, r.orderId, r._id, r.refundFee);
      if (booked === 'late') flagged = true;
    }
    const now = deps.now();
    const set: Partial<RefundDoc> = { wxRefundId, leaseUntilMs: 0 };
    if (flagged) {
      set.flag = 'SUCCESS_AFTER_FINAL';
      set.flaggedFrom = r.status;
    }
    if (target === 'SUCCESS') set.finishedAtMs = now;
    else {
      set.failReason = REASON.ABNORMAL;
      // The merchant settles it by hand; WeChat's status may turn SUCCESS then, so look daily.
      set.nextCheckAtMs = now + gapMs(REFUND_QUERY_GAPS_MS, Number.MAX_SAFE_INTEGER, deps.config.timeScale);
    }
    const moved = await stepRefund(
      deps,
      r,
      r.status,
      { to: target, source, ...(target === 'ABNORMAL' ? { reason: REASON.ABNORMAL } : {}) },
      set,
      { unset: target === 'SUCCESS' ? ['failReason', 'nextCheckAtMs'] : [] },
    );
    if (!moved) return 'RETRY';
    log(flagged ? 'warn' : 'info', target === 'SUCCESS' ? 'refund.success' : 'refund.abnormal', {
      ...(flagged ? { flag: 'SUCCESS_AFTER_FINAL' } : {}),
    });
    await tellRefund(deps, moved, 'wechat', { from: r.status });
    return target;
  }

  if (target === 'CLOSED') {
    if (r.status === 'SUCCESS' || r.status === 'ABNORMAL') {
      log('error', 'refund.contradicts_final', { wxStatus: info.status });
      return 'IGNORED';
    }
    // Already let go of (its reservation released): a closed refund moved no money.
    if (r.status === 'REJECTED' || r.status === 'WITHDRAWN') return 'ALREADY';
    const moved = await stepRefund(
      deps,
      r,
      r.status,
      { to: 'CLOSED', source, reason: REASON.CLOSED },
      { failReason: REASON.CLOSED, leaseUntilMs: 0, wxRefundId },
      { unset: ['nextCheckAtMs'] },
    );
    if (!moved) return 'RETRY';
    await recordEvent(deps, {
      kind: 'refund',
      orderId: r.orderId,
      refundId: r._id,
      from: r.status,
      to: 'CLOSED',
      source,
      fields,
    });
    log('warn', 'refund.closed');
    await tellRefund(deps, moved, 'wechat', { from: r.status });
    return 'CLOSED';
  }

  // PROCESSING, from refundquery: WeChat has accepted a refund we had not seen accepted.
  // (PROCESSING for a PROCESSING refund was ALREADY above.)
  if (r.status !== 'APPROVED' && r.status !== 'FAILED') {
    log('error', 'refund.processing_after_final');
    return 'IGNORED';
  }
  const now = deps.now();
  const moved = await stepRefund(
    deps,
    r,
    r.status,
    { to: 'PROCESSING', source },
    {
      wxRefundId,
      submittedAtMs: r.submittedAtMs ?? now,
      leaseUntilMs: 0,
      outcomeUnknown: false,
      checkCount: 0,
      nextCheckAtMs: now + deps.config.reconcile.refundQueryDelayMs,
    },
    { unset: ['failReason'] },
  );
  if (!moved) return 'RETRY';
  await recordEvent(deps, {
    kind: 'refund',
    orderId: r.orderId,
    refundId: r._id,
    from: r.status,
    to: 'PROCESSING',
    source,
    fields,
  });
  log('info', 'refund.processing');
  return 'PROCESSING';
}
