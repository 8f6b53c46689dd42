import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../cloudfunctions/shared/config';
import {
  type CallerLimitsDoc,
  cartKey,
  LIMIT_WINDOW_MS,
  limitsFor,
  type OpenOrderEntry,
  ORDER_INSERT_GRACE_MS,
  openOrdersRefusal,
  rateWaitMs,
  sameCartEntry,
  stillOpen,
} from '../../../cloudfunctions/shared/domain/limits';
import { toApiError } from '../../../cloudfunctions/shared/runtime/callable';

const NOW = Date.UTC(2026, 0, 15, 4, 0, 0);
const doc = (patch: Partial<CallerLimitsDoc>): CallerLimitsDoc => ({ _id: 'o_x', ...patch });
const entry = (id: string, patch: Partial<OpenOrderEntry> = {}): OpenOrderEntry => ({
  id,
  cart: 'c',
  atMs: NOW - 60_000,
  untilMs: NOW + 30 * 60_000,
  ...patch,
});

describe('calls per minute (sliding log)', () => {
  it('allows while fewer than the limit fall within the last minute', () => {
    const calls = [NOW - 1000, NOW - 2000, NOW - LIMIT_WINDOW_MS - 1];
    expect(rateWaitMs(doc({ calls: { reads: calls } }), 'reads', NOW, 3)).toBeUndefined();
    expect(rateWaitMs(doc({}), 'reads', NOW, 1)).toBeUndefined();
  });

  it('refuses at the limit until the oldest counted call leaves the window', () => {
    const calls = [NOW - 1000, NOW - 20_000, NOW - 45_000];
    expect(rateWaitMs(doc({ calls: { reads: calls } }), 'reads', NOW, 3)).toBe(15_000);
    // Kinds are counted apart.
    expect(rateWaitMs(doc({ calls: { reads: calls } }), 'applyRefund', NOW, 3)).toBeUndefined();
  });

  it('a call exactly a minute old no longer counts, and the stored order of the times does not matter', () => {
    expect(rateWaitMs(doc({ calls: { reads: [NOW - LIMIT_WINDOW_MS] } }), 'reads', NOW, 1)).toBeUndefined();
    expect(rateWaitMs(doc({ calls: { reads: [NOW - LIMIT_WINDOW_MS + 1] } }), 'reads', NOW, 1)).toBe(1);
    const shuffled = [NOW - 45_000, NOW - 1000, NOW - 20_000];
    expect(rateWaitMs(doc({ calls: { reads: shuffled } }), 'reads', NOW, 2)).toBe(40_000);
    expect(rateWaitMs(doc({ calls: { reads: shuffled } }), 'reads', NOW, 3)).toBe(15_000);
  });
});

describe('the same cart', () => {
  it('is the same key whatever the order of its lines, and another with other quantities', () => {
    const a = cartKey([
      { productId: 'tea', quantity: 1 },
      { productId: 'cup', quantity: 2 },
    ]);
    expect(
      cartKey([
        { productId: 'cup', quantity: 2 },
        { productId: 'tea', quantity: 1 },
      ]),
    ).toBe(a);
    expect(cartKey([{ productId: 'tea', quantity: 1 }])).not.toBe(a);
    expect(
      cartKey([
        { productId: 'tea', quantity: 2 },
        { productId: 'cup', quantity: 1 },
      ]),
    ).not.toBe(a);
  });

  it('keeps lines apart, so two carts never run together into one key; 22 URL-safe characters', () => {
    const one = cartKey([
      { productId: '1', quantity: 1 },
      { productId: '2b', quantity: 3 },
    ]);
    const other = cartKey([
      { productId: '1', quantity: 12 },
      { productId: 'b', quantity: 3 },
    ]);
    expect(one).not.toBe(other);
    expect(one).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('finds the newest order of that cart within the window only', () => {
    const d = doc({
      orders: [
        entry('old', { cart: 'k', atMs: NOW - 31_000 }),
        entry('new', { cart: 'k', atMs: NOW - 2_000 }),
        entry('other', { cart: 'z', atMs: NOW - 1_000 }),
      ],
    });
    expect(sameCartEntry(d, 'k', NOW, 30_000)?.id).toBe('new');
    expect(sameCartEntry(d, 'k', NOW, 1_000)).toBeUndefined();
    expect(sameCartEntry(d, 'k', NOW, 0)).toBeUndefined();
  });

  it('takes the newest of several within the window, wherever it is listed; none at the window’s edge or without a list', () => {
    const d = doc({
      orders: [
        entry('first', { cart: 'k', atMs: NOW - 20_000 }),
        entry('second', { cart: 'k', atMs: NOW - 5_000 }),
        entry('edge', { cart: 'e', atMs: NOW - 30_000 }),
      ],
    });
    expect(sameCartEntry(d, 'k', NOW, 30_000)?.id).toBe('second');
    expect(sameCartEntry(doc({ orders: [...d.orders!].reverse() }), 'k', NOW, 30_000)?.id).toBe('second');
    expect(sameCartEntry(d, 'e', NOW, 30_000)).toBeUndefined();
    // Turned off, even for an order listed by an instance whose clock runs ahead.
    expect(
      sameCartEntry(doc({ orders: [entry('ahead', { cart: 'k', atMs: NOW + 1000 })] }), 'k', NOW, 0),
    ).toBeUndefined();
    // A document written before the open-orders list existed.
    expect(sameCartEntry(doc({}), 'k', NOW, 30_000)).toBeUndefined();
  });
});

describe('open orders', () => {
  it('keep their place while unpaid and payable, or while still on their way to the database', () => {
    const listed = [
      entry('open'),
      entry('paid'),
      entry('closed'),
      entry('expired', { untilMs: NOW }),
      entry('coming', { atMs: NOW - 1000 }),
      entry('never-came', { atMs: NOW - ORDER_INSERT_GRACE_MS }),
    ];
    const found = new Map([
      ['open', { status: 'NOTPAY' as const, expiresAtMs: NOW + 1 }],
      ['paid', { status: 'PAID' as const, expiresAtMs: NOW + 1 }],
      ['closed', { status: 'CLOSED' as const, expiresAtMs: NOW + 1 }],
      ['expired', { status: 'NOTPAY' as const, expiresAtMs: NOW }],
    ]);
    expect(stillOpen(listed, found, NOW).map((e) => e.id)).toEqual(['open', 'coming']);
  });

  it('an order holds no place after its end, even one listed a moment ago and not found yet', () => {
    const listed = [
      entry('ended', { atMs: NOW - 1000, untilMs: NOW }),
      entry('ending', { atMs: NOW - 1000, untilMs: NOW + 1 }),
    ];
    expect(stillOpen(listed, new Map(), NOW).map((e) => e.id)).toEqual(['ending']);
  });

  it('a refusal says how many to pay or cancel, and when the first would expire anyway', () => {
    const open = [entry('a', { untilMs: NOW + 90_500 }), entry('b'), entry('c')];
    expect(openOrdersRefusal(open, 2, NOW).message).toBe(
      '3 unpaid orders are open (at most 2): pay or cancel 2 of them first',
    );
    const e = toApiError(openOrdersRefusal(open, 2, NOW), 'createOrder');
    expect(e).toMatchObject({ code: 'RATE_LIMITED', payOrCancelFirst: 2, retryAfterSeconds: 91 });
  });
});

describe('configuration', () => {
  const BASE = { ADMIN_OPENIDS: 'o_admin' };

  it('has safe defaults, and admins have their own, higher limits', () => {
    const config = loadConfig(BASE);
    expect(config.limits).toEqual({
      perMinute: { createOrder: 20, applyRefund: 10, reads: 120 },
      adminPerMinute: 300,
      openOrders: 10,
      adminOpenOrders: 50,
      sameCartMs: 30_000,
    });
    const shopper = limitsFor({ config }, 'o_shopper');
    const admin = limitsFor({ config }, 'o_admin');
    expect([shopper.perMinute('createOrder'), shopper.openOrders]).toEqual([20, 10]);
    expect([admin.perMinute('createOrder'), admin.perMinute('reads'), admin.openOrders]).toEqual([
      300, 300, 50,
    ]);
  });

  it('refuses at cold start what is out of range, or admins below shoppers', () => {
    const bad = (env: Record<string, string>) => () => loadConfig({ ...BASE, ...env });
    expect(bad({ LIMIT_OPEN_ORDERS: '0' })).toThrow(/LIMIT_OPEN_ORDERS must be a whole number from 1 to 100/);
    expect(bad({ LIMIT_READS_PER_MINUTE: '1001' })).toThrow(/LIMIT_READS_PER_MINUTE/);
    expect(bad({ LIMIT_CREATE_ORDER_PER_MINUTE: 'ten' })).toThrow(/LIMIT_CREATE_ORDER_PER_MINUTE/);
    expect(bad({ LIMIT_SAME_CART_SECONDS: '-1' })).toThrow(/LIMIT_SAME_CART_SECONDS/);
    expect(bad({ LIMIT_READS_PER_MINUTE: '500' })).toThrow(/LIMIT_ADMIN_PER_MINUTE \(300\) is below/);
    expect(bad({ LIMIT_OPEN_ORDERS: '60' })).toThrow(/LIMIT_ADMIN_OPEN_ORDERS \(50\) is below/);
    expect(loadConfig({ ...BASE, LIMIT_SAME_CART_SECONDS: '0' }).limits.sameCartMs).toBe(0);
  });
});
