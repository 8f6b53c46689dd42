/**
 * Helpers for the in-process domain tests (domain-*.test.ts) over world.ts: a catalogue, a
 * shopper and an admin, paying through the simulator's cashier, delivering what WeChat sent,
 * and stores that pause, fail or die at a chosen database request, so an interleaving or a
 * crash between two writes is forced rather than hoped for.
 */
import { expect } from 'vitest';
import type { BillSource } from '../../cloudfunctions/shared/domain/billcheck';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { OrderDoc, PaymentEventDoc, RefundDoc } from '../../cloudfunctions/shared/domain/model';
import { handleNotification } from '../../cloudfunctions/shared/domain/notify';
import { createOrder } from '../../cloudfunctions/shared/domain/orders';
import { applyRefund } from '../../cloudfunctions/shared/domain/refunds';
import type { PaymentProvider } from '../../cloudfunctions/shared/providers/port';
import type { Caller } from '../../cloudfunctions/shared/runtime/callable';
import type { Store } from '../../cloudfunctions/shared/store';
import { toXml, withSign } from '../../cloudfunctions/shared/wxpay';
import { Killed, MERCHANT, type World } from './world';

export const SHOPPER: Caller = {
  openid: 'o_shopper',
  appid: MERCHANT.appid,
  clientIp: '127.0.0.1',
  source: 'wx_client',
};
export const OTHER: Caller = { ...SHOPPER, openid: 'o_other' };
export const ADMIN: Caller = { ...SHOPPER, openid: 'o_admin' };

export async function stock(w: World, id: string, priceFen: number, onSale = true): Promise<void> {
  await w
    .deps()
    .store.insert('products', { _id: id, name: `商品${id}`, priceFen, image: '', onSale, sort: 0 });
}

export const orderDoc = async (w: World, id: string) => (await w.deps().store.get<OrderDoc>('orders', id))!;
export const refundDoc = async (w: World, id: string) =>
  (await w.deps().store.get<RefundDoc>('refunds', id))!;
export const eventsOf = (w: World, subject: string) =>
  w
    .deps()
    .store.find<PaymentEventDoc>('payment_events', {}, { limit: 100 })
    .then((all) => all.filter((e) => e._id.startsWith(`${subject}:`)));

/** Places an order for one product and pays at the cashier; WeChat's notify waits in the outbox. */
export async function orderAndPay(
  w: World,
  priceFen = 5000,
  caller: Caller = SHOPPER,
): Promise<{ orderId: string }> {
  const id = `p${priceFen}`;
  if (!(await w.deps().store.get('products', id))) await stock(w, id, priceFen);
  const created = await createOrder(w.deps(), { items: [{ productId: id, quantity: 1 }] }, caller);
  expect(w.core.engine.pay(created.payment as never).errMsg).toBe('requestPayment:ok');
  return { orderId: created.orderId };
}

/** Delivers everything WeChat has sent so far, in order; the outcome codes. */
export async function deliver(w: World, deps?: Deps): Promise<string[]> {
  const out: string[] = [];
  for (const n of w.outbox.splice(0)) {
    const kind = n.kind === 'pay' ? 'pay_notify' : 'refund_notify';
    out.push((await handleNotification(deps ?? w.deps(), w.delivery(n), kind)).outcome);
  }
  return out;
}

export async function paidOrder(w: World, priceFen = 5000, caller: Caller = SHOPPER): Promise<string> {
  const { orderId } = await orderAndPay(w, priceFen, caller);
  expect(await deliver(w)).toEqual(['PAID']);
  return orderId;
}

let requestSeq = 0;
export const newRequestId = () => `req-${Date.now().toString(36)}-${++requestSeq}`;

export async function applied(w: World, orderId: string, refundFee: number, caller: Caller = SHOPPER) {
  return (
    await applyRefund(w.deps(), { orderId, refundFee, reason: '不想要了', requestId: newRequestId() }, caller)
  ).refund;
}

type Call = { method: string; collection: unknown; args: unknown[] };
type Pick = (c: Call) => boolean;

/** A store that runs `around` instead of the first request `pick` chooses. */
function intercepted(
  deps: Deps,
  pick: Pick,
  around: (run: () => Promise<unknown>) => Promise<unknown>,
  kills = false,
): Deps {
  let done = false;
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (
        typeof value !== 'function' ||
        !['get', 'insert', 'cas', 'find', 'countWhere'].includes(String(prop))
      )
        return value;
      return (...args: unknown[]) => {
        const run = () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        // A killed invocation makes no request after its death (no catch block, no clean-up).
        if (done && kills) return Promise.reject(new Killed());
        if (done || !pick({ method: String(prop), collection: args[0], args })) return run();
        done = true;
        return around(run);
      };
    },
  }) as Store;
  return { ...deps, store };
}

/** The first request `pick` chooses lands, and then the invocation dies (its answer is lost). */
export function dieAfter(deps: Deps, pick: Pick): Deps {
  return intercepted(
    deps,
    pick,
    async (run) => {
      await run();
      throw new Killed();
    },
    true,
  );
}

/** The invocation dies just before the first request `pick` chooses: it never lands. */
export function dieBefore(deps: Deps, pick: Pick): Deps {
  return intercepted(
    deps,
    pick,
    async () => {
      throw new Killed();
    },
    true,
  );
}

/** The first request `pick` chooses fails with `message` (a database error the caller sees). */
export function failBefore(deps: Deps, pick: Pick, message: string): Deps {
  return intercepted(deps, pick, async () => {
    throw new Error(message);
  });
}

/** A point where one invocation stops until the test lets it go on. */
export function pausePoint() {
  let reached!: () => void;
  let release!: () => void;
  const arrived = new Promise<void>((r) => {
    reached = r;
  });
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const wait = () => {
    reached();
    return gate;
  };
  return { arrived, release, wait };
}

/** The invocation stops before the first request `pick` chooses, until `point.release()`. */
export function pauseBefore(deps: Deps, pick: Pick, point: ReturnType<typeof pausePoint>): Deps {
  return intercepted(deps, pick, async (run) => {
    await point.wait();
    return run();
  });
}

export const casOn =
  (collection: string): Pick =>
  (c) =>
    c.method === 'cas' && c.collection === collection;
export const insertInto =
  (collection: string): Pick =>
  (c) =>
    c.method === 'insert' && c.collection === collection;

/** The merchant's bill, from the simulator's downloadbill as the APIv2 client asks for it. */
export function simulatorBill(w: World): BillSource {
  return {
    provider: 'v2',
    async download(p) {
      const params = withSign(
        {
          appid: MERCHANT.appid,
          mch_id: MERCHANT.mchId,
          nonce_str: 'billnonce0000000000000000000000',
          bill_date: p.bill_date,
          bill_type: 'ALL',
          sign_type: 'HMAC-SHA256',
        },
        MERCHANT.apiKey,
        'HMAC-SHA256',
      );
      const reply = w.core.answer('/pay/downloadbill', 'POST', Buffer.from(toXml(params)), MERCHANT.mchId);
      if ('hang' in reply) throw new Error('no answer');
      const text = Buffer.from(reply.body).toString('utf8');
      if (text.startsWith('<xml>')) {
        const message = /<return_msg><!\[CDATA\[(.*?)\]\]>/.exec(text)?.[1] ?? text;
        if (message === 'No Bill Exist') return { kind: 'no-bill', message };
        if (message === 'Bill Creating') return { kind: 'not-ready', message };
        throw new Error(message);
      }
      const lines = text.split('\n');
      return {
        kind: 'bill',
        gzip: false,
        lines: (async function* () {
          yield* lines;
        })(),
      };
    },
  };
}

/** Deps whose APIv2 provider has some methods replaced (a fault or a spy), the rest real. */
export function withProvider(w: World, patch: Partial<PaymentProvider>): Deps {
  const d = w.deps();
  const v2 = Object.assign(Object.create(d.wxpay!.byName.v2!) as PaymentProvider, patch);
  return { ...d, wxpay: { current: v2, byName: { ...d.wxpay!.byName, v2 } } };
}

/** The order id rules of every call that takes one: at most 32 of letters, digits, "_" and "-". */
export async function refusesBadOrderIds(call: (orderId: string) => Promise<unknown>): Promise<void> {
  await refused(call('1'.repeat(33)), 'INVALID_INPUT', 'orderId must be at most 32 characters');
  await refused(call('a b'), 'INVALID_INPUT', 'orderId has an invalid format');
}

/** Expects an AppError with `code` and, when given, the exact message the caller reads. */
export async function refused(p: Promise<unknown>, code: string, message?: string): Promise<void> {
  await expect(p).rejects.toMatchObject(message === undefined ? { code } : { code, message });
}

/** The lines logged with `event` since the last reset, as an operator reads them. */
export const logged = (w: World, event: string) => w.logs.filter((l) => l.event === event);

/**
 * A store whose compare-and-sets on `collection` always lose, as if another writer changed
 * the document each time just before; counts them.
 */
export function alwaysLosing(deps: Deps, collection: string): { deps: Deps; attempts: () => number } {
  let attempts = 0;
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'cas') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: unknown[]) => {
        if (args[0] !== collection)
          return (value as (...a: unknown[]) => Promise<boolean>).apply(target, args);
        attempts++;
        return false;
      };
    },
  }) as Store;
  return { deps: { ...deps, store }, attempts: () => attempts };
}
