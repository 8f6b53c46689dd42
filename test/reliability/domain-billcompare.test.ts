/**
 * The bill check's comparison (billcompare.ts) in one process (world.ts): hand-made bills,
 * row by row, against orders and refunds written straight into the emulator. Each test reads
 * what a run found: the discrepancies the merchant reads (kind, amounts, the detail line),
 * the log lines an operator reads, the totals, the items handed on for WeChat to confirm, and
 * how many database reads it cost. Runs under `npm test` and `npm run test:mutation`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  ADMIN_RUN,
  type BillCheckDeps,
  type BillOwner,
  type BillSource,
  checkBillDate,
} from '../../cloudfunctions/shared/domain/billcheck';
import { compare, LATE_BOOKING_MS, Run, type Work } from '../../cloudfunctions/shared/domain/billcompare';
import { billDateOf, DAY_MS, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import type { Deps } from '../../cloudfunctions/shared/domain/deps';
import type { ProviderName } from '../../cloudfunctions/shared/providers/port';
import type { Store } from '../../cloudfunctions/shared/store';
import {
  BILL_ALL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  type BillRow,
  billFeeMilliFen,
  billFen,
  formatBill,
} from '../../cloudfunctions/shared/wxpay/bill';
import { connectSdk } from '../emulator/sdk';
import { logged, orderAndPay, refused } from './shop';
import { MERCHANT, useWorld } from './world';

const w = useWorld();

let day = '';
let dayStart = 0;
let dayEnd = 0;
beforeEach(async () => {
  await w.reset();
  // The trading day is the world's first; its bill is read the next morning.
  day = billDateOf(w.now());
  dayStart = dayStartMs(day)!;
  dayEnd = dayStart + DAY_MS;
});

const yuan = (fen: number) =>
  `${fen < 0 ? '-' : ''}${Math.floor(Math.abs(fen) / 100)}.${String(Math.abs(fen) % 100).padStart(2, '0')}`;
/** Thousandths of a fen as the fee column prints them (yuan, five decimals). */
const feeYuan = (milli: number) => (milli / 100_000).toFixed(5);

/** A payment row of this shop (0.60 %, fee exact to the thousandth of a fen). */
function payRow(orderId: string, fen: number, extra: Partial<BillRow> = {}): BillRow {
  return row({
    微信订单号: `wx${orderId}`,
    商户订单号: orderId,
    交易状态: 'SUCCESS',
    应结订单金额: yuan(fen),
    订单金额: yuan(fen),
    手续费: feeYuan(fen * 6),
    ...extra,
  });
}

/** A refund row of this shop: `fen` applied for, refunded when `status` is SUCCESS. */
function refundRow(
  orderId: string,
  refundId: string,
  fen: number,
  status: string,
  extra: Partial<BillRow> = {},
) {
  const refunded = status === 'SUCCESS' ? fen : 0;
  return row({
    微信订单号: `wx${orderId}`,
    商户订单号: orderId,
    交易状态: 'REFUND',
    微信退款单号: `wxr${refundId}`,
    商户退款单号: refundId,
    退款金额: yuan(refunded),
    退款类型: 'ORIGINAL',
    退款状态: status,
    手续费: feeYuan(-refunded * 6),
    申请退款金额: yuan(fen),
    ...extra,
  });
}

function row(values: Partial<BillRow>): BillRow {
  return {
    交易时间: '2026-11-30 12:00:00',
    公众账号ID: MERCHANT.appid,
    商户号: MERCHANT.mchId,
    特约商户号: '0',
    设备号: '',
    微信订单号: '',
    商户订单号: '',
    用户标识: 'o_shopper',
    交易类型: 'JSAPI',
    交易状态: 'SUCCESS',
    付款银行: 'OTHERS',
    货币种类: 'CNY',
    应结订单金额: '0.00',
    代金券金额: '0.00',
    微信退款单号: '0',
    商户退款单号: '0',
    退款金额: '0.00',
    充值券退款金额: '0.00',
    退款类型: '',
    退款状态: '',
    商品名称: '茶',
    商户数据包: '',
    手续费: '0.00000',
    费率: '0.60%',
    订单金额: '0.00',
    申请退款金额: '0.00',
    费率备注: '',
    ...values,
  };
}

/** The summary WeChat would write for `rows`, with `patch` over it. */
function summaryOf(rows: BillRow[], patch: Record<string, string> = {}): Record<string, string> {
  const sum = (col: string) => rows.reduce((s, r) => s + billFen(r[col], col), 0);
  return {
    总交易单数: String(rows.length),
    应结订单总金额: yuan(sum('应结订单金额')),
    退款总金额: yuan(sum('退款金额')),
    充值券退款总金额: '0.00',
    手续费总金额: feeYuan(rows.reduce((s, r) => s + billFeeMilliFen(r['手续费']), 0)),
    订单总金额: yuan(sum('订单金额')),
    申请退款总金额: yuan(sum('申请退款金额')),
    ...patch,
  };
}

/** A bill file as downloadbill sends it, line by line; `extraLines` go after the summary. */
function bill(
  rows: BillRow[],
  o: {
    summary?: Record<string, string>;
    owner?: BillOwner;
    provider?: ProviderName;
    extraLines?: number;
    yielded?: { n: number };
  } = {},
): BillSource {
  const csv = formatBill({
    columns: [...BILL_ALL_COLUMNS],
    rows,
    summaryColumns: [...BILL_SUMMARY_COLUMNS],
    summary: o.summary ?? summaryOf(rows),
  });
  const lines = [...csv.split('\r\n'), ...Array.from({ length: o.extraLines ?? 0 }, () => '')];
  return {
    ...(o.owner ? { owner: o.owner } : {}),
    ...(o.provider ? { provider: o.provider } : {}),
    async download() {
      return {
        kind: 'bill',
        gzip: false,
        lines: (async function* () {
          for (const line of lines) {
            if (o.yielded) o.yielded.n++;
            yield line;
          }
        })(),
      };
    },
  };
}

/**
 * Deps whose store records each request as `method collection`, and the fields of every
 * document a query sent back (what travels, against the 1 MB result limit).
 */
function counting(deps: Deps): { deps: Deps; calls: string[]; fieldsRead: Set<string> } {
  const calls: string[] = [];
  const fieldsRead = new Set<string>();
  const store = new Proxy(deps.store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${String(args[0])}`);
        const answer = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (prop !== 'find') return answer;
        return (answer as Promise<object[]>).then((docs) => {
          for (const d of docs) for (const k of Object.keys(d)) fieldsRead.add(k);
          return docs;
        });
      };
    },
  }) as Store;
  return { deps: { ...deps, store }, calls, fieldsRead };
}

async function compared(
  bills: BillSource | BillSource[],
  more: Partial<BillCheckDeps> = {},
): Promise<{
  run: Run;
  calls: string[];
  fieldsRead: Set<string>;
  result: Awaited<ReturnType<typeof compare>>;
}> {
  const { deps, calls, fieldsRead } = counting(w.deps());
  const run = new Run({ ...deps, bills, ...more }, day, w.now() + 50_000);
  const result = await compare(run);
  return { run, calls, fieldsRead, result };
}

async function orders(
  ...docs: { _id: string; status: string; totalFee: number; transactionId?: string; paidAtMs?: number }[]
) {
  const { db } = connectSdk(w.emulator.serviceUrl);
  await db.collection('orders').add({ data: docs.map((d) => ({ createdAtMs: dayStart, ...d })) });
}

async function refunds(
  ...docs: {
    _id: string;
    orderId: string;
    status: string;
    refundFee: number;
    submittedAtMs?: number;
    createdAtMs?: number;
  }[]
) {
  const { db } = connectSdk(w.emulator.serviceUrl);
  await db.collection('refunds').add({ data: docs.map((d) => ({ createdAtMs: dayStart + 3600_000, ...d })) });
}

const paid = (_id: string, totalFee: number, paidAtMs = dayStart + 5 * 3600_000) => ({
  _id,
  status: 'PAID',
  totalFee,
  transactionId: `wx${_id}`,
  paidAtMs,
});
const done = (_id: string, orderId: string, refundFee: number, submittedAtMs = dayStart + 6 * 3600_000) => ({
  _id,
  orderId,
  status: 'SUCCESS',
  refundFee,
  submittedAtMs,
  createdAtMs: submittedAtMs,
});

describe('a bill that agrees with the books', () => {
  it('finds nothing, sums the day, and costs one read per batch and one count per collection', async () => {
    // Booked at the first millisecond of the day, and at the last one of the late window.
    await orders(paid('A', 1000, dayStart), paid('B', 2000, dayEnd + LATE_BOOKING_MS - 1), paid('C', 3000));
    await refunds(done('RA', 'A', 400, dayStart), done('RC', 'C', 500, dayEnd - 1));
    const rows = [
      payRow('A', 1000),
      // A coupon: WeChat settles 19.50 of the 20.00 ordered; the fee is on what it settles.
      payRow('B', 2000, { 应结订单金额: '19.50', 代金券金额: '0.50', 手续费: feeYuan(1950 * 6) }),
      payRow('C', 3000),
      refundRow('A', 'RA', 400, 'SUCCESS'),
      refundRow('C', 'RC', 500, 'SUCCESS'),
    ];
    const { run, calls, result } = await compared(bill(rows, { provider: 'v2' }));
    expect(result).toEqual({ status: 'DONE', noBill: false, compared: true });
    expect(run.discrepancies).toEqual([]);
    expect(run.counts).toEqual({});
    expect(run.work).toEqual([]);
    expect(run.actions).toEqual([]);
    expect(logged(w, 'billcheck.discrepancy')).toEqual([]);
    expect(run.totals).toEqual({
      rows: 5,
      payments: 3,
      paymentFen: 6000,
      settledFen: 5950,
      refunds: 2,
      refundFen: 900,
      refundSuccessFen: 900,
      feeFen: 0,
    });
    // 0.06 + 0.117 + 0.18 − 0.024 − 0.03 yuan = 0.303, to the thousandth of a fen.
    expect(run.feeMilli).toBe(30_300);
    expect(run.otherAppRows).toBe(0);
    expect(run.wxCalls).toBe(1);
    // Everything the books hold for the day was in the bill: the counts say so, no page is read.
    expect(calls).toEqual(['find orders', 'find refunds', 'countWhere orders', 'countWhere refunds']);
  });

  it('a bill without refunds reads no refund, a bill without payments reads no order', async () => {
    await orders(paid('A', 1000));
    const payments = await compared(bill([payRow('A', 1000)]));
    expect(payments.calls).toEqual(['find orders', 'countWhere orders', 'countWhere refunds']);
    await refunds(done('RA', 'A', 400));
    const only = await compared(bill([refundRow('A', 'RA', 400, 'SUCCESS')]));
    expect(only.run.work).toEqual([{ type: 'absent-pay', orderId: 'A' }]);
    expect(only.calls).toEqual(['find refunds', 'countWhere orders', 'find orders', 'countWhere refunds']);
  });
});

describe('rows that are not this shop’s', () => {
  it('skips other apps and other sub-merchants: counted in the bill’s rows and summary, not compared', async () => {
    await orders(paid('MINE', 1000));
    const owner = { appid: MERCHANT.appid, mchId: MERCHANT.mchId, subMchId: '1900000119' };
    // Their fees are wrong and their orders unknown here: neither is this shop's business.
    const rows = [
      payRow('MINE', 1000, { 特约商户号: '1900000119' }),
      payRow('THEIRS1', 700, {
        公众账号ID: 'wxother0000000001',
        特约商户号: '1900000119',
        手续费: '9.99000',
      }),
      payRow('THEIRS2', 800, { 特约商户号: '1900000129', 手续费: '9.99000' }),
    ];
    const { run } = await compared(bill(rows, { owner }));
    expect(run.otherAppRows).toBe(2);
    expect(run.discrepancies).toEqual([]);
    expect(run.work).toEqual([]);
    expect(run.totals).toMatchObject({ rows: 3, payments: 1, paymentFen: 1000 });
    expect(run.feeMilli).toBe(6000);
  });

  it('an account without a sub-merchant: the sub-merchant column is not looked at', async () => {
    await orders(paid('MINE', 1000));
    const { run } = await compared(bill([payRow('MINE', 1000, { 特约商户号: '1900000129' })]));
    expect(run).toMatchObject({ otherAppRows: 0, matchedPaid: 1 });
    expect(run.discrepancies).toEqual([]);
  });

  it('reports a row of this app under another merchant number, and a trade state a JSAPI shop never has', async () => {
    await orders(paid('A', 1000), { _id: 'B', status: 'NOTPAY', totalFee: 2000 });
    const rows = [
      payRow('A', 1000, { 商户号: '1900000999' }),
      payRow('B', 2000, { 交易状态: 'REVOKED' }),
      refundRow('A', 'RA', 300, 'SUCCESS', { 商户号: '1900000999' }),
    ];
    const { run } = await compared(bill(rows));
    const expected = [
      { kind: 'UNEXPECTED_ROW', orderId: 'A', transactionId: 'wxA', detail: '商户号 1900000999' },
      { kind: 'UNEXPECTED_ROW', orderId: 'B', transactionId: 'wxB', detail: '交易状态 REVOKED' },
      { kind: 'UNEXPECTED_ROW', orderId: 'A', transactionId: 'wxA', detail: '商户号 1900000999' },
    ];
    expect(run.discrepancies).toEqual(expected);
    expect(run.counts).toEqual({ UNEXPECTED_ROW: 3 });
    expect(logged(w, 'billcheck.discrepancy')).toEqual(
      expected.map((d) => ({
        level: 'warn',
        event: 'billcheck.discrepancy',
        fields: { billDate: day, ...d },
      })),
    );
    // Neither is taken as a payment or a refund of this shop; A is still PAID and not in the bill.
    expect(run.totals).toMatchObject({ rows: 3, payments: 0, paymentFen: 0, refunds: 0 });
    expect(run.work).toEqual([{ type: 'absent-pay', orderId: 'A' }]);
  });

  it('a bill whose owner names no merchant number takes every merchant number of its app', async () => {
    await orders(paid('A', 1000));
    const { run } = await compared(
      bill([payRow('A', 1000, { 商户号: '1900000999' })], { owner: { appid: MERCHANT.appid } }),
    );
    expect(run.discrepancies).toEqual([]);
    expect(run.matchedPaid).toBe(1);
  });
});

describe('fees', () => {
  it('takes WeChat’s rounding to the fen, and reports a fee more than half a fen off its rate', async () => {
    await orders(paid('A', 10_000), paid('B', 10_000), paid('C', 10_000));
    await refunds(done('RC', 'C', 10_000));
    const rows = [
      payRow('A', 10_000, { 手续费: '0.60500' }),
      payRow('B', 10_000, { 手续费: '0.60501' }),
      // A refund gives the fee back: −0.60 for 100 yuan.
      refundRow('C', 'RC', 10_000, 'SUCCESS'),
      payRow('C', 10_000),
    ];
    const { run } = await compared(bill(rows));
    expect(run.discrepancies).toEqual([
      {
        kind: 'FEE_MISMATCH',
        orderId: 'B',
        wechatFen: 61,
        localFen: 60,
        detail: '手续费 0.60501 元 for 100 元 at 0.6%',
      },
    ]);
    expect(run.feeMilli).toBe(60_500 + 60_501 - 60_000 + 60_000);
  });
});

describe('payments against the books', () => {
  it('reports what differs, and hands on an unpaid order WeChat was paid for', async () => {
    await orders(
      { _id: 'NOTPAID', status: 'NOTPAY', totalFee: 1000 },
      { _id: 'CLOSED', status: 'CLOSED', totalFee: 1500 },
      { _id: 'CHANGED', status: 'NOTPAY', totalFee: 2001 },
      paid('OTHERTX', 3000),
      { _id: 'NOTX', status: 'PAID', totalFee: 4000, paidAtMs: dayStart + 3600_000 },
    );
    const rows = [
      payRow('NOTPAID', 1000),
      payRow('CLOSED', 1500),
      payRow('CHANGED', 2000),
      payRow('OTHERTX', 3000, { 微信订单号: 'wxSOMETHINGELSE' }),
      payRow('NOTX', 4000),
      payRow('STRANGER', 5000),
    ];
    const { run } = await compared(bill(rows, { provider: 'v2' }));
    expect(run.discrepancies).toEqual([
      {
        kind: 'AMOUNT_MISMATCH',
        orderId: 'CHANGED',
        transactionId: 'wxCHANGED',
        wechatFen: 2000,
        localFen: 2001,
        detail: 'order is NOTPAY here with another amount',
      },
      {
        kind: 'TRANSACTION_MISMATCH',
        orderId: 'OTHERTX',
        transactionId: 'wxSOMETHINGELSE',
        detail: 'booked with transaction wxOTHERTX',
      },
      {
        kind: 'UNKNOWN_ORDER',
        orderId: 'STRANGER',
        transactionId: 'wxSTRANGER',
        wechatFen: 5000,
        detail: 'WeChat was paid for an order this shop does not have',
      },
    ]);
    expect(run.work).toEqual([
      {
        type: 'pay',
        entry: { orderId: 'NOTPAID', transactionId: 'wxNOTPAID', totalFen: 1000, provider: 'v2' },
      },
      {
        type: 'pay',
        entry: { orderId: 'CLOSED', transactionId: 'wxCLOSED', totalFen: 1500, provider: 'v2' },
      },
    ]);
    expect(run.matchedPaid).toBe(2);
  });
});

describe('refunds against the books', () => {
  it('hands on what WeChat finished or closed and the books still hold open; reports amounts that differ', async () => {
    await orders(paid('O', 10_000), paid('P', 10_000));
    const at = dayStart + 3600_000;
    const r = (id: string, status: string, refundFee = 100, orderId = 'O') => ({
      _id: id,
      orderId,
      status,
      refundFee,
      submittedAtMs: at,
      createdAtMs: at,
    });
    await refunds(
      r('SP', 'PROCESSING'),
      r('SS', 'SUCCESS'),
      r('SF', 'FAILED'),
      r('CA', 'APPROVED'),
      r('CF', 'FAILED'),
      r('HP', 'PROCESSING'),
      r('HA', 'APPROVED'),
      r('PP', 'PROCESSING'),
      r('AMT', 'SUCCESS', 150),
      r('ELSE', 'SUCCESS', 100, 'P'),
    );
    const rows = [
      payRow('O', 10_000),
      payRow('P', 10_000),
      refundRow('O', 'SP', 100, 'SUCCESS'),
      refundRow('O', 'SS', 100, 'SUCCESS'),
      refundRow('O', 'SF', 100, 'SUCCESS'),
      refundRow('O', 'CA', 100, 'REFUNDCLOSE'),
      refundRow('O', 'CF', 100, 'REFUNDCLOSE'),
      // 退款异常: the money left the merchant account and did not arrive.
      refundRow('O', 'HP', 100, 'CHANGE', { 退款金额: '1.00', 手续费: feeYuan(-600) }),
      refundRow('O', 'HA', 100, 'CHANGE'),
      refundRow('O', 'PP', 100, 'PROCESSING'),
      refundRow('O', 'AMT', 100, 'SUCCESS'),
      refundRow('O', 'ELSE', 100, 'SUCCESS'),
      // Made on the merchant platform: no document here. A closed one moved no money.
      refundRow('O', 'EXT', 200, 'SUCCESS'),
      refundRow('O', 'EXTCLOSED', 200, 'REFUNDCLOSE'),
    ];
    const { run } = await compared(bill(rows, { provider: 'v2' }));
    const entry = (refundId: string, status: string, refundFen = 100) => ({
      orderId: 'O',
      refundId,
      transactionId: 'wxO',
      refundFen,
      status,
      provider: 'v2' as const,
    });
    expect(run.work).toEqual([
      { type: 'refund', entry: entry('SP', 'SUCCESS') },
      { type: 'refund', entry: entry('SF', 'SUCCESS') },
      { type: 'refund', entry: entry('CA', 'REFUNDCLOSE') },
      { type: 'refund', entry: entry('HP', 'CHANGE') },
      { type: 'refund', entry: entry('HA', 'CHANGE') },
      { type: 'external', entry: entry('EXT', 'SUCCESS', 200) },
    ] satisfies Work[]);
    expect(run.discrepancies).toEqual([
      {
        kind: 'REFUND_AMOUNT_MISMATCH',
        orderId: 'O',
        refundId: 'AMT',
        wechatFen: 100,
        localFen: 150,
        detail: 'refund amount differs',
      },
      {
        kind: 'REFUND_AMOUNT_MISMATCH',
        orderId: 'O',
        refundId: 'ELSE',
        wechatFen: 100,
        localFen: 100,
        detail: 'refund belongs to order P here',
      },
    ]);
    // SUCCESS on both sides, submitted inside the day: SS only.
    expect(run.matchedRefunds).toBe(1);
    // Every refund row counts; only a SUCCESS one's money is counted as refunded.
    expect(run.totals).toMatchObject({ refunds: 12, refundFen: 1400, refundSuccessFen: 700 });
  });
});

describe('the summary row', () => {
  it('reports each sum that differs from the rows, in fen, in one discrepancy', async () => {
    await orders(paid('A', 1000));
    await refunds(done('RA', 'A', 400));
    const rows = [payRow('A', 1000), refundRow('A', 'RA', 400, 'SUCCESS')];
    const summary = summaryOf(rows, {
      应结订单总金额: '10.01',
      订单总金额: '10.02',
      退款总金额: '4.03',
      申请退款总金额: '4.04',
      手续费总金额: '0.03700',
    });
    const { run, result } = await compared(bill(rows, { summary }));
    expect(result.status).toBe('DONE');
    const expected = {
      kind: 'BILL_TOTALS_MISMATCH',
      detail:
        'summary row vs rows (fen): 应结订单总金额 1001 ≠ 1000; 订单总金额 1002 ≠ 1000; ' +
        '退款总金额 403 ≠ 400; 申请退款总金额 404 ≠ 400; 手续费总金额 3.7 ≠ 3.6',
    };
    expect(run.discrepancies).toEqual([expected]);
    expect(logged(w, 'billcheck.discrepancy')).toEqual([
      { level: 'warn', event: 'billcheck.discrepancy', fields: { billDate: day, ...expected } },
    ]);
  });

  it.each([
    ['应结订单总金额', '1001 ≠ 1000'],
    ['订单总金额', '1001 ≠ 1000'],
    ['退款总金额', '401 ≠ 400'],
    ['申请退款总金额', '401 ≠ 400'],
  ])('one sum off by a fen is reported: %s', async (column, says) => {
    await orders(paid('A', 1000));
    await refunds(done('RA', 'A', 400));
    const rows = [payRow('A', 1000), refundRow('A', 'RA', 400, 'SUCCESS')];
    const summary = summaryOf(rows);
    summary[column] = yuan(billFen(summary[column], column) + 1);
    const { run } = await compared(bill(rows, { summary }));
    expect(run.discrepancies).toEqual([
      { kind: 'BILL_TOTALS_MISMATCH', detail: `summary row vs rows (fen): ${column} ${says}` },
    ]);
  });

  it('refuses a bill whose columns are not the ALL bill’s, in WeChat’s order', async () => {
    const columns = [...BILL_ALL_COLUMNS];
    [columns[5], columns[6]] = [columns[6]!, columns[5]!];
    const rows = [payRow('A', 1000)];
    const csv = formatBill({
      columns,
      rows,
      summaryColumns: [...BILL_SUMMARY_COLUMNS],
      summary: summaryOf(rows),
    });
    const swapped: BillSource = {
      download: async () => ({
        kind: 'bill',
        gzip: false,
        lines: (async function* () {
          yield* csv.split('\r\n');
        })(),
      }),
    };
    const run = new Run({ ...w.deps(), bills: swapped }, day, 0);
    await refused(
      compare(run),
      'BILL_MALFORMED',
      `bill header is not WeChat's ALL column set: ${columns.join(',').slice(0, 120)}`,
    );
  });

  it('refuses a bill whose summary counts other rows than arrived: nothing compared from half a bill', async () => {
    const rows = [payRow('A', 1000)];
    const run = new Run(
      { ...w.deps(), bills: bill(rows, { summary: summaryOf(rows, { 总交易单数: '2' }) }) },
      day,
      0,
    );
    await refused(compare(run), 'BILL_MALFORMED', 'bill summary says 2 trades, 1 rows arrived');
  });

  it.each([
    ['应结订单金额', 'is not an amount in yuan'],
    ['订单金额', 'is not an amount in yuan'],
    ['申请退款金额', 'is not an amount in yuan'],
    ['退款金额', 'is not an amount in yuan'],
  ])('refuses a row whose %s is not an amount, naming the column', async (column, says) => {
    const rows = [payRow('A', 1000, { [column]: '1,00' })];
    const run = new Run(
      { ...w.deps(), bills: bill(rows, { summary: summaryOf([], { 总交易单数: '1' }) }) },
      day,
      0,
    );
    await refused(compare(run), 'BILL_MALFORMED', `${column} ${says}: "1,00"`);
  });

  it.each([
    ['应结订单总金额', 'is not an amount in yuan'],
    ['退款总金额', 'is not an amount in yuan'],
    ['手续费总金额', 'is not a fee in yuan'],
    ['订单总金额', 'is not an amount in yuan'],
    ['申请退款总金额', 'is not an amount in yuan'],
  ])('refuses a summary whose %s is not an amount, naming the column', async (column, says) => {
    const run = new Run(
      { ...w.deps(), bills: bill([], { summary: summaryOf([], { [column]: 'x' }) }) },
      day,
      0,
    );
    await refused(compare(run), 'BILL_MALFORMED', `${column} ${says}: "x"`);
  });
});

describe('what the books hold and no bill listed', () => {
  it('hands on the day’s PAID orders and SUCCESS refunds the bill left out, by their own day only', async () => {
    const hour = 3600_000;
    await orders(
      // Listed: paid here before the day began, and when the late window had closed.
      paid('EARLY', 1000, dayStart - 1),
      paid('LATE', 1000, dayEnd + LATE_BOOKING_MS),
      // Listed, and in the day: read again with the absent one, and known to be in the bill.
      paid('LISTED', 1000, dayStart + hour),
      // Not listed: booked an hour after midnight (a retried notify), then one for tomorrow.
      paid('ABSENT', 1000, dayEnd + hour),
      paid('TOMORROW', 1000, dayEnd + LATE_BOOKING_MS),
      { _id: 'UNPAID', status: 'NOTPAY', totalFee: 1000 },
      { _id: 'CLOSED', status: 'CLOSED', totalFee: 1000, paidAtMs: dayStart + hour },
    );
    // The ones the bill lists go in last: a read of the refunds that ignored the bill's ids
    // would come back with the others.
    await refunds(
      // Not listed: created at the first millisecond of the day.
      { ...done('R_ABSENT', 'EARLY', 100), createdAtMs: dayStart },
      // Not listed, created the day before: that day's bill may hold it.
      { ...done('R_YESTERDAY', 'EARLY', 100), createdAtMs: dayStart - 1 },
      // Not listed and not finished here: nothing to look for.
      { ...done('R_PENDING', 'EARLY', 100), status: 'PROCESSING' },
      done('R_NEXTDAY', 'EARLY', 100, dayEnd),
      // Listed: submitted when the day had ended, and the millisecond before it began.
      done('R_END', 'EARLY', 100, dayEnd),
      done('R_BEFORE', 'EARLY', 100, dayStart - 1),
      // Listed as SUCCESS while the books still say PROCESSING.
      { ...done('R_OPEN', 'EARLY', 100), status: 'PROCESSING' },
    );
    const rows = [
      payRow('EARLY', 1000),
      payRow('LATE', 1000),
      payRow('LISTED', 1000),
      refundRow('EARLY', 'R_END', 100, 'SUCCESS'),
      refundRow('EARLY', 'R_BEFORE', 100, 'SUCCESS'),
      refundRow('EARLY', 'R_OPEN', 100, 'SUCCESS'),
    ];
    const { run } = await compared(bill(rows));
    expect(run.work).toEqual([
      {
        type: 'refund',
        entry: {
          orderId: 'EARLY',
          refundId: 'R_OPEN',
          transactionId: 'wxEARLY',
          refundFen: 100,
          status: 'SUCCESS',
        },
      },
      { type: 'absent-pay', orderId: 'ABSENT' },
      { type: 'absent-refund', refundId: 'R_ABSENT' },
    ]);
    expect(run.discrepancies).toEqual([]);
    expect(run).toMatchObject({ matchedPaid: 1, matchedRefunds: 0 });
  });

  it('pages through more than a thousand, ties on the same millisecond included, each once', async () => {
    const at = dayStart + 3600_000;
    // Inserted newest first, so an unordered read would not come back in paging order.
    const docs = Array.from({ length: 1000 }, (_, i) =>
      paid(`P${String(999 - i).padStart(4, '0')}`, 100, i < 500 ? at + 500 - i : at),
    );
    await orders(...docs);
    const first = await compared(bill([]));
    expect(first.run.work).toHaveLength(1000);
    expect(new Set(first.run.work.map((x) => (x as { orderId: string }).orderId)).size).toBe(1000);
    // A full page: the next one is asked for, and is empty.
    expect(first.calls).toEqual(['countWhere orders', 'find orders', 'find orders', 'countWhere refunds']);
    // Ids and what the pages are ordered by, not whole orders: 1000 of them stay far below 1 MB.
    expect([...first.fieldsRead].sort()).toEqual(['_id', 'createdAtMs', 'paidAtMs']);
    await orders(paid('P1000', 100, at));
    const second = await compared(bill([]));
    expect(second.run.work.map((x) => (x as { orderId: string }).orderId).sort()).toEqual(
      [...docs.map((d) => d._id), 'P1000'].sort(),
    );
    expect(second.calls).toEqual(['countWhere orders', 'find orders', 'find orders', 'countWhere refunds']);
  });
});

describe('one run, several bills', () => {
  it('reads each merchant account’s bill on its own: its owner, its provider, its summary', async () => {
    await orders(paid('A', 1000), { _id: 'B', status: 'NOTPAY', totalFee: 2000 });
    await refunds(done('RA', 'A', 400));
    const subAppid = 'wxsubmerchant00001';
    const own = bill([payRow('A', 1000), refundRow('A', 'RA', 400, 'SUCCESS')], { provider: 'v2' });
    const cloudPay = bill(
      [
        payRow('B', 2000, { 公众账号ID: subAppid, 商户号: '1900000119' }),
        refundRow('B', 'RX', 300, 'SUCCESS', { 公众账号ID: subAppid, 商户号: '1900000119' }),
      ],
      { provider: 'cloudpay', owner: { appid: subAppid, mchId: '1900000119' } },
    );
    const none: BillSource = { download: async () => ({ kind: 'no-bill', message: 'No Bill Exist' }) };
    const { run, result } = await compared([none, own, cloudPay]);
    expect(result).toEqual({ status: 'DONE', noBill: false, compared: true });
    expect(run.wxCalls).toBe(3);
    expect(run.discrepancies).toEqual([]);
    expect(run.work).toEqual([
      { type: 'pay', entry: { orderId: 'B', transactionId: 'wxB', totalFen: 2000, provider: 'cloudpay' } },
      {
        type: 'external',
        entry: {
          orderId: 'B',
          refundId: 'RX',
          transactionId: 'wxB',
          refundFen: 300,
          status: 'SUCCESS',
          provider: 'cloudpay',
        },
      },
    ]);
    expect(run.totals).toMatchObject({ rows: 4, payments: 2, refunds: 2 });
  });

  it('no bill at all is a clean day; a bill not generated yet stops the run before anything is compared', async () => {
    const none: BillSource = { download: async () => ({ kind: 'no-bill', message: 'No Bill Exist' }) };
    expect((await compared([none])).result).toEqual({ status: 'DONE', noBill: true, compared: true });
    const creating: BillSource = {
      download: async () => ({ kind: 'not-ready', message: 'Bill Creating' }),
    };
    const { run, result, calls } = await compared([creating, bill([payRow('A', 1000)])]);
    expect(result).toEqual({ status: 'NOT_READY', noBill: false, message: 'Bill Creating', compared: false });
    expect(run.wxCalls).toBe(1);
    expect(calls).toEqual([]);
  });
});

describe('a large day', () => {
  it('compares a thousand rows a query, keeps the first 100 differences, logs the first 5000, counts them all', async () => {
    const id = (p: string, i: number) => `${p}${String(i).padStart(4, '0')}`;
    // 150 orders and 120 refunds of the bill are in the books: more than a query's default page.
    await orders(...Array.from({ length: 150 }, (_, i) => paid(id('K', i), 100)));
    await refunds(...Array.from({ length: 120 }, (_, i) => done(id('RK', i), 'K0000', 100)));
    const rows = [
      ...Array.from({ length: 1001 }, (_, i) => payRow(i < 150 ? id('K', i) : id('U', i), 100)),
      ...Array.from({ length: 1001 }, (_, i) =>
        i < 120
          ? refundRow('K0000', id('RK', i), 100, 'SUCCESS')
          : refundRow('K0000', id('RU', i), 100, 'REFUNDCLOSE'),
      ),
      ...Array.from({ length: 4200 }, (_, i) => payRow(id('M', i), 100, { 商户号: '1900000999' })),
    ];
    const yielded = { n: 0 };
    const sampled: number[] = [];
    const memory = () => {
      sampled.push(yielded.n);
      // Highest at the 5000th line only: the peak is seen only if that line is sampled.
      return yielded.n === 5000 ? 90_000_000 : 1_000_000 + yielded.n;
    };
    const { run, calls } = await compared(bill(rows, { yielded }), { memory });
    expect(calls).toEqual([
      'find orders',
      'find refunds',
      'find orders',
      'find refunds',
      'countWhere orders',
      'countWhere refunds',
    ]);
    expect(run.counts).toEqual({ UNKNOWN_ORDER: 851, UNEXPECTED_ROW: 4200 });
    expect(run.work).toEqual([]);
    expect(run).toMatchObject({ matchedPaid: 150, matchedRefunds: 120 });
    // The 1000th payment row (line 1001) and refund row (line 2002), every 5000 lines, the last batches.
    const lines = 1 + rows.length + 3; // header, rows, summary header and row, the last line break
    expect(sampled).toEqual([1001, 2002, 5000, lines, lines]);
    expect(run.peakHeap).toBe(90_000_000);
    expect(run.discrepancies).toHaveLength(100);
    expect(run.discrepancies[0]).toEqual({
      kind: 'UNKNOWN_ORDER',
      orderId: 'U0150',
      transactionId: 'wxU0150',
      wechatFen: 100,
      detail: 'WeChat was paid for an order this shop does not have',
    });
    // 850 unknown orders of the first batch, then the other merchant's rows as they come.
    const logs = logged(w, 'billcheck.discrepancy');
    expect(logs).toHaveLength(5000);
    expect(logs[4999]?.fields).toMatchObject({ kind: 'UNEXPECTED_ROW', orderId: 'M4149' });
  });
});

describe('through a whole check', () => {
  it('logs each fix for the operator, with the day it was found in, and records it with its time', async () => {
    const { orderId } = await orderAndPay(w, 3000);
    w.outbox.length = 0;
    const { db } = connectSdk(w.emulator.serviceUrl);
    const o = (await db.collection('orders').doc(orderId).get()).data as { totalFee: number };
    const txn = w.core.ledger.order(MERCHANT.mchId, orderId)?.transactionId ?? '';
    // The next morning, when WeChat has the day's bill.
    w.advance(dayEnd + 10.5 * 3600_000 - w.now());
    const source = bill([payRow(orderId, o.totalFee, { 微信订单号: txn })], { provider: 'v2' });
    const { doc } = await checkBillDate({ ...w.deps(), bills: source }, day, {
      trigger: 'admin',
      ...ADMIN_RUN,
    });
    expect(doc).toMatchObject({ status: 'DONE', discrepancyCount: 0, pending: 0 });
    expect(doc.actions).toEqual([{ kind: 'BOOKED_PAID', orderId, fen: 3000, atMs: w.now() }]);
    expect(logged(w, 'billcheck.fixed')).toEqual([
      {
        level: 'warn',
        event: 'billcheck.fixed',
        fields: { billDate: day, kind: 'BOOKED_PAID', orderId, fen: 3000 },
      },
    ]);
  });
});
