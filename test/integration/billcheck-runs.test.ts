/**
 * The bill check's runs, driven in-process on the real wx-server-sdk against the emulator,
 * with the bill coming from the simulator or from a hand-made file: leases (two runs at
 * once, forced to overlap), WeChat busy or time running out (INCOMPLETE, finished by the
 * next run), a bill cut short, fee and summary checks, and the timer's choice of days.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, type ShopConfig } from '../../cloudfunctions/shared/config';
import type { BillCheckStatus } from '../../cloudfunctions/shared/contract';
import {
  ADMIN_RUN,
  type BillCheckDeps,
  type BillCheckDoc,
  type BillSource,
  checkBillDate,
  TIMER_RUN,
  timerPlan,
  timerWindow,
} from '../../cloudfunctions/shared/domain/billcheck';
import { billDateOf, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import { recordExternalRefund } from '../../cloudfunctions/shared/domain/externalrefund';
import type { OrderDoc } from '../../cloudfunctions/shared/domain/model';
import { providersFromConfig } from '../../cloudfunctions/shared/providers';
import { Store } from '../../cloudfunctions/shared/store';
import { nonceStr } from '../../cloudfunctions/shared/wxpay';
import {
  BILL_ALL_COLUMNS,
  BILL_SUMMARY_COLUMNS,
  type BillRow,
  formatBill,
} from '../../cloudfunctions/shared/wxpay/bill';
import { type BillAnswer, createBillDownloader } from '../../cloudfunctions/shared/wxpay/billdownload';
import type { Stack } from '../../sandbox/stack';
import { connectSdk, type Sdk } from '../emulator/sdk';
import { buyAndPay, order, SHOPPER, testStack, unwrap } from './support';

let stack: Stack;
let sdk: Sdk;
let config: ShopConfig;
const HOUR = 3600_000;

beforeAll(async () => {
  stack = await testStack();
  sdk = connectSdk(stack.info.tcbServiceUrl);
  config = loadConfig(stack.env, { wxpay: true });
});
afterAll(() => stack?.close());

const today = () => billDateOf(Date.now());
const tomorrowMorning = () => stack.simulator.setClockOffset(dayStartMs(today())! + 34.5 * HOUR - Date.now());

function simulatorBills(): BillSource {
  const d = createBillDownloader({
    appid: config.wxpay.appid,
    mchId: config.wxpay.mchId,
    apiKey: config.wxpay.apiKey,
    signType: config.wxpay.signType,
    baseUrl: config.wxpay.baseUrl,
    ...(config.wxpay.caPem ? { caPem: config.wxpay.caPem } : {}),
  });
  return { download: (p) => d.download({ ...p, tar_type: 'GZIP' }) };
}

function deps(bills: BillSource): BillCheckDeps {
  return {
    // As deployed: runBillCheck's config.json timeout.
    budget: { endsAtMs: Date.now() + 60_000, callDeadlineMs: Date.now() + 54_000 },
    store: new Store(sdk.db),
    config,
    wxpay: (() => {
      const v2 = providersFromConfig(config, { sleep: async () => {} }).v2!;
      return { current: v2, byName: { v2 } };
    })(),
    now: Date.now,
    random: nonceStr,
    log: (level, event, fields) => {
      if (process.env['BILL_LOGS']) console.log(level, event, JSON.stringify(fields));
    },
    bills,
  };
}

const RUN = { trigger: 'admin' as const, budgetMs: 50_000, leaseMs: 70_000 };

/** A bill file made by hand: `rows` as given, the summary summed from them unless overridden. */
function handMade(rows: BillRow[], summary: Partial<Record<string, string>> = {}): BillSource {
  const yuan = (fen: number) =>
    `${fen < 0 ? '-' : ''}${Math.floor(Math.abs(fen) / 100)}.${String(Math.abs(fen) % 100).padStart(2, '0')}`;
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
      ...summary,
    },
  });
  return {
    async download(): Promise<BillAnswer> {
      return {
        kind: 'bill',
        gzip: false,
        lines: (async function* () {
          yield* csv.split('\r\n');
        })(),
      };
    },
  };
}

function payRow(
  o: Pick<OrderDoc, '_id' | 'totalFee' | 'transactionId'>,
  extra: Partial<BillRow> = {},
): BillRow {
  const yuan = (o.totalFee / 100).toFixed(2);
  return {
    交易时间: '2026-01-01 12:00:00',
    公众账号ID: config.wxpay.appid,
    商户号: config.wxpay.mchId,
    特约商户号: '0',
    设备号: '',
    微信订单号: o.transactionId ?? '',
    商户订单号: o._id,
    用户标识: SHOPPER,
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
    手续费: `${(Math.round(o.totalFee * 0.006) / 100).toFixed(2)}000`,
    费率: '0.60%',
    订单金额: yuan,
    申请退款金额: '0.00',
    费率备注: '',
    ...extra,
  };
}

async function record(date: string): Promise<BillCheckDoc> {
  return (await stack.db.get<BillCheckDoc>('bill_checks', date))!;
}

// Tests that trade today need WeChat's clock back on today's time.
beforeEach(() => stack.simulator.setClockOffset(0));

describe('bill check runs', () => {
  it('two runs of one date at once: one compares, the other is told the day is taken', async () => {
    const date = '20260102';
    let entered!: () => void;
    const downloading = new Promise<void>((r) => {
      entered = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let downloads = 0;
    const blocking: BillSource = {
      async download() {
        downloads++;
        entered();
        await gate;
        return { kind: 'no-bill', message: 'No Bill Exist' };
      },
    };
    const first = checkBillDate(deps(blocking), date, RUN);
    await downloading;
    // The first run holds the lease and is inside its download now.
    const second = await checkBillDate(deps(blocking), date, RUN);
    expect(second.ran).toBe(false);
    expect(second.doc.status).toBe('RUNNING');
    release();
    expect(await first).toMatchObject({ ran: true, doc: { status: 'DONE', noBill: true } });
    expect(downloads).toBe(1);
    expect(await record(date)).toMatchObject({ status: 'DONE', runs: 1, leaseUntilMs: 0 });
    // Released: the next run takes it.
    expect((await checkBillDate(deps(blocking), date, RUN)).ran).toBe(true);
    expect(downloads).toBe(2);
  });

  it("takes over a day whose run died, once that run's lease has run out", async () => {
    const date = '20260103';
    const source = handMade([]);
    await checkBillDate(deps(source), date, RUN);
    await sdk.db
      .collection('bill_checks')
      .doc(date)
      .update({ data: { status: 'RUNNING', leaseUntilMs: Date.now() + 60_000, leaseToken: 'dead' } });
    expect((await checkBillDate(deps(source), date, RUN)).ran).toBe(false);
    await sdk.db
      .collection('bill_checks')
      .doc(date)
      .update({ data: { leaseUntilMs: Date.now() - 1 } });
    const r = await checkBillDate(deps(source), date, RUN);
    expect(r).toMatchObject({ ran: true, doc: { status: 'DONE' } });
  });

  it('checks each fee against its rate and the summary against the rows; skips other apps', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'chopsticks');
    const o = await order(stack, orderId);
    const otherApp = payRow(
      { _id: 'ANOTHERAPP0001', totalFee: 500, transactionId: '42x' },
      { 公众账号ID: 'wx00000000000000ff' },
    );
    const rows = [payRow(o, { 手续费: '0.50000' }), otherApp];
    const source = handMade(rows, { 应结订单总金额: '1.00' });
    const r = await checkBillDate(deps(source), '20260104', RUN);
    expect(r.doc.status).toBe('DONE');
    expect(r.doc.discrepancyCounts).toEqual({ FEE_MISMATCH: 1, BILL_TOTALS_MISMATCH: 1 });
    expect(r.doc.discrepancies.find((d) => d.kind === 'FEE_MISMATCH')).toMatchObject({
      orderId,
      wechatFen: 50,
      localFen: 12,
    });
    expect(r.doc.discrepancies.find((d) => d.kind === 'BILL_TOTALS_MISMATCH')?.detail).toContain(
      '应结订单总金额',
    );
    // Only this shop's trade is counted as its own.
    expect(r.doc.totals).toMatchObject({ rows: 2, payments: 1, paymentFen: o.totalFee });
  });

  it('fails a bill cut short and keeps the last result', async () => {
    const date = '20260105';
    const orderId = await buyAndPay(stack, SHOPPER, 'sticker');
    const o = await order(stack, orderId);
    await sdk.db
      .collection('orders')
      .doc(orderId)
      .update({ data: { totalFee: 2 } });
    const good = await checkBillDate(deps(handMade([payRow(o)])), date, RUN);
    expect(good.doc.discrepancyCounts).toEqual({ AMOUNT_MISMATCH: 1 });
    const cut = await checkBillDate(deps(handMade([payRow(o)], { 总交易单数: '2' })), date, RUN);
    expect(cut.doc).toMatchObject({ status: 'FAILED', discrepancyCounts: { AMOUNT_MISMATCH: 1 }, runs: 2 });
    expect(cut.doc.message).toMatch(/2 trades, 1 rows/);
    expect(await record(date)).toMatchObject({ status: 'FAILED', discrepancyCount: 1 });
  });

  it('leaves an item pending while WeChat is busy, and the next run finishes it', async () => {
    stack.simulator.setClockOffset(0);
    stack.simulator.setFaults({ dropPayNotifies: true });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
    stack.simulator.setFaults({ dropPayNotifies: false, systemErrorRate: { '/pay/orderquery': 1 } });
    tomorrowMorning();
    try {
      const busy = await checkBillDate(deps(simulatorBills()), today(), RUN);
      expect(busy.doc).toMatchObject({ status: 'INCOMPLETE' });
      expect(busy.doc.pending).toBeGreaterThanOrEqual(1);
      expect((await order(stack, created.orderId)).status).toBe('NOTPAY');
    } finally {
      stack.simulator.setFaults({ systemErrorRate: 0 });
    }
    const done = await checkBillDate(deps(simulatorBills()), today(), RUN);
    expect(done.doc).toMatchObject({ status: 'DONE', pending: 0 });
    expect(done.doc.actions).toContainEqual(
      expect.objectContaining({ kind: 'BOOKED_PAID', orderId: created.orderId }),
    );
    expect((await order(stack, created.orderId)).status).toBe('PAID');
  });

  it('out of time: the WeChat calls left are pending, and the next run makes them', async () => {
    stack.simulator.setClockOffset(0);
    stack.simulator.setFaults({ dropPayNotifies: true });
    const created = unwrap(
      await stack.call('createOrder', { items: [{ productId: 'sticker', quantity: 1 }] }, SHOPPER),
    );
    stack.simulator.pay(created.payment as unknown as Record<string, unknown>);
    stack.simulator.setFaults({ dropPayNotifies: false });
    tomorrowMorning();
    // Less time than one WeChat call may take with its retries: nothing is started.
    const short = await checkBillDate(deps(simulatorBills()), today(), { ...RUN, budgetMs: 8000 });
    expect(short.doc.status).toBe('INCOMPLETE');
    expect((await order(stack, created.orderId)).status).toBe('NOTPAY');
    const full = await checkBillDate(deps(simulatorBills()), today(), RUN);
    expect(full.doc.status).toBe('DONE');
    expect((await order(stack, created.orderId)).status).toBe('PAID');
  });

  it('records an external refund that ended CHANGE, and flags it for the merchant', async () => {
    stack.simulator.setClockOffset(0);
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    stack.simulator.setFaults({ refundOutcome: 'CHANGE' });
    const made = stack.simulator.merchantPlatformRefund({ outTradeNo: orderId, refundFee: 300 });
    stack.simulator.settleRefunds();
    stack.simulator.setFaults({ refundOutcome: 'SUCCESS' });
    tomorrowMorning();
    const r = await checkBillDate(deps(simulatorBills()), today(), RUN);
    expect(r.doc.actions).toContainEqual(
      expect.objectContaining({ kind: 'EXTERNAL_REFUND', orderId, refundId: made.outRefundNo, fen: 300 }),
    );
    expect(r.doc.discrepancies).toContainEqual(
      expect.objectContaining({ kind: 'EXTERNAL_REFUND_ABNORMAL', refundId: made.outRefundNo }),
    );
    expect(await order(stack, orderId)).toMatchObject({
      refundedFee: 300,
      externalRefunds: [expect.objectContaining({ status: 'CHANGE', refundFee: 300 })],
    });
  });
});

describe('external refunds', () => {
  it('two recordings of one external refund at once count it once', async () => {
    const orderId = await buyAndPay(stack, SHOPPER, 'tea-longjing');
    let arrived = 0;
    let open!: () => void;
    const bothThere = new Promise<void>((r) => {
      open = r;
    });
    // Both recordings read the order (no marker yet) and reach the conditional update
    // before either makes it: the interleaving that only the CAS condition can settle.
    class PausingStore extends Store {
      override async cas(collection: string, where: { _id: string }, data: Record<string, unknown>) {
        if (collection === 'orders') {
          if (++arrived === 2) open();
          await bothThere;
        }
        return super.cas(collection, where, data);
      }
    }
    const input = {
      refundId: `EXT${Date.now()}`,
      orderId,
      refundFee: 100,
      status: 'SUCCESS' as const,
      billDate: today(),
      fields: { refund_status: 'SUCCESS' },
    };
    const paused = (): BillCheckDeps => ({ ...deps(handMade([])), store: new PausingStore(sdk.db) });
    const outcomes = await Promise.all([
      recordExternalRefund(paused(), input),
      recordExternalRefund(paused(), input),
    ]);
    expect(arrived).toBe(2);
    expect(outcomes.sort()).toEqual(['ALREADY', 'RECORDED']);
    const o = await order(stack, orderId);
    expect(o).toMatchObject({ refundedFee: 100, refundUsedFee: 100 });
    expect(o.refundBook[input.refundId]).toMatchObject({ state: 'settled', external: true, fee: 100 });
    expect(o.externalRefunds).toHaveLength(1);
  });
});

describe('time budgets', () => {
  it('end every run inside its function timeout, and hold the lease past it', async () => {
    const { readFunctionConfig } = await import('../../scripts/build');
    for (const [fn, run] of [
      ['billCheck', TIMER_RUN],
      ['runBillCheck', ADMIN_RUN],
    ] as const) {
      const timeoutMs = readFunctionConfig(fn).timeout! * 1000;
      // A run stops starting WeChat calls at its budget; the platform kills it at the timeout;
      // until the lease runs out after that, no second run can take the day.
      expect(run.budgetMs, fn).toBeLessThan(timeoutMs);
      expect(run.leaseMs, fn).toBeGreaterThan(timeoutMs);
    }
  });
});

describe('the timer', () => {
  const at = (date: string, hour: number) => dayStartMs(date)! + hour * HOUR;

  it('waits for 10:30 Beijing, then checks yesterday first and every unfinished day of the week', () => {
    expect(timerPlan(at('20260310', 10.25), new Map())).toEqual({
      skipped: 'before 10:30 Beijing time',
      dates: [],
    });
    const now = at('20260310', 10.5);
    expect(timerWindow(now)).toEqual([
      '20260303',
      '20260304',
      '20260305',
      '20260306',
      '20260307',
      '20260308',
      '20260309',
    ]);
    const statuses = new Map<string, BillCheckStatus>([
      ['20260303', 'DONE'],
      ['20260304', 'NOT_READY'],
      ['20260305', 'DONE'],
      ['20260306', 'INCOMPLETE'],
      ['20260307', 'DONE'],
      ['20260308', 'FAILED'],
    ]);
    expect(timerPlan(now, statuses).dates).toEqual(['20260309', '20260304', '20260306', '20260308']);
    statuses.set('20260309', 'DONE');
    expect(timerPlan(at('20260310', 11.75), statuses).dates).toEqual(['20260304', '20260306', '20260308']);
  });

  it('fires every 15 minutes from 10:00 to 11:45 Beijing (its first run that works is 10:30)', async () => {
    const { nextTimerRuns } = await import('../../sandbox/runtime/timers');
    const { readFunctionConfig } = await import('../../scripts/build');
    const cron = readFunctionConfig('billCheck').triggers![0]!.config;
    const from = new Date(at('20260310', 0));
    const runs = nextTimerRuns(cron, 9, from).map(
      (d) => billDateOf(d.getTime()) + new Date(d.getTime() + 8 * HOUR).toISOString().slice(11, 16),
    );
    expect(runs).toEqual([
      '2026031010:00',
      '2026031010:15',
      '2026031010:30',
      '2026031010:45',
      '2026031011:00',
      '2026031011:15',
      '2026031011:30',
      '2026031011:45',
      '2026031110:00',
    ]);
  });
});
