/**
 * Atomic compare-and-set under concurrency, persistence across restarts, and crash safety.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcbEmulator, type TcbEmulator } from '../../sandbox/tcb';
import { type Any, connectSdk } from './sdk';

const root = resolve(__dirname, '../..');
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'tcb-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Talks the wire protocol directly, for emulators other than the one the SDK is bound to. */
async function call(serviceUrl: string, body: Record<string, unknown>): Promise<Any> {
  const res = await fetch(serviceUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return res.json();
}

async function getDoc(serviceUrl: string, coll: string, id: string): Promise<Any> {
  const res = await call(serviceUrl, {
    action: 'database.getDocument',
    collectionName: coll,
    query: JSON.stringify({ _id: id }),
  });
  return res.data.list[0] ? JSON.parse(res.data.list[0]) : null;
}

describe('compare-and-set', () => {
  let emu: TcbEmulator;
  let db: Any;
  beforeAll(async () => {
    emu = await startTcbEmulator({ dataDir: tempDir(), collections: ['orders'] });
    db = connectSdk(emu.serviceUrl).db;
  });
  afterAll(() => emu.close());

  it('100 concurrent where({_id, status:A}).update(status:B) through the SDK: exactly one wins', async () => {
    await db.collection('orders').add({ data: { _id: 'o1', status: 'A', winner: null } });
    const results = await Promise.all(
      Array.from({ length: 100 }, (_v, i) =>
        db
          .collection('orders')
          .where({ _id: 'o1', status: 'A' })
          .update({ data: { status: 'B', winner: i } }),
      ),
    );
    const winners = results.map((r: Any, i) => (r.stats.updated === 1 ? i : -1)).filter((i) => i >= 0);
    expect(winners).toHaveLength(1);
    expect(results.filter((r: Any) => r.stats.updated === 0)).toHaveLength(99);
    expect((await db.collection('orders').doc('o1').get()).data).toEqual({
      _id: 'o1',
      status: 'B',
      winner: winners[0],
    });
  });

  it('concurrent _.inc on one document loses no increment', async () => {
    await db.collection('orders').add({ data: { _id: 'ctr', n: 0 } });
    const _ = db.command;
    await Promise.all(
      Array.from({ length: 50 }, () =>
        db
          .collection('orders')
          .doc('ctr')
          .update({ data: { n: _.inc(1) } }),
      ),
    );
    expect((await db.collection('orders').doc('ctr').get()).data.n).toBe(50);
  });
});

describe('persistence', () => {
  const seed = async (emu: TcbEmulator) => {
    await call(emu.serviceUrl, {
      action: 'database.insertDocument',
      collectionName: 'orders',
      data: [
        JSON.stringify({
          _id: 'p1',
          totalFee: { $numberInt: '1999' },
          paidAt: { $date: { $numberLong: '1700000000000' } },
        }),
        JSON.stringify({ _id: 'p2', nested: { list: [1, 2, { deep: true }] }, outTradeNo: 'T2' }),
      ],
    });
    await call(emu.serviceUrl, {
      action: 'database.modifyDocument',
      collectionName: 'orders',
      query: JSON.stringify({ _id: 'p1' }),
      data: JSON.stringify({ $set: { status: 'PAID' } }),
      merge: true,
    });
    await call(emu.serviceUrl, {
      action: 'database.removeDocument',
      collectionName: 'orders',
      query: JSON.stringify({ _id: 'gone' }),
    });
  };
  const indexes = { orders: [{ fields: ['outTradeNo'], unique: true, sparse: true }] };

  for (const stop of ['close', 'crash'] as const) {
    it(`data written, emulator stopped (${stop}), restarted on the same dataDir: read back intact`, async () => {
      const dir = tempDir();
      const first = await startTcbEmulator({ dataDir: dir, collections: ['orders'], indexes });
      await seed(first);
      await first[stop]();

      const second = await startTcbEmulator({ dataDir: dir, collections: ['orders'], indexes });
      try {
        expect(second.collections()).toEqual(['orders']);
        const p1 = await call(second.serviceUrl, {
          action: 'database.getDocument',
          collectionName: 'orders',
          query: JSON.stringify({ _id: 'p1' }),
        });
        // Canonical EJSON out: the integer stays an integer and the Date a Date.
        expect(JSON.parse(p1.data.list[0])).toEqual({
          _id: 'p1',
          totalFee: { $numberInt: '1999' },
          paidAt: { $date: { $numberLong: '1700000000000' } },
          status: 'PAID',
        });
        expect(await getDoc(second.serviceUrl, 'orders', 'p2')).toEqual({
          _id: 'p2',
          nested: { list: [{ $numberInt: '1' }, { $numberInt: '2' }, { deep: true }] },
          outTradeNo: 'T2',
        });
        // The unique index is rebuilt from the recovered documents.
        const dup = await call(second.serviceUrl, {
          action: 'database.insertDocument',
          collectionName: 'orders',
          data: [JSON.stringify({ outTradeNo: 'T2' })],
        });
        expect(dup.code).toBe('DATABASE_REQUEST_FAILED');
      } finally {
        await second.close();
      }
    });
  }

  it('a torn last journal line is dropped: the document comes back whole, as it was before that write', async () => {
    const dir = tempDir();
    const emu = await startTcbEmulator({ dataDir: dir, collections: ['orders'] });
    const set = (v: number) =>
      call(emu.serviceUrl, {
        action: 'database.modifyDocument',
        collectionName: 'orders',
        query: JSON.stringify({ _id: 'doc' }),
        data: JSON.stringify({ a: v, b: v, pad: 'x'.repeat(500) }),
        merge: false,
        upsert: true,
      });
    await set(1);
    await set(2);
    await emu.crash();

    // Cut the last line (the write of v=2) in the middle, as a crash during append would.
    const journal = join(dir, 'journal.log');
    const text = readFileSync(journal, 'utf8');
    const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
    truncateSync(journal, lastStart + Math.floor((text.length - lastStart) / 2));

    const again = await startTcbEmulator({ dataDir: dir, collections: ['orders'] });
    try {
      expect(await getDoc(again.serviceUrl, 'orders', 'doc')).toMatchObject({
        a: { $numberInt: '1' },
        b: { $numberInt: '1' },
      });
    } finally {
      await again.close();
    }
    // Recovery compacted the journal, so the torn bytes are gone for good.
    expect(readFileSync(journal, 'utf8')).toBe('');
  });

  it('a corrupt line in the middle of the journal stops start-up with a message instead of guessing', async () => {
    const dir = tempDir();
    const emu = await startTcbEmulator({ dataDir: dir, collections: ['orders'] });
    for (const id of ['a', 'b']) {
      await call(emu.serviceUrl, {
        action: 'database.insertDocument',
        collectionName: 'orders',
        data: [JSON.stringify({ _id: id })],
      });
    }
    await emu.crash();
    const journal = join(dir, 'journal.log');
    const lines = readFileSync(journal, 'utf8').split('\n');
    const target = lines.findIndex((l) => l.includes('"_id":"a"'));
    expect(target).toBeLessThan(lines.length - 2);
    lines[target] = lines[target]!.replace('"_id":"a"', '"_id":"A"');
    writeFileSync(journal, lines.join('\n'));
    await expect(startTcbEmulator({ dataDir: dir })).rejects.toThrow(`line ${target + 1} is corrupt`);
  });

  it('a process killed mid-burst leaves every document whole and keeps every acknowledged write', async () => {
    const dir = tempDir();
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', join(root, 'sandbox/tcb/cli.ts'), '--data-dir', dir],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    const serviceUrl = await new Promise<string>((ok, fail) => {
      createInterface({ input: child.stdout! }).once('line', (l) => ok(JSON.parse(l).serviceUrl));
      child.once('exit', (code) => fail(new Error(`emulator exited ${code}`)));
    });
    await call(serviceUrl, { action: 'database.addCollection', collectionName: 'burst' });

    const ids = Array.from({ length: 10 }, (_v, i) => `d${i}`);
    const acked = new Map<string, number>();
    let killed = false;
    const writer = async (id: string) => {
      for (let v = 1; !killed; v++) {
        try {
          const res = await call(serviceUrl, {
            action: 'database.modifyDocument',
            collectionName: 'burst',
            query: JSON.stringify({ _id: id }),
            // a and b are always written together; a torn document would show a !== b.
            data: JSON.stringify({ a: v, b: v, pad: 'p'.repeat(4000) }),
            merge: false,
            upsert: true,
          });
          if (res.code) throw new Error(res.message);
          acked.set(id, v);
        } catch {
          return; // the process is gone
        }
      }
    };
    const writers = ids.map(writer);
    await new Promise((r) => setTimeout(r, 400));
    killed = true;
    child.kill('SIGKILL');
    await Promise.all(writers);
    await exited;
    expect([...acked.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(20);

    const again = await startTcbEmulator({ dataDir: dir });
    try {
      for (const id of ids) {
        const doc = await getDoc(again.serviceUrl, 'burst', id);
        if (!acked.has(id)) continue;
        const a = Number(doc.a.$numberInt);
        expect(Number(doc.b.$numberInt), id).toBe(a);
        expect(doc.pad, id).toHaveLength(4000);
        expect(a, `${id}: an acknowledged write was lost`).toBeGreaterThanOrEqual(acked.get(id)!);
      }
    } finally {
      await again.close();
    }
  });

  it('appending garbage after a clean shutdown is treated as a torn tail', async () => {
    const dir = tempDir();
    const emu = await startTcbEmulator({ dataDir: dir, collections: ['orders'] });
    await call(emu.serviceUrl, {
      action: 'database.insertDocument',
      collectionName: 'orders',
      data: [JSON.stringify({ _id: 'x' })],
    });
    await emu.close();
    appendFileSync(join(dir, 'journal.log'), '0000beef {"seq":');
    const again = await startTcbEmulator({ dataDir: dir });
    try {
      expect(await getDoc(again.serviceUrl, 'orders', 'x')).toEqual({ _id: 'x' });
    } finally {
      await again.close();
    }
  });
});
