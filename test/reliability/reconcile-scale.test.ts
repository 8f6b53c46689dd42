/**
 * Reconcile with a crowd of due work: it asks WeChat about several items at once, each under
 * its own claim, so two runs that read the same page never ask about one order twice; and it
 * takes the kinds of work in turns, so unpaid orders that outnumber a run's budget do not keep
 * a refund waiting. The interleavings are forced (a barrier at WeChat, the second run's read
 * before the first run's claims), and WeChat's latency moves the clock the run budgets by.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { handlePayNotify } from '../../cloudfunctions/shared/domain/notify';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { RECONCILE_CONCURRENCY, reconcile } from '../../cloudfunctions/shared/domain/reconcile';
import { applyRefund, approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import type { PaymentProvider } from '../../cloudfunctions/shared/providers/port';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import type { Store } from '../../cloudfunctions/shared/store';
import { MERCHANT, useWorld } from './world';

const w = useWorld();
beforeEach(async () => {
  await w.reset();
  await w
    .deps()
    .store.insert('products', { _id: 'p', name: '茶', priceFen: 990, image: '', onSale: true, sort: 0 });
});

const caller = (openid: string): Caller => ({
  openid,
  appid: MERCHANT.appid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
});

async function unpaidOrders(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push(
      (await createOrder(w.deps(), { items: [{ productId: 'p', quantity: 1 }] }, caller(`o_${i}`))).orderId,
    );
  return ids;
}

/** A refund WeChat has settled while its notify was lost: PROCESSING here, due for refundquery. */
async function processingRefund(openid: string): Promise<string> {
  const created = await createOrder(w.deps(), { items: [{ productId: 'p', quantity: 1 }] }, caller(openid));
  w.core.engine.pay(created.payment as never);
  for (const n of w.outbox.splice(0)) await handlePayNotify(w.deps(), w.delivery(n));
  const r = (
    await applyRefund(
      w.deps(),
      { orderId: created.orderId, refundFee: 500, reason: 'x', requestId: `req-${openid}-0001` },
      caller(openid),
    )
  ).refund;
  await approveRefund(w.deps(), { refundId: r.refundId, decision: 'approve' }, caller('o_admin'));
  expect(w.core.engine.settleOne(r.refundId, 'SUCCESS')).toBe(true);
  w.outbox.length = 0;
  return r.refundId;
}

/** Deps whose WeChat port and store run `hooks` around the calls. */
function hooked(
  deps: Deps,
  hooks: {
    orderQuery?: (id: string) => Promise<void>;
    beforeCas?: () => Promise<void>;
    afterFind?: () => void;
  },
): Deps {
  const port = deps.wxpay!.current;
  const current: PaymentProvider = {
    ...port,
    queryPayment: async (id, o) => {
      await hooks.orderQuery?.(id);
      return port.queryPayment(id, o);
    },
  };
  const wxpay = { current, byName: { ...deps.wxpay!.byName, [port.name]: current } };
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'cas' && hooks.beforeCas)
        return async (...args: unknown[]) => {
          await hooks.beforeCas!();
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      if (prop === 'find' && hooks.afterFind)
        return async (...args: unknown[]) => {
          const out = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          hooks.afterFind!();
          return out;
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Store;
  return { ...deps, wxpay, store };
}

describe('reconcile with a crowd of due work', () => {
  it('asks about several orders at once, and two runs reading one page ask about each order once', async () => {
    const ids = await unpaidOrders(2 * RECONCILE_CONCURRENCY + 20);
    w.advance(2 * 60_000); // past the notify grace: all due
    const asked = new Map<string, number>();
    let inFlight = 0;
    let peak = 0;
    // The first queries wait until both runs have all they may have in flight, or 2 s.
    const full = 2 * RECONCILE_CONCURRENCY;
    let held = 0;
    let openBarrier!: () => void;
    const barrier = new Promise<void>((r) => {
      openBarrier = r;
    });
    const orderQuery = async (id: string) => {
      asked.set(id, (asked.get(id) ?? 0) + 1);
      inFlight++;
      peak = Math.max(peak, inFlight);
      if (held < full) {
        held++;
        if (held === full) openBarrier();
        await Promise.race([barrier, new Promise((r) => setTimeout(r, 2000))]);
      }
      inFlight--;
    };
    // Neither run claims anything before both have read the first page of due orders.
    let finds = 0;
    let bothRead!: () => void;
    const read = new Promise<void>((r) => {
      bothRead = r;
    });
    const hooks = {
      orderQuery,
      afterFind: () => {
        if (++finds === 2) bothRead();
      },
      beforeCas: () => read,
    };
    const [a, b] = await Promise.all([
      reconcile(hooked(w.deps(), hooks)),
      reconcile(hooked(w.deps(), hooks)),
    ]);
    expect(peak).toBe(full);
    expect(a.ordersChecked + b.ordersChecked).toBe(ids.length);
    expect(a.ordersChecked).toBeGreaterThan(0);
    expect(b.ordersChecked).toBeGreaterThan(0);
    expect([...asked.keys()].sort()).toEqual([...ids].sort());
    expect([...asked.values()].every((n) => n === 1)).toBe(true);
    expect(a.errors + b.errors).toBe(0);
  });

  it('pages through due items that share one due time, each looked at once', async () => {
    const ids = await unpaidOrders(25);
    // Orders made in one burst can share a due time to the millisecond.
    const deps = w.deps();
    const dueAt = w.now() + 70_000;
    for (const id of ids) await deps.store.cas('orders', { _id: id }, { nextCheckAtMs: dueAt });
    w.advance(2 * 60_000);
    const asked: string[] = [];
    const report = await reconcile(
      hooked(w.deps(), {
        orderQuery: async (id) => {
          asked.push(id);
        },
      }),
      { batch: 10, concurrency: 3 },
    );
    expect(report.ordersChecked).toBe(25);
    expect(asked.sort()).toEqual([...ids].sort());
  });

  it('takes the kinds of work in turns: unpaid orders that outnumber the run do not keep a due refund waiting', async () => {
    const refunds = [await processingRefund('o_refund_a'), await processingRefund('o_refund_b')];
    await unpaidOrders(80);
    w.advance(5 * 60_000);
    // Every orderquery takes 200 ms of the run's clock: a 6 s budget covers about 30 of them.
    const calls: string[] = [];
    const deps = hooked(w.deps(), {
      orderQuery: async () => {
        calls.push('order');
        w.advance(200);
      },
    });
    const inner = deps.wxpay!.current;
    const current: PaymentProvider = {
      ...inner,
      queryRefund: (id, o) => {
        calls.push('refund');
        return inner.queryRefund(id, o);
      },
    };
    deps.wxpay = { current, byName: { ...deps.wxpay!.byName, [inner.name]: current } };
    const start = w.now();
    deps.budget = { endsAtMs: start + 10_000, callDeadlineMs: start + 8_000 };
    // One at a time, so the order in which the run takes its work is the order of the calls.
    const report = await reconcile(deps, { batch: 10, concurrency: 1 });
    expect(report.outOfTime).toBe(true);
    expect(report.ordersChecked).toBeLessThan(80);
    expect(report.refundsFinalized).toBe(2);
    expect(calls.slice(0, 4)).toEqual(['order', 'refund', 'order', 'refund']);
    for (const id of refunds)
      expect((await w.deps().store.get<RefundDoc>('refunds', id))?.status).toBe('SUCCESS');
  });
});
