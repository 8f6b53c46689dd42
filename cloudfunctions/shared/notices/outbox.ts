/**
 * The notices outbox: each notice is a document in `notices`, written after the transition it
 * reports and sent from there.
 *
 * Exactly once, at most once:
 * - the document's id is (kind, subject, recipient), so a duplicate pay notify, a second
 *   approval or a replayed transition finds it already there and sends nothing;
 * - whoever inserts it owns the first send; later sends go to whoever wins the claim (a
 *   compare-and-set on status and attempt number), so two reconcile runs never send one notice
 *   twice;
 * - a send whose outcome is unknown (timeout, lost connection, a sender that died holding the
 *   lease) is never repeated: it may have reached the phone already.
 *
 * Sending never fails the caller: `notify` resolves with a summary whatever happens, because a
 * notice is a side effect of a stored change, never part of it.
 *
 *   t0  notify A: insert notices/K:S:U (SENDING, attempt 1)  → send → SENT
 *   t0  notify B: insert notices/K:S:U → duplicate           → nothing
 *   t1  send fails with -1 (system busy) → PENDING, next try t1 + 1 min … for at most a day
 *   t2  reconcile X and Y: both read it PENDING attempt 1; claim where attempt == 1:
 *       X wins (attempt 2, SENDING) and sends; Y's claim matches nothing and Y moves on
 */
import type { ShopConfig } from '../config';
import type { Deps } from '../domain/deps';
import type { MiniprogramState, NoticeConfig } from './config';
import { type FactsByKind, isAdminKind, type NoticeKind, noticePage } from './kinds';
import { renderData, type TemplateData } from './render';
import { classifyFailure, type SendResult, type SubscribeMessage, type SubscribeSend } from './send';

export const NOTICES_COLLECTION = 'notices';

/** How long after a notice's transition it is still worth sending. */
export const NOTICE_TTL_MS = 24 * 3600_000;
/** The first send's default time budget: a notify reply must still leave within WeChat's 5 s. */
export const SEND_BUDGET_MS = 3_000;
/**
 * Below this a send is not started: the notice is written PENDING and reconcile sends it. A
 * send cut off by its budget has an unknown outcome and is never repeated, so starting one
 * with too little time would lose the notice instead of delaying it.
 */
export const MIN_SEND_BUDGET_MS = 500;
/** A sender that holds a notice longer than this has died; its send's outcome is unknown. */
export const SEND_LEASE_MS = 60_000;
/** Waits after the n-th failed attempt (reconcile runs every 5 minutes, so the first ones round up). */
const BACKOFF_MS = [60_000, 5 * 60_000, 15 * 60_000, 30 * 60_000, 3600_000, 2 * 3600_000, 4 * 3600_000];

export type NoticeStatus = 'SENDING' | 'SENT' | 'PENDING' | 'FAILED' | 'UNKNOWN';

export interface NoticeFailure {
  atMs: number;
  errCode: number;
  errMsg: string;
}

export interface NoticeDoc {
  /** `<kind>:<subject>:<recipient>` */
  _id: string;
  kind: NoticeKind;
  subject: string;
  touser: string;
  templateId: string;
  page: string;
  data: TemplateData;
  miniprogramState: MiniprogramState;
  status: NoticeStatus;
  /** Sends started so far; also the claim's version. */
  attempts: number;
  createdAtMs: number;
  updatedAtMs: number;
  /** PENDING: the next try is not before this. */
  nextAttemptAtMs: number;
  /** SENDING: the sender's answer is awaited until then; after it, the outcome is unknown. */
  leaseUntilMs: number;
  /** A transient failure is not retried past this. */
  expiresAtMs: number;
  /**
   * Written by a function that was not given this notice's variable (SCF's 4 KB of variables
   * do not fit every template next to the merchant certificate): `templateId` and `data` are
   * empty, `facts` holds what to render, and reconcile renders it with its own templates.
   */
  deferred?: true;
  facts?: FactsByKind[NoticeKind];
  sentAtMs?: number;
  /** The last failure, WeChat's errcode (or CloudBase's), kept until the notice is sent. */
  errCode?: number;
  errMsg?: string;
  failures: NoticeFailure[];
}

export interface NoticeRuntime {
  config: NoticeConfig;
  /** Absent in a function not allowed to send: notices are written PENDING for reconcile. */
  send?: SubscribeSend;
  /**
   * The kinds whose variables this function was given (its ConfigNeeds). A notice of another
   * kind is written deferred, for reconcile to render and send. Absent: every kind was given.
   */
  kinds?: readonly NoticeKind[];
}

export type NoticeDeps = Pick<Deps, 'store' | 'now' | 'log'> & {
  /** `timeScale` (sandbox only) scales the retry waits and the day a notice is retried for. */
  config: Pick<ShopConfig, 'adminOpenids' | 'shopName'> & Partial<Pick<ShopConfig, 'timeScale'>>;
  /** Absent: notices are off in this function. */
  notices?: NoticeRuntime;
};

export interface NotifyInput<K extends NoticeKind = NoticeKind> {
  kind: K;
  /**
   * What the notice reports: the order id or refund id, plus the state when one refund can
   * report the same kind twice (e.g. `R123:FAILED`). Letters, digits, `_`, `-` and `:`.
   */
  subject: string;
  /** Admin kinds: every admin when omitted. Shopper kinds: the shopper's openid, required. */
  recipients?: readonly string[];
  data: FactsByKind[K];
}

export interface NoticeCounts {
  /** Outbox documents this call wrote. */
  written: number;
  /** Of those, written for reconcile to render (this function holds no template for the kind). */
  deferred: number;
  /** Already in the outbox: a duplicate of an earlier notify. */
  duplicate: number;
  sent: number;
  /** Final: 43101, or another answer no retry changes. */
  failed: number;
  /** Left for reconcile (transient failure, or no sender in this function). */
  pending: number;
  /** Sent, but the answer was lost: not retried. */
  unknown: number;
  /** The database or the sender threw; logged. */
  errors: number;
}

const SUBJECT = /^[A-Za-z0-9_:-]{1,80}$/;

function counts(): NoticeCounts {
  return { written: 0, deferred: 0, duplicate: 0, sent: 0, failed: 0, pending: 0, unknown: 0, errors: 0 };
}

export function noticeId(kind: NoticeKind, subject: string, recipient: string): string {
  return `${kind}:${subject}:${recipient}`;
}

function messageOf(doc: NoticeDoc): SubscribeMessage {
  return {
    touser: doc.touser,
    templateId: doc.templateId,
    page: doc.page,
    data: doc.data,
    miniprogramState: doc.miniprogramState,
    lang: 'zh_CN',
  };
}

function backoffMs(attempts: number, timeScale = 1): number {
  return Math.round(BACKOFF_MS[Math.min(Math.max(attempts, 1), BACKOFF_MS.length) - 1]! * timeScale);
}

function errorFields(e: unknown): { errCode: number; errMsg: string } {
  const x = (typeof e === 'object' && e !== null ? e : {}) as {
    errCode?: unknown;
    errMsg?: unknown;
    message?: unknown;
  };
  const errCode = typeof x.errCode === 'number' ? x.errCode : -1;
  const errMsg =
    typeof x.errMsg === 'string' ? x.errMsg : typeof x.message === 'string' ? x.message : String(e);
  return { errCode, errMsg };
}

function tally(c: NoticeCounts, status: NoticeStatus | 'error'): void {
  if (status === 'SENT') c.sent++;
  else if (status === 'FAILED') c.failed++;
  else if (status === 'PENDING') c.pending++;
  else if (status === 'UNKNOWN' || status === 'SENDING') c.unknown++;
  else c.errors++;
}

/**
 * Records a send's result on the notice this sender claimed (attempt `doc.attempts`). A late
 * success may still turn an UNKNOWN into SENT; nothing else overwrites another sender's claim.
 */
async function record(deps: NoticeDeps, doc: NoticeDoc, result: SendResult): Promise<NoticeStatus> {
  const { store } = deps;
  const _ = store.cmd;
  const now = deps.now();
  const mine = { _id: doc._id, attempts: doc.attempts };
  if (result.ok) {
    const won = await store.cas(
      NOTICES_COLLECTION,
      { ...mine, status: _.in(['SENDING', 'UNKNOWN']) },
      {
        status: 'SENT',
        sentAtMs: now,
        updatedAtMs: now,
        leaseUntilMs: 0,
        errCode: _.remove(),
        errMsg: _.remove(),
      },
    );
    deps.log('info', 'notice.sent', { id: doc._id, attempt: doc.attempts, recorded: won });
    return 'SENT';
  }
  const errMsg = result.errMsg.slice(0, 300);
  const failure: NoticeFailure = { atMs: now, errCode: result.errCode, errMsg };
  const cls = classifyFailure(result.errCode, errMsg);
  let status: NoticeStatus = cls === 'final' ? 'FAILED' : cls === 'unknown' ? 'UNKNOWN' : 'PENDING';
  const nextAttemptAtMs = now + backoffMs(doc.attempts, deps.config.timeScale);
  if (status === 'PENDING' && nextAttemptAtMs >= doc.expiresAtMs) status = 'FAILED';
  const won = await store.cas(
    NOTICES_COLLECTION,
    { ...mine, status: 'SENDING' },
    {
      status,
      errCode: result.errCode,
      errMsg,
      failures: _.push(failure),
      updatedAtMs: now,
      leaseUntilMs: 0,
      ...(status === 'PENDING' ? { nextAttemptAtMs } : {}),
    },
  );
  deps.log(status === 'FAILED' ? 'warn' : 'info', 'notice.not_sent', {
    id: doc._id,
    attempt: doc.attempts,
    errCode: result.errCode,
    errMsg,
    status,
    recorded: won,
  });
  return status;
}

/**
 * Sends a notice this caller holds (status SENDING, attempt `doc.attempts`) within `budgetMs`.
 * Past the budget it stops waiting: the notice keeps its lease, and an answer that still comes
 * while this instance lives is recorded then.
 */
async function sendHeld(deps: NoticeDeps, send: SubscribeSend, doc: NoticeDoc, budgetMs: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const answer = send(messageOf(doc)).catch((e): SendResult => {
    const f = errorFields(e);
    return { ok: false, errCode: f.errCode, errMsg: f.errMsg };
  });
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), budgetMs);
  });
  const first = await Promise.race([answer, timedOut]);
  clearTimeout(timer);
  if (first === 'timeout') {
    deps.log('warn', 'notice.slow', { id: doc._id, attempt: doc.attempts, budgetMs });
    void answer
      .then((r) => record(deps, doc, r))
      .catch((e) => deps.log('error', 'notice.record_failed', { id: doc._id, error: e }));
    return 'SENDING' as const;
  }
  return record(deps, doc, first);
}

/**
 * Writes the notice for each recipient to the outbox and sends it. Call it after the
 * transition it reports is stored. Never throws; resolves when every send has answered or
 * `budgetMs` has passed. With less than MIN_SEND_BUDGET_MS to spend, nothing is sent now: the
 * notice is written PENDING and reconcile sends it.
 */
export async function notify<K extends NoticeKind>(
  deps: NoticeDeps,
  input: NotifyInput<K>,
  options: { budgetMs?: number } = {},
): Promise<NoticeCounts & { off?: true }> {
  const c = counts();
  try {
    const runtime = deps.notices;
    if (!runtime) return { ...c, off: true };
    // Not given this kind's variable: reconcile, which holds it, renders and sends it.
    const deferred = runtime.kinds !== undefined && !runtime.kinds.includes(input.kind);
    const template = runtime.config.templates[input.kind];
    if (!deferred && !template) return { ...c, off: true };
    if (!SUBJECT.test(input.subject)) {
      deps.log('error', 'notice.bad_subject', { kind: input.kind, subject: input.subject });
      c.errors++;
      return c;
    }
    const recipients = [
      ...new Set(input.recipients ?? (isAdminKind(input.kind) ? [...deps.config.adminOpenids] : [])),
    ].filter((r) => /^[A-Za-z0-9_-]{1,64}$/.test(r));
    if (recipients.length === 0) {
      deps.log('warn', 'notice.no_recipient', { kind: input.kind, subject: input.subject });
      return c;
    }
    const data = template ? renderData(input.kind, template, input.data, deps.config.shopName) : {};
    const page = noticePage(input.kind, input.data);
    const budgetMs = options.budgetMs ?? SEND_BUDGET_MS;
    const send = template && !deferred && budgetMs >= MIN_SEND_BUDGET_MS ? runtime.send : undefined;
    const { miniprogramState } = runtime.config;
    const ttlMs = Math.round(NOTICE_TTL_MS * (deps.config.timeScale ?? 1));
    await Promise.all(
      recipients.map(async (touser) => {
        try {
          const now = deps.now();
          const doc: NoticeDoc = {
            _id: noticeId(input.kind, input.subject, touser),
            kind: input.kind,
            subject: input.subject,
            touser,
            templateId: deferred ? '' : (template?.templateId ?? ''),
            page,
            data,
            miniprogramState,
            // Inserting it SENDING is the first claim: only the inserter sends it now.
            status: send ? 'SENDING' : 'PENDING',
            attempts: send ? 1 : 0,
            createdAtMs: now,
            updatedAtMs: now,
            nextAttemptAtMs: now,
            leaseUntilMs: send ? now + SEND_LEASE_MS : 0,
            expiresAtMs: now + ttlMs,
            failures: [],
            ...(deferred ? { deferred: true as const, facts: input.data } : {}),
          };
          if ((await deps.store.insert(NOTICES_COLLECTION, doc)) === 'duplicate') {
            c.duplicate++;
            return;
          }
          c.written++;
          if (deferred) c.deferred++;
          if (!send) {
            c.pending++;
            return;
          }
          tally(c, await sendHeld(deps, send, doc, budgetMs));
        } catch (e) {
          c.errors++;
          deps.log('error', 'notice.error', { kind: input.kind, subject: input.subject, touser, error: e });
        }
      }),
    );
  } catch (e) {
    c.errors++;
    deps.log('error', 'notice.error', { kind: input.kind, subject: input.subject, error: e });
  }
  return c;
}

/** A deferred notice's template fields, from this function's templates; undefined without one. */
function renderDeferred(
  deps: NoticeDeps,
  doc: NoticeDoc,
): Pick<NoticeDoc, 'templateId' | 'data' | 'miniprogramState'> | undefined {
  const template = deps.notices?.config.templates[doc.kind];
  if (!template || !deps.notices || doc.facts === undefined) return undefined;
  return {
    templateId: template.templateId,
    data: renderData(doc.kind, template, doc.facts, deps.config.shopName),
    miniprogramState: deps.notices.config.miniprogramState,
  };
}

export interface RetrySummary {
  sent: number;
  failed: number;
  pending: number;
  unknown: number;
  /** Given up: still failing a day after the transition. */
  expired: number;
  /** Lost a claim to a concurrent run, or the database failed (logged). */
  skipped: number;
}

/**
 * Sends the notices whose transient failure's wait is over (or that were written for it:
 * without a sender, or deferred, which it renders first), oldest first, and settles those
 * whose sender died mid-send (as UNKNOWN) or that stayed undeliverable for a day. For
 * reconcile; never throws.
 */
export async function retryNotices(
  deps: NoticeDeps,
  options: { limit?: number; budgetMs?: number } = {},
): Promise<RetrySummary> {
  const s: RetrySummary = { sent: 0, failed: 0, pending: 0, unknown: 0, expired: 0, skipped: 0 };
  const send = deps.notices?.send;
  if (!send) return s;
  const { store } = deps;
  const _ = store.cmd;
  const limit = Math.min(options.limit ?? 20, 100);
  try {
    const now = deps.now();
    const stale = await store.find<NoticeDoc>(
      NOTICES_COLLECTION,
      { status: 'SENDING', leaseUntilMs: _.lt(now) },
      { orderBy: [['leaseUntilMs', 'asc']], limit },
    );
    for (const doc of stale) {
      const won = await store.cas(
        NOTICES_COLLECTION,
        { _id: doc._id, status: 'SENDING', attempts: doc.attempts, leaseUntilMs: _.lt(now) },
        {
          status: 'UNKNOWN',
          errCode: -1,
          errMsg: 'the sender stopped before WeChat answered; not sent again, it may have arrived',
          updatedAtMs: now,
        },
      );
      if (won) s.unknown++;
      else s.skipped++;
    }
    const due = await store.find<NoticeDoc>(
      NOTICES_COLLECTION,
      { status: 'PENDING', nextAttemptAtMs: _.lte(now) },
      { orderBy: [['nextAttemptAtMs', 'asc']], limit },
    );
    await Promise.all(
      due.map(async (doc) => {
        try {
          const t = deps.now();
          const mine = { _id: doc._id, status: 'PENDING', attempts: doc.attempts };
          if (t >= doc.expiresAtMs) {
            const won = await store.cas(NOTICES_COLLECTION, mine, {
              status: 'FAILED',
              errMsg: `not delivered within a day: ${doc.errMsg ?? 'never sent'}`.slice(0, 300),
              updatedAtMs: t,
            });
            if (won) s.expired++;
            else s.skipped++;
            return;
          }
          const rendered = doc.deferred ? renderDeferred(deps, doc) : {};
          if (rendered === undefined) {
            // Written by a function without the kind's template, and reconcile has none either:
            // the merchant has not picked one (or the deploy did not give reconcile its variable).
            const won = await store.cas(NOTICES_COLLECTION, mine, {
              status: 'FAILED',
              errMsg: `not sent: reconcile has no template for ${doc.kind}`,
              updatedAtMs: t,
            });
            if (won) s.failed++;
            else s.skipped++;
            return;
          }
          const leaseUntilMs = t + SEND_LEASE_MS;
          const won = await store.cas(
            NOTICES_COLLECTION,
            { ...mine, nextAttemptAtMs: _.lte(t) },
            {
              status: 'SENDING',
              attempts: _.inc(1),
              leaseUntilMs,
              updatedAtMs: t,
              ...rendered,
              ...(doc.deferred ? { deferred: _.remove(), facts: _.remove() } : {}),
            },
          );
          if (!won) {
            s.skipped++;
            return;
          }
          const held: NoticeDoc = {
            ...doc,
            ...rendered,
            status: 'SENDING',
            attempts: doc.attempts + 1,
            leaseUntilMs,
          };
          const status = await sendHeld(deps, send, held, options.budgetMs ?? SEND_BUDGET_MS);
          if (status === 'SENT') s.sent++;
          else if (status === 'FAILED') s.failed++;
          else if (status === 'PENDING') s.pending++;
          else s.unknown++;
        } catch (e) {
          s.skipped++;
          deps.log('error', 'notice.retry_error', { id: doc._id, error: e });
        }
      }),
    );
  } catch (e) {
    deps.log('error', 'notice.retry_error', { error: e });
  }
  if (s.sent + s.failed + s.pending + s.unknown + s.expired > 0) deps.log('info', 'notice.retried', { ...s });
  return s;
}
