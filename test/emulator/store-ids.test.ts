/**
 * The emulator answers a query that pins `_id` (one id, or `_id: _.in([...])`, with or
 * without further conditions) from its id map, as CloudBase answers it from the _id index,
 * with exactly what a scan of the collection would match. The bill check asks for 1,000 ids
 * at a time and every compare-and-set names its `_id`: served by a scan, a 100,000-order day
 * took minutes in the emulator instead of seconds.
 */
import { Query } from 'mingo';
import { describe, expect, it } from 'vitest';
import { Store } from '../../sandbox/tcb/store';

type Doc = Record<string, unknown>;

async function storeWith(n: number): Promise<{ store: Store; docs: Doc[] }> {
  const store = new Store();
  await store.createCollection('orders');
  const docs: Doc[] = Array.from({ length: n }, (_, i) => ({
    _id: `T${String(i).padStart(8, '0')}`,
    status: i % 3 === 0 ? 'PAID' : 'NOTPAY',
    totalFee: i % 7,
  }));
  for (let i = 0; i < docs.length; i += 1000) await store.insert('orders', docs.slice(i, i + 1000));
  return { store, docs };
}

const scan = (docs: Doc[], query: Doc) => {
  const q = new Query(query);
  return docs.filter((d) => q.test(d));
};
const idsOf = (docs: Doc[]) => docs.map((d) => d['_id']).sort();

describe('queries that pin _id', () => {
  it('match exactly what a scan matches: other conditions, repeated and unknown ids, $eq', async () => {
    const { store, docs } = await storeWith(300);
    const queries: Doc[] = [
      { _id: 'T00000007' },
      { _id: 'T00000007', status: 'PAID' },
      { _id: 'T00000009', status: 'PAID' },
      { _id: { $eq: 'T00000010' }, totalFee: 3 },
      { _id: { $in: ['T00000001', 'T00000002', 'T00000002', 'nope', 'T00000299'] } },
      { _id: { $in: ['T00000001', 'T00000003', 'T00000006'] }, status: 'PAID' },
      { _id: { $in: [] } },
      { _id: 'nope', status: 'PAID' },
      // Not pins: served by a scan, the `_id` condition still applied.
      { _id: { $gt: 'T00000290' }, status: 'PAID' },
      { _id: { $in: ['T00000001', 'T00000003'], $ne: 'T00000003' } },
    ];
    for (const query of queries) {
      const found = store.find('orders', { query, limit: 1000 });
      expect(idsOf(found), JSON.stringify(query)).toEqual(idsOf(scan(docs, query)));
      expect(store.count('orders', query), JSON.stringify(query)).toBe(scan(docs, query).length);
    }
  });

  it('updates and removes by a pinned _id touch only matching documents', async () => {
    const { store } = await storeWith(30);
    const cas = await store.modify('orders', {
      query: { _id: { $in: ['T00000003', 'T00000004'] }, status: 'PAID' },
      data: { $set: { status: 'CLOSED' } },
      multi: true,
      merge: true,
      upsert: false,
    });
    expect(cas.updated).toBe(1);
    expect(store.find('orders', { query: { status: 'CLOSED' } }).map((d) => d['_id'])).toEqual(['T00000003']);
    expect(await store.remove('orders', { _id: 'T00000004', status: 'PAID' }, false)).toBe(0);
    expect(await store.remove('orders', { _id: { $in: ['T00000004', 'T00000005'] } }, true)).toBe(2);
  });

  it('are answered without scanning the collection', async () => {
    const { store } = await storeWith(20_000);
    const started = performance.now();
    for (let q = 0; q < 20; q++) {
      const ids = Array.from(
        { length: 500 },
        (_, i) => `T${String((q * 997 + i * 37) % 20_000).padStart(8, '0')}`,
      );
      expect(store.find('orders', { query: { _id: { $in: ids } }, limit: 1000 })).toHaveLength(500);
    }
    for (let i = 0; i < 2000; i++)
      store.find('orders', { query: { _id: `T${String(i * 9).padStart(8, '0')}`, status: 'PAID' } });
    // A scan tests all 20,000 documents per query: about 20 s for these (45 µs a document
    // against a 500-id list); the id map takes milliseconds. The bound leaves room for a busy machine.
    expect(performance.now() - started).toBeLessThan(3000);
  });
});

describe('field() projections', () => {
  it('return what mingo (MongoDB semantics) returns, after sort and limit', async () => {
    const store = new Store();
    await store.createCollection('orders');
    const docs: Doc[] = [
      { _id: 'a', status: 'PAID', totalFee: 5, paidAtMs: 30, book: { x: 1 } },
      { _id: 'b', status: 'NOTPAY', totalFee: 7 },
      { _id: 'c', status: 'PAID', totalFee: 1, paidAtMs: 10, book: { x: 2, y: 3 } },
      { _id: 'd', status: 'PAID', totalFee: 9, paidAtMs: 20 },
    ];
    await store.insert('orders', docs);
    const projections: Doc[] = [
      { status: true, paidAtMs: true },
      { status: 1, _id: 0 },
      { _id: false, book: true, missing: true },
      { _id: true, totalFee: true },
      { 'book.x': 1 },
      { book: false },
      { status: 0, _id: 0 },
    ];
    for (const projection of projections) {
      for (const query of [{ status: 'PAID' }, { _id: { $in: ['a', 'c', 'zz'] } }]) {
        const found = store.find('orders', { query, projection, order: { paidAtMs: 1 }, limit: 2 });
        const expected = new Query(query)
          .find(docs, projection as never)
          .sort({ paidAtMs: 1 })
          .limit(2)
          .all();
        expect(found, JSON.stringify({ query, projection })).toEqual(expected);
      }
    }
  });
});
