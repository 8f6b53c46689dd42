/**
 * What an admin and an operator see when a refund call goes sideways, in one process
 * (world.ts): the log line each outcome leaves, the reason the merchant reads in the refund's
 * history, a refundquery that does not answer, the order's slot pushed past a slow call, and
 * the retried CLOSED refund meeting WeChat's late word or a second click. Runs under
 * `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { applyWeChatRefund } from '../../cloudfunctions/shared/domain/refund-outcome';
import { retryClosed } from '../../cloudfunctions/shared/domain/refund-submit';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import {
  ADMIN,
  applied,
  casOn,
  deliver,
  dieAfter,
  eventsOf,
  failBefore,
  insertInto,
  logged,
  newRequestId,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  refused,
  SHOPPER,
} from './shop';
import { Killed, useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const MINUTE = 60_000;
const decide = (refundId: string, decision = 'approve', deps: Deps = w.deps()) =>
  approveRefund(deps, { refundId, decision }, ADMIN).then((r) => r.refund);
const wxRefunds = () => [...w.core.ledger.refunds.values()];
const lastReason = (r: RefundDoc) => r.history?.at(-1)?.reason;

describe('what each refund call leaves for the operator and the merchant', () => {
  it('an accepted call logs refund.processing and records the acceptance event', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    expect((await decide(r.refundId)).status).toBe('PROCESSING');
    expect(logged(w, 'refund.processing')).toEqual([
      {
        level: 'info',
        event: 'refund.processing',
        fields: { refundId: r.refundId, from: 'APPROVED', to: 'PROCESSING', dbRequests: expect.any(Number) },
      },
    ]);
    const [event] = (await eventsOf(w, r.refundId)).filter((e) => e.to === 'PROCESSING');
    expect(event).toMatchObject({
      kind: 'refund',
      orderId,
      refundId: r.refundId,
      from: 'APPROVED',
      to: 'PROCESSING',
      source: 'refund',
    });
  });

  it('no answer: refund.submit_unknown with WeChat’s code, the attempt and when it is tried again', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    await decide(r.refundId);
    w.faults({ timeoutRate: 0 });
    expect(logged(w, 'refund.submit_unknown')).toEqual([
      {
        level: 'warn',
        event: 'refund.submit_unknown',
        fields: {
          refundId: r.refundId,
          errCode: 'NETWORK',
          code: 'WXPAY_UNAVAILABLE',
          attempt: 1,
          retryAt: w.now() + MINUTE,
        },
      },
    ]);
    expect(lastReason(await refundDoc(w, r.refundId))).toMatch(/^NETWORK: .*no answer/);
  });

  it('refundquery silent after a lost answer: no refund call, the refund waits, and the merchant reads why', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ hangAfterEffectRate: 1 });
    await decide(r.refundId);
    w.faults({ hangAfterEffectRate: 0, timeoutRate: { '/pay/refundquery': 1 } });
    w.advance(MINUTE + 1000);
    const waiting = await decide(r.refundId);
    w.faults({ timeoutRate: 0 });
    expect(waiting.status).toBe('APPROVED');
    expect(wxRefunds()).toHaveLength(1);
    const stored = await refundDoc(w, r.refundId);
    expect(stored).toMatchObject({
      status: 'APPROVED',
      outcomeUnknown: true,
      leaseUntilMs: 0,
      submitAttempts: 2,
    });
    // The second attempt's gap: two minutes.
    expect(stored.nextCheckAtMs).toBe(w.now() + 2 * MINUTE);
    expect(lastReason(stored)).toBe('WXPAY_UNAVAILABLE: refundquery did not answer');
    expect(logged(w, 'refund.query_failed')).toEqual([
      {
        level: 'warn',
        event: 'refund.query_failed',
        fields: { refundId: r.refundId, errCode: 'NETWORK', code: 'WXPAY_UNAVAILABLE' },
      },
    ]);
    expect(logged(w, 'refund.submit_unknown').at(-1)?.fields).toEqual({
      refundId: r.refundId,
      code: 'WXPAY_UNAVAILABLE',
      attempt: 2,
      retryAt: w.now() + 2 * MINUTE,
    });
    // WeChat answers again: it had the refund all along, and the query's word is booked as such.
    w.advance(2 * MINUTE + 1000);
    expect((await decide(r.refundId)).status).toBe('PROCESSING');
    expect(wxRefunds()).toHaveLength(1);
    expect((await refundDoc(w, r.refundId)).history?.at(-1)).toMatchObject({
      status: 'PROCESSING',
      source: 'refundquery',
    });
    expect(logged(w, 'refund.submit_unknown')).toHaveLength(2);
  });

  it('a rate limit: refund.rate_limited with WeChat’s code and the minute to wait', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundErrorQueue: ['INVALID_REQ_TOO_MUCH'] });
    await decide(r.refundId);
    expect(logged(w, 'refund.rate_limited')).toEqual([
      {
        level: 'warn',
        event: 'refund.rate_limited',
        fields: {
          refundId: r.refundId,
          errCode: 'INVALID_REQ_TOO_MUCH',
          code: 'WXPAY_RATE_LIMITED',
          attempt: 1,
          retryAt: w.now() + MINUTE,
        },
      },
    ]);
    expect(logged(w, 'refund.submit_unknown')).toEqual([]);
  });

  it('a refusal: refund.failed, and an event carrying WeChat’s err_code and description', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundError: 'NOTENOUGH' });
    await decide(r.refundId);
    w.faults({ refundError: null });
    expect(logged(w, 'refund.failed')).toEqual([
      {
        level: 'warn',
        event: 'refund.failed',
        fields: {
          refundId: r.refundId,
          from: 'APPROVED',
          to: 'FAILED',
          errCode: 'NOTENOUGH',
          dbRequests: expect.any(Number),
        },
      },
    ]);
    const [event] = await eventsOf(w, r.refundId);
    expect(event).toMatchObject({
      _id: `${r.refundId}:FAILED`,
      kind: 'refund',
      orderId,
      refundId: r.refundId,
      from: 'APPROVED',
      to: 'FAILED',
      source: 'refund',
    });
    expect(event!.fields).toEqual({ err_code: 'NOTENOUGH', err_code_des: expect.stringMatching(/./) });
    const failed = await refundDoc(w, r.refundId);
    expect(failed.failReason).toBe(`NOTENOUGH: ${event!.fields['err_code_des']}`);
    expect(failed.history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'FAILED',
      source: 'refund',
      reason: failed.failReason,
    });
  });

  it('a second refund of the order inside WeChat’s minute: refund.waits_for_order_spacing, with no history entry', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 2000);
    await decide(a.refundId);
    const before = (await refundDoc(w, b.refundId)).history?.length ?? 0;
    await decide(b.refundId);
    expect(logged(w, 'refund.waits_for_order_spacing')).toEqual([
      {
        level: 'info',
        event: 'refund.waits_for_order_spacing',
        fields: { refundId: b.refundId, orderId, retryAt: w.now() + w.config.refunds.spacingMs },
      },
    ]);
    // Only the approval was added: no call was made, so no attempt is written down.
    const after = await refundDoc(w, b.refundId);
    expect(after.history).toHaveLength(before + 1);
    expect(after.history?.at(-1)).toMatchObject({ status: 'APPROVED', source: 'review' });
    expect(after.outcomeUnknown).toBeUndefined();
  });
});

describe('the order’s refund slot', () => {
  it('is pushed to a minute after a slow call’s answer, so a sibling does not ask WeChat too early', async () => {
    const bystander = await paidOrder(w, 3000);
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const deps = w.deps();
    const v2 = deps.wxpay!.byName.v2!;
    // WeChat takes 20 s to answer this call.
    const slow = Object.create(v2, {
      refund: {
        value: async (...args: Parameters<typeof v2.refund>) => {
          const out = await v2.refund(...args);
          w.advance(20_000);
          return out;
        },
      },
    });
    const slowDeps = { ...deps, wxpay: { current: slow, byName: { v2: slow } } };
    expect((await decide(r.refundId, 'approve', slowDeps)).status).toBe('PROCESSING');
    expect((await orderDoc(w, orderId)).refundCallUntilMs).toBe(w.now() + w.config.refunds.spacingMs);
    expect((await orderDoc(w, bystander)).refundCallUntilMs).toBe(0);
    expect(logged(w, 'refund.slot_not_extended')).toEqual([]);
  });

  it('a failure to push it is logged and the refund still goes on', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    let ordersCas = 0;
    // The second update of the order (after the slot was taken) fails.
    const deps = failBefore(w.deps(), (c) => casOn('orders')(c) && ++ordersCas === 2, 'database unavailable');
    expect((await decide(r.refundId, 'approve', deps)).status).toBe('PROCESSING');
    expect(ordersCas).toBe(2);
    expect(logged(w, 'refund.slot_not_extended')).toEqual([
      {
        level: 'warn',
        event: 'refund.slot_not_extended',
        fields: { orderId, error: 'database unavailable' },
      },
    ]);
  });
});

describe('a CLOSED refund retried under a new number', () => {
  async function closedRefund() {
    const orderId = await paidOrder(w, 5000);
    const r = (
      await applyRefund(
        w.deps(),
        { orderId, refundFee: 1000, reason: '不想要了', contact: '13800000000', requestId: newRequestId() },
        SHOPPER,
      )
    ).refund;
    await decide(r.refundId);
    w.core.engine.settleOne(r.refundId, 'REFUNDCLOSE');
    expect(await deliver(w)).toEqual(['CLOSED']);
    w.advance(MINUTE + 1000);
    return { orderId, refundId: r.refundId };
  }

  it('carries the admin’s comment, and logs refund.retried_as_new', async () => {
    const { orderId, refundId } = await closedRefund();
    const out = await approveRefund(w.deps(), { refundId, decision: 'approve', comment: '再试一次' }, ADMIN);
    expect(out.refund).toMatchObject({ refundId: `${refundId}_2`, status: 'PROCESSING' });
    const successor = await refundDoc(w, `${refundId}_2`);
    expect(successor).toMatchObject({
      predecessorId: refundId,
      contact: '13800000000',
      reviewer: ADMIN.openid,
      comment: '再试一次',
      submitAttempts: 1,
      provider: 'v2',
    });
    expect(successor.history?.[0]).toMatchObject({
      status: 'APPROVED',
      source: 'review',
      reason: `retry of ${refundId}: 再试一次`,
    });
    expect((await refundDoc(w, refundId)).history?.at(-1)).toMatchObject({
      status: 'CLOSED',
      source: 'review',
      reason: `retried as ${refundId}_2`,
    });
    // Reconcile makes sure the retry was finished, ten minutes on.
    expect((await refundDoc(w, refundId)).nextCheckAtMs).toBe(w.now() + 10 * MINUTE);
    expect(logged(w, 'refund.retried_as_new')).toEqual([
      {
        level: 'info',
        event: 'refund.retried_as_new',
        fields: { refundId, successorId: `${refundId}_2`, orderId, dbRequests: expect.any(Number) },
      },
    ]);
  });

  it('an approval that died after linking is finished by reconcile, which creates the successor for itself', async () => {
    const { orderId, refundId } = await closedRefund();
    await expect(decide(refundId, 'approve', dieAfter(w.deps(), casOn('refunds')))).rejects.toBeInstanceOf(
      Killed,
    );
    expect((await refundDoc(w, refundId)).successorId).toBe(`${refundId}_2`);
    expect(await w.deps().store.get('refunds', `${refundId}_2`)).toBeNull();
    const deps = w.deps();
    await retryClosed(deps, await refundDoc(w, refundId));
    const successor = await refundDoc(w, `${refundId}_2`);
    expect(successor).toMatchObject({
      status: 'APPROVED',
      leaseUntilMs: 0,
      submitAttempts: 0,
      nextCheckAtMs: w.now(),
      predecessorId: refundId,
    });
    expect(successor.reviewer).toBeUndefined();
    expect(successor.history).toEqual([
      { atMs: w.now(), status: 'APPROVED', source: 'reconcile', reason: `retry of ${refundId}` },
    ]);
    // Nothing was sent yet: reconcile submits it on its next pass.
    expect(wxRefunds().map((x) => x.outRefundNo)).toEqual([refundId]);
    expect((await orderDoc(w, orderId)).refundBook[`${refundId}_2`]).toMatchObject({ state: 'reserved' });
  });

  it('two admins retrying it at once: one successor, one refund call', async () => {
    const { refundId } = await closedRefund();
    const point = pausePoint();
    const first = decide(refundId, 'approve', pauseBefore(w.deps(), insertInto('refunds'), point));
    await point.arrived;
    expect((await decide(refundId)).status).toBe('PROCESSING');
    point.release();
    expect(await first).toMatchObject({ refundId: `${refundId}_2`, status: 'PROCESSING' });
    expect(wxRefunds().filter((x) => x.outRefundNo === `${refundId}_2`)).toHaveLength(1);
    expect(logged(w, 'refund.retried_as_new')).toHaveLength(1);
    // The second admin found the link made, and did not make it again.
    expect(
      (await refundDoc(w, refundId)).history?.filter((h) => h.reason === `retried as ${refundId}_2`),
    ).toHaveLength(1);
  });

  it('two admins who both read it unlinked: the second link finds the first and makes no second', async () => {
    const { refundId } = await closedRefund();
    const point = pausePoint();
    const first = decide(refundId, 'approve', pauseBefore(w.deps(), casOn('refunds'), point));
    await point.arrived;
    expect((await decide(refundId)).status).toBe('PROCESSING');
    point.release();
    expect(await first).toMatchObject({ refundId: `${refundId}_2`, status: 'PROCESSING' });
    expect(
      (await refundDoc(w, refundId)).history?.filter((h) => h.reason === `retried as ${refundId}_2`),
    ).toHaveLength(1);
    expect(wxRefunds().filter((x) => x.outRefundNo === `${refundId}_2`)).toHaveLength(1);
  });

  it('in a sandbox with a time scale, the retry is looked at again sooner by it', async () => {
    const { refundId } = await closedRefund();
    const deps = w.deps();
    await approveRefund(
      { ...deps, config: { ...deps.config, timeScale: 0.5 } },
      { refundId, decision: 'approve' },
      ADMIN,
    );
    expect((await refundDoc(w, refundId)).nextCheckAtMs).toBe(w.now() + 5 * MINUTE);
  });

  it('WeChat pays the closed refund after all while it is being retried: nothing is retried, and the admin is told why', async () => {
    const { orderId, refundId } = await closedRefund();
    const point = pausePoint();
    // The retry has linked its successor and stops before moving the reservation over.
    const retry = decide(refundId, 'approve', pauseBefore(w.deps(), casOn('orders'), point));
    await point.arrived;
    const closed = await refundDoc(w, refundId);
    expect(
      await applyWeChatRefund(
        w.deps(),
        closed,
        { status: 'SUCCESS', outTradeNo: orderId, refundFen: 1000, refundId: 'wx9', record: {} },
        'refundquery',
      ),
    ).toBe('SUCCESS');
    point.release();
    await expect(retry).rejects.toMatchObject({
      code: 'INVALID_STATE',
      message: 'WeChat reports this refund as paid after all; there is nothing to retry',
    });
    expect(await w.deps().store.get('refunds', `${refundId}_2`)).toBeNull();
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
  });

  it('a long comment: the successor’s history reason is cut at 200 characters', async () => {
    const { refundId } = await closedRefund();
    const comment = '再'.repeat(200);
    await approveRefund(w.deps(), { refundId, decision: 'approve', comment }, ADMIN);
    const reason = (await refundDoc(w, `${refundId}_2`)).history?.[0]?.reason ?? '';
    expect(reason).toHaveLength(200);
    expect(reason.startsWith(`retry of ${refundId}: 再`)).toBe(true);
  });

  it('an order whose refund book does not hold the closed refund: the retry is refused, nothing sent', async () => {
    const { orderId, refundId } = await closedRefund();
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { [`refundBook.${refundId}`]: store.cmd.remove() });
    await refused(decide(refundId), 'CONFLICT', `order ${orderId} does not hold this refund's amount`);
    expect(await w.deps().store.get('refunds', `${refundId}_2`)).toBeNull();
    expect(wxRefunds()).toHaveLength(1);
  });

  it('rejected by another admin just before the retry: the retry says what it now is', async () => {
    const { refundId } = await closedRefund();
    const point = pausePoint();
    const retry = decide(refundId, 'approve', pauseBefore(w.deps(), casOn('refunds'), point));
    await point.arrived;
    expect((await decide(refundId, 'reject')).status).toBe('REJECTED');
    point.release();
    await expect(retry).rejects.toMatchObject({
      code: 'INVALID_STATE',
      message: 'the refund is now REJECTED; refresh and look again',
    });
  });
});

describe('the submit lease and what an approval writes', () => {
  it('the lease outlives the invocation by five seconds; the approval keeps the reviewer, the time and the comment', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const point = pausePoint();
    const deps = w.deps();
    const first = approveRefund(
      pauseBefore(deps, casOn('orders'), point),
      { refundId: r.refundId, decision: 'approve', comment: '同意' },
      ADMIN,
    );
    await point.arrived;
    const held = await refundDoc(w, r.refundId);
    expect(held).toMatchObject({
      status: 'APPROVED',
      leaseUntilMs: deps.budget.endsAtMs + 5000,
      nextCheckAtMs: deps.budget.endsAtMs + 5000,
      reviewer: ADMIN.openid,
      reviewedAtMs: w.now(),
      comment: '同意',
      submitAttempts: 1,
    });
    expect(held.history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'APPROVED',
      source: 'review',
      reason: '同意',
    });
    point.release();
    const done = (await first).refund;
    expect(done.status).toBe('PROCESSING');
    // The merchant's view of the answer carries the whole history, this step included.
    expect(done.history?.map((h) => h.status)).toEqual(['PENDING_REVIEW', 'APPROVED', 'PROCESSING']);
    expect((await refundDoc(w, r.refundId)).history?.at(-1)).toEqual({
      atMs: w.now(),
      status: 'PROCESSING',
      source: 'refund',
    });
  });

  it('sends WeChat the refund notify URL and a reason cut without a trailing space', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applyRefund(
      w.deps(),
      { orderId, refundFee: 1000, reason: `${'很'.repeat(79)}\n好`, requestId: newRequestId() },
      SHOPPER,
    );
    await decide(r.refund.refundId);
    const [sent] = wxRefunds();
    expect(sent!.notifyUrl).toBe(w.config.wxpay.refundNotifyUrl);
    // The URL is this shop's, as configured.
    const other = await applied(w, orderId, 500);
    w.advance(MINUTE + 1000);
    const deps = w.deps();
    const custom = {
      ...deps,
      config: {
        ...deps.config,
        wxpay: { ...deps.config.wxpay, refundNotifyUrl: 'https://shop.example/refund/notify' },
      },
    };
    await decide(other.refundId, 'approve', custom);
    expect(wxRefunds().find((x) => x.outRefundNo === other.refundId)!.notifyUrl).toBe(
      'https://shop.example/refund/notify',
    );
    expect(sent!.refundDesc).toBe('很'.repeat(79));
  });

  it('a refusal without WeChat’s description still records its code, and an empty description', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const deps = w.deps();
    const v2 = deps.wxpay!.byName.v2!;
    const terse = Object.create(v2, {
      refund: {
        value: async () =>
          Promise.reject(
            Object.assign(new Error('refused'), {
              code: 'WXPAY_ERROR',
              failure: 'refused',
              providerCode: 'NOTENOUGH',
            }),
          ),
      },
    });
    expect(
      (await decide(r.refundId, 'approve', { ...deps, wxpay: { current: terse, byName: { v2: terse } } }))
        .status,
    ).toBe('FAILED');
    const [event] = await eventsOf(w, r.refundId);
    expect(event!.fields).toEqual({ err_code: 'NOTENOUGH', err_code_des: '' });
  });

  it('an error that is not WeChat’s reaches the caller as it is, from the refund call or the query before it', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    const deps = w.deps();
    const v2 = deps.wxpay!.byName.v2!;
    const broken = Object.create(v2, {
      refund: { value: async () => Promise.reject(new Error('socket closed by a bug')) },
      queryRefund: { value: async () => Promise.reject(new Error('parser bug')) },
    });
    const brokenDeps = { ...deps, wxpay: { current: broken, byName: { v2: broken } } };
    await expect(decide(r.refundId, 'approve', brokenDeps)).rejects.toThrow('socket closed by a bug');
    // Leave the refund with a lost answer, so the next attempt asks refundquery first.
    w.advance(MINUTE + 1000);
    w.faults({ timeoutRate: 1 });
    await decide(r.refundId);
    w.faults({ timeoutRate: 0 });
    w.advance(2 * MINUTE);
    await expect(decide(r.refundId, 'approve', { ...brokenDeps, budget: w.deps().budget })).rejects.toThrow(
      'parser bug',
    );
  });
});

describe('waiting, and what it is measured from', () => {
  it('a rate limit on a later attempt still waits one minute, not the growing retry gap', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    await decide(r.refundId);
    w.faults({ timeoutRate: 0, refundErrorQueue: ['INVALID_REQ_TOO_MUCH'] });
    w.advance(MINUTE + 1000);
    await decide(r.refundId);
    const stored = await refundDoc(w, r.refundId);
    expect(stored).toMatchObject({ status: 'APPROVED', submitAttempts: 2 });
    expect(stored.nextCheckAtMs).toBe(w.now() + MINUTE);
    expect(stored.leaseUntilMs).toBe(w.now() + MINUTE);
    expect(stored.history?.at(-1)).toMatchObject({ status: 'APPROVED', source: 'refund' });
  });

  it('the order’s minute on a later attempt is the order’s minute, not the growing retry gap', async () => {
    const orderId = await paidOrder(w, 5000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 2000);
    // b's first call got no answer (WeChat never took it).
    w.faults({ timeoutRate: 1 });
    await decide(b.refundId);
    w.faults({ timeoutRate: 0 });
    w.advance(MINUTE + 1000);
    expect((await decide(a.refundId)).status).toBe('PROCESSING');
    const waiting = await decide(b.refundId);
    expect(waiting.status).toBe('APPROVED');
    const stored = await refundDoc(w, b.refundId);
    expect(stored.submitAttempts).toBe(2);
    expect(stored.nextCheckAtMs).toBe(w.now() + w.config.refunds.spacingMs);
  });

  it('in a sandbox with a time scale, the waits shrink by it', async () => {
    const scaled = (): Deps => ({ ...w.deps(), config: { ...w.config, timeScale: 0.5 } });
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundErrorQueue: ['INVALID_REQ_TOO_MUCH'] });
    await decide(r.refundId, 'approve', scaled());
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + MINUTE / 2);
    // A refusal after a lost answer is looked at again in five scaled minutes.
    w.advance(MINUTE + 1000);
    w.faults({ timeoutRate: 1 });
    await decide(r.refundId, 'approve', scaled());
    w.faults({ timeoutRate: 0, refundError: 'NOTENOUGH' });
    w.advance(2 * MINUTE);
    expect((await decide(r.refundId, 'approve', scaled())).status).toBe('FAILED');
    w.faults({ refundError: null });
    expect((await refundDoc(w, r.refundId)).nextCheckAtMs).toBe(w.now() + 5 * MINUTE);
  });
});

describe('WeChat’s answer and its notify crossing', () => {
  it('the refund notify books SUCCESS before the call’s answer is stored: the answer changes nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    let refundsCas = 0;
    const point = pausePoint();
    // The claim is the first compare-and-set on the refund; the acceptance is the second.
    const approving = decide(
      r.refundId,
      'approve',
      pauseBefore(w.deps(), (c) => casOn('refunds')(c) && ++refundsCas === 2, point),
    );
    await point.arrived;
    w.core.engine.settleOne(r.refundId, 'SUCCESS');
    expect(await deliver(w)).toEqual(['SUCCESS']);
    point.release();
    expect((await approving).status).toBe('SUCCESS');
    expect((await eventsOf(w, r.refundId)).map((e) => [e.from, e.to])).toEqual([['APPROVED', 'SUCCESS']]);
    expect(logged(w, 'refund.processing')).toEqual([]);
    expect(await orderDoc(w, orderId)).toMatchObject({ refundedFee: 1000, refundReservedFee: 0 });
  });

  it('refundquery answering with another amount is not taken as WeChat’s word: no second call, the refund waits', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ hangAfterEffectRate: 1 });
    await decide(r.refundId);
    w.faults({ hangAfterEffectRate: 0 });
    [...w.core.ledger.refunds.values()].find((x) => x.outRefundNo === r.refundId)!.refundFee = 999;
    w.advance(MINUTE + 1000);
    expect((await decide(r.refundId)).status).toBe('APPROVED');
    expect(wxRefunds()).toHaveLength(1);
    expect(logged(w, 'refund.mismatch')).toHaveLength(1);
    const waiting = await refundDoc(w, r.refundId);
    expect(waiting).toMatchObject({ status: 'APPROVED', outcomeUnknown: true, leaseUntilMs: 0 });
    // Treated as no answer: tried again after the second attempt's gap.
    expect(lastReason(waiting)).toBe('WXPAY_UNAVAILABLE: refundquery did not answer');
    expect(waiting.nextCheckAtMs).toBe(w.now() + 2 * MINUTE);
    expect(logged(w, 'refund.submit_unknown')).toHaveLength(2);
  });

  it('a lost answer that WeChat never took: the retry finds nothing at WeChat, calls again, and clears the doubt', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    await decide(r.refundId);
    w.faults({ timeoutRate: 0 });
    w.advance(MINUTE + 1000);
    expect((await decide(r.refundId)).status).toBe('PROCESSING');
    expect(await refundDoc(w, r.refundId)).toMatchObject({
      status: 'PROCESSING',
      outcomeUnknown: false,
      hadUnknownOutcome: true,
    });
    expect(wxRefunds()).toHaveLength(1);
    expect(logged(w, 'refund.submit_unknown')).toHaveLength(1);
  });
});

describe('a refund of an order stored before the refund slot existed', () => {
  it('takes the slot once, and a sibling inside the minute waits', async () => {
    const orderId = await paidOrder(w, 5000);
    const bystander = await paidOrder(w, 3000);
    const a = await applied(w, orderId, 1000);
    const b = await applied(w, orderId, 2000);
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { refundCallUntilMs: store.cmd.remove() });
    expect((await orderDoc(w, orderId)).refundCallUntilMs).toBeUndefined();
    expect((await decide(a.refundId)).status).toBe('PROCESSING');
    expect((await orderDoc(w, orderId)).refundCallUntilMs).toBe(w.now() + w.config.refunds.spacingMs);
    expect((await decide(b.refundId)).status).toBe('APPROVED');
    expect(wxRefunds()).toHaveLength(1);
    // Only this order's slot was taken.
    expect((await orderDoc(w, bystander)).refundCallUntilMs).toBe(0);
  });
});

describe('a call that outlived its lease', () => {
  const nthRefundsCas = (n: number) => {
    let seen = 0;
    return (c: Parameters<Parameters<typeof pauseBefore>[1]>[0]) => casOn('refunds')(c) && ++seen === n;
  };
  /** An approval held before its second compare-and-set on the refund (the claim is the first). */
  const heldApproval = async (refundId: string) => {
    const point = pausePoint();
    const late = decide(refundId, 'approve', pauseBefore(w.deps(), nthRefundsCas(2), point));
    await point.arrived;
    return { late, release: () => point.release() };
  };
  /** A minute later another admin approves it again and WeChat's answer is lost: the refund it leaves. */
  const takenOver = async (refundId: string) => {
    w.advance(MINUTE + 1000);
    w.faults({ refundError: null, timeoutRate: 1 });
    await decide(refundId);
    w.faults({ timeoutRate: 0 });
    const taken = await refundDoc(w, refundId);
    expect(taken).toMatchObject({
      status: 'APPROVED',
      submitAttempts: 2,
      leaseUntilMs: 0,
      outcomeUnknown: true,
    });
    return taken;
  };

  it('no answer, written after another admin took the refund over: the late write changes nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ timeoutRate: 1 });
    // The write after the lost answer is held.
    const { late, release } = await heldApproval(r.refundId);
    w.advance(MINUTE + 1000);
    await decide(r.refundId);
    const taken = await refundDoc(w, r.refundId);
    expect(taken).toMatchObject({ status: 'APPROVED', submitAttempts: 2, leaseUntilMs: 0 });
    release();
    // The late call answers with the refund as it now is.
    expect((await late).updatedAtMs).toBe(taken.updatedAtMs);
    w.faults({ timeoutRate: 0 });
    expect(await refundDoc(w, r.refundId)).toEqual(taken);
    expect(taken.history?.filter((h) => h.source === 'refund')).toHaveLength(1);
  });

  it('a refusal, written after another admin took the refund over: changes nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = await applied(w, orderId, 1000);
    w.faults({ refundError: 'NOTENOUGH' });
    const { late, release } = await heldApproval(r.refundId);
    const taken = await takenOver(r.refundId);
    release();
    // The late call answers with the refund as it now is.
    expect(await late).toMatchObject({ status: 'APPROVED', updatedAtMs: taken.updatedAtMs });
    expect(await refundDoc(w, r.refundId)).toEqual(taken);
    expect(await eventsOf(w, r.refundId)).toEqual([]);
  });

  it('waiting for the order’s minute, written after another admin took the refund over: changes nothing', async () => {
    const orderId = await paidOrder(w, 5000);
    const sibling = await applied(w, orderId, 2000);
    const r = await applied(w, orderId, 1000);
    expect((await decide(sibling.refundId)).status).toBe('PROCESSING');
    const { late, release } = await heldApproval(r.refundId);
    const taken = await takenOver(r.refundId);
    release();
    await late;
    expect(await refundDoc(w, r.refundId)).toEqual(taken);
  });
});
