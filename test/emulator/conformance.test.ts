/**
 * Conformance: the real wx-server-sdk@4.0.2 against the emulator, asserting the return
 * shapes, errors and gotchas a function sees from CloudBase's database (get, where, count,
 * add, update, set, remove, commands, aggregate, transactions).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { type Any, connectSdk, rejectionOf, type Sdk } from './sdk';

let emu: TcbEmulator;
let sdk: Sdk;
let db: Any;
let _: Any;

beforeAll(async () => {
  emu = await startTcbEmulator({
    collections: ['orders', 'refunds', 'many', 'tx', 'uniq', 'sparse'],
    indexes: {
      uniq: [{ fields: ['outRefundNo'], unique: true }],
      sparse: [{ fields: ['outRefundNo'], unique: true, sparse: true }],
    },
  });
  sdk = connectSdk(emu.serviceUrl);
  db = sdk.db;
  _ = db.command;
});
afterAll(() => emu.close());

describe('return shapes (§1.2)', () => {
  it('add resolves {_id, errMsg} and generates a 32-hex id when none is given', async () => {
    const res = await db.collection('orders').add({ data: { status: 'NOTPAY' } });
    expect(res).toEqual({ _id: expect.stringMatching(/^[0-9a-f]{32}$/), errMsg: 'collection.add:ok' });
  });

  it('add with an array resolves {_ids, errMsg} in order', async () => {
    const res = await db.collection('orders').add({ data: [{ _id: 'arr-1' }, { _id: 'arr-2' }] });
    expect(res).toEqual({ _ids: ['arr-1', 'arr-2'], errMsg: 'collection.add:ok' });
  });

  it('doc().get() returns the document with Dates revived and serverDate resolved by the server', async () => {
    const before = Date.now();
    await db.collection('orders').add({
      data: {
        _id: 'g1',
        n: 1,
        paidAt: new Date(0),
        createdAt: db.serverDate(),
        later: db.serverDate({ offset: 60_000 }),
      },
    });
    const res = await db.collection('orders').doc('g1').get();
    expect(res.errMsg).toBe('document.get:ok');
    expect(res.data).toMatchObject({ _id: 'g1', n: 1, paidAt: new Date(0) });
    expect(res.data.createdAt).toBeInstanceOf(Date);
    expect(res.data.createdAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(res.data.later.getTime() - res.data.createdAt.getTime()).toBe(60_000);
  });

  it('doc().get() of a missing id gives data null with throwOnNotFound:false', async () => {
    expect(await db.collection('orders').doc('nope').get()).toEqual({
      data: null,
      errMsg: 'document.get:ok',
    });
  });

  it('doc().get() of a missing id rejects with errCode -1 by default', async () => {
    const e = await rejectionOf(sdk.dbThrowing.collection('orders').doc('nope').get());
    expect(e.errCode).toBe(-1);
    expect(e.errMsg).toBe('document.get:fail document with _id nope does not exist');
    expect(e.message).toBe(e.errMsg);
  });

  it('doc().update() reports updated 1, and 0 (not an error) for a missing document', async () => {
    await db.collection('orders').add({ data: { _id: 'u1', a: 1 } });
    expect(
      await db
        .collection('orders')
        .doc('u1')
        .update({ data: { a: 2 } }),
    ).toEqual({
      stats: { updated: 1 },
      errMsg: 'document.update:ok',
    });
    expect(
      await db
        .collection('orders')
        .doc('missing')
        .update({ data: { a: 2 } }),
    ).toEqual({
      stats: { updated: 0 },
      errMsg: 'document.update:ok',
    });
  });

  it('doc().set() creates, then replaces the whole document', async () => {
    expect(
      await db
        .collection('orders')
        .doc('s1')
        .set({ data: { a: 1, keep: true } }),
    ).toEqual({
      _id: 's1',
      errMsg: 'document.set:ok',
      stats: { updated: 0, created: 1 },
    });
    expect(
      await db
        .collection('orders')
        .doc('s1')
        .set({ data: { b: 2 } }),
    ).toEqual({
      _id: 's1',
      errMsg: 'document.set:ok',
      stats: { updated: 1, created: 0 },
    });
    expect((await db.collection('orders').doc('s1').get()).data).toEqual({ _id: 's1', b: 2 });
  });

  it('doc().remove() and where().remove() report removed counts', async () => {
    await db.collection('orders').add({
      data: [
        { _id: 'r1', tag: 'rm' },
        { _id: 'r2', tag: 'rm' },
        { _id: 'r3', tag: 'rm' },
      ],
    });
    expect(await db.collection('orders').doc('r1').remove()).toEqual({
      stats: { removed: 1 },
      errMsg: 'document.remove:ok',
    });
    expect(await db.collection('orders').where({ tag: 'rm' }).remove()).toEqual({
      stats: { removed: 2 },
      errMsg: 'collection.remove:ok',
    });
  });

  it('where().update() updates every match by default and reports how many changed', async () => {
    await db.collection('orders').add({
      data: [
        { _id: 'w1', grp: 'w' },
        { _id: 'w2', grp: 'w' },
      ],
    });
    expect(
      await db
        .collection('orders')
        .where({ grp: 'w' })
        .update({ data: { seen: true } }),
    ).toEqual({
      stats: { updated: 2 },
      errMsg: 'collection.update:ok',
    });
  });

  it('count() resolves {total, errMsg} for a condition', async () => {
    await db.collection('orders').add({ data: [{ grp: 'c' }, { grp: 'c' }, { grp: 'c' }] });
    expect(await db.collection('orders').where({ grp: 'c' }).count()).toEqual({
      total: 3,
      errMsg: 'collection.count:ok',
    });
  });

  it('where().get() resolves {data, errMsg} without the lower SDK fields', async () => {
    const res = await db.collection('orders').where({ _id: 'w1' }).get();
    expect(Object.keys(res).sort()).toEqual(['data', 'errMsg']);
    expect(res.errMsg).toBe('collection.get:ok');
  });

  it('createCollection resolves createCollection:ok, and rejects for an existing name', async () => {
    expect(await db.createCollection('fresh')).toMatchObject({ errMsg: 'createCollection:ok' });
    expect(emu.collections()).toContain('fresh');
    const e = await rejectionOf(db.createCollection('fresh'));
    expect(e.errMsg).toMatch(/^createCollection:fail .*Table exist/);
  });
});

describe('update encoding gotchas (§1.2)', () => {
  it('a plain nested object is a dot-path $set: siblings survive', async () => {
    await db.collection('orders').add({ data: { _id: 'dot', meta: { a: 1, b: 2 } } });
    await db
      .collection('orders')
      .doc('dot')
      .update({ data: { meta: { a: 9 } } });
    expect((await db.collection('orders').doc('dot').get()).data.meta).toEqual({ a: 9, b: 2 });
  });

  it('_.set() replaces the sub-object', async () => {
    await db.collection('orders').add({ data: { _id: 'set', meta: { a: 1, b: 2 } } });
    await db
      .collection('orders')
      .doc('set')
      .update({ data: { meta: _.set({ a: 9 }) } });
    expect((await db.collection('orders').doc('set').get()).data.meta).toEqual({ a: 9 });
  });

  it('_.inc, _.push (one and many), _.remove, _.pull, _.addToSet apply like MongoDB', async () => {
    await db.collection('orders').add({ data: { _id: 'ops', n: 1, list: [1], gone: 'x', tags: ['a'] } });
    await db
      .collection('orders')
      .doc('ops')
      .update({
        data: { n: _.inc(2), list: _.push([2, 3]), gone: _.remove(), tags: _.addToSet('a') },
      });
    await db
      .collection('orders')
      .doc('ops')
      .update({ data: { list: _.push(4) } });
    await db
      .collection('orders')
      .doc('ops')
      .update({ data: { list: _.pull(2) } });
    expect((await db.collection('orders').doc('ops').get()).data).toEqual({
      _id: 'ops',
      n: 3,
      list: [1, 3, 4],
      tags: ['a'],
    });
  });

  it('writing a dot path into a null field fails with -502001 like the platform', async () => {
    await db.collection('orders').add({ data: { _id: 'nul', refund: null } });
    const e = await rejectionOf(
      db
        .collection('orders')
        .doc('nul')
        .update({ data: { refund: { status: 'P' } } }),
    );
    expect(e.errCode).toBe(-502001);
    expect(e.errMsg).toContain("Cannot create field 'status' in element {refund: null}");
  });

  it('_.inc on a string fails instead of being ignored', async () => {
    await db.collection('orders').add({ data: { _id: 'incstr', n: 'one' } });
    const e = await rejectionOf(
      db
        .collection('orders')
        .doc('incstr')
        .update({ data: { n: _.inc(1) } }),
    );
    expect(e.errCode).toBe(-502001);
    expect(e.errMsg).toContain('Cannot apply $inc to a value of non-numeric type');
  });
});

describe('queries (§1.2, §1.4)', () => {
  beforeAll(async () => {
    await db.collection('refunds').add({
      data: [
        { _id: 'q1', status: 'A', amount: 5, refund: { status: 'PENDING', by: 'u1' }, name: 'apple' },
        { _id: 'q2', status: 'B', amount: 15, refund: { status: 'DONE' }, name: 'Banana' },
        { _id: 'q3', amount: 25, name: 'avocado' },
      ],
    });
  });
  const ids = (res: Any) => res.data.map((d: Any) => d._id).sort();

  it('_.neq also matches documents where the field is missing', async () => {
    expect(
      ids(
        await db
          .collection('refunds')
          .where({ status: _.neq('A') })
          .get(),
      ),
    ).toEqual(['q2', 'q3']);
  });

  it('a nested object in where() matches partially (flattened to dot paths)', async () => {
    expect(
      ids(
        await db
          .collection('refunds')
          .where({ refund: { status: 'PENDING' } })
          .get(),
      ),
    ).toEqual(['q1']);
  });

  it('range with .and(), _.or, _.in, _.nin, _.exists(false) and db.RegExp evaluate as in MongoDB', async () => {
    const c = db.collection('refunds');
    expect(ids(await c.where({ amount: _.gt(1).and(_.lt(20)) }).get())).toEqual(['q1', 'q2']);
    expect(ids(await c.where(_.or([{ status: 'A' }, { amount: _.gte(25) }])).get())).toEqual(['q1', 'q3']);
    expect(ids(await c.where({ status: _.in(['B']) }).get())).toEqual(['q2']);
    expect(ids(await c.where({ status: _.nin(['B']) }).get())).toEqual(['q1', 'q3']);
    expect(ids(await c.where({ status: _.exists(false) }).get())).toEqual(['q3']);
    expect(ids(await c.where({ name: db.RegExp({ regexp: '^a', options: 'i' }) }).get())).toEqual([
      'q1',
      'q3',
    ]);
    expect(ids(await c.where({ status: _.eq('A').or(_.eq('B')) }).get())).toEqual(['q1', 'q2']);
  });

  it('a server date in a condition compares against the server clock', async () => {
    expect(
      ids(
        await db
          .collection('orders')
          .where({ _id: 'g1', createdAt: _.lte(db.serverDate()) })
          .get(),
      ),
    ).toEqual(['g1']);
  });

  it('orderBy, skip and limit page through a sorted result', async () => {
    const res = await db.collection('refunds').orderBy('amount', 'desc').skip(1).limit(1).get();
    expect(res.data.map((d: Any) => d._id)).toEqual(['q2']);
  });

  it('field() projects fields, keeping _id; false excludes', async () => {
    const inc = await db.collection('refunds').where({ _id: 'q1' }).field({ amount: true }).get();
    expect(inc.data).toEqual([{ _id: 'q1', amount: 5 }]);
    const exc = await db.collection('refunds').doc('q2').field({ refund: false, name: false }).get();
    expect(exc.data).toEqual({ _id: 'q2', status: 'B', amount: 15 });
  });

  it('aggregate().match().group().end() runs the pipeline and resolves {list}', async () => {
    const $ = db.command.aggregate;
    const res = await db
      .collection('refunds')
      .aggregate()
      .match({ amount: _.gte(5) })
      .group({ _id: null, total: $.sum('$amount') })
      .end();
    expect(res.list).toEqual([{ _id: null, total: 45 }]);
  });

  it('an operator the server does not know is an invalid command (-502002)', async () => {
    const e = await rejectionOf(
      db
        .collection('refunds')
        .where({ amount: { $bogus: 1 } })
        .get(),
    );
    expect(e.errCode).toBe(-502002);
    expect(e.errMsg).toMatch(/^collection\.get:fail -502002 database invalid command\./);
  });
});

describe('get() limits (§1.5)', () => {
  beforeAll(async () => {
    const docs = Array.from({ length: 1100 }, (_v, i) => ({ i }));
    await db.collection('many').add({ data: docs });
  });

  it('returns 100 documents when no limit is set', async () => {
    expect((await db.collection('many').get()).data).toHaveLength(100);
  });

  it('caps limit() at 1000', async () => {
    expect((await db.collection('many').limit(5000).get()).data).toHaveLength(1000);
  });

  it('count() is not limited', async () => {
    expect((await db.collection('many').count()).total).toBe(1100);
  });
});

describe('errors (§1.7)', () => {
  it('add with a duplicate _id rejects -502001 with the E11000 text', async () => {
    await db.collection('orders').add({ data: { _id: 'once' } });
    const e = await rejectionOf(db.collection('orders').add({ data: { _id: 'once' } }));
    expect(e).toBeInstanceOf(Error);
    expect(e.errCode).toBe(-502001);
    expect(e.errMsg).toBe(
      'collection.add:fail -502001 database request fail. [FailedOperation] multiple write errors: [{write errors: [{E11000 duplicate key error collection: local.orders index: _id_ dup key: { _id: "once" }}]}, {write concern errors:[]}]',
    );
  });

  it('a unique index rejects a second document with the same value, naming the index', async () => {
    await db.collection('uniq').add({ data: { _id: 'u1', outRefundNo: 'R1' } });
    await db.collection('uniq').add({ data: { _id: 'u2', outRefundNo: 'R2' } });
    const e = await rejectionOf(db.collection('uniq').add({ data: { outRefundNo: 'R1' } }));
    expect(e.errCode).toBe(-502001);
    expect(e.errMsg).toContain(
      'E11000 duplicate key error collection: local.uniq index: outRefundNo_1 dup key: { outRefundNo: "R1" }',
    );
    const update = await rejectionOf(
      db
        .collection('uniq')
        .doc('u2')
        .update({ data: { outRefundNo: 'R1' } }),
    );
    expect(update.errCode).toBe(-502001);
    expect((await db.collection('uniq').doc('u2').get()).data.outRefundNo).toBe('R2');
  });

  it('a unique index counts a missing field as null, unless it is sparse (MongoDB rules)', async () => {
    await db.collection('uniq').add({ data: { _id: 'n1' } });
    expect((await rejectionOf(db.collection('uniq').add({ data: { _id: 'n2' } }))).errCode).toBe(-502001);
    await db.collection('sparse').add({ data: [{ _id: 's1' }, { _id: 's2' }, { outRefundNo: 'R1' }] });
    expect((await rejectionOf(db.collection('sparse').add({ data: { outRefundNo: 'R1' } }))).errCode).toBe(
      -502001,
    );
  });

  it('a missing collection is -502005 on reads and writes', async () => {
    const get = await rejectionOf(db.collection('nowhere').get());
    expect(get.errCode).toBe(-502005);
    expect(get.errMsg).toBe(
      'collection.get:fail -502005 database collection not exists. [ResourceNotFound] Db or Table not exist: nowhere.',
    );
    const add = await rejectionOf(db.collection('nowhere').add({ data: { a: 1 } }));
    expect(add.errCode).toBe(-502005);
    expect(add.errMsg).toMatch(/^collection\.add:fail -502005 /);
  });
});

describe('transactions (§1.6)', () => {
  const tx = () => db.collection('tx');

  it('runTransaction commits its doc() writes and resolves with the callback value', async () => {
    await tx().add({ data: { _id: 'acct', balance: 10 } });
    const out = await db.runTransaction(async (t: Any) => {
      const { data } = await t.collection('tx').doc('acct').get();
      await t
        .collection('tx')
        .doc('acct')
        .update({ data: { balance: data.balance - 3 } });
      await t.collection('tx').add({ data: { _id: 'ledger-1', delta: -3 } });
      return data.balance;
    });
    expect(out).toBe(10);
    expect((await tx().doc('acct').get()).data.balance).toBe(7);
    expect((await tx().doc('ledger-1').get()).data).toEqual({ _id: 'ledger-1', delta: -3 });
  });

  it('a throw inside runTransaction rolls back its doc() writes and rejects with the thrown error', async () => {
    await tx().add({ data: { _id: 'rb', v: 1 } });
    const boom = new Error('boom');
    const e = await rejectionOf(
      db.runTransaction(async (t: Any) => {
        await t
          .collection('tx')
          .doc('rb')
          .update({ data: { v: 2 } });
        throw boom;
      }),
    );
    expect(e).toBe(boom);
    expect((await tx().doc('rb').get()).data.v).toBe(1);
  });

  it('transaction.rollback(value) rejects runTransaction with that value', async () => {
    const e = await rejectionOf(db.runTransaction(async (t: Any) => t.rollback('no-stock')));
    expect(e).toBe('no-stock');
  });

  it('transaction.collection().where().update() runs OUTSIDE the transaction and survives the rollback', async () => {
    await tx().add({
      data: [
        { _id: 'inside', v: 1 },
        { _id: 'leak', v: 1 },
      ],
    });
    await rejectionOf(
      db.runTransaction(async (t: Any) => {
        await t
          .collection('tx')
          .doc('inside')
          .update({ data: { v: 2 } });
        await t
          .collection('tx')
          .where({ _id: 'leak' })
          .update({ data: { v: 2 } });
        throw new Error('rollback');
      }),
    );
    expect((await tx().doc('inside').get()).data.v).toBe(1);
    expect((await tx().doc('leak').get()).data.v).toBe(2);
  });

  it('doc().get() of a missing id inside a transaction: null with throwOnNotFound:false, rejects by default', async () => {
    await db.runTransaction(async (t: Any) => {
      expect((await t.collection('tx').doc('ghost').get()).data).toBeNull();
    });
    const e = await rejectionOf(
      sdk.dbThrowing.runTransaction(async (t: Any) => {
        await t.collection('tx').doc('ghost').get();
      }),
    );
    expect(e.errMsg).toBe('document.get:fail document with _id ghost does not exist');
  });

  it('reads see the snapshot from the start; a write to a document changed since is a conflict', async () => {
    await tx().add({ data: { _id: 'snap', v: 1 } });
    const t = await db.startTransaction();
    await tx()
      .doc('snap')
      .update({ data: { v: 2 } });
    expect((await t.collection('tx').doc('snap').get()).data.v).toBe(1);
    const e = await rejectionOf(
      t
        .collection('tx')
        .doc('snap')
        .update({ data: { v: 3 } }),
    );
    // wx-server-sdk rewraps DATABASE_TRANSACTION_CONFLICT from a single write as -501001.
    expect(e.errCode).toBe(-501001);
    expect(e.errMsg).toContain('TransactionConflict');
    expect((await tx().doc('snap').get()).data.v).toBe(2);
  });

  it('a second transaction writing a document the first has written fails with a conflict; the first commits', async () => {
    await tx().add({ data: { _id: 'race', owner: 'none' } });
    const t1 = await db.startTransaction();
    const t2 = await db.startTransaction();
    await t1
      .collection('tx')
      .doc('race')
      .update({ data: { owner: 't1' } });
    const e = await rejectionOf(
      t2
        .collection('tx')
        .doc('race')
        .update({ data: { owner: 't2' } }),
    );
    expect(e.errCode).toBe(-501001);
    expect(e.errMsg).toContain('[ResourceUnavailable.TransactionConflict]');
    await t1.commit();
    // The conflict aborted t2 on the server, as MongoDB does.
    expect((await rejectionOf(t2.commit())).code).toBe('DATABASE_TRANSACTION_FAIL');
    expect((await tx().doc('race').get()).data.owner).toBe('t1');
  });

  it('a plain write to a document locked by a transaction waits for it, then applies on top', async () => {
    await tx().add({ data: { _id: 'wait', n: 0 } });
    const t = await db.startTransaction();
    await t
      .collection('tx')
      .doc('wait')
      .update({ data: { n: 10 } });
    let done = false;
    const plain = tx()
      .where({ _id: 'wait' })
      .update({ data: { n: _.inc(1) } })
      .then((r: Any) => {
        done = true;
        return r;
      });
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false);
    await t.commit();
    expect((await plain).stats.updated).toBe(1);
    expect((await tx().doc('wait').get()).data.n).toBe(11);
  });

  it('rollback() releases the lock and discards the writes', async () => {
    await tx().add({ data: { _id: 'abort', n: 0 } });
    const t = await db.startTransaction();
    await t
      .collection('tx')
      .doc('abort')
      .update({ data: { n: 5 } });
    await t.rollback();
    expect(
      (
        await tx()
          .doc('abort')
          .update({ data: { n: 1 } })
      ).stats.updated,
    ).toBe(1);
    expect((await tx().doc('abort').get()).data.n).toBe(1);
  });

  it('a transaction not finished within its lifetime is aborted and its lock released', async () => {
    const short = await startTcbEmulator({ collections: ['t'], transactionLifetimeMs: 200 });
    try {
      // The SDK's init is global to the process, so this second emulator is spoken to on the wire.
      const res = await fetch(short.serviceUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'database.startTransaction' }),
      });
      const { transactionId } = (await res.json()) as { transactionId: string };
      await new Promise((r) => setTimeout(r, 300));
      const commit = await fetch(short.serviceUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'database.commitTransaction', transactionId }),
      });
      expect(await commit.json()).toMatchObject({ code: 'DATABASE_TRANSACTION_FAIL' });
    } finally {
      await short.close();
    }
  });
});

describe('request accounting', () => {
  it('counts database requests per scoped serviceUrl', async () => {
    const scoped = emu.scopedServiceUrl('inv-1');
    for (const action of ['database.calculateDocument', 'database.calculateDocument']) {
      await fetch(scoped, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action, collectionName: 'orders' }),
      });
    }
    expect(emu.requestCount('inv-1')).toBe(2);
    expect(emu.takeRequestCount('inv-1')).toBe(2);
    expect(emu.requestCount('inv-1')).toBe(0);
  });
});
