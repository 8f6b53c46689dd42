/**
 * Database faults, through the real wx-server-sdk@4.0.2: what a function sees when a write
 * fails, is lost on the way, loses its answer, or is held at a named point, and the same
 * controls over the emulator's HTTP surface.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isDuplicateKey } from '../../cloudfunctions/shared/store';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { type Any, connectSdk, rejectionOf } from './sdk';

let emu: TcbEmulator;
let db: Any;

beforeAll(async () => {
  emu = await startTcbEmulator({ collections: ['orders', 'payment_events', 'other'] });
  db = connectSdk(emu.serviceUrl).db;
});
afterAll(() => emu.close());
afterEach(() => emu.faults.clear());

const orders = () => db.collection('orders');
const getOrder = async (id: string) => (await orders().doc(id).get()).data;

async function wire(url: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<Any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  return { status: res.status, body: await res.json() };
}

async function control(method: string, path: string, body?: unknown): Promise<Any> {
  const res = await fetch(`${emu.url}/_emulator/faults${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

describe('failing writes', () => {
  it('fails the next N writes with the platform timeout, leaves reads alone, and applies nothing', async () => {
    await orders().add({ data: { _id: 'n1', v: 0 } });
    emu.faults.failNext(2);
    const first = await rejectionOf(
      orders()
        .doc('n1')
        .update({ data: { v: 1 } }),
    );
    expect(first.errCode).toBe(-501001);
    expect(first.errMsg).toBe(
      'document.update:fail -501001 resource system error. [FailedOperation.Timeout] Execution request timeout, Please check optimize your request(such as index), but if the problem persists, contact us.',
    );
    expect(await getOrder('n1')).toEqual({ _id: 'n1', v: 0 });
    const second = await rejectionOf(orders().add({ data: { _id: 'n2' } }));
    expect(second.errMsg).toMatch(/^collection\.add:fail -501001 /);
    expect((await orders().doc('n2').get()).data).toBeNull();
    expect(
      (
        await orders()
          .doc('n1')
          .update({ data: { v: 3 } })
      ).stats.updated,
    ).toBe(1);
  });

  it.each([
    ['timeout', -501001, 'resource system error. [FailedOperation.Timeout] Execution request timeout'],
    ['systemError', -501001, 'resource system error. [InternalError] System internal exception.'],
    ['serverTimeout', -501002, 'resource server timeout. [InternalError.Timeout] Service response timeout.'],
    ['requestLimit', -501003, 'exceed request limit. [LimitExceeded] Request count exceeds'],
    ['concurrencyLimit', -501004, 'exceed concurrent request limit. [LimitExceeded] Concurrent requests'],
    [
      'writeConflict',
      -502001,
      'database request fail. [FailedOperation] multiple write errors: [{write errors: [{WriteConflict error',
    ],
    ['transactionConflict', -501001, 'resource system error. [ResourceUnavailable.TransactionConflict]'],
  ] as const)('%s reaches the SDK as errCode %i with the platform wording', async (name, code, text) => {
    await orders().add({ data: { _id: `e-${name}`, v: 0 } });
    emu.faults.fail({ collection: 'orders', op: 'update' }, name);
    const e = await rejectionOf(
      orders()
        .where({ _id: `e-${name}` })
        .update({ data: { v: 1 } }),
    );
    expect(e).toBeInstanceOf(Error);
    expect(e.errCode).toBe(code);
    expect(e.errMsg.startsWith(`collection.update:fail ${code} ${text}`)).toBe(true);
    expect(e.message).toBe(e.errMsg);
    // A transient failure is never mistaken for "already exists" by the store's insert-once.
    expect(isDuplicateKey(e)).toBe(false);
  });

  it('fails only the write that matches collection, operation, where and written fields', async () => {
    await orders().add({
      data: [
        { _id: 'm1', status: 'NOTPAY' },
        { _id: 'm2', status: 'NOTPAY' },
      ],
    });
    const rule = emu.faults.fail({
      collection: 'orders',
      op: 'update',
      where: { _id: 'm1', status: 'NOTPAY' },
      data: { status: 'PAID' },
    });
    // Not matching: another document, another written value, no status in the where, a read.
    expect(
      (
        await orders()
          .where({ _id: 'm2', status: 'NOTPAY' })
          .update({ data: { status: 'PAID' } })
      ).stats.updated,
    ).toBe(1);
    expect(
      (
        await orders()
          .where({ _id: 'm1', status: 'NOTPAY' })
          .update({ data: { note: 'x' } })
      ).stats.updated,
    ).toBe(1);
    expect(
      (
        await orders()
          .doc('m1')
          .update({ data: { status: 'PAID', note: 'y' } })
      ).stats.updated,
    ).toBe(1);
    await orders()
      .doc('m1')
      .update({ data: { status: 'NOTPAY' } });
    expect(rule.hits).toHaveLength(0);
    const e = await rejectionOf(
      orders()
        .where({ _id: 'm1', status: 'NOTPAY' })
        .update({ data: { status: 'PAID', paidAtMs: 1 } }),
    );
    expect(e.errCode).toBe(-501001);
    expect(rule.hits[0]!.request).toMatchObject({
      op: 'update',
      collection: 'orders',
      where: { _id: 'm1', status: 'NOTPAY' },
      data: [{ $set: { status: 'PAID', paidAtMs: 1 } }],
    });
    expect((await getOrder('m1')).status).toBe('NOTPAY');
  });

  it('matches inserted documents by their fields, and transactional writes separately', async () => {
    emu.faults.fail({ collection: 'payment_events', op: 'insert', data: { _id: 'o1:PAID' } });
    await db.collection('payment_events').add({ data: { _id: 'o1:CLOSED' } });
    expect(
      (await rejectionOf(db.collection('payment_events').add({ data: { _id: 'o1:PAID' } }))).errCode,
    ).toBe(-501001);
    await db.collection('payment_events').add({ data: { _id: 'o1:PAID' } });

    await orders().add({ data: { _id: 'tx1', v: 0 } });
    emu.faults.fail({ collection: 'orders', transaction: true }, 'systemError');
    await orders()
      .doc('tx1')
      .update({ data: { v: 1 } });
    const e = await rejectionOf(
      db.runTransaction(async (t: Any) => {
        await t
          .collection('orders')
          .doc('tx1')
          .update({ data: { v: 2 } });
      }),
    );
    expect(e.errCode).toBe(-501001);
    expect((await getOrder('tx1')).v).toBe(1);
  });

  it('times 0 fails every match until the rule is removed; custom codes pass through the SDK mapping', async () => {
    await orders().add({ data: { _id: 'z1', v: 0 } });
    const rule = emu.faults.add({
      action: 'fail',
      error: { code: 'DATABASE_PERMISSION_DENIED', message: '[PermissionDenied] no write permission.' },
      match: { collection: 'orders', op: 'write' },
      times: 0,
    });
    for (let i = 0; i < 3; i++) {
      const e = await rejectionOf(
        orders()
          .doc('z1')
          .update({ data: { v: i } }),
      );
      expect(e.errMsg).toBe(
        'document.update:fail -502003 database permission denied. [PermissionDenied] no write permission.',
      );
    }
    rule.remove();
    expect(
      (
        await orders()
          .doc('z1')
          .update({ data: { v: 9 } })
      ).stats.updated,
    ).toBe(1);
  });
});

describe('lost requests and lost answers', () => {
  it('a write applied whose answer is lost rejects like a dropped connection, yet the change is stored', async () => {
    await orders().add({ data: { _id: 'l1', status: 'NOTPAY' } });
    const rule = emu.faults.loseAnswer({ collection: 'orders', op: 'update' });
    const e = await rejectionOf(
      orders()
        .where({ _id: 'l1', status: 'NOTPAY' })
        .update({ data: { status: 'PAID' } }),
    );
    expect(e.errCode).toBe(-501001);
    expect(e.errMsg).toBe('collection.update:fail -501001 resource system error. socket hang up');
    expect((await getOrder('l1')).status).toBe('PAID');
    expect(await rule.hits[0]!.settled).toMatchObject({ state: 'lost', response: { data: { updated: 1 } } });
  });

  it('a dropped request rejects the same way and changes nothing', async () => {
    await orders().add({ data: { _id: 'd1', status: 'NOTPAY' } });
    emu.faults.drop({ collection: 'orders', op: 'update' });
    const e = await rejectionOf(
      orders()
        .where({ _id: 'd1', status: 'NOTPAY' })
        .update({ data: { status: 'PAID' } }),
    );
    expect(e.errMsg).toBe('collection.update:fail -501001 resource system error. socket hang up');
    expect((await getOrder('d1')).status).toBe('NOTPAY');
  });

  it('hang: the write is stored and the caller hears nothing until it gives up', async () => {
    await orders().add({ data: { _id: 'h1', v: 0 } });
    const rule = emu.faults.loseAnswer({ collection: 'orders' }, 'hang');
    const aborted = await wire(
      emu.serviceUrl,
      {
        action: 'database.modifyDocument',
        collectionName: 'orders',
        query: JSON.stringify({ _id: 'h1' }),
        data: JSON.stringify({ $set: { v: 1 } }),
        merge: true,
      },
      AbortSignal.timeout(300),
    ).catch((e: Error) => e);
    expect(aborted).toBeInstanceOf(Error);
    expect((aborted as Error).name).toBe('TimeoutError');
    expect((await rule.hits[0]!.settled).state).toBe('lost');
    expect((await getOrder('h1')).v).toBe(1);
  });
});

describe('pause points', () => {
  it('holds the update between the read and the write; others run meanwhile; on release it meets the new state', async () => {
    await orders().add({ data: { _id: 'p1', status: 'NOTPAY' } });
    const pause = emu.faults.pause({ collection: 'orders', op: 'update', where: { status: 'NOTPAY' } });
    const stale = orders()
      .where({ _id: 'p1', status: 'NOTPAY' })
      .update({ data: { status: 'PAID' } });
    const held = await pause.reached();
    expect(held.state).toBe('held');
    expect(held.request).toMatchObject({ op: 'update', where: { _id: 'p1', status: 'NOTPAY' } });
    // While it is held: reads see the old state, and a competing write (the rule is used up) wins.
    expect((await getOrder('p1')).status).toBe('NOTPAY');
    expect(
      (
        await orders()
          .where({ _id: 'p1', status: 'NOTPAY' })
          .update({ data: { status: 'CLOSED' } })
      ).stats.updated,
    ).toBe(1);
    expect(held.release()).toBe(true);
    expect(held.release()).toBe(false);
    expect(await stale).toEqual({ stats: { updated: 0 }, errMsg: 'collection.update:ok' });
    expect(await held.settled).toMatchObject({ state: 'answered', response: { data: { updated: 0 } } });
    expect((await getOrder('p1')).status).toBe('CLOSED');
  });

  it('a held request can be released into a failure or a lost answer', async () => {
    await orders().add({ data: { _id: 'p2', v: 0 } });
    const pause = emu.faults.pause({ collection: 'orders', op: 'update' }, 2);
    const failing = rejectionOf(
      orders()
        .doc('p2')
        .update({ data: { v: 1 } }),
    );
    (await pause.hit(0)).release({ action: 'fail', error: 'requestLimit' });
    expect((await failing).errCode).toBe(-501003);
    const losing = rejectionOf(
      orders()
        .doc('p2')
        .update({ data: { v: 2 } }),
    );
    (await pause.hit(1)).release({ action: 'loseAnswer' });
    expect((await losing).errMsg).toMatch(/socket hang up$/);
    expect((await getOrder('p2')).v).toBe(2);
  });

  it('a held request whose caller goes away is abandoned and never applied', async () => {
    await orders().add({ data: { _id: 'p3', v: 0 } });
    const pause = emu.faults.pause({ collection: 'orders', op: 'update' });
    const controller = new AbortController();
    const sent = wire(
      emu.serviceUrl,
      {
        action: 'database.modifyDocument',
        collectionName: 'orders',
        query: JSON.stringify({ _id: 'p3' }),
        data: JSON.stringify({ $set: { v: 1 } }),
        merge: true,
      },
      controller.signal,
    ).catch((e: Error) => e);
    const held = await pause.reached();
    controller.abort();
    expect(await sent).toBeInstanceOf(Error);
    expect(await held.settled).toEqual({ state: 'abandoned' });
    expect(held.release()).toBe(false);
    expect((await getOrder('p3')).v).toBe(0);
  });

  it('holds only the invocation it names (scope), and counts held requests like any other', async () => {
    await orders().add({ data: { _id: 'p4', v: 0 } });
    const pause = emu.faults.pause({ scope: 'inv-a', op: 'update' });
    const update = (scope: string, v: number) =>
      wire(emu.scopedServiceUrl(scope), {
        action: 'database.modifyDocument',
        collectionName: 'orders',
        query: JSON.stringify({ _id: 'p4' }),
        data: JSON.stringify({ $set: { v } }),
        merge: true,
      });
    const a = update('inv-a', 1);
    const held = await pause.reached();
    expect(held.request.scope).toBe('inv-a');
    expect((await update('inv-b', 2)).body.data).toEqual({ updated: 1 });
    expect(emu.takeRequestCount('inv-a')).toBe(1);
    held.release();
    expect((await a).body.data).toEqual({ updated: 1 });
    expect((await getOrder('p4')).v).toBe(1);
  });

  it('clearing the faults lets every held request proceed', async () => {
    await orders().add({ data: { _id: 'p5', v: 0 } });
    const pause = emu.faults.pause({ collection: 'orders' });
    const pending = orders()
      .doc('p5')
      .update({ data: { v: 1 } });
    await pause.reached();
    expect(emu.faults.held()).toHaveLength(1);
    emu.faults.clear();
    expect((await pending).stats.updated).toBe(1);
    expect(emu.faults.list()).toEqual([]);
  });
});

describe('HTTP control surface (/_emulator/faults)', () => {
  it('adds a pause, waits for it, releases it and removes it, all over HTTP', async () => {
    await orders().add({ data: { _id: 'w1', status: 'NOTPAY' } });
    const added = await control('POST', '', {
      action: 'pause',
      match: { collection: 'orders', op: 'update', where: { status: 'NOTPAY' }, data: { status: 'PAID' } },
    });
    expect(added.status).toBe(201);
    const id = added.body.id as string;
    expect(added.body).toMatchObject({ used: 0, remaining: 1, held: [] });
    const stale = orders()
      .where({ _id: 'w1', status: 'NOTPAY' })
      .update({ data: { status: 'PAID' } });
    const waited = await control('POST', `/${id}/wait`, { timeoutMs: 5000 });
    expect(waited.status).toBe(200);
    expect(waited.body).toMatchObject({ id: `${id}.1`, state: 'held', request: { collection: 'orders' } });
    const listed = await control('GET', '');
    expect(listed.body.held.map((h: Any) => h.id)).toEqual([`${id}.1`]);
    await orders()
      .doc('w1')
      .update({ data: { status: 'CLOSED' } });
    expect((await control('POST', `/${id}/release`, {})).body).toEqual({ released: 1 });
    expect((await stale).stats.updated).toBe(0);
    expect((await control('GET', `/${id}`)).body.hits).toEqual([
      expect.objectContaining({ id: `${id}.1`, state: 'answered' }),
    ]);
    expect((await control('DELETE', `/${id}`)).body).toEqual({ removed: 1 });
    expect((await control('GET', `/${id}`)).status).toBe(404);
  });

  it('fails the next writes over HTTP, and a wait that sees nothing answers 408', async () => {
    await orders().add({ data: { _id: 'w2', v: 0 } });
    const added = await control('POST', '', {
      action: 'fail',
      error: 'concurrencyLimit',
      match: { op: 'write' },
      times: 2,
    });
    for (const v of [1, 2]) {
      expect((await rejectionOf(orders().doc('w2').update({ data: { v } }))).errCode).toBe(-501004);
    }
    expect(
      (
        await orders()
          .doc('w2')
          .update({ data: { v: 3 } })
      ).stats.updated,
    ).toBe(1);
    const idle = await control('POST', `/${added.body.id}/wait`, { hit: 2, timeoutMs: 50 });
    expect(idle.status).toBe(408);
    expect((await control('DELETE', '')).body).toEqual({ removed: 1 });
  });

  it('refuses a malformed rule with a stable code and the reason', async () => {
    for (const [body, reason] of [
      [{ action: 'explode' }, /action must be one of fail, drop, loseAnswer, pause/],
      [{ action: 'fail', error: 'gremlins' }, /error must be one of timeout, systemError/],
      [{ action: 'fail', times: -1 }, /times must be a whole number/],
      [{ action: 'pause', match: { op: 'upsertish' } }, /op must be one of/],
      [{ action: 'pause', match: { colection: 'orders' } }, /match does not know colection/],
      [{ action: 'loseAnswer', how: 'slowly' }, /how must be reset or hang/],
    ] as const) {
      const res = await control('POST', '', body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('INVALID_FAULT');
      expect(res.body.message).toMatch(reason);
    }
    expect(emu.faults.list()).toEqual([]);
  });
});
