/**
 * The console's server side: `/console/api/*` on the gateway, calling the simulator and the
 * function runtime in-process. A browser cannot do this itself: the simulator speaks HTTPS
 * with a private CA the browser does not trust, and timers have no HTTP entrance at all.
 *
 * Shopper and merchant actions do NOT go through here: the page calls the functions through
 * `POST /functions/<name>` exactly as the mini-program does, so the console exercises the
 * same code paths. This is only the "WeChat side" and the sandbox controls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { billDateOf, DAY_MS, dayStartMs } from '../../cloudfunctions/shared/domain/billdates';
import type { ProviderName } from '../../cloudfunctions/shared/providers/port';
import { aesGcmOpen, type EncryptedResource } from '../../cloudfunctions/shared/providers/v3/crypto';
import { decryptReqInfo, parseXml } from '../../cloudfunctions/shared/wxpay';
import type { Stack } from '../stack';
import type { Faults, NotifyRecord, PayOutcome } from '../wxpay';
import { MerchantPlatformRefundError } from '../wxpay/bills';
import { noticeRoutes } from './notices';

export const CONSOLE_API_PREFIX = '/console/api/';
/** The mini-program's shared tables and checks, bundled for the page (see ./shared.ts). */
export const CONSOLE_SHARED_PATH = '/console/shared.js';

/** A second shopper, so the console can show that one shopper never sees another's orders. */
export const SECOND_SHOPPER_OPENID = 'o_shopper_two';

export interface ConsoleApiOptions {
  /** The simulator's time scale, shown on the page so the timings are not a surprise. */
  timeScale: number;
  /** ./shared.ts bundled as an ES module for the browser. */
  sharedModule: string;
  /** The reconcile timer's 7-field cron when the runtime runs timers; null when only clicks run it. */
  reconcileTimer: string | null;
  /** The next time that cron fires after `from`. */
  nextTimerRun?: (cron: string, from: Date) => Date | undefined;
}

/** Something reconcile left alone on this run, and from when it will look at it. */
export interface WaitingItem {
  kind: 'order' | 'refund';
  id: string;
  status: string;
  /** Why it was not looked at now. */
  why: 'pay-notify-grace' | 'refund-query-delay' | 'submit-lease' | 'backoff';
  /** From this time on, the next reconcile run (timer or click) looks at it. */
  dueAtMs: number;
}

/** What `POST /console/api/reconcile` answers: the function's own report, and what it skipped. */
export interface ReconcileView {
  /** Reconcile's return value as it is: the counts of what it looked at and did. */
  report: Record<string, unknown>;
  durationMs: number;
  atMs: number;
  waiting: WaitingItem[];
  /** More waiting items than listed. */
  waitingTotal: number;
  settings: { notifyGraceSeconds: number; refundQueryDelaySeconds: number };
  /** The timer's next run, when the timer is on. */
  nextRunAtMs: number | null;
}

/** WeChat's clock in the simulator: what its bills (and prepay validity) go by. */
export interface ClockView {
  nowMs: number;
  /** How far it runs ahead of the wall clock (the functions' clock). */
  offsetMs: number;
}

/** What `POST /console/api/billcheck` answers: the function's own answer, as it is. */
export interface BillCheckRunView {
  /** runBillCheck (a date, as the admin) or the billCheck timer (no date). */
  via: 'runBillCheck' | 'billCheck';
  /** runBillCheck: `{ok, data: {check, ran}}` or `{ok: false, error}`; the timer: its report. */
  result: unknown;
  durationMs: number;
}

/** A bill exists from 10:00 Beijing the next day; the billCheck timer starts at 10:30. */
const NEXT_MORNING_MS = (10 * 60 + 30) * 60_000;

/** 10:30 Beijing on the day after the one `nowMs` falls in. */
export function nextMorningAfter(nowMs: number): number {
  return dayStartMs(billDateOf(nowMs))! + DAY_MS + NEXT_MORNING_MS;
}

/** What the page gets from `GET /console/api/info`. Never the API key or the certificates. */
export interface ConsoleInfo {
  shoppers: { openid: string; label: string }[];
  adminOpenid: string;
  merchant: { appid: string; mchid: string; signType: string };
  /** How new orders are paid, and the providers earlier orders keep. */
  provider: ProviderName;
  keptProviders: ProviderName[];
  urls: { console: string; gateway: string; tcbService: string; wxpay: string };
  timeScale: number;
  refundSettleSeconds: number;
  notifyRetryFirstSeconds: number;
  reconcile: { notifyGraceSeconds: number; refundQueryDelaySeconds: number; timer: string | null };
}

/** A notify attempt as the page shows it: which order or refund, and what the shop replied. */
export interface NotifyView {
  id: string;
  kind: 'pay' | 'refund';
  attempt: number;
  timeMs: number;
  /** out_trade_no (pay) or out_refund_no (refund, from the decrypted req_info). */
  subject: string;
  /** result_code (APIv3: trade_state) for pay, refund_status for refund. */
  result: string;
  /** How it travelled: APIv2 XML, APIv3 signed JSON, or a cloudPay function callback. */
  transport: 'v2' | 'v3' | 'function';
  dropped: boolean;
  duplicate: boolean;
  acknowledged: boolean;
  replyStatus?: number;
  /** return_code/return_msg of the shop's XML reply, APIv3's JSON error, cloudPay's errcode, or the transport error. */
  reply: string;
}

const PAY_OUTCOMES: readonly PayOutcome[] = ['SUCCESS', 'CANCEL', 'FAIL'];

/** The faults the page may switch, with the values it may set; anything else is refused. */
const FAULT_CHECKS: { [K in keyof Faults]?: (v: unknown) => boolean } = {
  dropPayNotifies: (v) => typeof v === 'boolean',
  dropRefundNotifies: (v) => typeof v === 'boolean',
  systemErrorRate: (v) => typeof v === 'number' && v >= 0 && v <= 1,
  refundOutcome: (v) => v === 'SUCCESS' || v === 'REFUNDCLOSE' || v === 'CHANGE',
  refundError: (v) => v === null || v === 'NOTENOUGH',
};

class BadRequest extends Error {}

const WAITING_LISTED = 20;

/** Seconds from a function environment variable, as the functions' configuration reads it. */
function envSeconds(env: Record<string, string>, name: string, fallback: number): number {
  const n = Number(env[name]);
  return env[name] !== undefined && env[name] !== '' && Number.isFinite(n) && n >= 0 ? n : fallback;
}

type Doc = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * What a reconcile run at `nowMs` leaves for later, by the same rules reconcile applies: an
 * unpaid order gets its grace for the pay notify, an accepted refund its delay before
 * refundquery, an approved refund whose submit lease is held is left to its holder, and
 * anything with a `nextCheckAtMs` in the future waits for it.
 */
export function waitingAfterReconcile(
  orders: Doc[],
  refunds: Doc[],
  nowMs: number,
  settings: { notifyGraceMs: number; refundQueryDelayMs: number },
): WaitingItem[] {
  const out: WaitingItem[] = [];
  const consider = (kind: WaitingItem['kind'], d: Doc, why: WaitingItem['why'], ruleDueAtMs: number) => {
    const next = num(d['nextCheckAtMs']);
    const dueAtMs = Math.max(ruleDueAtMs, next);
    if (dueAtMs <= nowMs) return;
    out.push({
      kind,
      id: String(d['_id']),
      status: String(d['status']),
      why: next > ruleDueAtMs ? 'backoff' : why,
      dueAtMs,
    });
  };
  for (const o of orders)
    if (o['status'] === 'NOTPAY')
      consider('order', o, 'pay-notify-grace', num(o['createdAtMs']) + settings.notifyGraceMs);
  for (const r of refunds) {
    if (r['status'] === 'PROCESSING')
      consider('refund', r, 'refund-query-delay', num(r['updatedAtMs']) + settings.refundQueryDelayMs);
    else if (r['status'] === 'APPROVED') consider('refund', r, 'submit-lease', num(r['leaseUntilMs']));
  }
  return out.sort((a, b) => a.dueAtMs - b.dueAtMs);
}

export function describeNotify(
  n: NotifyRecord,
  keys: { apiKey: string; apiV3Key?: string | undefined },
): NotifyView {
  let subject = '';
  let result = '';
  const transport = n.transport ?? 'v2';
  const str = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
  try {
    if (transport === 'v3') {
      // The facts are in the AES-256-GCM resource, under the merchant's APIv3 key.
      const envelope = JSON.parse(n.body) as { resource: EncryptedResource };
      const plain = JSON.parse(aesGcmOpen(envelope.resource, keys.apiV3Key ?? '').toString('utf8'));
      subject = str(n.kind === 'pay' ? plain.out_trade_no : plain.out_refund_no);
      result = str(n.kind === 'pay' ? plain.trade_state : plain.refund_status);
    } else if (transport === 'function') {
      // cloudPay's callback event, camel-cased and unsigned (the shop confirms it by query).
      const e = JSON.parse(n.body) as Record<string, unknown>;
      subject = str(n.kind === 'pay' ? e['outTradeNo'] : e['outRefundNo']);
      result = str(n.kind === 'pay' ? e['resultCode'] : e['refundStatus']);
    } else {
      const p = parseXml(n.body);
      if (n.kind === 'pay') {
        subject = p['out_trade_no'] ?? '';
        result = p['result_code'] ?? '';
      } else {
        // Refund notifies carry their facts only inside the encrypted req_info.
        const inner = decryptReqInfo(p['req_info'] ?? '', keys.apiKey);
        subject = inner['out_refund_no'] ?? '';
        result = inner['refund_status'] ?? '';
      }
    }
  } catch {
    result = 'unreadable';
  }
  let reply = n.error ?? '';
  if (n.replyBody !== undefined) {
    if (transport === 'v3') {
      // 204 with no body is APIv3's "received"; a failure says why in JSON.
      reply = n.replyBody === '' ? 'received' : n.replyBody.slice(0, 80);
    } else if (transport === 'function') {
      reply = n.replyBody.slice(0, 80);
    } else {
      try {
        const r = parseXml(n.replyBody);
        reply = [r['return_code'], r['return_msg']].filter(Boolean).join(' ') || n.replyBody.slice(0, 80);
      } catch {
        reply = n.replyBody.slice(0, 80);
      }
    }
  }
  return {
    id: n.id,
    kind: n.kind,
    attempt: n.attempt,
    timeMs: n.timeMs,
    subject,
    result,
    transport,
    dropped: n.dropped === true,
    duplicate: n.duplicate === true,
    acknowledged: n.acknowledged,
    ...(n.replyStatus !== undefined ? { replyStatus: n.replyStatus } : {}),
    reply,
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 64 * 1024) throw new BadRequest('body too large');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  const v: unknown = JSON.parse(text);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadRequest('body must be an object');
  return v as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    // Live state: the page polls and must never see a cached answer.
    'cache-control': 'no-store',
  });
  res.end(text);
}

/**
 * The bill check (对账) from the console: WeChat's clock moved to the next morning, when the
 * day's bill exists; a refund made by hand on the merchant platform, which only the bill
 * shows; and a check run now, of one day as the admin (runBillCheck) or as the timer
 * (billCheck). The checks themselves are listed by the page through listBillChecks.
 */
function billCheckRoutes(
  stack: Stack,
): Record<string, (body: Record<string, unknown>) => Promise<unknown> | unknown> {
  const { info, simulator, runtime } = stack;
  const clock = (): ClockView => {
    const nowMs = simulator.now();
    // The console moves it by whole minutes; the two readings differ by the time between them.
    return { nowMs, offsetMs: Math.round((nowMs - Date.now()) / 1000) * 1000 };
  };
  return {
    'GET clock': clock,
    'POST clock': (body) => {
      if (body['nextMorning'] === true)
        simulator.setClockOffset(nextMorningAfter(simulator.now()) - Date.now());
      else if (body['offsetMs'] === 0) simulator.setClockOffset(0);
      else throw new BadRequest('give {"nextMorning": true} or {"offsetMs": 0}');
      return clock();
    },
    'POST platform-refund': (body) => {
      const outTradeNo = body['outTradeNo'];
      const refundFee = body['refundFee'];
      if (typeof outTradeNo !== 'string' || outTradeNo === '')
        throw new BadRequest('outTradeNo (the order number) is required');
      if (typeof refundFee !== 'number' || !Number.isSafeInteger(refundFee) || refundFee < 1)
        throw new BadRequest('refundFee must be a whole number of fen, at least 1');
      try {
        const r = simulator.merchantPlatformRefund({ outTradeNo, refundFee });
        return { outRefundNo: r.outRefundNo, refundId: r.refundId, status: r.status };
      } catch (e) {
        if (e instanceof MerchantPlatformRefundError) throw new BadRequest(e.message);
        throw e;
      }
    },
    'POST billcheck': async (body): Promise<BillCheckRunView> => {
      const date = body['date'];
      if (date !== undefined && typeof date !== 'string')
        throw new BadRequest('date must be a day as yyyyMMdd (Beijing time), or absent for the timer');
      const out =
        date === undefined
          ? await runtime.fireTimer('billCheck')
          : await runtime.invoke(
              'runBillCheck',
              { date },
              { OPENID: info.adminOpenid, APPID: info.merchant.appid, SOURCE: 'wx_client' },
            );
      const via = date === undefined ? 'billCheck' : 'runBillCheck';
      if (out.error) throw new Error(`${via} failed: ${out.error.message}`);
      return { via, result: out.result, durationMs: out.durationMs };
    },
  };
}

/** A gateway request hook serving `/console/api/*`; other paths fall through (false). */
export function consoleApi(
  stack: Stack,
  options: ConsoleApiOptions,
): (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean> {
  const { info, simulator, runtime, db } = stack;
  // The functions run these waits in sandbox time, like WeChat's own timings.
  const scale = envSeconds(stack.env, 'SANDBOX_TIME_SCALE', 1) || 1;
  const notifyGraceSeconds = envSeconds(stack.env, 'RECONCILE_GRACE_SECONDS', 60) * scale;
  const refundQueryDelaySeconds = envSeconds(stack.env, 'REFUND_QUERY_DELAY_SECONDS', 60) * scale;
  const consoleInfo: ConsoleInfo = {
    shoppers: [
      { openid: info.shopperOpenid, label: '顾客 A Shopper A' },
      { openid: SECOND_SHOPPER_OPENID, label: '顾客 B Shopper B' },
    ],
    adminOpenid: info.adminOpenid,
    merchant: { appid: info.merchant.appid, mchid: info.merchant.mchid, signType: info.merchant.signType },
    provider: info.provider,
    keptProviders: info.keptProviders ?? [],
    urls: {
      console: info.consoleUrl,
      gateway: info.gatewayUrl,
      tcbService: info.tcbServiceUrl,
      wxpay: info.wxpayBaseUrl,
    },
    timeScale: options.timeScale,
    refundSettleSeconds: 60 * options.timeScale,
    notifyRetryFirstSeconds: 15 * options.timeScale,
    reconcile: { notifyGraceSeconds, refundQueryDelaySeconds, timer: options.reconcileTimer },
  };

  const routes: Record<string, (body: Record<string, unknown>) => Promise<unknown> | unknown> = {
    'GET info': () => consoleInfo,
    // What wx.requestPayment does on the phone, with the user's choice in the cashier.
    'POST pay': (body) => {
      const outcome = (body['outcome'] ?? 'SUCCESS') as PayOutcome;
      if (!PAY_OUTCOMES.includes(outcome)) throw new BadRequest(`outcome must be one of ${PAY_OUTCOMES}`);
      if (typeof body['payment'] !== 'object' || body['payment'] === null)
        throw new BadRequest('payment (as createOrder returned it) is required');
      return simulator.pay(body['payment'] as Record<string, unknown>, outcome);
    },
    'GET faults': () => simulator.faults(),
    'POST faults': (body) => {
      const patch: Partial<Faults> = {};
      for (const [k, v] of Object.entries(body)) {
        const check = FAULT_CHECKS[k as keyof Faults];
        if (!check?.(v)) throw new BadRequest(`fault ${k} cannot be set to ${JSON.stringify(v)}`);
        (patch as Record<string, unknown>)[k] = v;
      }
      return simulator.setFaults(patch);
    },
    'GET notifies': () =>
      simulator
        .notifies()
        .map((n) => describeNotify(n, { apiKey: info.merchant.apiKey, apiV3Key: info.v3?.apiV3Key }))
        .reverse(),
    // The timer trigger, fired now instead of at the next 5-minute mark. Its report says what it
    // looked at and did; what it left for later is read from the database by its own rules.
    'POST reconcile': async (): Promise<ReconcileView> => {
      const out = await runtime.fireTimer('reconcile');
      if (out.error) throw new Error(`reconcile failed: ${out.error.message}`);
      await simulator.flushNotifies();
      const atMs = Date.now();
      const [orders, refunds] = await Promise.all([
        db.all<Doc>('orders', { status: 'NOTPAY' }),
        db.all<Doc>('refunds', { status: db.command.in(['PROCESSING', 'APPROVED']) }),
      ]);
      const waiting = waitingAfterReconcile(orders, refunds, atMs, {
        notifyGraceMs: notifyGraceSeconds * 1000,
        refundQueryDelayMs: refundQueryDelaySeconds * 1000,
      });
      const next = options.reconcileTimer
        ? options.nextTimerRun?.(options.reconcileTimer, new Date(atMs))
        : undefined;
      return {
        report: (out.result ?? {}) as Record<string, unknown>,
        durationMs: out.durationMs,
        atMs,
        waiting: waiting.slice(0, WAITING_LISTED),
        waitingTotal: waiting.length,
        settings: { notifyGraceSeconds, refundQueryDelaySeconds },
        nextRunAtMs: next ? next.getTime() : null,
      };
    },
    // WeChat finishing the refunds it accepted, without waiting for the settle delay.
    'POST settle': async () => {
      const settled = simulator.settleRefunds();
      await simulator.flushNotifies();
      return { settled };
    },
    ...noticeRoutes(
      info.tcbServiceUrl,
      [...consoleInfo.shoppers.map((s) => s.openid), info.adminOpenid],
      (message) => new BadRequest(message),
    ),
    ...billCheckRoutes(stack),
  };

  return async (req, res, url) => {
    if (url.pathname === CONSOLE_SHARED_PATH && req.method === 'GET') {
      res.writeHead(200, {
        'content-type': 'text/javascript; charset=utf-8',
        'content-length': Buffer.byteLength(options.sharedModule),
        'cache-control': 'no-store',
      });
      res.end(options.sharedModule);
      return true;
    }
    if (!url.pathname.startsWith(CONSOLE_API_PREFIX)) return false;
    const route = routes[`${req.method} ${url.pathname.slice(CONSOLE_API_PREFIX.length)}`];
    if (!route) {
      send(res, 404, { error: `no console route ${req.method} ${url.pathname}` });
      return true;
    }
    try {
      const body = req.method === 'POST' ? await readJson(req) : {};
      send(res, 200, await route(body));
    } catch (e) {
      const bad = e instanceof BadRequest || e instanceof SyntaxError;
      send(res, bad ? 400 : 500, { error: (e as Error).message });
    }
    return true;
  };
}
