/**
 * A refund application as stored and as refused, in one process (world.ts): the refund and
 * the order's reservation exactly as written, the words of each refusal a shopper reads,
 * including those given to the loser of two racing applications, forced by pausing both
 * before their reservation. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import {
  applyRefund,
  approveRefund,
  listRefunds,
  refundIdFor,
} from '../../cloudfunctions/shared/domain/refunds';
import {
  ADMIN,
  casOn,
  newRequestId,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refundDoc,
  refused,
  SHOPPER,
} from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(() => w.reset());

const apply = (
  orderId: string,
  refundFee: number,
  requestId = newRequestId(),
  deps: Deps = w.deps(),
  extra = {},
) => applyRefund(deps, { orderId, refundFee, reason: '坏了', requestId, ...extra }, SHOPPER);

/** Two applications that have both read the order and stop before their reservation; the first goes first. */
async function racing(orderId: string, a: [number, string], b: [number, string]) {
  const points = [pausePoint(), pausePoint()];
  const calls = [a, b].map(([fee, id], i) =>
    apply(orderId, fee, id, pauseBefore(w.deps(), casOn('orders'), points[i]!)).then(
      (r) => r.refund,
      (e: Error) => e,
    ),
  );
  await Promise.all(points.map((p) => p.arrived));
  points[0]!.release();
  const first = await calls[0]!;
  points[1]!.release();
  return [first, await calls[1]!] as const;
}

describe('an application as stored', () => {
  it('the refund waiting for review and the order’s reservation, field by field', async () => {
    const orderId = await paidOrder(w, 5000);
    w.advance(1000);
    const id = newRequestId();
    const { refund } = await apply(orderId, 1200, id, w.deps(), { reasonCode: 'QUALITY', contact: '138' });
    const refundId = refundIdFor(SHOPPER.openid!, id);
    expect(refund.refundId).toBe(refundId);
    expect(await refundDoc(w, refundId)).toEqual({
      _id: refundId,
      orderId,
      openid: SHOPPER.openid,
      requestId: id,
      provider: 'v2',
      refundFee: 1200,
      totalFee: 5000,
      reason: '质量问题：坏了',
      reasonCode: 'QUALITY',
      contact: '138',
      status: 'PENDING_REVIEW',
      createdAtMs: w.now(),
      updatedAtMs: w.now(),
      leaseUntilMs: 0,
      submitAttempts: 0,
      history: [{ atMs: w.now(), status: 'PENDING_REVIEW', source: 'apply' }],
    });
    expect(await orderDoc(w, orderId)).toMatchObject({
      refundUsedFee: 1200,
      refundReservedFee: 1200,
      refundCount: 1,
      refundOpenCount: 1,
      refundBook: { [refundId]: { fee: 1200, state: 'reserved', atMs: w.now() } },
      // Reconcile looks for a refund behind the reservation ten minutes on.
      reservationCheckAtMs: w.now() + 10 * 60_000,
      updatedAtMs: w.now(),
    });
    expect(refundIdFor('o', 'r1')).toMatch(/^R[0-9a-f]{30}$/);
    expect(refundIdFor('o', 'r1')).not.toBe(refundIdFor('o', 'r2'));
    expect(refundIdFor('o', 'r1')).not.toBe(refundIdFor('p', 'r1'));
  });

  it('refuses a malformed request in words', async () => {
    const orderId = await paidOrder(w, 5000);
    await refused(apply(orderId, 100, 'short77'), 'INVALID_INPUT', 'requestId has an invalid format');
    // Checked to its last character and from its first.
    await refused(apply(orderId, 100, '8chars__!'), 'INVALID_INPUT', 'requestId has an invalid format');
    await refused(apply(orderId, 100, '!8chars__'), 'INVALID_INPUT', 'requestId has an invalid format');
    expect((await apply(orderId, 100, '8chars__')).refund.refundFee).toBe(100);
    await refused(apply(orderId, 0), 'INVALID_INPUT', 'refundFee must be from 1 to 100000000');
    await refused(apply(orderId, 100_000_001), 'INVALID_INPUT', 'refundFee must be from 1 to 100000000');
    await refused(
      applyRefund(w.deps(), { orderId, refundFee: 1, reason: 'x' }, SHOPPER),
      'INVALID_INPUT',
      'requestId is required',
    );
    await refused(
      apply(orderId, 1, newRequestId(), w.deps(), { contact: 'x'.repeat(65) }),
      'INVALID_INPUT',
      'contact must be at most 64 characters',
    );
  });
});

describe('two applications racing for one order', () => {
  it('the same requestId with two amounts: the second is told the id was used for a different application', async () => {
    const orderId = await paidOrder(w, 5000);
    const id = newRequestId();
    const [a, b] = await racing(orderId, [1000, id], [2000, id]);
    expect(a).toMatchObject({ refundFee: 1000 });
    expect(b).toMatchObject({
      code: 'INVALID_INPUT',
      message: 'requestId was already used for a different application',
    });
    expect(await orderDoc(w, orderId)).toMatchObject({ refundUsedFee: 1000, refundCount: 1 });
  });

  it('the loser of the last fen is told what is left of the order', async () => {
    const orderId = await paidOrder(w, 5000);
    await apply(orderId, 1000);
    const [a, b] = await racing(orderId, [3000, newRequestId()], [2000, newRequestId()]);
    expect(a).toMatchObject({ refundFee: 3000 });
    expect(b).toMatchObject({
      code: 'REFUND_EXCEEDS_PAID',
      message: 'at most 1000 fen of this order can still be refunded',
    });
  });

  it('the loser of the last open place is told how many are in progress', async () => {
    const orderId = await paidOrder(w, 5000);
    const max = w.config.refunds.maxOpenPerOrder;
    for (let i = 0; i < max - 1; i++) await apply(orderId, 10);
    const [, b] = await racing(orderId, [10, newRequestId()], [10, newRequestId()]);
    expect(b).toMatchObject({
      code: 'TOO_MANY_OPEN_REFUNDS',
      message: `this order already has ${max} refund applications in progress; wait for them to finish`,
    });
  });

  it('the loser of the fiftieth refund is told WeChat’s limit', async () => {
    const orderId = await paidOrder(w, 10_000);
    const store = w.deps().store;
    await store.cas('orders', { _id: orderId }, { refundCount: 49 });
    const [, b] = await racing(orderId, [10, newRequestId()], [10, newRequestId()]);
    expect(b).toMatchObject({
      code: 'REFUND_NOT_ALLOWED',
      message: 'WeChat Pay allows at most 50 refunds per order',
    });
    await refused(apply(orderId, 10), 'REFUND_NOT_ALLOWED', 'WeChat Pay allows at most 50 refunds per order');
  });
});

describe('a review that must not happen', () => {
  const decide = (refundId: string, decision: string, extra = {}) =>
    approveRefund(w.deps(), { refundId, decision, ...extra }, ADMIN);

  it('rejecting a FAILED refund that WeChat turns out to have is refused with its state, nothing released', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = (await apply(orderId, 1000)).refund;
    // WeChat took the call; its answer was lost.
    w.faults({ hangAfterEffectRate: 1 });
    await decide(r.refundId, 'approve');
    w.faults({ hangAfterEffectRate: 0 });
    // Our record says FAILED after that lost answer (as a refusal of a later attempt would leave it).
    await w.deps().store.cas('refunds', { _id: r.refundId }, { status: 'FAILED', outcomeUnknown: false });
    await refused(
      decide(r.refundId, 'reject'),
      'INVALID_STATE',
      'WeChat Pay has this refund (PROCESSING); it cannot be rejected',
    );
    expect((await refundDoc(w, r.refundId)).status).toBe('PROCESSING');
    expect(await orderDoc(w, orderId)).toMatchObject({ refundReservedFee: 1000, refundUsedFee: 1000 });
  });

  it('approving a refund whose provider is no longer configured is refused before anything is written', async () => {
    const orderId = await paidOrder(w, 5000);
    const r = (await apply(orderId, 1000)).refund;
    await w.deps().store.cas('refunds', { _id: r.refundId }, { provider: 'v3' });
    const before = await refundDoc(w, r.refundId);
    await refused(
      decide(r.refundId, 'approve'),
      'CONFIG_INVALID',
      'this order was paid through APIv3, which is not configured: add v3 to WXPAY_KEEP_PROVIDERS and keep its variables set',
    );
    expect(await refundDoc(w, r.refundId)).toEqual(before);
  });

  it('a review names its refund properly and keeps its comment short', async () => {
    await refused(decide('R x', 'approve'), 'INVALID_INPUT', 'refundId has an invalid format');
    await refused(
      decide('R1', 'approve', { comment: '好'.repeat(201) }),
      'INVALID_INPUT',
      'comment must be at most 200 characters',
    );
    await refused(decide('R1', 'approve', { extra: 1 }), 'INVALID_INPUT', 'unexpected field "extra"');
  });
});

describe('the merchant’s list of refunds', () => {
  it('pages of 20 with a cursor, each refund with its order, in either order', async () => {
    const ids: string[] = [];
    for (let o = 0; o < 5; o++) {
      const orderId = await paidOrder(w, 5000);
      for (let i = 0; i < 5; i++) {
        ids.push((await apply(orderId, 10)).refund.refundId);
        w.advance(1000);
      }
    }
    const first = await listRefunds(w.deps(), {}, ADMIN);
    expect(first.items).toHaveLength(20);
    expect(first.items.map((r) => r.refundId)).toEqual([...ids].reverse().slice(0, 20));
    expect(first.items[0]).toMatchObject({ order: { status: 'PAID' }, openid: SHOPPER.openid });
    expect(first.pendingCount).toBe(25);
    const second = await listRefunds(w.deps(), { cursor: first.nextCursor }, ADMIN);
    expect(second.items.map((r) => r.refundId)).toEqual([...ids].reverse().slice(20));
    expect(second.nextCursor).toBeNull();
    const oldest = await listRefunds(w.deps(), { order: 'oldest' }, ADMIN);
    expect(oldest.items.map((r) => r.refundId)).toEqual(ids.slice(0, 20));
    const rest = await listRefunds(w.deps(), { order: 'oldest', cursor: oldest.nextCursor }, ADMIN);
    expect(rest.items.map((r) => r.refundId)).toEqual(ids.slice(20));
    await refused(
      listRefunds(w.deps(), { status: 'NOPE' }, ADMIN),
      'INVALID_INPUT',
      `status must be one of ${[
        'PENDING_REVIEW',
        'WITHDRAWN',
        'REJECTED',
        'APPROVED',
        'PROCESSING',
        'SUCCESS',
        'FAILED',
        'CLOSED',
        'ABNORMAL',
      ].join(', ')}`,
    );
    await refused(listRefunds(w.deps(), {}, SHOPPER), 'FORBIDDEN', 'only the merchant may do this');
    expect((await listRefunds(w.deps(), { status: 'SUCCESS' }, ADMIN)).items).toEqual([]);
  });
});
