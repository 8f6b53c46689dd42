/**
 * The shopper withdraws (撤销) an application the merchant has not reviewed yet.
 *
 *   withdraw ─ CAS PENDING_REVIEW → WITHDRAWN (+ history, follow-up check) ─ release ─ event
 *   approve  ─ CAS PENDING_REVIEW → APPROVED  (claimSubmitLease)            ─ refund call
 *
 * Both start from PENDING_REVIEW, so of a withdrawal and a review of one refund exactly one
 * wins: a withdrawn refund is never sent to WeChat, and an approved one can no longer be
 * withdrawn (its money may already be moving). The release is the same one a rejection
 * makes (refund-book.ts), and reconcile finishes it if this call dies before it.
 */
import type { WithdrawRefundResult } from '../contract';
import { AppError } from '../errors';
import type { Caller } from '../runtime/callable';
import type { Deps } from './deps';
import { recordEvent } from './events';
import { type RefundDoc, refundView } from './model';
import { requireOwnApp } from './orders';
import { getRefund, stepRefund } from './refund-steps';
import { releaseEnded } from './refunds';
import { FOLLOW_UP_MS } from './schedule';
import { ID_PATTERN, onlyFields, requiredString, requireOpenid } from './validate';

/** The caller's own refund: NOT_FOUND when missing, FORBIDDEN when it is someone else's. */
export async function ownRefund(deps: Deps, refundId: string, openid: string): Promise<RefundDoc> {
  const refund = await getRefund(deps, refundId);
  if (!refund) throw new AppError('NOT_FOUND', 'refund not found');
  if (refund.openid !== openid) throw new AppError('FORBIDDEN', 'this refund belongs to someone else');
  return refund;
}

function notWithdrawable(refund: RefundDoc): AppError {
  return new AppError(
    'INVALID_STATE',
    `only an application waiting for review can be withdrawn; this one is ${refund.status}`,
  );
}

export async function withdrawRefund(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<WithdrawRefundResult> {
  const openid = requireOpenid(caller);
  requireOwnApp(deps, caller);
  onlyFields(event, ['refundId']);
  const refundId = requiredString(event, 'refundId', { max: 64, pattern: ID_PATTERN });
  const refund = await ownRefund(deps, refundId, openid);
  if (refund.status === 'WITHDRAWN') {
    // A repeat (double tap, a retry after a lost answer): finish a release that may have died.
    await releaseEnded(deps, refund);
    return { refund: refundView(refund) };
  }
  if (refund.status !== 'PENDING_REVIEW') throw notWithdrawable(refund);
  const now = deps.now();
  const withdrawn = await stepRefund(
    deps,
    refund,
    'PENDING_REVIEW',
    { to: 'WITHDRAWN', source: 'withdraw' },
    {
      finishedAtMs: now,
      leaseUntilMs: 0,
      // Reconcile makes sure the release below happened, even if this call dies now.
      nextCheckAtMs: now + Math.round(FOLLOW_UP_MS * deps.config.timeScale),
    },
  );
  if (!withdrawn) {
    // The merchant reviewed it first (or a twin of this call withdrew it).
    const latest = (await getRefund(deps, refundId)) ?? refund;
    if (latest.status !== 'WITHDRAWN') throw notWithdrawable(latest);
    await releaseEnded(deps, latest);
    return { refund: refundView(latest) };
  }
  await releaseEnded(deps, withdrawn);
  await recordEvent(deps, {
    kind: 'refund',
    orderId: refund.orderId,
    refundId,
    from: 'PENDING_REVIEW',
    to: 'WITHDRAWN',
    source: 'withdraw',
    fields: {},
  });
  deps.log('info', 'refund.withdrawn', {
    refundId,
    orderId: refund.orderId,
    from: 'PENDING_REVIEW',
    to: 'WITHDRAWN',
    dbRequests: deps.store.requests,
  });
  return { refund: refundView(withdrawn) };
}
