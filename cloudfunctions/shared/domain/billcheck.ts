/**
 * The daily bill check (对账): WeChat's bill of a day against `orders` and `refunds`.
 *
 * Notifies and reconcile keep the books right trade by trade; the bill is WeChat's own
 * record of the whole day, so comparing with it is the only proof that nothing slipped
 * through (a notify lost for 24 h on an order that was closed meanwhile, a refund made by
 * hand on the merchant platform, an amount edited in the database).
 *
 * One run: claim the day's `bill_checks` document (a lease, so two runs never overlap),
 * stream the ALL bill row by row, compare each batch of rows with one query, then make the
 * fixes WeChat's own answer confirms (orderquery, refundquery) through the same exactly-once
 * transitions a notify uses, and record what differs without touching it. Running a date
 * again repeats the comparison; the transitions it already made find nothing left to do.
 *
 * Dates are Beijing days (yyyyMMdd), as WeChat's bills are.
 */
import type {
  BillAction,
  BillCheckStatus,
  BillCheckView,
  BillDiscrepancy,
  BillDiscrepancyKind,
  BillTotals,
  ListBillChecksResult,
  RunBillCheckResult,
} from '../contract';
import { AppError } from '../errors';
import type { Caller } from '../runtime/callable';
import { BillReader, type BillRow, billFeeMilliFen, billFen, billRatePpm } from '../wxpay/bill';
import type { BillAnswer } from '../wxpay/billdownload';
import type { WxParams } from '../wxpay/types';
import { type Deps, requireWxpay, wxFailure } from './deps';
import { recordExternalRefund } from './externalrefund';
import { COLLECTIONS, type OrderDoc, type RefundDoc } from './model';
import { markPaid } from './orders';
import { refundInfoFromQuery } from './reconcile';
import { finalizeRefund } from './refunds';
import { invalid, onlyFields, requireAdmin, requiredString } from './validate';

/** Where the bill comes from (the streaming downloader in production, anything in tests). */
export interface BillSource {
  download(p: { bill_date: string; deadlineMs: number }): Promise<BillAnswer>;
}

export interface BillCheckDeps extends Deps {
  bills: BillSource;
  /** Bytes of heap in use now; sampled so the record can show the run's peak. */
  memory?: () => number;
}

export interface BillCheckDoc {
  /** = billDate */
  _id: string;
  billDate: string;
  status: BillCheckStatus;
  noBill: boolean;
  message?: string;
  runs: number;
  createdAtMs: number;
  updatedAtMs: number;
  lastRunAtMs: number;
  finishedAtMs?: number;
  /** Whoever holds it runs the check; a crashed run's lease simply runs out. */
  leaseUntilMs: number;
  leaseToken: string;
  totals: BillTotals;
  discrepancyCount: number;
  discrepancyCounts: Partial<Record<BillDiscrepancyKind, number>>;
  discrepancies: BillDiscrepancy[];
  actions: BillAction[];
  pending: number;
  lastRun?: {
    trigger: 'timer' | 'admin';
    by?: string;
    durationMs: number;
    dbRequests: number;
    wxCalls: number;
    peakHeapMb?: number;
  };
}

const CST_OFFSET_MS = 8 * 3600_000;
const DAY_MS = 24 * 3600_000;
/** Rows compared per database query (ids in one `in`; projected rows stay far below 1 MB). */
export const BILL_BATCH = 500;
/** The record stays small: a day with more differences than this has a systemic cause. */
const MAX_STORED_DISCREPANCIES = 100;
const MAX_STORED_ACTIONS = 200;
/**
 * A notify that WeChat retried past midnight books an order the next day; its bill row is in
 * the day it was paid. Orders booked this long after the day ends are still looked for in it.
 */
export const LATE_BOOKING_MS = 2 * 3600_000;
/** WeChat generates bills from 9:00 and asks for them after 10:00; the timer starts at 10:30. */
export const FIRST_RUN_MINUTE = 10 * 60 + 30;
/** Unfinished checks are taken up again by the timer for this many days. */
export const CATCH_UP_DAYS = 7;

/** Time budgets, inside the functions' config.json timeouts (billCheck 300 s, runBillCheck 60 s). */
export const TIMER_RUN = { budgetMs: 270_000, leaseMs: 310_000 };
export const ADMIN_RUN = { budgetMs: 50_000, leaseMs: 70_000 };

// ---- dates ---------------------------------------------------------------------------

/** yyyyMMdd of the Beijing day that contains `ms`. */
export function billDateOf(ms: number): string {
  const d = new Date(ms + CST_OFFSET_MS);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}`;
}

/** Epoch ms of 00:00 Beijing on `billDate`; undefined for a date that does not exist. */
export function dayStartMs(billDate: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(billDate);
  if (!m) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - CST_OFFSET_MS;
  return billDateOf(ms) === billDate ? ms : undefined;
}

/** Minutes since midnight, Beijing. */
function beijingMinute(ms: number): number {
  const d = new Date(ms + CST_OFFSET_MS);
  return d.getUTCHours() * 60 + d.getUTCMinutes();
}

/**
 * A day up to today. Today's bill does not exist yet (WeChat answers "Bill Creating" and the
 * check says NOT_READY); the sandbox's WeChat may run ahead of the function's clock.
 */
export function parseBillDate(raw: string, nowMs: number): string {
  const start = dayStartMs(raw);
  if (start === undefined) throw invalid('date must be a day as yyyyMMdd (Beijing time)');
  if (start > nowMs) throw invalid('date must not be in the future (Beijing time)');
  return raw;
}

/** "yyyy-MM-dd HH:mm:ss" or "yyyyMMddHHmmss" (Beijing) → its bill date. */
function dateOfWxTime(t: string | undefined): string | undefined {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})/.exec(t ?? '');
  return m ? `${m[1]}${m[2]}${m[3]}` : undefined;
}

// ---- rows ----------------------------------------------------------------------------

interface PayEntry {
  orderId: string;
  transactionId: string;
  totalFen: number;
}

interface RefundEntry {
  orderId: string;
  refundId: string;
  transactionId: string;
  refundFen: number;
  status: string;
}

type Work =
  | { type: 'pay'; entry: PayEntry }
  | { type: 'refund'; entry: RefundEntry }
  | { type: 'external'; entry: RefundEntry }
  | { type: 'absent-pay'; orderId: string }
  | { type: 'absent-refund'; refundId: string };

const ORDER_FIELDS = ['status', 'totalFee', 'transactionId', 'paidAtMs'] as const;
const REFUND_FIELDS = ['orderId', 'status', 'refundFee', 'submittedAtMs', 'createdAtMs'] as const;
type OrderRow = Pick<OrderDoc, '_id' | (typeof ORDER_FIELDS)[number]>;
type RefundRowDoc = Pick<RefundDoc, '_id' | (typeof REFUND_FIELDS)[number]>;

function emptyTotals(): BillTotals {
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
class Run {
  readonly totals = emptyTotals();
  feeMilli = 0;
  otherAppRows = 0;
  readonly allRows = { settled: 0, ordered: 0, applied: 0, refunded: 0, feeMilli: 0 };
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

  constructor(
    readonly deps: BillCheckDeps,
    readonly billDate: string,
    readonly deadlineMs: number,
  ) {
    this.dayStart = dayStartMs(billDate)!;
    this.dayEnd = this.dayStart + DAY_MS;
  }

  sampleMemory(): void {
    const m = this.deps.memory?.();
    if (m !== undefined && m > this.peakHeap) this.peakHeap = m;
  }

  flag(d: BillDiscrepancy): void {
    this.counts[d.kind] = (this.counts[d.kind] ?? 0) + 1;
    if (this.discrepancies.length < MAX_STORED_DISCREPANCIES) {
      this.discrepancies.push(d);
      this.deps.log('warn', 'billcheck.discrepancy', { billDate: this.billDate, ...d });
    }
  }

  act(a: Omit<BillAction, 'atMs'>): void {
    this.actions.push({ ...a, atMs: this.deps.now() });
    this.deps.log('warn', 'billcheck.fixed', { billDate: this.billDate, ...a });
  }

  async row(row: BillRow): Promise<void> {
    const { config } = this.deps;
    const state = row['交易状态'];
    const feeMilli = billFeeMilliFen(row['手续费']);
    const ratePpm = billRatePpm(row['费率']);
    const settledFen = billFen(row['应结订单金额'], '应结订单金额');
    const totalFen = billFen(row['订单金额'], '订单金额');
    const refundFen = billFen(row['申请退款金额'], '申请退款金额');
    const settledRefund = billFen(row['退款金额'], '退款金额');
    // The summary row covers the whole merchant account, so it is summed over every row.
    const all = this.allRows;
    all.settled += settledFen;
    all.ordered += totalFen;
    all.applied += refundFen;
    all.refunded += settledRefund;
    all.feeMilli += feeMilli;
    this.totals.rows++;
    if (row['公众账号ID'] !== config.wxpay.appid) {
      // One merchant account can serve several apps; their trades are not this shop's.
      this.otherAppRows++;
      return;
    }
    const orderId = row['商户订单号'] ?? '';
    const transactionId = row['微信订单号'] ?? '';
    this.feeMilli += feeMilli;
    if (row['商户号'] !== config.wxpay.mchId) {
      this.flag({ kind: 'UNEXPECTED_ROW', orderId, transactionId, detail: `商户号 ${row['商户号']}` });
      return;
    }
    if (state === 'REFUND') {
      const status = row['退款状态'] ?? '';
      this.totals.refunds++;
      this.totals.refundFen += refundFen;
      if (status === 'SUCCESS') this.totals.refundSuccessFen += settledRefund;
      this.checkFee(orderId, -settledRefund, ratePpm, feeMilli);
      const entry = { orderId, refundId: row['商户退款单号'] ?? '', transactionId, refundFen, status };
      this.billRefundIds.add(entry.refundId);
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
    this.billOrderIds.add(orderId);
    this.payBatch.push({ orderId, transactionId, totalFen });
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
      const final = e.status === 'SUCCESS' || e.status === 'REFUNDCLOSE' || e.status === 'CHANGE';
      if (
        (e.status === 'SUCCESS' && r.status !== 'SUCCESS') ||
        (final && (r.status === 'APPROVED' || r.status === 'PROCESSING'))
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

// ---- the record ----------------------------------------------------------------------

function emptyDoc(billDate: string, nowMs: number): BillCheckDoc {
  return {
    _id: billDate,
    billDate,
    status: 'RUNNING',
    noBill: false,
    runs: 0,
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
    lastRunAtMs: 0,
    leaseUntilMs: 0,
    leaseToken: '',
    totals: emptyTotals(),
    discrepancyCount: 0,
    discrepancyCounts: {},
    discrepancies: [],
    actions: [],
    pending: 0,
  };
}

export function billCheckView(d: BillCheckDoc): BillCheckView {
  const v: BillCheckView = {
    billDate: d.billDate,
    status: d.status,
    noBill: d.noBill,
    runs: d.runs,
    lastRunAtMs: d.lastRunAtMs,
    totals: d.totals,
    discrepancyCount: d.discrepancyCount,
    discrepancyCounts: d.discrepancyCounts,
    discrepancies: d.discrepancies,
    actions: d.actions,
    pending: d.pending,
  };
  if (d.message) v.message = d.message;
  if (d.finishedAtMs !== undefined) v.finishedAtMs = d.finishedAtMs;
  return v;
}

type Claim = { doc: BillCheckDoc; token: string } | { busy: BillCheckDoc };

/** Takes the day's record for one run: create it, or take it over once its last lease ran out. */
async function claim(deps: Deps, billDate: string, leaseMs: number): Promise<Claim> {
  const { store } = deps;
  const token = deps.random(16);
  const now = deps.now();
  let doc = await store.get<BillCheckDoc>(COLLECTIONS.billChecks, billDate);
  if (!doc) {
    const fresh = { ...emptyDoc(billDate, now), leaseUntilMs: now + leaseMs, leaseToken: token };
    if ((await store.insert(COLLECTIONS.billChecks, fresh)) === 'inserted') return { doc: fresh, token };
    doc = await store.get<BillCheckDoc>(COLLECTIONS.billChecks, billDate);
    if (!doc) throw new AppError('CONFLICT', `bill check ${billDate} vanished while being claimed`);
  }
  if (doc.leaseUntilMs > now) return { busy: doc };
  const lease = {
    leaseUntilMs: now + leaseMs,
    leaseToken: token,
    status: 'RUNNING' as const,
    updatedAtMs: now,
  };
  const won = await store.cas(
    COLLECTIONS.billChecks,
    { _id: billDate, leaseUntilMs: doc.leaseUntilMs, leaseToken: doc.leaseToken },
    lease,
  );
  if (!won) return { busy: (await store.get<BillCheckDoc>(COLLECTIONS.billChecks, billDate)) ?? doc };
  return { doc: { ...doc, ...lease }, token };
}

function mergeActions(previous: BillAction[], added: BillAction[]): BillAction[] {
  const key = (a: BillAction) => `${a.kind}:${a.orderId}:${a.refundId ?? ''}`;
  const seen = new Set(previous.map(key));
  const out = [...previous];
  for (const a of added) {
    if (seen.has(key(a)) || out.length >= MAX_STORED_ACTIONS) continue;
    seen.add(key(a));
    out.push(a);
  }
  return out;
}

// ---- one date ------------------------------------------------------------------------

export interface CheckOptions {
  trigger: 'timer' | 'admin';
  by?: string;
  budgetMs: number;
  leaseMs: number;
}

/** Checks one day's bill; `ran: false` when another run holds the day right now. */
export async function checkBillDate(
  deps: BillCheckDeps,
  billDate: string,
  options: CheckOptions,
): Promise<{ doc: BillCheckDoc; ran: boolean }> {
  const started = deps.now();
  const startRequests = deps.store.requests;
  if (dayStartMs(billDate) === undefined) throw invalid(`not a bill date: ${billDate}`);
  const claimed = await claim(deps, billDate, options.leaseMs);
  if ('busy' in claimed) return { doc: claimed.busy, ran: false };
  const { doc: before, token } = claimed;
  // Leave room for the final write after the last WeChat call.
  const run = new Run(deps, billDate, started + options.budgetMs - 3000);
  run.sampleMemory();

  let outcome: { status: BillCheckStatus; noBill: boolean; message?: string; compared: boolean };
  try {
    outcome = await compare(run);
    if (outcome.compared) await fixAndConfirm(run);
  } catch (e) {
    // The bill could not be read (WeChat unreachable, a cut-off download, a malformed line):
    // nothing was compared, so the last result stays as it was and the timer tries again.
    const f = wxFailure(e);
    outcome = {
      status: 'FAILED',
      noBill: before.noBill,
      message: (f?.message ?? (e as Error)?.message ?? String(e)).slice(0, 300),
      compared: false,
    };
    deps.log('error', 'billcheck.failed', { billDate, error: e });
  }
  run.sampleMemory();

  const now = deps.now();
  const lastRun: NonNullable<BillCheckDoc['lastRun']> = {
    trigger: options.trigger,
    durationMs: now - started,
    dbRequests: deps.store.requests - startRequests + 1,
    wxCalls: run.wxCalls,
  };
  if (options.by) lastRun.by = options.by;
  if (run.peakHeap > 0) lastRun.peakHeapMb = Math.round((run.peakHeap / 1024 / 1024) * 10) / 10;
  const _ = deps.store.cmd;
  const actions = mergeActions(before.actions, run.actions);
  const patch: Record<string, unknown> = {
    status: outcome.status,
    noBill: outcome.noBill,
    message: outcome.message ?? '',
    runs: _.inc(1),
    lastRunAtMs: started,
    updatedAtMs: now,
    leaseUntilMs: 0,
    actions: _.set(actions),
    lastRun: _.set(lastRun),
  };
  let after: BillCheckDoc = {
    ...before,
    status: outcome.status,
    noBill: outcome.noBill,
    message: outcome.message ?? '',
    runs: before.runs + 1,
    lastRunAtMs: started,
    updatedAtMs: now,
    leaseUntilMs: 0,
    actions,
    lastRun,
  };
  if (outcome.compared) {
    const discrepancyCount = Object.values(run.counts).reduce((a, n) => a + (n ?? 0), 0);
    const compared = {
      totals: { ...run.totals, feeFen: Math.round(run.feeMilli / 1000) },
      discrepancyCount,
      discrepancyCounts: run.counts,
      discrepancies: run.discrepancies,
      pending: run.pending,
      finishedAtMs: now,
    };
    Object.assign(patch, {
      ...compared,
      totals: _.set(compared.totals),
      discrepancyCounts: _.set(compared.discrepancyCounts),
      discrepancies: _.set(compared.discrepancies),
    });
    after = { ...after, ...compared };
  }
  const saved = await deps.store.cas(COLLECTIONS.billChecks, { _id: billDate, leaseToken: token }, patch);
  deps.log(outcome.status === 'DONE' ? 'info' : 'warn', 'billcheck.done', {
    billDate,
    status: outcome.status,
    noBill: outcome.noBill,
    rows: run.totals.rows,
    otherAppRows: run.otherAppRows,
    discrepancies: after.discrepancyCount,
    fixed: run.actions.length,
    pending: run.pending,
    saved,
    ...lastRun,
  });
  if (!saved) {
    // This run outlived its lease and another took the day over; its fixes stand (each was
    // its own transition), only its record is dropped in favour of the newer run's.
    return {
      doc: (await deps.store.get<BillCheckDoc>(COLLECTIONS.billChecks, billDate)) ?? after,
      ran: true,
    };
  }
  return { doc: after, ran: true };
}

/** Streams the bill and compares every row; then the reverse direction (here, not in the bill). */
async function compare(
  run: Run,
): Promise<{ status: BillCheckStatus; noBill: boolean; message?: string; compared: boolean }> {
  const { deps, billDate } = run;
  const answer = await deps.bills.download({ bill_date: billDate, deadlineMs: run.deadlineMs });
  run.wxCalls++;
  if (answer.kind === 'not-ready') {
    return { status: 'NOT_READY', noBill: false, message: answer.message, compared: false };
  }
  if (answer.kind === 'bill') {
    const reader = new BillReader('ALL');
    let n = 0;
    for await (const line of answer.lines) {
      const row = reader.line(line);
      if (row) await run.row(row);
      if (++n % 5000 === 0) run.sampleMemory();
    }
    const summary = reader.end();
    await run.flushPayments();
    await run.flushRefunds();
    checkSummary(run, summary, reader.rows);
  }
  await findAbsent(run);
  return { status: 'DONE', noBill: answer.kind === 'no-bill', compared: true };
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

// ---- fixes, each confirmed by WeChat first -------------------------------------------

/** Longest a WeChat call can take with its retries (3 × the configured timeout, plus backoff). */
function callBudgetMs(deps: Deps): number {
  return deps.config.wxpay.timeoutMs * 3 + 3000;
}

async function fixAndConfirm(run: Run): Promise<void> {
  const { deps } = run;
  for (let i = 0; i < run.work.length; i++) {
    const item = run.work[i]!;
    if (deps.now() + callBudgetMs(deps) > run.deadlineMs) {
      // Out of time: what is left is done by the next run, which compares afresh.
      run.pending += run.work.length - i;
      deps.log('warn', 'billcheck.out_of_time', { billDate: run.billDate, left: run.work.length - i });
      return;
    }
    try {
      await fix(run, item);
    } catch (e) {
      const f = wxFailure(e);
      if (f && !f.transient) throw e;
      // WeChat or the database was busy for this one item: the next run tries it again.
      run.pending++;
      deps.log('warn', 'billcheck.item_failed', {
        billDate: run.billDate,
        item: item.type,
        code: f?.errCode ?? f?.code ?? (e as { code?: string })?.code,
        error: e,
      });
    }
  }
}

async function fix(run: Run, w: Work): Promise<void> {
  switch (w.type) {
    case 'pay':
      return void (await confirmPayment(run, w.entry.orderId, w.entry));
    case 'refund':
      return confirmRefund(run, w.entry);
    case 'external':
      return externalRefund(run, w.entry);
    case 'absent-pay':
      return absentPayment(run, w.orderId);
    case 'absent-refund':
      return absentRefund(run, w.refundId);
  }
}

async function orderQuery(run: Run, orderId: string): Promise<WxParams | 'ORDERNOTEXIST'> {
  run.wxCalls++;
  try {
    return await requireWxpay(run.deps).orderQuery({ out_trade_no: orderId });
  } catch (e) {
    if (wxFailure(e)?.errCode === 'ORDERNOTEXIST') return 'ORDERNOTEXIST';
    throw e;
  }
}

async function refundQuery(run: Run, refundId: string): Promise<WxParams | undefined> {
  run.wxCalls++;
  let res: WxParams;
  try {
    res = await requireWxpay(run.deps).refundQuery({ out_refund_no: refundId });
  } catch (e) {
    if (wxFailure(e)?.errCode === 'REFUNDNOTEXIST') return undefined;
    throw e;
  }
  return refundInfoFromQuery(res, refundId);
}

/**
 * Paid at WeChat, not PAID here: orderquery must say so too, then the order takes the same
 * exactly-once transition as from a notify (CLOSED → PAID flagged PAID_AFTER_CLOSE).
 * Resolves whether the order is PAID afterwards.
 */
async function confirmPayment(run: Run, orderId: string, entry?: PayEntry): Promise<boolean> {
  const { deps } = run;
  const order = await deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (!order) return false;
  if (order.status === 'PAID') return true;
  const res = await orderQuery(run, orderId);
  const state = res === 'ORDERNOTEXIST' ? 'ORDERNOTEXIST' : res['trade_state'];
  if (res === 'ORDERNOTEXIST' || (state !== 'SUCCESS' && state !== 'REFUND')) {
    run.flag({
      kind: 'PAYMENT_UNCONFIRMED',
      orderId,
      transactionId: entry?.transactionId,
      wechatFen: entry?.totalFen,
      localFen: order.totalFee,
      detail: `the bill lists it paid, orderquery says ${state}`,
    });
    return false;
  }
  const outcome = await markPaid(deps, order, res, 'orderquery');
  switch (outcome) {
    case 'PAID':
    case 'PAID_AFTER_CLOSE':
      run.act({
        kind: outcome === 'PAID' ? 'BOOKED_PAID' : 'BOOKED_PAID_AFTER_CLOSE',
        orderId,
        fen: order.totalFee,
      });
      return true;
    case 'ALREADY_PAID':
      return true;
    case 'AMOUNT_MISMATCH':
      run.flag({
        kind: 'AMOUNT_MISMATCH',
        orderId,
        transactionId: res['transaction_id'],
        wechatFen: Number(res['total_fee']),
        localFen: order.totalFee,
        detail: `orderquery total_fee ${res['total_fee']}`,
      });
      return false;
  }
}

/** The bill has WeChat's final word on one of our refunds that the books lack: refundquery, then settle. */
async function confirmRefund(run: Run, entry: RefundEntry): Promise<void> {
  const { deps } = run;
  const refund = await deps.store.get<RefundDoc>(COLLECTIONS.refunds, entry.refundId);
  if (!refund) return;
  const info = await refundQuery(run, entry.refundId);
  if (!info) {
    run.flag({
      kind: 'REFUND_UNCONFIRMED',
      orderId: entry.orderId,
      refundId: entry.refundId,
      wechatFen: entry.refundFen,
      detail: `the bill says ${entry.status}, refundquery knows no such refund`,
    });
    return;
  }
  const outcome: string = await finalizeRefund(deps, refund, info, 'refundquery');
  switch (outcome) {
    case 'SUCCESS':
      run.act({
        kind: 'SETTLED_REFUND',
        orderId: refund.orderId,
        refundId: refund._id,
        fen: refund.refundFee,
      });
      return;
    case 'ALREADY':
      return;
    case 'STILL_PROCESSING':
      if (entry.status === 'SUCCESS') {
        run.flag({
          kind: 'REFUND_UNCONFIRMED',
          orderId: entry.orderId,
          refundId: entry.refundId,
          wechatFen: entry.refundFen,
          detail: `the bill says SUCCESS, refundquery says ${info['refund_status']}`,
        });
      }
      return;
    case 'MISMATCH':
      run.flag({
        kind: 'REFUND_AMOUNT_MISMATCH',
        orderId: entry.orderId,
        refundId: entry.refundId,
        wechatFen: Number(info['refund_fee']),
        localFen: refund.refundFee,
        detail: 'refundquery disagrees with the refund here',
      });
      return;
    case 'CONFLICT':
      run.flag({
        kind: 'REFUND_STATE_CONFLICT',
        orderId: entry.orderId,
        refundId: entry.refundId,
        wechatFen: entry.refundFen,
        localFen: refund.refundFee,
        detail: `WeChat says ${info['refund_status']}, the refund is ${refund.status} here`,
      });
      return;
    default:
      // FAILED, CLOSED, ABNORMAL…: a final state other than money returned, now booked.
      run.act({ kind: 'FINALIZED_REFUND', orderId: refund.orderId, refundId: refund._id, fen: 0 });
  }
}

/** A refund this shop never made: confirmed by refundquery, then recorded on its order. */
async function externalRefund(run: Run, entry: RefundEntry): Promise<void> {
  const info = await refundQuery(run, entry.refundId);
  const status = info?.['refund_status'];
  if (!info || (status !== 'SUCCESS' && status !== 'CHANGE' && status !== 'PROCESSING')) {
    if (status === 'REFUNDCLOSE') return;
    run.flag({
      kind: 'REFUND_UNCONFIRMED',
      orderId: entry.orderId,
      refundId: entry.refundId,
      wechatFen: entry.refundFen,
      detail: `a refund not made by this shop; refundquery says ${status ?? 'REFUNDNOTEXIST'}`,
    });
    return;
  }
  if (status === 'PROCESSING') {
    // Not money moved yet; the next run asks again.
    run.pending++;
    return;
  }
  const orderId = info['out_trade_no'] || entry.orderId;
  const refundFee = Number(info['refund_fee']);
  const input = {
    refundId: entry.refundId,
    orderId,
    refundFee,
    status: status as 'SUCCESS' | 'CHANGE',
    billDate: run.billDate,
    fields: info,
  };
  let outcome = await recordExternalRefund(run.deps, input);
  if (outcome === 'ORDER_NOT_PAID' && (await confirmPayment(run, orderId))) {
    outcome = await recordExternalRefund(run.deps, input);
  }
  if (outcome === 'RECORDED')
    run.act({ kind: 'EXTERNAL_REFUND', orderId, refundId: entry.refundId, fen: refundFee });
  if (outcome === 'ORDER_MISSING' || outcome === 'ORDER_NOT_PAID') {
    run.flag({
      kind: 'EXTERNAL_REFUND_NO_ORDER',
      orderId,
      refundId: entry.refundId,
      wechatFen: refundFee,
      detail: outcome === 'ORDER_MISSING' ? 'no such order here' : 'the order is not paid here',
    });
  }
  if (status === 'CHANGE' && (outcome === 'RECORDED' || outcome === 'ALREADY')) {
    run.flag({
      kind: 'EXTERNAL_REFUND_ABNORMAL',
      orderId,
      refundId: entry.refundId,
      wechatFen: refundFee,
      detail: 'a refund made on the merchant platform could not reach the shopper (CHANGE)',
    });
  }
}

/** PAID here, not in the bill: orderquery tells whether WeChat has it, and on which day. */
async function absentPayment(run: Run, orderId: string): Promise<void> {
  const order = await run.deps.store.get<OrderDoc>(COLLECTIONS.orders, orderId);
  if (!order) return;
  const res = await orderQuery(run, orderId);
  const state = res === 'ORDERNOTEXIST' ? 'ORDERNOTEXIST' : res['trade_state'];
  if (res === 'ORDERNOTEXIST' || (state !== 'SUCCESS' && state !== 'REFUND')) {
    run.flag({
      kind: 'NOT_PAID_AT_WECHAT',
      orderId,
      localFen: order.totalFee,
      detail: `PAID here, orderquery says ${state}`,
    });
    return;
  }
  const paidOn = dateOfWxTime(res['time_end']);
  // Paid another day (a notify booked late, or early the next morning): that day's bill has it.
  if (paidOn !== run.billDate) return;
  run.flag({
    kind: 'PAID_NOT_IN_BILL',
    orderId,
    transactionId: res['transaction_id'],
    wechatFen: Number(res['total_fee']),
    localFen: order.totalFee,
    detail: `orderquery says paid at ${res['time_end']}, the bill does not list it`,
  });
}

async function absentRefund(run: Run, refundId: string): Promise<void> {
  const refund = await run.deps.store.get<RefundDoc>(COLLECTIONS.refunds, refundId);
  if (!refund) return;
  const info = await refundQuery(run, refundId);
  run.flag({
    kind: 'REFUND_NOT_IN_BILL',
    orderId: refund.orderId,
    refundId,
    localFen: refund.refundFee,
    wechatFen: info ? Number(info['refund_fee']) : undefined,
    detail: `SUCCESS here, refundquery says ${info?.['refund_status'] ?? 'REFUNDNOTEXIST'}, the bill does not list it`,
  });
}

// ---- entry points --------------------------------------------------------------------

/**
 * The timer: from 10:30 Beijing, yesterday's bill, then any day of the last week whose check
 * is missing or did not finish (the bill was not ready, WeChat was down, the run ran out of
 * time). A finished day is not run again by the timer; the admin can.
 */
export async function scheduledBillCheck(
  deps: BillCheckDeps,
  run: { budgetMs: number; leaseMs: number } = TIMER_RUN,
): Promise<{ skipped?: string; checked: { billDate: string; status: BillCheckStatus; ran: boolean }[] }> {
  const started = deps.now();
  if (beijingMinute(started) < FIRST_RUN_MINUTE) return { skipped: 'before 10:30 Beijing time', checked: [] };
  const yesterday = billDateOf(started - DAY_MS);
  const dates = Array.from({ length: CATCH_UP_DAYS }, (_, i) =>
    billDateOf(started - (CATCH_UP_DAYS - i) * DAY_MS),
  );
  const _ = deps.store.cmd;
  const known = await deps.store.find<Pick<BillCheckDoc, '_id' | 'status' | 'leaseUntilMs'>>(
    COLLECTIONS.billChecks,
    { _id: _.in(dates) },
    { limit: dates.length, fields: ['status', 'leaseUntilMs'] },
  );
  const status = new Map(known.map((d) => [d._id, d.status]));
  // Yesterday first: it is what the merchant looks at in the morning.
  const todo = [yesterday, ...dates.filter((d) => d !== yesterday)].filter((d) => status.get(d) !== 'DONE');
  const checked: { billDate: string; status: BillCheckStatus; ran: boolean }[] = [];
  for (const billDate of todo) {
    const left = run.budgetMs - (deps.now() - started);
    if (left < 20_000) break;
    const r = await checkBillDate(deps, billDate, {
      trigger: 'timer',
      budgetMs: left,
      leaseMs: run.leaseMs,
    });
    checked.push({ billDate, status: r.doc.status, ran: r.ran });
  }
  return { checked };
}

export const BILL_CHECK_PAGE = 10;

export async function listBillChecks(
  deps: Deps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<ListBillChecksResult> {
  requireAdmin(deps, caller);
  onlyFields(event, ['cursor']);
  const cursor = event['cursor'];
  if (cursor !== undefined && cursor !== null && (typeof cursor !== 'string' || !/^\d{8}$/.test(cursor)))
    throw invalid('cursor is invalid');
  const { store } = deps;
  const rows = await store.find<BillCheckDoc>(
    COLLECTIONS.billChecks,
    cursor ? { _id: store.cmd.lt(cursor) } : {},
    { orderBy: [['_id', 'desc']], limit: BILL_CHECK_PAGE + 1 },
  );
  const page = rows.slice(0, BILL_CHECK_PAGE);
  return {
    items: page.map(billCheckView),
    nextCursor: rows.length > BILL_CHECK_PAGE ? page[page.length - 1]!._id : null,
  };
}

export async function runBillCheck(
  deps: BillCheckDeps,
  event: Record<string, unknown>,
  caller: Caller,
): Promise<RunBillCheckResult> {
  const admin = requireAdmin(deps, caller);
  onlyFields(event, ['date']);
  const billDate = parseBillDate(requiredString(event, 'date', { max: 8 }), deps.now());
  const r = await checkBillDate(deps, billDate, { trigger: 'admin', by: admin, ...ADMIN_RUN });
  return { check: billCheckView(r.doc), ran: r.ran };
}
