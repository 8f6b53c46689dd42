/**
 * Sending an approved refund to WeChat, and everything that can happen to that call.
 *
 *   APPROVED ──claim lease──▶ [outcome unknown before? ask refundquery first]
 *            ──order's 1-minute slot──▶ refund API ─┬─ accepted ─────────▶ PROCESSING
 *                                                    ├─ no answer / busy ─▶ APPROVED (outcome unknown, retried later)
 *                                                    ├─ rate limited ─────▶ APPROVED (retried after a minute)
 *                                                    └─ refused ──────────▶ FAILED
 *
 * The out_refund_no is the refund's id, fixed at creation: "一笔退款失败后重新提交，请不要更换退款
 * 单号，请使用原商户退款单号". Acceptance only means PROCESSING; the result comes from the refund
 * notify or refundquery.
 */
import type { RefundHistoryEntry } from '../contract';
import { AppError } from '../errors';
import { tellRefund } from '../notices/transitions';
import type { RefundAccepted, RefundStatusResult } from '../providers/port';
import { type Deps, failureReason, providerOf, type WxFailure, wxFailure } from './deps';
import { recordEvent } from './events';
import { COLLECTIONS, type RefundDoc } from './model';
import { move } from './refund-book';
import { applyWeChatRefund } from './refund-outcome';
import { getRefund, stepRefund } from './refund-steps';
import { FOLLOW_UP_MS, gapMs, RATE_LIMIT_WAIT_MS, SUBMIT_RETRY_GAPS_MS } from './schedule';

/** A lease outlives the invocation that took it: its call cannot run past the function's end. */
const LEASE_MARGIN_MS = 5_000;

export function leaseUntil(deps: Deps): number {
  return deps.budget.endsAtMs + LEASE_MARGIN_MS;
}

export interface Review {
  reviewer: string;
  comment?: string;
}

/**
 * Takes the right to send `refund` to WeChat. Only the caller that wins this CAS may call:
 * double clicks, two admins and reconcile all race here, and the lease keeps the losers from
 * a second refund request. An APPROVED refund is claimable once its last lease ran out;
 * PENDING_REVIEW and FAILED become APPROVED with the reviewer's fields.
 */
export async function claimSubmitLease(
  deps: Deps,
  refund: RefundDoc,
  review?: Review,
): Promise<RefundDoc | null> {
  const { store } = deps;
  const now = deps.now();
  const lease = leaseUntil(deps);
  if (refund.status === 'APPROVED') {
    const won = await store.cas(
      COLLECTIONS.refunds,
      { _id: refund._id, status: 'APPROVED', leaseUntilMs: store.cmd.lt(now) },
      // If this invocation dies, reconcile looks again once the lease has run out.
      { leaseUntilMs: lease, nextCheckAtMs: lease, submitAttempts: store.cmd.inc(1), updatedAtMs: now },
    );
    if (!won) return null;
    return {
      ...refund,
      leaseUntilMs: lease,
      nextCheckAtMs: lease,
      submitAttempts: refund.submitAttempts + 1,
      updatedAtMs: now,
    };
  }
  const reviewed: Partial<RefundDoc> = review
    ? { reviewer: review.reviewer, reviewedAtMs: now, ...(review.comment ? { comment: review.comment } : {}) }
    : {};
  return stepRefund(
    deps,
    refund,
    refund.status,
    // Stryker disable next-line OptionalChaining: a refund that is not APPROVED is claimed only by a review (reconcile claims APPROVED ones).
    { to: 'APPROVED', source: 'review', ...(review?.comment ? { reason: review.comment } : {}) },
    { ...reviewed, leaseUntilMs: lease, nextCheckAtMs: lease },
    { unset: ['failReason'], countAttempt: true },
  );
}

/**
 * refund_desc from the shopper's free text. XML cannot carry control characters (toXml
 * refuses them) nor CR intact (WeChat's parser reads it as LF, so the sign would not match:
 * 签名错误), and the 80-character cut must not split a surrogate pair.
 */
function refundDesc(reason: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced.
  const clean = reason.replace(/[\u0000-\u001f\u007f\uFFFE\uFFFF]+/g, ' ');
  return Array.from(clean).slice(0, 80).join('').trim();
}

/**
 * What WeChat knows of a refund: a refund doc moved to WeChat's state, 'absent' when WeChat
 * never took it (REFUNDNOTEXIST), or 'unreachable' when we could not find out.
 */
export async function askWeChat(
  deps: Deps,
  refund: RefundDoc,
): Promise<RefundDoc | 'absent' | 'unreachable'> {
  let info: RefundStatusResult;
  try {
    info = await providerOf(deps, refund).queryRefund(refund._id);
  } catch (e) {
    const f = wxFailure(e);
    if (!f) throw e;
    if (f.reason === 'REFUND_NOT_FOUND') return 'absent';
    deps.log('warn', 'refund.query_failed', { refundId: refund._id, errCode: f.errCode, code: f.code });
    return 'unreachable';
  }
  const outcome = await applyWeChatRefund(deps, refund, info, 'refundquery');
  // (STILL_PROCESSING is the answer to a PROCESSING notify only, never to a query.)
  if (outcome === 'MISMATCH') return 'unreachable';
  return (await getRefund(deps, refund._id)) ?? 'unreachable';
}

/** Claims the order's next refund-call slot: WeChat wants one order's refunds 1 minute apart. */
async function takeRefundSlot(deps: Deps, orderId: string): Promise<boolean> {
  const { store } = deps;
  const now = deps.now();
  const until = now + deps.config.refunds.spacingMs;
  if (
    await store.cas(
      COLLECTIONS.orders,
      { _id: orderId, refundCallUntilMs: store.cmd.lt(now) },
      { refundCallUntilMs: until },
    )
  ) {
    return true;
  }
  // Orders stored before the slot existed have no field to compare with.
  return store.cas(
    COLLECTIONS.orders,
    { _id: orderId, refundCallUntilMs: store.cmd.exists(false) },
    { refundCallUntilMs: until },
  );
}

/**
 * WeChat counts its minute from when it took the request, which is anywhere between the
 * call's start (when the slot was taken) and its answer, or later if the answer was lost.
 * The slot is pushed to a minute after the answer, so a sibling refund never asks too early.
 */
async function holdSlotPastCall(deps: Deps, orderId: string): Promise<void> {
  const { store } = deps;
  const until = deps.now() + deps.config.refunds.spacingMs;
  try {
    await store.cas(
      COLLECTIONS.orders,
      { _id: orderId, refundCallUntilMs: store.cmd.lt(until) },
      {
        refundCallUntilMs: until,
      },
    );
  } catch (e) {
    // Only the spacing is at stake: at worst WeChat answers FREQUENCY_LIMITED and the sibling waits.
    deps.log('warn', 'refund.slot_not_extended', {
      orderId,
      error: e instanceof Error ? e.message : String(e),
    });
  }
}

type Wait = { kind: 'spacing' } | { kind: 'transient' | 'rateLimited'; failure: WxFailure };

/** Gives the lease back with a time to try again; the refund stays APPROVED. */
async function waitAndRetry(deps: Deps, r: RefundDoc, wait: Wait): Promise<RefundDoc> {
  const now = deps.now();
  const scale = deps.config.timeScale;
  const retryAt =
    wait.kind === 'spacing'
      ? now + deps.config.refunds.spacingMs
      : wait.kind === 'rateLimited'
        ? now + Math.round(RATE_LIMIT_WAIT_MS * scale)
        : now + gapMs(SUBMIT_RETRY_GAPS_MS, r.submitAttempts - 1, scale);
  const set: Partial<RefundDoc> = {
    // After a lost answer the merchant may retry at once (refundquery goes first); a rate
    // limit or the order's spacing must be waited out by everyone.
    leaseUntilMs: wait.kind === 'transient' ? 0 : retryAt,
    nextCheckAtMs: retryAt,
  };
  if (wait.kind === 'transient') {
    set.outcomeUnknown = true;
    set.hadUnknownOutcome = true;
  }
  const where = { leaseUntilMs: r.leaseUntilMs };
  if (wait.kind === 'spacing') {
    // No call was made: nothing for the history.
    await deps.store.cas(COLLECTIONS.refunds, { _id: r._id, status: 'APPROVED', ...where }, set);
    deps.log('info', 'refund.waits_for_order_spacing', { refundId: r._id, orderId: r.orderId, retryAt });
    return { ...r, ...set };
  }
  const reason = failureReason(wait.failure);
  const next = await stepRefund(deps, r, 'APPROVED', { to: 'APPROVED', source: 'refund', reason }, set, {
    where,
  });
  deps.log('warn', wait.kind === 'transient' ? 'refund.submit_unknown' : 'refund.rate_limited', {
    refundId: r._id,
    errCode: wait.failure.errCode,
    code: wait.failure.code,
    attempt: r.submitAttempts,
    retryAt,
  });
  return next ?? (await getRefund(deps, r._id)) ?? r;
}

/**
 * Sends an APPROVED refund to WeChat. The caller holds the submit lease (claimSubmitLease).
 */
export async function submitRefund(deps: Deps, refund: RefundDoc): Promise<RefundDoc> {
  let r = refund;
  if (r.outcomeUnknown) {
    // An earlier attempt may have been accepted: never take a refusal as final before
    // WeChat says whether it has this refund.
    const known = await askWeChat(deps, r);
    if (known === 'unreachable') {
      return waitAndRetry(deps, r, {
        kind: 'transient',
        failure: {
          // Stryker disable next-line BooleanLiteral: waitAndRetry goes by the wait's kind; only the codes and message of this failure are read.
          transient: true,
          // Stryker disable next-line BooleanLiteral: as above.
          rateLimited: false,
          reason: undefined,
          errCode: undefined,
          errCodeDes: undefined,
          code: 'WXPAY_UNAVAILABLE',
          message: 'refundquery did not answer',
        },
      });
    }
    if (known !== 'absent') return known;
    // Stryker disable next-line BooleanLiteral: every later write of this call sets outcomeUnknown itself, and no view shows it.
    r = { ...r, outcomeUnknown: false };
  }
  if (!(await takeRefundSlot(deps, r.orderId))) return waitAndRetry(deps, r, { kind: 'spacing' });

  let res: RefundAccepted;
  const provider = providerOf(deps, r);
  try {
    res = await provider
      .refund({
        outTradeNo: r.orderId,
        outRefundNo: r._id,
        totalFen: r.totalFee,
        refundFen: r.refundFee,
        reason: refundDesc(r.reason),
        ...(provider.capabilities.notifyTransport === 'http'
          ? { notifyUrl: deps.config.wxpay.refundNotifyUrl }
          : {}),
      })
      .finally(() => holdSlotPastCall(deps, r.orderId));
  } catch (e) {
    const f = wxFailure(e);
    if (!f) throw e;
    if (f.transient) return waitAndRetry(deps, r, { kind: 'transient', failure: f });
    if (f.rateLimited) return waitAndRetry(deps, r, { kind: 'rateLimited', failure: f });
    const reason = failureReason(f);
    // A refund whose answer was ever lost gets one more look by reconcile: WeChat may have
    // accepted that earlier attempt, and the merchant should see it before deciding.
    const lookAgain = r.hadUnknownOutcome
      ? { nextCheckAtMs: deps.now() + Math.round(FOLLOW_UP_MS * deps.config.timeScale) }
      : {};
    const failed = await stepRefund(
      deps,
      r,
      'APPROVED',
      { to: 'FAILED', source: 'refund', reason },
      { failReason: reason, leaseUntilMs: 0, outcomeUnknown: false, ...lookAgain },
      { where: { leaseUntilMs: r.leaseUntilMs }, unset: r.hadUnknownOutcome ? [] : ['nextCheckAtMs'] },
    );
    if (!failed) return (await getRefund(deps, r._id)) ?? r;
    await recordEvent(
      deps,
      {
        kind: 'refund',
        orderId: r.orderId,
        refundId: r._id,
        from: 'APPROVED',
        to: 'FAILED',
        source: 'refund',
        fields: { err_code: f.errCode ?? f.code, err_code_des: f.errCodeDes ?? '' },
      },
      r.submitAttempts,
    );
    deps.log('warn', 'refund.failed', {
      refundId: r._id,
      from: 'APPROVED',
      to: 'FAILED',
      errCode: f.errCode,
      dbRequests: deps.store.requests,
    });
    await tellRefund(deps, failed, 'failed');
    return failed;
  }
  // Acceptance only, on every provider: even when APIv3's answer already says SUCCESS or
  // CLOSED, the notify or refundquery books it, through the one path that settles money.
  const now = deps.now();
  const accepted = await stepRefund(
    deps,
    r,
    'APPROVED',
    { to: 'PROCESSING', source: 'refund' },
    {
      wxRefundId: res.refundId,
      submittedAtMs: now,
      leaseUntilMs: 0,
      outcomeUnknown: false,
      checkCount: 0,
      nextCheckAtMs: now + deps.config.reconcile.refundQueryDelayMs,
    },
  );
  // The refund notify (or a query) may have beaten this answer to it.
  if (!accepted) return (await getRefund(deps, r._id)) ?? r;
  await recordEvent(deps, {
    kind: 'refund',
    orderId: r.orderId,
    refundId: r._id,
    from: 'APPROVED',
    to: 'PROCESSING',
    source: 'refund',
    fields: res.record,
  });
  deps.log('info', 'refund.processing', {
    refundId: r._id,
    from: 'APPROVED',
    to: 'PROCESSING',
    dbRequests: deps.store.requests,
  });
  return accepted;
}

/** `R…` → `R…_2` → `R…_3`: a retried CLOSED refund's new out_refund_no, the same on every retry. */
export function successorIdOf(refundId: string): string {
  const m = /^(.*)_(\d+)$/.exec(refundId);
  return m ? `${m[1]}_${Number(m[2]) + 1}` : `${refundId}_2`;
}

/**
 * Retries a CLOSED refund as a new refund with a new out_refund_no (WeChat's guidance for a
 * closed refund), which takes over its reservation. Each step is idempotent, so a crash or a
 * concurrent click resumes where the last one stopped:
 *   1. link: the CLOSED refund gets `successorId` (CAS: only once)
 *   2. move: the order's refund book hands the reservation over (CAS: only once)
 *   3. create: the successor is inserted APPROVED with our lease (insert-once)
 *   4. submit it (only the creator, which holds the lease).
 * With `review` absent (reconcile resuming), the successor is created for reconcile to submit.
 */
export async function retryClosed(deps: Deps, closed: RefundDoc, review?: Review): Promise<RefundDoc> {
  let current = closed;
  let successorId = current.successorId;
  const now = deps.now();
  if (!successorId) {
    successorId = successorIdOf(current._id);
    const linked = await stepRefund(
      deps,
      current,
      'CLOSED',
      { to: 'CLOSED', source: 'review', reason: `retried as ${successorId}` },
      { successorId, nextCheckAtMs: now + Math.round(FOLLOW_UP_MS * deps.config.timeScale) },
      { where: { successorId: deps.store.cmd.exists(false) } },
    );
    if (!linked) {
      const latest = await getRefund(deps, current._id);
      if (!latest?.successorId) {
        throw new AppError(
          'INVALID_STATE',
          `the refund is now ${latest?.status ?? 'gone'}; refresh and look again`,
        );
      }
      current = latest;
      successorId = latest.successorId;
    } else current = linked;
  }
  const moved = await move(deps, current.orderId, current._id, successorId, current.refundFee);
  if (moved === 'settled') {
    throw new AppError(
      'INVALID_STATE',
      'WeChat reports this refund as paid after all; there is nothing to retry',
    );
  }
  // Stryker disable next-line StringLiteral: unreachable while the link holds (a linked CLOSED refund cannot be rejected, and a rejected one cannot be linked); kept so a reservation released by any future path is never handed over.
  if (moved === 'released')
    // Stryker disable next-line StringLiteral: as above.
    throw new AppError('INVALID_STATE', 'this refund was rejected; its amount is free again');
  if (moved === 'missing')
    throw new AppError('CONFLICT', `order ${current.orderId} does not hold this refund's amount`);

  const lease = review ? leaseUntil(deps) : 0;
  const history: RefundHistoryEntry = {
    atMs: now,
    status: 'APPROVED',
    source: review ? 'review' : 'reconcile',
    reason: `retry of ${current._id}${review?.comment ? `: ${review.comment}` : ''}`.slice(0, 200),
  };
  const successor: RefundDoc = {
    _id: successorId,
    orderId: current.orderId,
    openid: current.openid,
    refundFee: current.refundFee,
    totalFee: current.totalFee,
    reason: current.reason,
    status: 'APPROVED',
    createdAtMs: now,
    updatedAtMs: now,
    leaseUntilMs: lease,
    submitAttempts: review ? 1 : 0,
    nextCheckAtMs: review ? lease : now,
    predecessorId: current._id,
    // A new out_refund_no for the same order, through the order's provider.
    ...(current.provider ? { provider: current.provider } : {}),
    history: [history],
    ...(current.contact ? { contact: current.contact } : {}),
    ...(review ? { reviewer: review.reviewer, reviewedAtMs: now } : {}),
    ...(review?.comment ? { comment: review.comment } : {}),
  };
  if ((await deps.store.insert(COLLECTIONS.refunds, successor)) === 'duplicate') {
    // Another click (or reconcile) created it; its creator submits it.
    return (await getRefund(deps, successorId)) ?? successor;
  }
  deps.log('info', 'refund.retried_as_new', {
    refundId: current._id,
    successorId,
    orderId: current.orderId,
    dbRequests: deps.store.requests,
  });
  return review ? submitRefund(deps, successor) : successor;
}
