/**
 * Looking refunds up through the stack: getRefund by id (the shopper's view for the owner, the
 * merchant's for an admin), the merchant's queue oldest first with its pending count and a
 * search by order number, and the preset reasons an application is made with.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListRefundsResult } from '../../cloudfunctions/shared/contract';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  buyAndPay,
  newRequestId,
  OTHER,
  ROOMY_LIMITS,
  refund,
  SHOPPER,
  testStack,
  unwrap,
} from './support';

let stack: Stack;
beforeAll(async () => {
  // Many applications by one shopper within a minute: the per-caller limits are not what this tests.
  stack = await testStack({ env: ROOMY_LIMITS });
});
afterAll(() => stack?.close());

async function apply(orderId: string, refundFee: number, reasonCode = 'QUALITY', reason?: string) {
  return unwrap(
    await stack.call(
      'applyRefund',
      { orderId, refundFee, reasonCode, ...(reason ? { reason } : {}), requestId: newRequestId() },
      SHOPPER,
    ),
  ).refund;
}

describe('getRefund', () => {
  it('gives the owner the shopper’s view and the merchant every reason and the history, both with the order', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const r = await apply(orderId, 900);
    stack.simulator.setFaults({ refundError: 'NOTENOUGH' });
    try {
      unwrap(await stack.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN));
    } finally {
      stack.simulator.setFaults({ refundError: null });
    }
    expect((await refund(stack, r.refundId)).status).toBe('FAILED');

    const mine = unwrap(await stack.call('getRefund', { refundId: r.refundId }, SHOPPER));
    expect(mine.refund).toMatchObject({ refundId: r.refundId, status: 'FAILED', refundFee: 900 });
    expect(mine.order).toMatchObject({ orderId, status: 'PAID' });
    expect(mine.order.transactionId).toBeTruthy();
    // WeChat's reason is about the merchant's balance: never in the shopper's view.
    expect(JSON.stringify(mine)).not.toContain('NOTENOUGH');
    expect(mine.refund.history).toBeUndefined();
    expect(mine.refund.openid).toBeUndefined();

    const merchant = unwrap(await stack.call('getRefund', { refundId: r.refundId }, ADMIN));
    expect(merchant.refund.failReason).toContain('NOTENOUGH');
    expect(merchant.refund.openid).toBe(SHOPPER);
    expect(merchant.refund.history?.map((h) => h.status)).toEqual(['PENDING_REVIEW', 'APPROVED', 'FAILED']);
    expect(merchant.order.orderId).toBe(orderId);
  });

  it('shows the refund as it is now, and refuses other shoppers and unknown ids', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'chopsticks');
    const r = await apply(orderId, 990);
    expect(unwrap(await stack.call('getRefund', { refundId: r.refundId }, SHOPPER)).refund.status).toBe(
      'PENDING_REVIEW',
    );
    unwrap(await stack.call('approveRefund', { refundId: r.refundId, decision: 'approve' }, ADMIN));
    stack.simulator.settleRefunds();
    await stack.simulator.flushNotifies();
    const now = unwrap(await stack.call('getRefund', { refundId: r.refundId }, SHOPPER));
    expect(now.refund.status).toBe('SUCCESS');
    expect(now.refund.submittedAtMs).toBeGreaterThan(0);
    expect(now.refund.finishedAtMs).toBeGreaterThanOrEqual(now.refund.submittedAtMs!);

    expect(await stack.call('getRefund', { refundId: r.refundId }, OTHER)).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    for (const who of [SHOPPER, ADMIN]) {
      expect(await stack.call('getRefund', { refundId: 'Rnosuchrefund' }, who)).toMatchObject({
        ok: false,
        error: { code: 'NOT_FOUND' },
      });
    }
  });
});

describe('listRefunds for the review queue', () => {
  it('lists oldest first across pages, counts the pending ones, and finds an order’s refunds by its number', async () => {
    const orderA = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const orderB = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const before = unwrap(await stack.call('listRefunds', { status: 'PENDING_REVIEW' }, ADMIN)).pendingCount;
    const made: Awaited<ReturnType<typeof apply>>[] = [];
    for (let i = 0; i < 3; i++) made.push(await apply(orderA, 100 + i));
    made.push(await apply(orderB, 200));
    unwrap(
      await stack.call(
        'approveRefund',
        { refundId: made[1]!.refundId, decision: 'reject', comment: '不符' },
        ADMIN,
      ),
    );

    const first = unwrap(
      await stack.call('listRefunds', { status: 'PENDING_REVIEW', order: 'oldest' }, ADMIN),
    );
    expect(first.pendingCount).toBe(before + 3);
    const all = [...first.items];
    let cursor = first.nextCursor;
    while (cursor) {
      const page = unwrap(
        await stack.call('listRefunds', { status: 'PENDING_REVIEW', order: 'oldest', cursor }, ADMIN),
      );
      all.push(...page.items);
      cursor = page.nextCursor;
    }
    const times = all.map((r) => r.createdAtMs);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const mine = all.filter((r) => made.some((m) => m.refundId === r.refundId)).map((r) => r.refundId);
    expect(mine).toEqual([made[0]!.refundId, made[2]!.refundId, made[3]!.refundId]);

    const newest = unwrap(await stack.call('listRefunds', { status: 'PENDING_REVIEW' }, ADMIN));
    expect(newest.items[0]?.refundId).toBe(made[3]!.refundId);

    const search = unwrap(await stack.call('listRefunds', { orderId: orderA }, ADMIN));
    expect(search.items.map((r) => r.refundId).sort()).toEqual(
      [made[0]!.refundId, made[1]!.refundId, made[2]!.refundId].sort(),
    );
    expect(search.items.every((r) => r.order?.orderId === orderA)).toBe(true);
    expect(unwrap(await stack.call('listRefunds', { orderId: 'nosuchorder' }, ADMIN)).items).toEqual([]);
    expect(await stack.call('listRefunds', { order: 'random' } as never, ADMIN)).toMatchObject({
      ok: false,
      error: { code: 'INVALID_INPUT' },
    });
  });
});

describe('listRefunds paging', () => {
  it('pages oldest first without skipping or repeating, ties included, and refuses a cursor of the other direction', async () => {
    // More refunds than one page (20), several made in the same millisecond.
    const t0 = Date.now() - 3_600_000;
    const docs = Array.from({ length: 45 }, (_, i) => ({
      _id: `Rpaging${String(i).padStart(3, '0')}`,
      orderId: 'paging-order',
      openid: SHOPPER,
      refundFee: 1,
      totalFee: 100,
      reason: 'paging',
      status: 'REJECTED',
      createdAtMs: t0 + Math.floor(i / 3),
      updatedAtMs: t0,
      leaseUntilMs: 0,
      submitAttempts: 0,
      history: [],
    }));
    await stack.db.insertMany('refunds', [...docs].reverse());
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    let firstCursor: string | null = null;
    do {
      const page: ListRefundsResult = unwrap(
        await stack.call(
          'listRefunds',
          { orderId: 'paging-order', order: 'oldest', ...(cursor ? { cursor } : {}) },
          ADMIN,
        ),
      );
      seen.push(...page.items.map((r) => r.refundId));
      cursor = page.nextCursor;
      firstCursor ??= cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(docs.map((d) => d._id));
    expect(
      await stack.call('listRefunds', { orderId: 'paging-order', cursor: firstCursor! }, ADMIN),
    ).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
  });
});

describe('refund reasons', () => {
  it('offers the shop’s presets, keeps the code on the refund and the label with the note as its reason', async () => {
    const offered = unwrap(await stack.call('refundReasons', {}, SHOPPER));
    expect(offered.apply.map((r) => r.code)).toContain('QUALITY');
    expect(offered.apply.find((r) => r.code === 'OTHER')).toMatchObject({ noteRequired: true });
    expect(offered.reject).toEqual([]);
    expect(unwrap(await stack.call('refundReasons', {}, ADMIN)).reject.length).toBeGreaterThan(0);

    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    const quality = offered.apply.find((r) => r.code === 'QUALITY')!;
    const withNote = await apply(orderId, 100, 'QUALITY', '杯子有裂纹');
    expect(withNote).toMatchObject({ reasonCode: 'QUALITY', reason: `${quality.label}：杯子有裂纹` });
    expect((await refund(stack, withNote.refundId)).reasonCode).toBe('QUALITY');
    const bare = await apply(orderId, 100, 'NOT_WANTED');
    expect(bare.reason).toBe(offered.apply.find((r) => r.code === 'NOT_WANTED')!.label);
    // The merchant's queue carries the code for statistics.
    const listed = unwrap(await stack.call('listRefunds', { orderId }, ADMIN)).items;
    expect(listed.map((r) => r.reasonCode).sort()).toEqual(['NOT_WANTED', 'QUALITY']);

    // Free text alone is OTHER, as older clients send it.
    const free = unwrap(
      await stack.call(
        'applyRefund',
        { orderId, refundFee: 100, reason: '不想要了', requestId: newRequestId() },
        SHOPPER,
      ),
    ).refund;
    expect(free).toMatchObject({ reasonCode: 'OTHER', reason: '不想要了' });
    for (const event of [{ reasonCode: 'OTHER' }, { reasonCode: 'NOT_A_PRESET', reason: 'x' }, {}]) {
      expect(
        await stack.call(
          'applyRefund',
          { orderId, refundFee: 100, requestId: newRequestId(), ...event },
          SHOPPER,
        ),
      ).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    }
  });
});
