/**
 * The order side's exactly-once claims (README, "How payments and refunds behave"), each
 * with its interleaving forced by the emulator's database faults instead of hoped for:
 *
 *   - the PAID compare-and-set: a notify held between its read and its write while
 *     reconcile pays or closes the order; the loser changes nothing, a close is flagged;
 *   - event before transition: the payment_events write failing, and the function dying
 *     between the event and the compare-and-set, both healed by WeChat's retry;
 *   - closeorder answering ORDERPAID when the notify was lost;
 *   - prices and admins that must never come from the client or an empty list.
 *
 * Every pause names its write by collection, operation, order id and written status, so a
 * test holds exactly the request it talks about.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Stack } from '../../sandbox/stack';
import {
  ADMIN,
  events,
  isSuccessXml,
  OTHER,
  order,
  payNotifyFor,
  postHttp,
  SHOPPER,
  testStack,
  unwrap,
} from '../integration/support';
import { driveTime, runReconcile } from './support';

let stack: Stack;
const logs: string[] = [];

beforeAll(async () => {
  stack = await testStack({ functionLog: (line) => logs.push(line) });
});
afterAll(() => stack?.close());
afterEach(() => {
  stack.emulator.faults.clear();
  stack.simulator.setFaults({ dropPayNotifies: false });
});

async function newOrder(openid = SHOPPER, productId = 'sticker') {
  return unwrap(await stack.call('createOrder', { items: [{ productId, quantity: 1 }] }, openid));
}

/** The PAID compare-and-set of one order, whoever sends it. */
const paidCas = (orderId: string) => ({
  collection: 'orders',
  op: 'update' as const,
  where: { _id: orderId },
  data: { status: 'PAID' },
});

const paidEvent = (orderId: string) => ({
  collection: 'payment_events',
  op: 'insert' as const,
  data: { _id: `${orderId}:PAID` },
});

/** Delivers WeChat's notifies for an order, retries included, until one is acknowledged. */
async function deliver(orderId: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await stack.simulator.flushNotifies();
    const last = stack.simulator
      .notifies()
      .filter((n) => n.body.includes(orderId))
      .at(-1);
    if (last?.acknowledged) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no notify for ${orderId} was acknowledged`);
}

function logged(event: string, orderId: string): Record<string, unknown>[] {
  return logs
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['event'] === event && l['orderId'] === orderId);
}

describe('the PAID compare-and-set', () => {
  // The held notify has 5 s (payNotify's timeout) before the platform kills it, so the
  // competing run is brought to its own write first (reconcile has 60 s) and the notify is
  // held only while that one write lands.
  it('a notify held between its read and its write while reconcile closes the order is booked PAID_AFTER_CLOSE, once', async () => {
    const o = await newOrder();
    // Genuine: signed with the merchant key, as WeChat signs; the money says it was paid.
    const notify = payNotifyFor(stack, {
      out_trade_no: o.orderId,
      total_fee: o.totalFee,
      transaction_id: '4200000001202601010000000001',
    });
    // The order expires; reconcile asks orderquery (NOTPAY), closes it at WeChat, and is held
    // at its own compare-and-set.
    await driveTime(stack);
    const close = stack.emulator.faults.pause({
      collection: 'orders',
      op: 'update',
      where: { _id: o.orderId },
      data: { status: 'CLOSED' },
    });
    const run = runReconcile(stack);
    const closing = await close.reached();
    const cas = stack.emulator.faults.pause(paidCas(o.orderId));
    const reply = postHttp(stack, '/pay/notify', notify);
    const held = await cas.reached();
    expect(held.request.where).toEqual({ _id: o.orderId, status: 'NOTPAY' });
    expect(held.request.scope).not.toBe(closing.request.scope);

    // The close lands between the notify's read and its write.
    closing.release();
    expect(await closing.settled).toMatchObject({ response: { data: { updated: 1 } } });
    expect((await order(stack, o.orderId)).status).toBe('CLOSED');
    held.release();
    expect(await held.settled).toMatchObject({ state: 'answered', response: { data: { updated: 0 } } });
    expect(isSuccessXml((await reply).text)).toBe(true);
    expect(await run).toMatchObject({ ordersClosed: 1, errors: 0 });

    const paid = await order(stack, o.orderId);
    expect(paid).toMatchObject({
      status: 'PAID',
      flag: 'PAID_AFTER_CLOSE',
      transactionId: '4200000001202601010000000001',
    });
    expect((await events(stack, o.orderId)).map((e) => e.to).sort()).toEqual(['CLOSED', 'PAID']);

    // WeChat's retries of the same notify change nothing and are not flagged again.
    for (let i = 0; i < 3; i++)
      expect(isSuccessXml((await postHttp(stack, '/pay/notify', notify)).text)).toBe(true);
    expect(await order(stack, o.orderId)).toEqual(paid);
    const booked = logged('order.paid', o.orderId);
    expect(booked).toHaveLength(1);
    expect(booked[0]).toMatchObject({ level: 'warn', from: 'CLOSED', to: 'PAID', source: 'notify' });
  });

  it('a notify held while reconcile books the same payment from orderquery loses, and changes nothing', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    const o = await newOrder();
    expect(stack.simulator.pay(o.payment as never).errMsg).toBe('requestPayment:ok');
    // WeChat's own notify, delivered by the test when it chooses.
    const notify = stack.simulator.notifies().find((n) => n.dropped && n.body.includes(o.orderId))!.body;

    const fromQuery = stack.emulator.faults.pause(paidCas(o.orderId));
    const run = runReconcile(stack);
    const queryCas = await fromQuery.reached();
    const fromNotify = stack.emulator.faults.pause(paidCas(o.orderId));
    const reply = postHttp(stack, '/pay/notify', notify);
    const notifyCas = await fromNotify.reached();
    expect(notifyCas.request.scope).not.toBe(queryCas.request.scope);

    queryCas.release();
    expect(await queryCas.settled).toMatchObject({ response: { data: { updated: 1 } } });
    const booked = await order(stack, o.orderId);
    expect(booked).toMatchObject({ status: 'PAID' });
    expect(booked.flag).toBeUndefined();
    notifyCas.release();
    expect(await notifyCas.settled).toMatchObject({ response: { data: { updated: 0 } } });
    expect(isSuccessXml((await reply).text)).toBe(true);
    expect(await run).toMatchObject({ ordersPaid: 1, errors: 0 });

    // The loser re-reads and stops: paidAtMs, transactionId and updatedAtMs are the winner's.
    expect(await order(stack, o.orderId)).toEqual(booked);
    expect((await events(stack, o.orderId)).map((e) => [e.to, e.source])).toEqual([['PAID', 'orderquery']]);
    expect(logged('order.paid', o.orderId)).toEqual([expect.objectContaining({ source: 'orderquery' })]);
  });

  it('two reconcile runs closing the same expired order: the one held at its write loses and changes nothing', async () => {
    const o = await newOrder();
    await driveTime(stack);
    const pause = stack.emulator.faults.pause({
      collection: 'orders',
      op: 'update',
      where: { _id: o.orderId },
      data: { status: 'CLOSED' },
    });
    const first = runReconcile(stack);
    const held = await pause.reached();
    // The first run already closed it at WeChat; the second learns that from orderquery.
    expect(await runReconcile(stack)).toMatchObject({ ordersClosed: 1, errors: 0 });
    const closed = await order(stack, o.orderId);
    expect(closed).toMatchObject({ status: 'CLOSED', closeReason: 'trade_state CLOSED' });

    held.release();
    expect(await first).toMatchObject({ errors: 0 });
    expect(await held.settled).toMatchObject({ response: { data: { updated: 0 } } });
    expect(await order(stack, o.orderId)).toEqual(closed);
    expect((await events(stack, o.orderId)).map((e) => e.to)).toEqual(['CLOSED']);
    // Paying the closed order is refused by WeChat: no money can arrive for it.
    expect(stack.simulator.pay(o.payment as never).errMsg).toMatch(/^requestPayment:fail .*已关闭/);
  });
});

describe('event before transition', () => {
  it('the payment event failing to write fails the notify, leaves the order unpaid, and WeChat’s retry heals it', async () => {
    const o = await newOrder();
    stack.emulator.faults.fail(paidEvent(o.orderId), 'timeout');
    const retry = stack.emulator.faults.pause(paidEvent(o.orderId));
    expect(stack.simulator.pay(o.payment as never).errMsg).toBe('requestPayment:ok');

    // WeChat's second attempt, held at its first write: what did the first one leave?
    const held = await retry.reached();
    const [first, second] = stack.simulator.notifies().filter((n) => n.body.includes(o.orderId));
    expect(first).toMatchObject({ attempt: 1, acknowledged: false });
    expect(first!.replyBody).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(second).toMatchObject({ attempt: 2 });
    expect((await order(stack, o.orderId)).status).toBe('NOTPAY');
    expect(await events(stack, o.orderId)).toEqual([]);

    held.release();
    await deliver(o.orderId);
    expect((await order(stack, o.orderId)).status).toBe('PAID');
    expect((await events(stack, o.orderId)).map((e) => [e.to, e.source])).toEqual([['PAID', 'notify']]);
    const attempts = stack.simulator.notifies().filter((n) => n.body.includes(o.orderId));
    expect(attempts.map((n) => [n.attempt, n.acknowledged])).toEqual([
      [1, false],
      [2, true],
    ]);
  });

  it('a notify killed between its event and its compare-and-set leaves the event and an unpaid order; the retry pays it once', async () => {
    const o = await newOrder();
    const cas = stack.emulator.faults.pause(paidCas(o.orderId));
    expect(stack.simulator.pay(o.payment as never).errMsg).toBe('requestPayment:ok');
    const held = await cas.reached();
    // The event is written before the transition is attempted.
    expect((await events(stack, o.orderId)).map((e) => e.to)).toEqual(['PAID']);
    const retry = stack.emulator.faults.pause(paidEvent(o.orderId));

    // Nobody releases it: payNotify hits its 5 s timeout and the runtime kills the instance,
    // which takes the held write with it.
    expect(await held.settled).toEqual({ state: 'abandoned' });
    const again = await retry.reached(15_000);
    expect((await order(stack, o.orderId)).status).toBe('NOTPAY');
    again.release();
    await deliver(o.orderId);

    const paid = await order(stack, o.orderId);
    expect(paid).toMatchObject({ status: 'PAID' });
    expect(paid.flag).toBeUndefined();
    expect((await events(stack, o.orderId)).map((e) => e.to)).toEqual(['PAID']);
    const attempts = stack.simulator.notifies().filter((n) => n.body.includes(o.orderId));
    expect(attempts[0]).toMatchObject({ attempt: 1, acknowledged: false });
    expect(attempts.at(-1)).toMatchObject({ acknowledged: true });
    expect(logged('order.paid', o.orderId)).toHaveLength(1);
  }, 30_000);
});

describe('lost answers', () => {
  it('a compare-and-set stored but its answer lost: the notify answers FAIL, and WeChat’s retry adds nothing', async () => {
    const o = await newOrder();
    const lost = stack.emulator.faults.loseAnswer(paidCas(o.orderId));
    expect(stack.simulator.pay(o.payment as never).errMsg).toBe('requestPayment:ok');
    expect(await (await lost.reached()).settled).toMatchObject({
      state: 'lost',
      response: { data: { updated: 1 } },
    });
    await deliver(o.orderId);
    const paid = await order(stack, o.orderId);
    expect(paid.status).toBe('PAID');

    // The function could not know its write landed, so it asked WeChat to try again.
    const attempts = stack.simulator.notifies().filter((n) => n.body.includes(o.orderId));
    expect(attempts[0]).toMatchObject({ attempt: 1, acknowledged: false });
    expect(attempts[0]!.replyBody).toContain('<return_code><![CDATA[FAIL]]></return_code>');
    expect(attempts.at(-1)).toMatchObject({ acknowledged: true });
    expect(await order(stack, o.orderId)).toEqual(paid);
    expect((await events(stack, o.orderId)).map((e) => e.to)).toEqual(['PAID']);
  });
});

describe('closing an order that was paid', () => {
  it('closeorder answering ORDERPAID, with the notify lost, books the payment instead of closing', async () => {
    stack.simulator.setFaults({ dropPayNotifies: true });
    const o = await newOrder();
    expect(stack.simulator.pay(o.payment as never).errMsg).toBe('requestPayment:ok');
    // Past its expiry and WeChat's 5 minutes: paying again closes it at WeChat first, with
    // no orderquery before closeorder.
    await driveTime(stack);
    const again = await stack.call('createOrder', { orderId: o.orderId }, SHOPPER);
    expect(again.ok).toBe(false);

    const wx = stack.simulator.ledger().orders.find((x) => x.outTradeNo === o.orderId)!;
    expect(wx.tradeState).toBe('SUCCESS');
    const doc = await order(stack, o.orderId);
    expect(doc).toMatchObject({ status: 'PAID', transactionId: wx.transactionId });
    expect(doc.flag).toBeUndefined();
    expect((await events(stack, o.orderId)).map((e) => [e.to, e.source])).toEqual([['PAID', 'orderquery']]);
  });
});

describe('money and identity', () => {
  it('refuses a positive client-sent price or total, and charges the catalogue price', async () => {
    const before = await stack.db.count('orders');
    for (const event of [
      { items: [{ productId: 'tea-longjing', quantity: 1, priceFen: 1 }] },
      { items: [{ productId: 'tea-longjing', quantity: 1, price: 1 }] },
      { items: [{ productId: 'tea-longjing', quantity: 1 }], totalFee: 1 },
      { items: [{ productId: 'tea-longjing', quantity: 1 }], priceFen: 1 },
    ]) {
      const r = await stack.call('createOrder', event as never, OTHER);
      expect(r, JSON.stringify(event)).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } });
    }
    expect(await stack.db.count('orders')).toBe(before);
    const catalogue = (await stack.db.get<{ priceFen: number }>('products', 'tea-longjing'))!.priceFen;
    expect(catalogue).toBeGreaterThan(1);
    const made = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'tea-longjing', quantity: 2 }] }, OTHER),
    );
    expect(made.totalFee).toBe(2 * catalogue);
    expect((await order(stack, made.orderId)).items).toEqual([
      expect.objectContaining({ productId: 'tea-longjing', priceFen: catalogue, quantity: 2 }),
    ]);
  });
});

describe('an empty ADMIN_OPENIDS', () => {
  let bare: Stack;
  beforeAll(async () => {
    bare = await testStack({ env: { ADMIN_OPENIDS: '' }, functionLog: () => {} });
  });
  afterAll(() => bare?.close());

  it('makes nobody an admin: admin calls are refused before anything is looked up', async () => {
    for (const who of [ADMIN, SHOPPER]) {
      expect(await bare.call('listRefunds', {}, who)).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN' },
      });
      expect(
        await bare.call('approveRefund', { refundId: 'R20260101000000000000', decision: 'approve' }, who),
      ).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
      expect(unwrap(await bare.call('whoami', {}, who)).isAdmin).toBe(false);
    }
  });
});
