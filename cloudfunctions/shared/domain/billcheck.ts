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
  BillCheckRunStats,
  BillCheckStatus,
  BillCheckView,
  BillDiscrepancy,
  BillDiscrepancyKind,
  BillTotals,
  ListBillChecksResult,
  RunBillCheckResult,
} from '../contract';
import { AppError } from '../errors';
import { billMismatchNotice, tell } from '../notices/transitions';
import type { ProviderName } from '../providers/port';
import type { Caller } from '../runtime/callable';
import type { BillAnswer } from '../wxpay/billdownload';
import { compare, emptyTotals, Run } from './billcompare';
import { beijingMinute, billDateOf, DAY_MS, dayStartMs, parseBillDate } from './billdates';
import { fixAndConfirm } from './billfix';
import type { Deps } from './deps';
import { wxFailure } from './deps';
import { COLLECTIONS } from './model';
import { invalid, onlyFields, requireAdmin, requiredString } from './validate';

/** Who a bill's rows must name (公众账号ID, 商户号, 特约商户号); unset fields are not checked. */
export interface BillOwner {
  appid: string;
  mchId?: string;
  subMchId?: string;
}

/** One merchant account's daily bill. */
export interface BillSource {
  download(p: { bill_date: string; deadlineMs: number }): Promise<BillAnswer>;
  /** Default: the configured WXPAY_APPID and WXPAY_MCHID. */
  owner?: BillOwner;
  /** The provider that can confirm what this bill lists (refunds made outside the shop). */
  provider?: ProviderName;
}

export interface BillCheckDeps extends Deps {
  /** One bill per merchant account in use (the merchant's own; cloudPay's sub-merchant account). */
  bills: BillSource | readonly BillSource[];
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
  lastRun?: BillCheckRunStats;
}

/** The record stays small: every fix is also in payment_events and the logs. */
const MAX_STORED_ACTIONS = 200;
/** WeChat generates bills from 9:00 and asks for them after 10:00; the timer starts at 10:30. */
export const FIRST_RUN_MINUTE = 10 * 60 + 30;
/** Unfinished checks are taken up again by the timer for this many days. */
export const CATCH_UP_DAYS = 7;

/** Time budgets, inside the functions' config.json timeouts (billCheck 300 s, runBillCheck 60 s). */
export const TIMER_RUN = { budgetMs: 270_000, leaseMs: 310_000 };
export const ADMIN_RUN = { budgetMs: 50_000, leaseMs: 70_000 };

// ---- the record ----------------------------------------------------------------------

function emptyDoc(
  billDate: string,
  nowMs: number,
  lease: { leaseUntilMs: number; leaseToken: string },
): BillCheckDoc {
  return {
    _id: billDate,
    billDate,
    status: 'RUNNING',
    noBill: false,
    runs: 0,
    createdAtMs: nowMs,
    updatedAtMs: nowMs,
    lastRunAtMs: 0,
    ...lease,
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
  if (d.lastRun) v.lastRun = d.lastRun;
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
    const fresh = emptyDoc(billDate, now, { leaseUntilMs: now + leaseMs, leaseToken: token });
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
  const key = (a: BillAction) => JSON.stringify([a.kind, a.orderId, a.refundId]);
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
  const startWaitMs = deps.store.waitMs;
  if (dayStartMs(billDate) === undefined) throw invalid(`not a bill date: ${billDate}`);
  const claimed = await claim(deps, billDate, options.leaseMs);
  if ('busy' in claimed) return { doc: claimed.busy, ran: false };
  const { doc: before, token } = claimed;
  // Leave room for the final write after the last WeChat call.
  const run = new Run(deps, billDate, started + options.budgetMs - 3000);
  run.sampleMemory();
  const startHeap = run.peakHeap;

  let outcome: { status: BillCheckStatus; noBill: boolean; message?: string; compared: boolean };
  try {
    outcome = await compare(run);
    if (outcome.compared) {
      await fixAndConfirm(run);
      // Some fixes could not be made yet: the timer comes back for them.
      if (run.pending > 0) outcome = { ...outcome, status: 'INCOMPLETE' };
    }
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
    dbMs: deps.store.waitMs - startWaitMs,
    wxCalls: run.wxCalls,
  };
  if (options.by) lastRun.by = options.by;
  const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;
  if (run.peakHeap > 0) {
    lastRun.peakHeapMb = mb(run.peakHeap);
    lastRun.startHeapMb = mb(startHeap);
  }
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
  if (saved && outcome.compared && after.discrepancyCount > 0) {
    // Once per bill date: a second run of the day finds the notice in the outbox.
    await tell(deps, [
      billMismatchNotice(billDate, dayStartMs(billDate) ?? now, after.discrepancyCount, now),
    ]);
  }
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
// ---- entry points --------------------------------------------------------------------

/** The days the timer looks at: the last CATCH_UP_DAYS, ending yesterday. */
export function timerWindow(nowMs: number): string[] {
  return Array.from({ length: CATCH_UP_DAYS }, (_, i) => billDateOf(nowMs - (CATCH_UP_DAYS - i) * DAY_MS));
}

/**
 * What the timer checks at `nowMs`: nothing before 10:30 Beijing; then yesterday, then every
 * day of the last week whose check is missing or did not finish (the bill was not ready,
 * WeChat was down, a run ran out of time), oldest first. A finished day is not run again by
 * the timer; the admin can.
 */
export function timerPlan(
  nowMs: number,
  statuses: ReadonlyMap<string, BillCheckStatus>,
): { skipped?: string; dates: string[] } {
  if (beijingMinute(nowMs) < FIRST_RUN_MINUTE) return { skipped: 'before 10:30 Beijing time', dates: [] };
  const days = timerWindow(nowMs);
  const yesterday = days[days.length - 1]!;
  // Yesterday first: it is what the merchant looks at in the morning.
  const dates = [yesterday, ...days.slice(0, -1)].filter((d) => statuses.get(d) !== 'DONE');
  return { dates };
}

export async function scheduledBillCheck(
  deps: BillCheckDeps,
  run: { budgetMs: number; leaseMs: number } = TIMER_RUN,
): Promise<{ skipped?: string; checked: { billDate: string; status: BillCheckStatus; ran: boolean }[] }> {
  const started = deps.now();
  if (beijingMinute(started) < FIRST_RUN_MINUTE) return { skipped: 'before 10:30 Beijing time', checked: [] };
  const known = await deps.store.find<Pick<BillCheckDoc, '_id' | 'status'>>(
    COLLECTIONS.billChecks,
    { _id: deps.store.cmd.in(timerWindow(started)) },
    // Stryker disable next-line ObjectLiteral,ArrayDeclaration: at most CATCH_UP_DAYS ids are asked for and only status is read, so no limit or no projection answers the same
    { limit: CATCH_UP_DAYS, fields: ['status'] },
  );
  const plan = timerPlan(started, new Map(known.map((d) => [d._id, d.status])));
  const checked: { billDate: string; status: BillCheckStatus; ran: boolean }[] = [];
  for (const billDate of plan.dates) {
    const left = run.budgetMs - (deps.now() - started);
    if (left < 20_000) break;
    const r = await checkBillDate(deps, billDate, { trigger: 'timer', budgetMs: left, leaseMs: run.leaseMs });
    checked.push({ billDate, status: r.doc.status, ran: r.ran });
  }
  deps.log('info', 'billcheck.timer', { checked });
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
