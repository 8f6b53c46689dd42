/**
 * The per-caller limits as a shopper meets them, in one process (world.ts): createOrder over
 * its per-minute rate (the refusal's words, its wait and the operator's log line), and calls
 * whose conditional update keeps losing to another change of the same caller's document,
 * which give up after a few tries instead of looping. Runs under `npm test` and
 * `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { admitCall, admitNewOrder, cartKey } from '../../cloudfunctions/shared/domain/limits';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import type { Store } from '../../cloudfunctions/shared/store';
import { logged, OTHER, pauseBefore, pausePoint, refused, SHOPPER, stock } from './shop';
import { useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await stock(w, 'tea', 100);
});

const cart = (quantity: number) => ({ items: [{ productId: 'tea', quantity }] });
const orders = () => w.deps().store.find('orders', {}, { limit: 100 });
const limitsDoc = async (openid: string) =>
  (await w
    .deps()
    .store.get<{ calls: { createOrder: number[] }; orders: { id: string }[] }>('caller_limits', openid))!;

/** Deps allowing `perMinute` createOrder calls a minute. */
function createOrderRate(perMinute: number): Deps {
  const deps = w.deps();
  const limits = {
    ...deps.config.limits,
    perMinute: { ...deps.config.limits.perMinute, createOrder: perMinute },
  };
  return { ...deps, config: { ...deps.config, limits } };
}

/**
 * A store whose compare-and-sets on caller_limits always lose, as if the same caller's other
 * calls changed the document each time just before; it fails loudly past `cap` tries, so a
 * caller that would try for ever fails the test instead of hanging it.
 */
function losingLimits(deps: Deps, cap = 10): { deps: Deps; attempts: () => number } {
  let attempts = 0;
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'cas') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        if (args[0] !== 'caller_limits')
          return (value as (...a: unknown[]) => Promise<boolean>).apply(target, args);
        if (++attempts > cap) throw new Error(`still trying after ${cap} lost updates`);
        return false;
      };
    },
  }) as Store;
  return { deps: { ...deps, store }, attempts: () => attempts };
}

describe('createOrder calls per minute', () => {
  it('over the rate: RATE_LIMITED with the limit in words, the wait until the oldest call leaves the minute, and a log line', async () => {
    await createOrder(createOrderRate(2), cart(1), SHOPPER);
    w.advance(10_000);
    await createOrder(createOrderRate(2), cart(2), SHOPPER);
    w.advance(10_000);
    w.logs.length = 0;
    const third = createOrder(createOrderRate(2), cart(3), SHOPPER);
    await refused(third, 'RATE_LIMITED', 'too many createOrder calls: at most 2 a minute');
    await expect(third).rejects.toMatchObject({ details: { retryAfterSeconds: 40 } });
    expect(logged(w, 'limits.refused')).toEqual([
      {
        level: 'warn',
        event: 'limits.refused',
        fields: { openid: SHOPPER.openid, scope: 'createOrder', retryAfterMs: 40_000 },
      },
    ]);
    // Refused before any order was stored or sent to WeChat.
    expect(await orders()).toHaveLength(2);
    expect(w.core.ledger.orders.size).toBe(2);
    // A minute after the first call, one more is allowed.
    w.advance(40_000);
    await createOrder(createOrderRate(2), cart(3), SHOPPER);
    expect(await orders()).toHaveLength(3);
  });
});

describe('admitting a new order', () => {
  it('answers new for a first order and another cart, and the listed order for the same cart', async () => {
    const tea = cartKey([{ productId: 'tea', quantity: 1 }]);
    const cake = cartKey([{ productId: 'cake', quantity: 1 }]);
    const untilMs = w.now() + 30 * 60_000;
    const admit = (orderId: string, cart: string) =>
      admitNewOrder(w.deps(), SHOPPER.openid!, { orderId, cart, untilMs });
    expect(await admit('o1', tea)).toEqual({ kind: 'new' });
    w.advance(1000);
    expect(await admit('o2', cake)).toEqual({ kind: 'new' });
    w.advance(1000);
    expect(await admit('o3', tea)).toEqual({
      kind: 'same',
      entry: { id: 'o1', cart: tea, atMs: w.now() - 2000, untilMs },
    });
  });

  it('with the same-cart window off, the same cart twice is two orders, even from an instance whose clock is behind', async () => {
    const deps = (): Deps => {
      const d = w.deps();
      return { ...d, config: { ...d.config, limits: { ...d.config.limits, sameCartMs: 0 } } };
    };
    const first = await createOrder(deps(), cart(1), SHOPPER);
    w.advance(-1000);
    const second = await createOrder(deps(), cart(1), SHOPPER);
    expect(second.orderId).not.toBe(first.orderId);
    expect(await orders()).toHaveLength(2);
  });
});

describe('a full list of open orders', () => {
  it('whose orders have all ended is cleared without looking any of them up', async () => {
    const shortLived = (): Deps => ({ ...w.deps(), config: { ...w.config, orderExpireMs: 90_000 } });
    for (let q = 1; q <= w.config.limits.openOrders; q++) await createOrder(shortLived(), cart(q), SHOPPER);
    w.advance(90_000); // the very millisecond they all end
    const deps = w.deps();
    let lookups = 0;
    const store = new Proxy(deps.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (prop === 'find' && args[0] === 'orders') lookups++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }) as Store;
    const placed = await createOrder({ ...deps, store }, cart(99), SHOPPER);
    expect(lookups).toBe(0);
    const doc = await w.deps().store.get<{ orders: { id: string }[] }>('caller_limits', SHOPPER.openid!);
    expect(doc?.orders.map((e) => e.id)).toEqual([placed.orderId]);
  });
});

describe('a full list of orders still open', () => {
  it('refuses the next one, looking up the caller’s own orders (not whichever come first)', async () => {
    // Another shopper's orders were stored first.
    for (let q = 1; q <= 3; q++) await createOrder(w.deps(), cart(q), OTHER);
    for (let q = 1; q <= w.config.limits.openOrders; q++) await createOrder(w.deps(), cart(q), SHOPPER);
    w.advance(61_000); // out of the per-minute window, and past the grace of an order on its way
    await refused(
      createOrder(w.deps(), cart(99), SHOPPER),
      'RATE_LIMITED',
      `${w.config.limits.openOrders} unpaid orders are open (at most ${w.config.limits.openOrders}): pay or cancel 1 of them first`,
    );
    expect(logged(w, 'limits.open_orders')).toEqual([
      {
        level: 'warn',
        event: 'limits.open_orders',
        fields: { openid: SHOPPER.openid, open: w.config.limits.openOrders, max: w.config.limits.openOrders },
      },
    ]);
    // The refused call counts against the caller's per-minute limit too.
    expect((await limitsDoc(SHOPPER.openid!)).calls.createOrder).toHaveLength(w.config.limits.openOrders + 1);
    expect((await limitsDoc(OTHER.openid!)).calls.createOrder).toHaveLength(3);
  });

  it('one of them paid: the place it frees goes to the next order, which is counted as a call', async () => {
    const made: string[] = [];
    for (let q = 1; q <= w.config.limits.openOrders; q++)
      made.push((await createOrder(w.deps(), cart(q), SHOPPER)).orderId);
    await w.deps().store.cas('orders', { _id: made[0]! }, { status: 'PAID' });
    w.advance(61_000);
    const untilMs = w.now() + 30 * 60_000;
    expect(await admitNewOrder(w.deps(), SHOPPER.openid!, { orderId: 'o_next', cart: 'k', untilMs })).toEqual(
      {
        kind: 'new',
      },
    );
    const doc = await limitsDoc(SHOPPER.openid!);
    expect(doc.calls.createOrder).toHaveLength(w.config.limits.openOrders + 1);
    expect(doc.orders.map((e) => e.id)).toEqual([...made.slice(1), 'o_next']);
  });

  it('a call counted meanwhile keeps the freed place from a caller already at the rate', async () => {
    // One order a minute, one open at a time.
    const tight = (): Deps => {
      const d = w.deps();
      const limits = {
        ...d.config.limits,
        openOrders: 1,
        perMinute: { ...d.config.limits.perMinute, createOrder: 1 },
      };
      return { ...d, config: { ...d.config, limits } };
    };
    const first = await createOrder(tight(), cart(1), SHOPPER);
    await w.deps().store.cas('orders', { _id: first.orderId }, { status: 'PAID' });
    w.advance(61_000);
    // The next order finds the list full and its order paid; it stops before taking the place.
    const point = pausePoint();
    const next = createOrder(
      pauseBefore(
        tight(),
        (c) => c.method === 'cas' && c.collection === 'caller_limits' && 'ordersV' in (c.args[1] as object),
        point,
      ),
      cart(2),
      SHOPPER,
    );
    await point.arrived;
    // Meanwhile another call of the same caller is counted (a repeated cart is counted so).
    await admitCall(tight(), SHOPPER.openid!, 'createOrder');
    point.release();
    await refused(next, 'RATE_LIMITED', 'too many createOrder calls: at most 1 a minute');
    expect(await orders()).toHaveLength(1);
  });

  it('an order that could not be made gives its place back, in the caller’s own list', async () => {
    await createOrder(w.deps(), cart(1), OTHER);
    await refused(
      createOrder(w.deps(), { items: [{ productId: 'nothing', quantity: 1 }] }, SHOPPER),
      'INVALID_INPUT',
      'product nothing is not on sale',
    );
    const mine = await limitsDoc(SHOPPER.openid!);
    expect(mine.orders).toEqual([]);
    expect(mine.calls.createOrder).toHaveLength(1);
    // The other caller's list is left as it was, version and all.
    expect(await limitsDoc(OTHER.openid!)).toMatchObject({ orders: [expect.any(Object)], ordersV: 1 });
  });
});

describe('a caller whose limits document keeps changing under the call', () => {
  it('createOrder gives up after four lost updates: RATE_LIMITED, try again in a second, no order', async () => {
    await createOrder(w.deps(), cart(1), SHOPPER);
    const losing = losingLimits(w.deps());
    const call = createOrder(losing.deps, cart(2), SHOPPER);
    await refused(call, 'RATE_LIMITED', 'too many concurrent createOrder calls, please try again');
    await expect(call).rejects.toMatchObject({ details: { retryAfterSeconds: 1 } });
    expect(losing.attempts()).toBe(4);
    expect(await orders()).toHaveLength(1);
    expect(w.core.ledger.orders.size).toBe(1);
  });

  it('any other counted call gives up after four lost updates too, logged like a rate refusal', async () => {
    await admitCall(w.deps(), SHOPPER.openid!, 'reads');
    w.logs.length = 0;
    // A caller's first call writes the document every later call updates.
    expect(await w.deps().store.get('caller_limits', SHOPPER.openid!)).toEqual({
      _id: SHOPPER.openid,
      calls: { reads: [w.now()] },
      orders: [],
      ordersV: 0,
    });
    const losing = losingLimits(w.deps());
    const call = admitCall(losing.deps, SHOPPER.openid!, 'reads');
    await refused(call, 'RATE_LIMITED', 'too many reads calls: at most 120 a minute');
    await expect(call).rejects.toMatchObject({ details: { retryAfterSeconds: 1 } });
    expect(losing.attempts()).toBe(4);
    expect(logged(w, 'limits.refused')).toEqual([
      {
        level: 'warn',
        event: 'limits.refused',
        fields: { openid: SHOPPER.openid, scope: 'reads', retryAfterMs: 1000 },
      },
    ]);
  });
});
