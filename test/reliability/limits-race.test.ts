/**
 * The per-caller limits with the interleavings forced, not hoped for: two calls of one
 * shopper that both find the open-orders list full of ended orders and both want the place
 * it frees; a second call of the same cart while the first is still storing its order; the
 * per-minute window on the injected clock.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { admitCall } from '../../cloudfunctions/shared/domain/limits';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import type { AppError } from '../../cloudfunctions/shared/errors';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import type { Store } from '../../cloudfunctions/shared/store';
import { pausePoint } from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await w
    .deps()
    .store.insert('products', { _id: 'p', name: '茶', priceFen: 100, image: '', onSale: true, sort: 0 });
});

const SHOPPER: Caller = {
  openid: 'o_race',
  appid: MERCHANT.appid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
};
const cart = (quantity: number) => ({ items: [{ productId: 'p', quantity }] });

/** Deps whose store stops before the first call that `when` picks. */
function pausedBefore(
  when: (method: string, args: unknown[]) => boolean,
  point: ReturnType<typeof pausePoint>,
): Deps {
  const deps = w.deps();
  let paused = false;
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (!paused && when(String(prop), args)) {
          paused = true;
          await point.wait();
        }
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  }) as Store;
  return { ...deps, store };
}

const payableOrders = async () =>
  (await w.deps().store.find<OrderDoc>('orders', { openid: SHOPPER.openid }, {})).filter(
    (o) => o.status === 'NOTPAY' && o.expiresAtMs > w.now(),
  );

describe('open orders', () => {
  it('two calls racing for the one place a paid order freed: one gets it, the other is refused', async () => {
    const made: string[] = [];
    for (let q = 1; q <= 10; q++) made.push((await createOrder(w.deps(), cart(q), SHOPPER)).orderId);
    // One of them is paid: the list is full, but one place is free once it is looked at.
    expect(await w.deps().store.cas('orders', { _id: made[0]!, status: 'NOTPAY' }, { status: 'PAID' })).toBe(
      true,
    );
    w.advance(61_000); // out of the per-minute window, so only the open orders decide

    // A finds the list full and stops before looking up the listed orders.
    const point = pausePoint();
    const a = createOrder(
      pausedBefore((m, args) => m === 'find' && args[0] === 'orders', point),
      cart(11),
      SHOPPER,
    ).catch((e: AppError) => e);
    await point.arrived;
    // B does the same and wins the place; A then drops the paid order from what it read.
    const b = await createOrder(w.deps(), cart(12), SHOPPER);
    point.release();
    const lost = await a;

    expect(lost).toMatchObject({ code: 'RATE_LIMITED', details: { payOrCancelFirst: 1 } });
    const open = await payableOrders();
    expect(open).toHaveLength(10);
    expect(open.map((o) => o._id)).toContain(b.orderId);
  });
});

describe('the same cart', () => {
  it('a second call while the first is still storing its order gets that order, not a second one', async () => {
    const point = pausePoint();
    const first = createOrder(
      pausedBefore((m, args) => m === 'insert' && args[0] === 'orders', point),
      cart(2),
      SHOPPER,
    );
    await point.arrived;
    // The second call reads the order until it is there; let the first go on once it looks.
    let looked = false;
    const secondDeps = w.deps();
    const store = new Proxy(secondDeps.store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'get') return value;
        return async (c: string, id: string) => {
          const out = await target.get(c, id);
          if (c === 'orders' && !looked) {
            looked = true;
            expect(out).toBeNull(); // the first call has not stored it yet
            point.release();
          }
          return out;
        };
      },
    }) as Store;
    const second = await createOrder({ ...secondDeps, store }, cart(2), SHOPPER);
    const firstResult = await first;

    expect(looked).toBe(true);
    expect(second.orderId).toBe(firstResult.orderId);
    expect(await w.deps().store.find('orders', { openid: SHOPPER.openid }, {})).toHaveLength(1);
    expect([...w.core.ledger.orders.values()].filter((o) => o.openid === SHOPPER.openid)).toHaveLength(1);
  });
});

describe('calls per minute', () => {
  it('count on the injected clock: refused at the limit, allowed again a minute after the oldest', async () => {
    const max = w.config.limits.perMinute.reads;
    for (let i = 0; i < max; i++) {
      await admitCall(w.deps(), 'o_reads', 'reads');
      w.advance(100);
    }
    await expect(admitCall(w.deps(), 'o_reads', 'reads')).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      details: { retryAfterSeconds: Math.ceil((60_000 - max * 100) / 1000) },
    });
    w.advance(60_000 - max * 100);
    await admitCall(w.deps(), 'o_reads', 'reads');
    // An admin's own limit is higher.
    for (let i = 0; i <= max; i++) await admitCall(w.deps(), 'o_admin', 'reads');
  });
});
