/**
 * One run of the bill check, comparing: the bill's rows in batches against the books, the
 * summary row against the rows, and the books' paid orders and refunds of the day against
 * the bill (what is here but not there). What needs WeChat's confirmation becomes `work` for
 * billfix.ts; what merely differs becomes a discrepancy. Memory: one batch of rows, the ids
 * the bill listed (for the reverse direction), and the findings.
 */
import type {
  BillAction,
  BillCheckStatus,
  BillDiscrepancy,
  BillDiscrepancyKind,
  BillTotals,
} from '../contract';
import { AppError } from '../errors';
import type { ProviderName } from '../providers/port';
import { BillReader, billFeeMilliFen, billFen, billRatePpm } from '../wxpay/bill';
import type { BillCheckDeps, BillOwner, BillSource } from './billcheck';
import { DAY_MS, dayStartMs } from './billdates';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';

/**
 * Rows compared per database query: ids in one `in` (CloudBase's limit per get is 1000), the
 * projected answer about 150 KB, far below the 1 MB result limit.
 */
export const BILL_BATCH = 1000;
/** The record stays small: a day with more differences than this has a systemic cause. */
const MAX_STORED_DISCREPANCIES = 100;
/** Each one is logged too, up to this many a run, so a systemic failure cannot flood the logs. */
const MAX_LOGGED_DISCREPANCIES = 5000;
/**
 * A notify that WeChat retried past midnight books an order the next day; its bill row is in
 * the day it was paid. Orders booked this long after the day ends are still looked for in it.
 */
export const LATE_BOOKING_MS = 2 * 3600_000;

export interface PayEntry {
  orderId: string;
  transactionId: string;
  totalFen: number;
  /** The provider whose bill listed it (its queries can confirm it). */
  provider?: ProviderName;
}

export interface RefundEntry {
  orderId: string;
  refundId: string;
  transactionId: string;
  refundFen: number;
  status: string;
  provider?: ProviderName;
}

export type Work =
  | { type: 'pay'; entry: PayEntry }
  | { type: 'refund'; entry: RefundEntry }
  | { type: 'external'; entry: RefundEntry }
  | { type: 'absent-pay'; orderId: string }
  | { type: 'absent-refund'; refundId: string };

/** The columns the check reads, found once per bill (rows are arrays: objects cost more than parsing). */
const USED_COLUMNS = [
  '公众账号ID',
  '商户号',
  '特约商户号',
  '微信订单号',
  '商户订单号',
  '交易状态',
  '应结订单金额',
  '商户退款单号',
  '退款金额',
  '退款状态',
  '手续费',
  '费率',
  '订单金额',
  '申请退款金额',
] as const;
type Columns = Record<(typeof USED_COLUMNS)[number], number>;

function columnsOf(reader: BillReader): Columns {
  return Object.fromEntries(USED_COLUMNS.map((name) => [name, reader.index(name)])) as Columns;
}

const ORDER_FIELDS = ['status', 'totalFee', 'transactionId', 'paidAtMs'] as const;
const REFUND_FIELDS = ['orderId', 'status', 'refundFee', 'submittedAtMs', 'createdAtMs'] as const;
type OrderRow = Pick<OrderDoc, '_id' | (typeof ORDER_FIELDS)[number]>;
type RefundRowDoc = Pick<RefundDoc, '_id' | (typeof REFUND_FIELDS)[number]>;

/**
 * A copy of `s` that does not hold on to the line it was cut from. V8 keeps a substring as a
 * view of its parent string, so an id kept from every row would keep every ~300-byte row
 * alive: 100,000 rows, 35 MB. Prefixing forces a flat copy; slicing the prefix off leaves a
 * view of that small copy only.
 */
function detached(s: string): string {
  return ` ${s}`.slice(1);
}

export function emptyTotals(): BillTotals {
  return {
    rows: 0,
    payments: 0,
    paymentFen: 0,
    settledFen: 0,
    refunds: 0,
    refundFen: 0,
    refundSuccessFen: 0,
    feeFen: 0,
  };
}

/** One run's state. Memory: the current batch, the ids seen (for the reverse check), the findings. */
export class Run {
  readonly totals = emptyTotals();
  feeMilli = 0;
  otherAppRows = 0;
  /** The sums the summary row must equal: compare() starts them again with each bill. */
  allRows!: { settled: number; ordered: number; applied: number; refunded: number; feeMilli: number };
  readonly discrepancies: BillDiscrepancy[] = [];
  readonly counts: Partial<Record<BillDiscrepancyKind, number>> = {};
  readonly actions: BillAction[] = [];
  readonly work: Work[] = [];
  readonly billOrderIds = new Set<string>();
  readonly billRefundIds = new Set<string>();
  /** PAID here, in the bill, and booked inside the day (+ LATE_BOOKING_MS): what the count must equal. */
  matchedPaid = 0;
  matchedRefunds = 0;
  pending = 0;
  wxCalls = 0;
  peakHeap = 0;
  private payBatch: PayEntry[] = [];
  private refundBatch: RefundEntry[] = [];
  readonly dayStart: number;
  readonly dayEnd: number;
  /** The bill being read (set by compare() for each): whose rows it holds, which provider can confirm them. */
  source!: { owner: BillOwner; provider: ProviderName | undefined };

  constructor(
    readonly deps: BillCheckDeps,
    readonly billDate: string,
    readonly deadlineMs: number,
  ) {
    this.dayStart = dayStartMs(billDate)!;
    this.dayEnd = this.dayStart + DAY_MS;
  }

  sampleMemory(): void {
    this.peakHeap = Math.max(this.peakHeap, this.deps.memory?.() ?? 0);
  }

  flag(d: BillDiscrepancy): void {
    const n = Object.values(this.counts).reduce((a, c) => a + (c ?? 0), 0);
    this.counts[d.kind] = (this.counts[d.kind] ?? 0) + 1;
    if (this.discrepancies.length < MAX_STORED_DISCREPANCIES) this.discrepancies.push(d);
    if (n < MAX_LOGGED_DISCREPANCIES)
      this.deps.log('warn', 'billcheck.discrepancy', { billDate: this.billDate, ...d });
  }

  act(a: Omit<BillAction, 'atMs'>): void {
    this.actions.push({ ...a, atMs: this.deps.now() });
    this.deps.log('warn', 'billcheck.fixed', { billDate: this.billDate, ...a });
  }

  async row(v: string[], c: Columns): Promise<void> {
    const { owner, provider } = this.source;
    const state = v[c.交易状态];
    const feeMilli = billFeeMilliFen(v[c.手续费]);
    const ratePpm = billRatePpm(v[c.费率]);
    const settledFen = billFen(v[c.应结订单金额], '应结订单金额');
    const totalFen = billFen(v[c.订单金额], '订单金额');
    const refundFen = billFen(v[c.申请退款金额], '申请退款金额');
    const settledRefund = billFen(v[c.退款金额], '退款金额');
    // The summary row covers the whole merchant account, so it is summed over every row.
    const all = this.allRows;
    all.settled += settledFen;
    all.ordered += totalFen;
    all.applied += refundFen;
    all.refunded += settledRefund;
    all.feeMilli += feeMilli;
    this.totals.rows++;
    // A service provider's bill lists every sub-merchant's trades: only ours are this shop's.
    if (
      v[c.公众账号ID] !== owner.appid ||
      (owner.subMchId !== undefined && v[c.特约商户号] !== owner.subMchId)
    ) {
      // One merchant account can serve several apps; their trades are not this shop's.
      this.otherAppRows++;
      return;
    }
    // Stryker disable next-line StringLiteral: the reader refuses a row without every column, so `??` never applies.
    const orderId = v[c.商户订单号] ?? '';
    // Stryker disable next-line StringLiteral: the reader refuses a row without every column, so `??` never applies.
    const transactionId = v[c.微信订单号] ?? '';
    this.feeMilli += feeMilli;
    if (owner.mchId !== undefined && v[c.商户号] !== owner.mchId) {
      this.flag({ kind: 'UNEXPECTED_ROW', orderId, transactionId, detail: `商户号 ${v[c.商户号]}` });
      return;
    }
    if (state === 'REFUND') {
      // Stryker disable next-line StringLiteral: the reader refuses a row without every column, so `??` never applies.
      const status = v[c.退款状态] ?? '';
      this.totals.refunds++;
      this.totals.refundFen += refundFen;
      if (status === 'SUCCESS') this.totals.refundSuccessFen += settledRefund;
      this.checkFee(orderId, -settledRefund, ratePpm, feeMilli);
      const entry: RefundEntry = {
        orderId,
        // Stryker disable next-line StringLiteral: the reader refuses a row without every column, so `??` never applies.
        refundId: v[c.商户退款单号] ?? '',
        transactionId,
        refundFen,
        status,
        ...(provider ? { provider } : {}),
      };
      this.billRefundIds.add(detached(entry.refundId));
      this.refundBatch.push(entry);
      if (this.refundBatch.length >= BILL_BATCH) await this.flushRefunds();
      return;
    }
    if (state !== 'SUCCESS') {
      // REVOKED, USERPAYING… are states of other trade types (付款码), not of a JSAPI shop.
      this.flag({ kind: 'UNEXPECTED_ROW', orderId, transactionId, detail: `交易状态 ${state}` });
      return;
    }
    this.totals.payments++;
    this.totals.paymentFen += totalFen;
    this.totals.settledFen += settledFen;
    this.checkFee(orderId, settledFen, ratePpm, feeMilli);
    this.billOrderIds.add(detached(orderId));
    this.payBatch.push({ orderId, transactionId, totalFen, ...(provider ? { provider } : {}) });
    if (this.payBatch.length >= BILL_BATCH) await this.flushPayments();
  }

  /** The fee is the rate times the amount, rounded to the fen by WeChat (any rounding rule). */
  private checkFee(orderId: string, amountFen: number, ratePpm: number, feeMilli: number): void {
    const exactMilli = (amountFen * ratePpm) / 1000;
    if (Math.abs(feeMilli - exactMilli) > 500) {
      this.flag({
        kind: 'FEE_MISMATCH',
        orderId,
        wechatFen: Math.round(feeMilli / 1000),
        localFen: Math.round(exactMilli / 1000),
        detail: `手续费 ${feeMilli / 100_000} 元 for ${amountFen / 100} 元 at ${ratePpm / 10_000}%`,
      });
    }
  }

  async flushPayments(): Promise<void> {
    const batch = this.payBatch;
    this.payBatch = [];
    if (batch.length === 0) return;
    const { store } = this.deps;
    const found = await store.find<OrderRow>(
      COLLECTIONS.orders,
      { _id: store.cmd.in(batch.map((e) => e.orderId)) },
      { limit: batch.length, fields: ORDER_FIELDS },
    );
    const byId = new Map(found.map((o) => [o._id, o]));
    for (const e of batch) {
      const o = byId.get(e.orderId);
      if (!o) {
        this.flag({
          kind: 'UNKNOWN_ORDER',
          orderId: e.orderId,
          transactionId: e.transactionId,
          wechatFen: e.totalFen,
          detail: 'WeChat was paid for an order this shop does not have',
        });
      } else if (o.totalFee !== e.totalFen) {
        this.flag({
          kind: 'AMOUNT_MISMATCH',
          orderId: e.orderId,
          transactionId: e.transactionId,
          wechatFen: e.totalFen,
          localFen: o.totalFee,
          detail: `order is ${o.status} here with another amount`,
        });
      } else if (o.status === 'PAID') {
        if (o.transactionId && o.transactionId !== e.transactionId) {
          this.flag({
            kind: 'TRANSACTION_MISMATCH',
            orderId: e.orderId,
            transactionId: e.transactionId,
            detail: `booked with transaction ${o.transactionId}`,
          });
        }
        if (this.bookedInWindow(o.paidAtMs)) this.matchedPaid++;
      } else {
        this.work.push({ type: 'pay', entry: e });
      }
    }
    this.sampleMemory();
  }

  async flushRefunds(): Promise<void> {
    const batch = this.refundBatch;
    this.refundBatch = [];
    if (batch.length === 0) return;
    const { store } = this.deps;
    const found = await store.find<RefundRowDoc>(
      COLLECTIONS.refunds,
      { _id: store.cmd.in(batch.map((e) => e.refundId)) },
      { limit: batch.length, fields: REFUND_FIELDS },
    );
    const byId = new Map(found.map((r) => [r._id, r]));
    for (const e of batch) {
      const r = byId.get(e.refundId);
      if (!r) {
        // A refund made outside the shop. A closed one moved no money.
        if (e.status !== 'REFUNDCLOSE') this.work.push({ type: 'external', entry: e });
        continue;
      }
      if (r.orderId !== e.orderId || r.refundFee !== e.refundFen) {
        this.flag({
          kind: 'REFUND_AMOUNT_MISMATCH',
          orderId: e.orderId,
          refundId: e.refundId,
          wechatFen: e.refundFen,
          localFen: r.refundFee,
          detail:
            r.orderId === e.orderId ? 'refund amount differs' : `refund belongs to order ${r.orderId} here`,
        });
        continue;
      }
      // Ended at WeChat, still open here (a SUCCESS one is caught by the first test already).
      const ended = e.status === 'REFUNDCLOSE' || e.status === 'CHANGE';
      if (
        (e.status === 'SUCCESS' && r.status !== 'SUCCESS') ||
        (ended && (r.status === 'APPROVED' || r.status === 'PROCESSING'))
      ) {
        this.work.push({ type: 'refund', entry: e });
      }
      if (r.status === 'SUCCESS' && this.inDay(r.submittedAtMs)) this.matchedRefunds++;
    }
    this.sampleMemory();
  }

  bookedInWindow(ms: number | undefined): boolean {
    return ms !== undefined && ms >= this.dayStart && ms < this.dayEnd + LATE_BOOKING_MS;
  }

  inDay(ms: number | undefined): boolean {
    return ms !== undefined && ms >= this.dayStart && ms < this.dayEnd;
  }
}

/** Who a bill's rows must name: the configured merchant unless the source says otherwise. */
function ownerOf(deps: BillCheckDeps, source: BillSource): BillOwner {
  return source.owner ?? { appid: deps.config.wxpay.appid, mchId: deps.config.wxpay.mchId };
}

/**
 * Reads the day's bill of every merchant account the shop trades through (one, unless
 * cloudPay's sub-merchant account and the merchant's own are both in use), then looks for
 * what the books have and no bill listed.
 */
export async function compare(
  run: Run,
): Promise<{ status: BillCheckStatus; noBill: boolean; message?: string; compared: boolean }> {
  const { deps, billDate } = run;
  const sources = Array.isArray(deps.bills) ? deps.bills : [deps.bills as BillSource];
  let noBill = true;
  for (const source of sources) {
    const answer = await source.download({ bill_date: billDate, deadlineMs: run.deadlineMs });
    run.wxCalls++;
    if (answer.kind === 'not-ready') {
      return { status: 'NOT_READY', noBill: false, message: answer.message, compared: false };
    }
    if (answer.kind !== 'bill') continue;
    noBill = false;
    run.source = { owner: ownerOf(deps, source), provider: source.provider };
    // The summary row covers one bill: its sums start again with each.
    run.allRows = { settled: 0, ordered: 0, applied: 0, refunded: 0, feeMilli: 0 };
    const reader = new BillReader('ALL');
    let columns: Columns | undefined;
    let n = 0;
    for await (const line of answer.lines) {
      const values = reader.line(line);
      if (values) {
        columns ??= columnsOf(reader);
        await run.row(values, columns);
      }
      // Stryker disable next-line UpdateOperator: counting down (-5000 % 5000 is -0) samples at the same lines.
      if (++n % 5000 === 0) run.sampleMemory();
    }
    const summary = reader.end();
    await run.flushPayments();
    await run.flushRefunds();
    checkSummary(run, summary, reader.rows);
  }
  await findAbsent(run);
  return { status: 'DONE', noBill, compared: true };
}

function checkSummary(run: Run, summary: Record<string, string>, rows: number): void {
  // A count that disagrees means rows were lost on the way: no comparison from half a bill.
  if (Number(summary['总交易单数']) !== rows) {
    throw new AppError(
      'BILL_MALFORMED',
      `bill summary says ${summary['总交易单数']} trades, ${rows} rows arrived`,
    );
  }
  const stated = {
    settled: billFen(summary['应结订单总金额'], '应结订单总金额'),
    refunded: billFen(summary['退款总金额'], '退款总金额'),
    fee: billFeeMilliFen(summary['手续费总金额'], '手续费总金额'),
    ordered: billFen(summary['订单总金额'], '订单总金额'),
    applied: billFen(summary['申请退款总金额'], '申请退款总金额'),
  };
  const all = run.allRows;
  const differs: string[] = [];
  if (stated.settled !== all.settled) differs.push(`应结订单总金额 ${stated.settled} ≠ ${all.settled}`);
  if (stated.ordered !== all.ordered) differs.push(`订单总金额 ${stated.ordered} ≠ ${all.ordered}`);
  if (stated.refunded !== all.refunded) differs.push(`退款总金额 ${stated.refunded} ≠ ${all.refunded}`);
  if (stated.applied !== all.applied) differs.push(`申请退款总金额 ${stated.applied} ≠ ${all.applied}`);
  if (stated.fee !== all.feeMilli) differs.push(`手续费总金额 ${stated.fee / 1000} ≠ ${all.feeMilli / 1000}`);
  if (differs.length > 0) {
    run.flag({ kind: 'BILL_TOTALS_MISMATCH', detail: `summary row vs rows (fen): ${differs.join('; ')}` });
  }
}

/**
 * PAID orders and SUCCESS refunds of the day that the bill does not list. One count each
 * answers the usual case (everything matched); only when the count is higher are the day's
 * ids read and set against the bill's.
 */
async function findAbsent(run: Run): Promise<void> {
  const { store } = run.deps;
  const _ = store.cmd;
  const paidWhere = {
    status: 'PAID',
    paidAtMs: _.gte(run.dayStart).and(_.lt(run.dayEnd + LATE_BOOKING_MS)),
  };
  if ((await store.countWhere(COLLECTIONS.orders, paidWhere)) > run.matchedPaid) {
    for await (const page of pages<{ _id: string; paidAtMs: number }>(
      run,
      COLLECTIONS.orders,
      paidWhere,
      'paidAtMs',
    )) {
      for (const o of page)
        if (!run.billOrderIds.has(o._id)) run.work.push({ type: 'absent-pay', orderId: o._id });
    }
  }
  const refundWhere = { status: 'SUCCESS', submittedAtMs: _.gte(run.dayStart).and(_.lt(run.dayEnd)) };
  if ((await store.countWhere(COLLECTIONS.refunds, refundWhere)) > run.matchedRefunds) {
    for await (const page of pages<{ _id: string; createdAtMs: number }>(
      run,
      COLLECTIONS.refunds,
      refundWhere,
      'submittedAtMs',
    )) {
      for (const r of page) {
        // WeChat dates a refund by when it was applied for there, which lies between its
        // creation here and its acceptance; one created here the day before may be in that
        // day's bill, so only refunds created inside the day are judged by it.
        if (!run.billRefundIds.has(r._id) && r.createdAtMs >= run.dayStart)
          run.work.push({ type: 'absent-refund', refundId: r._id });
      }
    }
  }
}

/** Pages of `where`, ascending by `field` then _id, 1000 at a time, reading only ids. */
async function* pages<T extends { _id: string }>(
  run: Run,
  collection: string,
  where: Record<string, unknown>,
  field: string,
): AsyncGenerator<T[]> {
  const { store } = run.deps;
  const _ = store.cmd;
  let after: { at: number; id: string } | undefined;
  for (;;) {
    const q = after
      ? _.and([where, _.or([{ [field]: _.gt(after.at) }, { [field]: after.at, _id: _.gt(after.id) }])])
      : where;
    const rows = await store.find<T & Record<string, unknown>>(collection, q, {
      orderBy: [
        [field, 'asc'],
        ['_id', 'asc'],
      ],
      limit: 1000,
      fields: [field, 'createdAtMs'],
    });
    if (rows.length === 0) return;
    yield rows;
    const last = rows[rows.length - 1]!;
    after = { at: last[field] as number, id: last._id };
    if (rows.length < 1000) return;
  }
}
