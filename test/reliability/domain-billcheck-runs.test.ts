/**
 * The bill check's runs in one process (world.ts): the day's record (its lease, states and
 * counters, what a failed or unfinished run keeps), two runs of one day forced to overlap
 * (pause points, not timing), a run that outlived its lease, the time budget, the cost
 * recorded for the operator, the merchant's notice, the timer's choice of days and the
 * admin's list. Bills come from the simulator's downloadbill or are made by hand. Runs under
 * `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { BillAction } from '../../cloudfunctions/shared/contract';
import {
  type BillCheckDeps,
  type BillCheckDoc,
  type BillSource,
  checkBillDate,
  listBillChecks,
  runBillCheck,
  scheduledBillCheck,
} from '../../cloudfunctions/shared/domain/billcheck';
import { emptyTotals } from '../../cloudfunctions/shared/domain/billcompare';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import { approveRefund } from '../../cloudfunctions/shared/domain/refunds';
import { loadNoticeConfig } from '../../cloudfunctions/shared/notices/config';
import type { NoticeDoc } from '../../cloudfunctions/shared/notices/outbox';
import { ProviderError } from '../../cloudfunctions/shared/providers/errors';
import type { Store } from '../../cloudfunctions/shared/store';
import {
  BILL_ALL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  type BillRow,
  formatBill,
} from '../../cloudfunctions/shared/wxpay/bill';
import type { BillAnswer } from '../../cloudfunctions/shared/wxpay/billdownload';
import { demoNoticeEnv } from '../../sandbox/notice-templates';
import { connectSdk } from '../emulator/sdk';
import {
  ADMIN,
  applied,
  casOn,
  insertInto,
  logged,
  orderAndPay,
  orderDoc,
  paidOrder,
  pauseBefore,
  pausePoint,
  refused,
  SHOPPER,
  simulatorBill,
} from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();

const HOUR = 3600_000;
let day = '';
beforeEach(async () => {
  await w.reset();
  day = billDateOf(w.now());
});

/** Moves the clock to `hour` o'clock Beijing time, `days` after the trading day. */
function at(days: number, hour: number): void {
  w.advance(dayStartMs(day)! + days * 24 * HOUR + hour * HOUR - w.now());
}
const dayBefore = (date: string, n = 1) => billDateOf(dayStartMs(date)! - n * 24 * HOUR);

async function* lines(all: string[]): AsyncGenerator<string> {
  yield* all;
}

/** A bill file made by hand: `rows` as given, the summary summed from them. */
function handMade(rows: BillRow[]): BillSource {
  const yuan = (fen: number) => (fen / 100).toFixed(2);
  const sum = (col: string) => rows.reduce((s, r) => s + Math.round(Number(r[col]) * 100), 0);
  const csv = formatBill({
    columns: [...BILL_ALL_COLUMNS],
    rows,
    summaryColumns: [...BILL_SUMMARY_COLUMNS],
    summary: {
      总交易单数: String(rows.length),
      应结订单总金额: yuan(sum('应结订单金额')),
      退款总金额: yuan(sum('退款金额')),
      充值券退款总金额: '0.00',
      手续费总金额: `${yuan(sum('手续费'))}000`,
      订单总金额: yuan(sum('订单金额')),
      申请退款总金额: yuan(sum('申请退款金额')),
    },
  });
  return {
    async download(): Promise<BillAnswer> {
      return { kind: 'bill', gzip: false, lines: lines(csv.split('\r\n')) };
    },
  };
}

/** The bill row of a payment of `fen` for `orderId`, fee 0.6 %. */
function payRow(orderId: string, fen: number): BillRow {
  const yuan = (fen / 100).toFixed(2);
  return {
    交易时间: '2026-11-30 10:00:00',
    公众账号ID: MERCHANT.appid,
    商户号: MERCHANT.mchId,
    特约商户号: '0',
    设备号: '',
    微信订单号: `4200${orderId.slice(-8)}`,
    商户订单号: orderId,
    用户标识: SHOPPER.openid ?? '',
    交易类型: 'JSAPI',
    交易状态: 'SUCCESS',
    付款银行: 'OTHERS',
    货币种类: 'CNY',
    应结订单金额: yuan,
    代金券金额: '0.00',
    微信退款单号: '0',
    商户退款单号: '0',
    退款金额: '0.00',
    充值券退款金额: '0.00',
    退款类型: '',
    退款状态: '',
    商品名称: '茶',
    商户数据包: '',
    手续费: `${(Math.round(fen * 0.006) / 100).toFixed(2)}000`,
    费率: '0.60%',
    订单金额: yuan,
    申请退款金额: '0.00',
    费率备注: '',
  };
}

const NO_BILL: BillAnswer = { kind: 'no-bill', message: 'No Bill Exist' };

/** A source that runs `during` inside its download (the run holds the day then), then answers `then`. */
function downloading(during: () => unknown, then: BillSource | BillAnswer = NO_BILL): BillSource {
  return {
    async download(p) {
      await during();
      return 'download' in then ? then.download(p) : then;
    },
  };
}

const withBills = (bills: BillCheckDeps['bills'], deps: Deps = w.deps()): BillCheckDeps => ({
  ...deps,
  bills,
});
const ADMIN_OPTIONS = { trigger: 'admin' as const, by: ADMIN.openid, budgetMs: 50_000, leaseMs: 70_000 };
const TIMER_OPTIONS = { trigger: 'timer' as const, budgetMs: 270_000, leaseMs: 310_000 };
const stored = async (date = day) => (await w.deps().store.get<BillCheckDoc>('bill_checks', date))!;
const setRecord = (patch: Record<string, unknown>, date = day) =>
  w.deps().store.cas('bill_checks', { _id: date }, patch);

const { config: noticeConfig } = loadNoticeConfig(demoNoticeEnv());
const withNotices = (deps: Deps = w.deps()): Deps => ({
  ...deps,
  notices: { config: noticeConfig, send: async () => ({ ok: true as const }) },
});
const billNotices = async () =>
  (await w.deps().store.find<NoticeDoc>('notices', {}, { limit: 100 })).filter(
    (n) => n.kind === 'bill_mismatch',
  );

/** A finished day's record, as a run leaves it. */
const recordOf = (date: string, status = 'DONE') => ({
  _id: date,
  billDate: date,
  status,
  noBill: true,
  runs: 1,
  createdAtMs: 0,
  updatedAtMs: 0,
  lastRunAtMs: 0,
  leaseUntilMs: 0,
  leaseToken: '',
  totals: emptyTotals(),
  discrepancyCount: 0,
  discrepancyCounts: {},
  discrepancies: [],
  actions: [],
  pending: 0,
});

async function clearChecks(): Promise<void> {
  const { db } = connectSdk(w.emulator.serviceUrl);
  await db
    .collection('bill_checks')
    .where({ _id: db.command.exists(true) })
    .remove();
}

/** A payment WeChat took whose notify never came: the bill check's work. */
async function unbooked(fen = 2000): Promise<string> {
  const { orderId } = await orderAndPay(w, fen);
  w.outbox.length = 0;
  return orderId;
}

describe('the day’s record', () => {
  it('is created RUNNING under a lease, shown as such, refused to a second run, and released when done', async () => {
    const t0 = w.now();
    const point = pausePoint();
    const first = runBillCheck(withBills(downloading(point.wait)), { date: day }, ADMIN);
    await point.arrived;
    expect(await stored()).toEqual({
      _id: day,
      billDate: day,
      status: 'RUNNING',
      noBill: false,
      runs: 0,
      createdAtMs: t0,
      updatedAtMs: t0,
      lastRunAtMs: 0,
      leaseUntilMs: t0 + 70_000,
      leaseToken: expect.stringMatching(/^\w{16}$/),
      totals: emptyTotals(),
      discrepancyCount: 0,
      discrepancyCounts: {},
      discrepancies: [],
      actions: [],
      pending: 0,
    });
    const [running] = (await listBillChecks(w.deps(), {}, ADMIN)).items;
    expect(running).toEqual({
      billDate: day,
      status: 'RUNNING',
      noBill: false,
      runs: 0,
      lastRunAtMs: 0,
      totals: emptyTotals(),
      discrepancyCount: 0,
      discrepancyCounts: {},
      discrepancies: [],
      actions: [],
      pending: 0,
    });
    expect(Object.keys(running!).filter((k) => ['message', 'finishedAtMs', 'lastRun'].includes(k))).toEqual(
      [],
    );
    // Another admin (or the timer) meanwhile: told the day is taken, nothing run.
    const second = await runBillCheck(withBills(simulatorBill(w)), { date: day }, ADMIN);
    expect(second).toMatchObject({ ran: false, check: { status: 'RUNNING', runs: 0 } });
    point.release();
    const done = await first;
    expect(done).toMatchObject({ ran: true, check: { status: 'DONE', noBill: true, runs: 1, pending: 0 } });
    expect(done.check.finishedAtMs).toBe(t0);
    expect(done.check.actions).toEqual([]);
    expect(done.check.discrepancies).toEqual([]);
    expect(Object.keys(done.check)).toContain('lastRun');
    expect(Object.keys(done.check)).not.toContain('message');
    expect(await stored()).toMatchObject({ status: 'DONE', leaseUntilMs: 0, runs: 1, message: '' });
    const rerun = await runBillCheck(withBills(NO_BILL_SOURCE), { date: day }, ADMIN);
    expect(rerun.ran).toBe(true);
    // What a re-run of a quiet day costs: the record read and leased, the day's PAID orders and
    // SUCCESS refunds counted, the record written.
    expect(rerun.check.lastRun!.dbRequests).toBe(5);
  });

  it('is taken over once its lease has run out, not a millisecond before, under a new lease', async () => {
    await checkBillDate(withBills(NO_BILL_SOURCE), day, ADMIN_OPTIONS);
    await setRecord({ status: 'RUNNING', leaseUntilMs: w.now() + 1, leaseToken: 'dead' });
    const busy = await checkBillDate(withBills(NO_BILL_SOURCE), day, ADMIN_OPTIONS);
    expect(busy).toMatchObject({ ran: false, doc: { status: 'RUNNING', leaseToken: 'dead', runs: 1 } });
    w.advance(1);
    let during: BillCheckDoc | undefined;
    const taken = await checkBillDate(
      withBills(
        downloading(async () => {
          during = await stored();
        }),
      ),
      day,
      { ...TIMER_OPTIONS, leaseMs: 12_345 },
    );
    expect(during).toMatchObject({ status: 'RUNNING', leaseUntilMs: w.now() + 12_345, updatedAtMs: w.now() });
    expect(during!.leaseToken).toMatch(/^\w{16}$/);
    expect(taken).toMatchObject({ ran: true, doc: { status: 'DONE', runs: 2 } });
  });

  it('two runs taking over a finished day at once: the one whose lease lands first runs, the other gets its record', async () => {
    await checkBillDate(withBills(NO_BILL_SOURCE), day, ADMIN_OPTIONS);
    const point = pausePoint();
    const slow = checkBillDate(
      withBills(NO_BILL_SOURCE, pauseBefore(w.deps(), casOn('bill_checks'), point)),
      day,
      ADMIN_OPTIONS,
    );
    await point.arrived;
    const fast = await checkBillDate(withBills(NO_BILL_SOURCE), day, TIMER_OPTIONS);
    expect(fast).toMatchObject({ ran: true, doc: { runs: 2 } });
    point.release();
    const lost = await slow;
    expect(lost.ran).toBe(false);
    expect(lost.doc).toMatchObject({ status: 'DONE', runs: 2, lastRun: { trigger: 'timer' } });
    expect((await stored()).runs).toBe(2);
  });

  it('two first runs of a day: the one whose record lands first holds it, the other is told so', async () => {
    const point = pausePoint();
    const held = pausePoint();
    const late = checkBillDate(
      withBills(NO_BILL_SOURCE, pauseBefore(w.deps(), insertInto('bill_checks'), point)),
      day,
      ADMIN_OPTIONS,
    );
    await point.arrived;
    const holder = checkBillDate(withBills(downloading(held.wait)), day, TIMER_OPTIONS);
    await held.arrived;
    point.release();
    expect(await late).toMatchObject({ ran: false, doc: { status: 'RUNNING', runs: 0 } });
    held.release();
    expect(await holder).toMatchObject({ ran: true, doc: { status: 'DONE', runs: 1 } });
  });

  it('a record that vanishes between another run’s write and this run’s read is an error, not a guess', async () => {
    const deps = w.deps();
    const store = new Proxy(deps.store, {
      get(target, prop, receiver) {
        // Another run's record landed first (so this insert finds it), then it was deleted.
        if (prop === 'insert') return async () => 'exists';
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Store;
    await refused(
      checkBillDate(withBills(NO_BILL_SOURCE, { ...deps, store }), day, ADMIN_OPTIONS),
      'CONFLICT',
      `bill check ${day} vanished while being claimed`,
    );
  });

  it('refuses a date that is not a day, writing nothing', async () => {
    await refused(
      checkBillDate(withBills(NO_BILL_SOURCE), '20261131', ADMIN_OPTIONS),
      'INVALID_INPUT',
      'not a bill date: 20261131',
    );
    expect(await w.deps().store.get('bill_checks', '20261131')).toBeNull();
  });
});

const NO_BILL_SOURCE: BillSource = { download: async () => NO_BILL };

describe('what a run ends with', () => {
  it('INCOMPLETE while WeChat is busy, warned in the log; the next run finishes it and says so at info', async () => {
    const orderId = await unbooked(2000);
    at(1, 10.5);
    w.faults({ systemErrorRate: { '/pay/orderquery': 1 } });
    const busy = await checkBillDate(withBills(simulatorBill(w)), day, ADMIN_OPTIONS);
    expect(busy.doc).toMatchObject({ status: 'INCOMPLETE', pending: 1, message: '', actions: [] });
    expect(await stored()).toMatchObject({ status: 'INCOMPLETE', pending: 1 });
    expect(
      logged(w, 'billcheck.done').map((l) => [l.level, l.fields['status'], l.fields['pending']]),
    ).toEqual([['warn', 'INCOMPLETE', 1]]);
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
    w.faults({ systemErrorRate: 0 });
    w.logs.length = 0;
    const done = await checkBillDate(withBills(simulatorBill(w)), day, ADMIN_OPTIONS);
    expect(done.doc).toMatchObject({
      status: 'DONE',
      pending: 0,
      actions: [{ kind: 'BOOKED_PAID', orderId }],
    });
    const [line] = logged(w, 'billcheck.done');
    expect(line).toMatchObject({ level: 'info' });
    expect(line!.fields).toEqual({
      billDate: day,
      status: 'DONE',
      noBill: false,
      rows: 1,
      otherAppRows: 0,
      discrepancies: 0,
      fixed: 1,
      pending: 0,
      saved: true,
      ...done.doc.lastRun,
    });
    expect((await orderDoc(w, orderId)).status).toBe('PAID');
  });

  it('leaves room for its final write: no WeChat call is started in the last 3 s of its budget', async () => {
    await unbooked(2000);
    at(1, 10.5);
    // One WeChat call may take 27 s; the record's write after it gets the last 3 s.
    const short = await checkBillDate(withBills(simulatorBill(w)), day, {
      ...ADMIN_OPTIONS,
      budgetMs: 29_999,
    });
    expect(short.doc).toMatchObject({ status: 'INCOMPLETE', pending: 1, actions: [] });
    const enough = await checkBillDate(withBills(simulatorBill(w)), day, {
      ...ADMIN_OPTIONS,
      budgetMs: 30_000,
    });
    expect(enough.doc).toMatchObject({ status: 'DONE', pending: 0, actions: [{ kind: 'BOOKED_PAID' }] });
  });

  it('FAILED when the bill cannot be read: says why, and keeps what the last run compared', async () => {
    const orderId = await paidOrder(w, 5000);
    await w.deps().store.cas('orders', { _id: orderId }, { totalFee: 4999 });
    const good = await checkBillDate(withBills(handMade([payRow(orderId, 5000)])), day, ADMIN_OPTIONS);
    expect(good.doc).toMatchObject({
      status: 'DONE',
      discrepancyCount: 1,
      discrepancyCounts: { AMOUNT_MISMATCH: 1 },
      totals: { rows: 1, payments: 1, paymentFen: 5000, feeFen: 30 },
    });
    const t1 = w.now();
    w.advance(HOUR);
    const failures: [unknown, string][] = [
      [new Error('x'.repeat(400)), 'x'.repeat(300)],
      [
        new ProviderError({
          provider: 'v2',
          failure: 'transient',
          reason: 'OTHER',
          providerCode: 'SYSTEMERROR',
          description: '系统超时',
          operation: 'downloadbill',
        }),
        '',
      ],
      ['the line broke', 'the line broke'],
    ];
    for (const [error, message] of failures) {
      w.logs.length = 0;
      const failed = await checkBillDate(
        withBills({ download: async () => Promise.reject(error) }),
        day,
        ADMIN_OPTIONS,
      );
      const expected = message || (error as Error).message;
      expect(failed.doc).toMatchObject({ status: 'FAILED', message: expected, noBill: false });
      const record = await stored();
      expect(record).toMatchObject({
        status: 'FAILED',
        message: expected,
        lastRunAtMs: w.now(),
        finishedAtMs: t1,
        discrepancyCount: 1,
        discrepancyCounts: { AMOUNT_MISMATCH: 1 },
        discrepancies: good.doc.discrepancies,
        totals: good.doc.totals,
        pending: 0,
      });
      expect((await listBillChecks(w.deps(), {}, ADMIN)).items[0]!.message).toBe(expected);
      expect(logged(w, 'billcheck.failed')).toEqual([
        { level: 'error', event: 'billcheck.failed', fields: { billDate: day, error } },
      ]);
      expect(logged(w, 'billcheck.done').map((l) => l.level)).toEqual(['warn']);
    }
    expect((await stored()).runs).toBe(4);
    // The next run that reads the bill clears the failure.
    const again = await checkBillDate(withBills(handMade([payRow(orderId, 5000)])), day, ADMIN_OPTIONS);
    expect(again.doc).toMatchObject({ status: 'DONE', message: '' });
    expect((await stored()).message).toBe('');
    expect(Object.keys((await listBillChecks(w.deps(), {}, ADMIN)).items[0]!)).not.toContain('message');
  });

  it('a failed run keeps "no bill" as the last run found it', async () => {
    await checkBillDate(withBills(NO_BILL_SOURCE), day, ADMIN_OPTIONS);
    const failed = await checkBillDate(
      withBills({ download: async () => Promise.reject(new Error('cut off')) }),
      day,
      ADMIN_OPTIONS,
    );
    expect(failed.doc).toMatchObject({ status: 'FAILED', noBill: true, message: 'cut off' });
  });

  it('NOT_READY when one merchant account’s bill is not generated yet: nothing fixed from the others', async () => {
    const orderId = await unbooked(2000);
    at(1, 10.5);
    const notReady: BillSource = { download: async () => ({ kind: 'not-ready', message: 'Bill Creating' }) };
    const r = await checkBillDate(withBills([simulatorBill(w), notReady]), day, ADMIN_OPTIONS);
    expect(r.doc).toMatchObject({
      status: 'NOT_READY',
      message: 'Bill Creating',
      actions: [],
      pending: 0,
      totals: emptyTotals(),
    });
    expect(r.doc.finishedAtMs).toBeUndefined();
    expect(Object.keys(r.doc)).not.toContain('finishedAtMs');
    expect((await orderDoc(w, orderId)).status).toBe('NOTPAY');
  });
});

describe('what a run records of its cost', () => {
  it('its trigger, time, database requests and waits, WeChat calls, and heap when it can see it', async () => {
    await unbooked(2000);
    at(1, 10.5);
    const real = w.deps();
    // The store's time spent waiting, as this run sees it: 5 s before (earlier runs), 5.25 s after.
    let waitReads = 0;
    const store = new Proxy(real.store, {
      get(target, prop, receiver) {
        if (prop === 'waitMs') return waitReads++ === 0 ? 5000 : 5250;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Store;
    const deps: Deps = { ...real, store };
    const heap = [3.25, 10.04, 7].map((mb) => mb * 1024 * 1024);
    let sample = 0;
    const measured: BillCheckDeps = {
      ...withBills(
        downloading(() => w.advance(1234), simulatorBill(w)),
        deps,
      ),
      memory: () => heap[Math.min(sample++, heap.length - 1)]!,
    };
    // A second run through the same store: its own requests only.
    await checkBillDate(withBills(NO_BILL_SOURCE, real), dayBefore(day), TIMER_OPTIONS);
    const requests = real.store.requests;
    const started = w.now();
    const r = await checkBillDate(measured, day, TIMER_OPTIONS);
    // What the run returns is what it stored.
    expect(r.doc).toEqual(await stored());
    expect(r.doc).toMatchObject({
      status: 'DONE',
      runs: 1,
      lastRunAtMs: started,
      updatedAtMs: started + 1234,
      finishedAtMs: started + 1234,
      leaseUntilMs: 0,
      message: '',
      actions: [{ kind: 'BOOKED_PAID', atMs: started + 1234 }],
    });
    expect(r.doc.lastRun).toEqual({
      trigger: 'timer',
      durationMs: 1234,
      // Counted before the record's own write, which is one more.
      dbRequests: real.store.requests - requests,
      dbMs: 250,
      wxCalls: 2,
      peakHeapMb: 10,
      startHeapMb: 3.3,
    });
    expect(r.doc.lastRun!.dbRequests).toBeGreaterThan(3);
    expect((await stored()).lastRun).toEqual(r.doc.lastRun);
    const plain = await checkBillDate(withBills(NO_BILL_SOURCE), day, ADMIN_OPTIONS);
    expect(plain.doc.lastRun).toMatchObject({ trigger: 'admin', by: ADMIN.openid });
    expect(Object.keys(plain.doc.lastRun!).sort()).toEqual(
      ['by', 'dbMs', 'dbRequests', 'durationMs', 'trigger', 'wxCalls'].sort(),
    );
    const idle = await checkBillDate({ ...withBills(NO_BILL_SOURCE), memory: () => 0 }, day, TIMER_OPTIONS);
    expect(Object.keys(idle.doc.lastRun!)).not.toContain('peakHeapMb');
    expect(Object.keys(idle.doc.lastRun!)).not.toContain('by');
  });
});

describe('the fixes listed on the record', () => {
  it('lists each of two refunds of one order settled in one run', async () => {
    const orderId = await paidOrder(w, 5000);
    const ids: string[] = [];
    for (const fee of [800, 700]) {
      const r = await applied(w, orderId, fee);
      await approveRefund(w.deps(), { refundId: r.refundId, decision: 'approve' }, ADMIN);
      w.core.engine.settleOne(r.refundId, 'SUCCESS');
      ids.push(r.refundId);
      // WeChat takes one refund of an order a minute.
      w.advance(61_000);
    }
    w.outbox.length = 0;
    at(1, 10.5);
    const r = await checkBillDate(withBills(simulatorBill(w)), day, ADMIN_OPTIONS);
    expect(r.doc.actions.map((a) => [a.kind, a.refundId, a.fen]).sort()).toEqual(
      [
        ['SETTLED_REFUND', ids[0], 800],
        ['SETTLED_REFUND', ids[1], 700],
      ].sort(),
    );
    expect((await stored()).actions).toHaveLength(2);
  });

  it('lists a fix made again (the books restored meanwhile) once, and keeps the list to 200', async () => {
    const orderId = await unbooked(2000);
    const other = await unbooked(3000);
    await w.deps().store.cas('orders', { _id: other }, { totalFee: 1 });
    at(1, 10.5);
    const earlier: BillAction = { kind: 'BOOKED_PAID', orderId, fen: 2000, atMs: 1 };
    await checkBillDate(withBills(NO_BILL_SOURCE), day, ADMIN_OPTIONS);
    await setRecord({ actions: w.deps().store.cmd.set([earlier]) });
    const again = await checkBillDate(withBills(simulatorBill(w)), day, ADMIN_OPTIONS);
    expect(logged(w, 'billcheck.done').at(-1)!.fields['fixed']).toBe(1);
    expect(again.doc.actions).toEqual([earlier]);
    expect((await stored()).actions).toEqual([earlier]);
    // 200 listed: a new fix is in payment_events and the logs, not on the record.
    await w.deps().store.cas('orders', { _id: other }, { totalFee: 3000 });
    const many = Array.from({ length: 200 }, (_, i) => ({ ...earlier, orderId: `OLD${i}` }));
    await setRecord({ actions: w.deps().store.cmd.set(many) });
    const full = await checkBillDate(withBills(simulatorBill(w)), day, ADMIN_OPTIONS);
    expect(full.doc.actions).toHaveLength(200);
    expect(full.doc.actions.some((a) => a.orderId === other)).toBe(false);
    expect((await orderDoc(w, other)).status).toBe('PAID');
  });
});

describe('a run that outlived its lease', () => {
  it('keeps its fixes, but its record and notice give way to the run that took the day over', async () => {
    const missed = await unbooked(2000);
    const tampered = await paidOrder(w, 5000);
    await w.deps().store.cas('orders', { _id: tampered }, { totalFee: 4999 });
    const bill = handMade([payRow(missed, 2000), payRow(tampered, 5000)]);
    // It has made its fixes and is about to write its record when it stalls past its lease.
    const point = pausePoint();
    const stale = checkBillDate(
      withBills(bill, withNotices(pauseBefore(w.deps(), casOn('bill_checks'), point))),
      day,
      ADMIN_OPTIONS,
    );
    await point.arrived;
    expect((await orderDoc(w, missed)).status).toBe('PAID');
    w.advance(70_001);
    const newer = await checkBillDate(withBills(handMade([payRow(tampered, 5000)])), day, TIMER_OPTIONS);
    expect(newer).toMatchObject({ ran: true, doc: { runs: 1, lastRun: { trigger: 'timer' } } });
    point.release();
    const r = await stale;
    expect(r.ran).toBe(true);
    expect(r.doc).toEqual(await stored());
    expect(r.doc).toMatchObject({ runs: 1, lastRun: { trigger: 'timer' }, actions: [] });
    // Its fix was a transition of its own: it stands.
    expect((await orderDoc(w, missed)).status).toBe('PAID');
    expect(logged(w, 'billcheck.done').map((l) => [l.fields['saved'], l.fields['fixed']])).toEqual([
      [true, 0],
      [false, 1],
    ]);
    expect(await billNotices()).toEqual([]);
  });
});

describe('the merchant’s notice (对账异常)', () => {
  it('is written once per day that has differences, and not for a clean day', async () => {
    const tampered = await paidOrder(w, 5000);
    await w.deps().store.cas('orders', { _id: tampered }, { totalFee: 4999 });
    const bill = handMade([payRow(tampered, 5000)]);
    at(1, 10.5);
    const first = await checkBillDate(withBills(bill, withNotices()), day, ADMIN_OPTIONS);
    expect(first.doc.discrepancyCount).toBe(1);
    expect(await billNotices()).toMatchObject([
      {
        kind: 'bill_mismatch',
        subject: day,
        touser: ADMIN.openid,
        // The day checked (not the day it was checked on), and how many differences.
        data: {
          date1: { value: `${day.slice(0, 4)}年${Number(day.slice(4, 6))}月${Number(day.slice(6))}日` },
          number2: { value: '1' },
        },
      },
    ]);
    await checkBillDate(withBills(bill, withNotices()), day, ADMIN_OPTIONS);
    expect(await billNotices()).toHaveLength(1);
    const clean = dayBefore(day);
    const r = await checkBillDate(withBills(NO_BILL_SOURCE, withNotices()), clean, ADMIN_OPTIONS);
    expect(r.doc.discrepancyCount).toBe(0);
    expect((await billNotices()).map((n) => n.subject)).toEqual([day]);
  });

  it('is not written by a run that compared nothing, whatever the last run found', async () => {
    const tampered = await paidOrder(w, 5000);
    await w.deps().store.cas('orders', { _id: tampered }, { totalFee: 4999 });
    // Found before notices were set up.
    await checkBillDate(withBills(handMade([payRow(tampered, 5000)])), day, ADMIN_OPTIONS);
    const failed = await checkBillDate(
      withBills({ download: async () => Promise.reject(new Error('cut off')) }, withNotices()),
      day,
      ADMIN_OPTIONS,
    );
    expect(failed.doc).toMatchObject({ status: 'FAILED', discrepancyCount: 1 });
    expect(await billNotices()).toEqual([]);
  });
});

describe('the timer', () => {
  it('does nothing before 10:30 Beijing time', async () => {
    at(1, 10.5);
    w.advance(-1);
    expect(await scheduledBillCheck(withBills(NO_BILL_SOURCE))).toEqual({
      skipped: 'before 10:30 Beijing time',
      checked: [],
    });
    expect(await w.deps().store.get('bill_checks', day)).toBeNull();
  });

  it('checks yesterday first, then the unfinished days of the week, while a check still fits its budget', async () => {
    at(1, 10.5);
    const week = Array.from({ length: 7 }, (_, i) => dayBefore(day, 6 - i));
    let during: BillCheckDoc | undefined;
    // Each check takes 25 s; a check is started only with at least 20 s left.
    const slow = downloading(async () => {
      during ??= await stored();
      w.advance(25_000);
    });
    const r = await scheduledBillCheck(withBills(slow), { budgetMs: 45_000, leaseMs: 60_000 });
    expect(r).toEqual({
      checked: [
        { billDate: day, status: 'DONE', ran: true },
        { billDate: week[0], status: 'DONE', ran: true },
      ],
    });
    expect(during).toMatchObject({ leaseUntilMs: w.now() - 50_000 + 60_000 });
    expect((await stored()).lastRun).toMatchObject({ trigger: 'timer' });
    expect(Object.keys((await stored()).lastRun!)).not.toContain('by');
    expect(logged(w, 'billcheck.timer')).toEqual([
      { level: 'info', event: 'billcheck.timer', fields: { checked: r.checked } },
    ]);
    // 20 s left after the first is still enough; 19.999 s is not.
    await clearChecks();
    const edge = await scheduledBillCheck(withBills(slow), { budgetMs: 44_999, leaseMs: 60_000 });
    expect(edge.checked.map((c) => c.billDate)).toEqual([day]);
  });

  it('leaves the days of the week that are DONE, whatever other days are recorded', async () => {
    at(1, 10.5);
    const store = w.deps().store;
    // Older days first, so a query that did not ask for the week's days would find those.
    for (let n = 20; n >= 0; n--) {
      await store.insert('bill_checks', recordOf(dayBefore(day, n)));
    }
    const r = await scheduledBillCheck(withBills(NO_BILL_SOURCE));
    expect(r).toEqual({ checked: [] });
    await setRecord({ status: 'FAILED' }, dayBefore(day, 3));
    const again = await scheduledBillCheck(withBills(NO_BILL_SOURCE));
    expect(again.checked).toEqual([{ billDate: dayBefore(day, 3), status: 'DONE', ran: true }]);
  });
});

describe('the admin’s list and run', () => {
  it('pages ten checks at a time, newest first', async () => {
    const dates = Array.from({ length: 12 }, (_, i) => dayBefore(day, 11 - i));
    // Oldest first: the list must order them itself.
    for (const d of dates) await w.deps().store.insert('bill_checks', recordOf(d));
    const first = await listBillChecks(w.deps(), { cursor: null }, ADMIN);
    const newest = [...dates].reverse();
    expect(first.items.map((i) => i.billDate)).toEqual(newest.slice(0, 10));
    expect(first.nextCursor).toBe(newest[9]);
    const second = await listBillChecks(w.deps(), { cursor: first.nextCursor }, ADMIN);
    expect(second).toMatchObject({ nextCursor: null });
    expect(second.items.map((i) => i.billDate)).toEqual(newest.slice(10));
    // Exactly ten: no next page.
    const { db } = connectSdk(w.emulator.serviceUrl);
    await db
      .collection('bill_checks')
      .where({ _id: db.command.in(dates.slice(0, 2)) })
      .remove();
    const ten = await listBillChecks(w.deps(), {}, ADMIN);
    expect(ten.items).toHaveLength(10);
    expect(ten.nextCursor).toBeNull();
  });

  it('refuses a cursor that is not a bill date', async () => {
    for (const cursor of [20261130, 'x20261130', '202611301', '2026113', ''])
      await refused(listBillChecks(w.deps(), { cursor }, ADMIN), 'INVALID_INPUT', 'cursor is invalid');
  });

  it('runs as the admin who asked, under the admin’s budget and lease', async () => {
    const orderId = await unbooked(2000);
    at(1, 10.5);
    await refused(
      runBillCheck(withBills(NO_BILL_SOURCE), { date: `${day}0` }, ADMIN),
      'INVALID_INPUT',
      'date must be at most 8 characters',
    );
    let lease = 0;
    // 20 s into its 50 s, less 3 s for the record: one 27 s WeChat call still fits, not a ms more.
    const late = (ms: number) =>
      downloading(async () => {
        lease = (await stored()).leaseUntilMs - w.now();
        w.advance(ms);
      }, simulatorBill(w));
    const over = await runBillCheck(withBills(late(20_001)), { date: day }, ADMIN);
    expect(lease).toBe(70_000);
    expect(over.check).toMatchObject({
      status: 'INCOMPLETE',
      lastRun: { trigger: 'admin', by: ADMIN.openid },
    });
    const fits = await runBillCheck(withBills(late(20_000)), { date: day }, ADMIN);
    expect(fits.check).toMatchObject({ status: 'DONE', actions: [{ kind: 'BOOKED_PAID', orderId }] });
  });
});
