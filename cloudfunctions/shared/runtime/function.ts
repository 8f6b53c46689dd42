/**
 * Turns domain handlers into cloud function `main`s. Configuration is validated once per
 * cold start (a clear CONFIG_INVALID naming every problem, logged at start and answered on
 * every call); database, WeChat Pay client, clock and randomness are wired here and nowhere else.
 */
import {
  ConfigError,
  type ConfigNeeds,
  callReserveMs,
  type LimitScope,
  loadConfig,
  noticeKindsOf,
  type ShopConfig,
} from '../config';
import type { Result } from '../contract';
import { type Budget, type Deps, type Payments, withDeadline } from '../domain/deps';
import { limitCaller } from '../domain/limits';
import { type NotifyReply, notifyDialect } from '../domain/notify';
import { log } from '../log';
import type { NoticeRuntime } from '../notices/outbox';
import type { SubscribeSend } from '../notices/send';
import {
  cloudPayReply,
  type NotificationInput,
  type NotificationReply,
  providersFromConfig,
  v2Reply,
  v3Reply,
} from '../providers';
import { V3_NOTIFY_MAX_BYTES } from '../providers/v3/provider';
import { Store } from '../store';
import { nonceStr } from '../wxpay/nonce';
import { XML_MAX_BYTES } from '../wxpay/xml';
import { type Caller, callable } from './callable';
import { cloudPayApi, getWxContext, rawDatabase } from './cloud';

/** CloudBase's default when config.json names none. */
const DEFAULT_TIMEOUT_MS = 3000;

/**
 * The function's own timeout: scripts/build.ts sets it from config.json before the entry
 * runs; absent when the source runs unbundled (unit tests).
 */
function builtTimeoutMs(): number | undefined {
  const v = (globalThis as { __FUNCTION_TIMEOUT_MS__?: unknown }).__FUNCTION_TIMEOUT_MS__;
  // Number.isFinite is false for anything but a number; typeof only narrows the type.
  // Stryker disable next-line ConditionalExpression: equivalent, see above.
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

/**
 * The invocation's time budget. The platform kills a function at its timeout, whatever it is
 * doing; every WeChat call must end before then with time left to store its answer. A
 * platform context that knows the remaining time (SCF's getRemainingTimeInMillis) wins.
 */
export function budgetFor(startedAtMs: number, context?: unknown, timeoutMs = builtTimeoutMs()): Budget {
  const ctx = context as
    | { getRemainingTimeInMillis?: unknown; time_limit_in_ms?: unknown }
    | null
    | undefined;
  const platformLimit = Number(ctx?.time_limit_in_ms);
  const limit =
    Number.isFinite(platformLimit) && platformLimit > 0 ? platformLimit : (timeoutMs ?? DEFAULT_TIMEOUT_MS);
  let endsAtMs = startedAtMs + limit;
  const remaining = ctx?.getRemainingTimeInMillis;
  if (typeof remaining === 'function') {
    const left = Number(remaining.call(context));
    if (Number.isFinite(left) && left > 0) endsAtMs = Math.min(endsAtMs, Date.now() + left);
  }
  return { endsAtMs, callDeadlineMs: endsAtMs - callReserveMs(limit) };
}

/**
 * Effects a function adds to the shared wiring from its own index.ts. The subscribe message
 * sender is one: a bundle that contains `cloud.openapi.subscribeMessage.send` must declare it
 * in config.json, so it goes only into the functions that send (runtime/subscribe.ts).
 */
export interface Extras {
  /** Called once per cold start. */
  sendNotices?: () => SubscribeSend;
}

/** Built once per cold start; `deps(budget)` gives each invocation a fresh store (and request count). */
export function wiring(fn: string, needs: ConfigNeeds, extras: Extras = {}): (budget: Budget) => Deps {
  let loaded: ShopConfig | ConfigError;
  try {
    const functionTimeoutMs = builtTimeoutMs();
    loaded = loadConfig(process.env, {
      ...needs,
      // An undefined functionTimeoutMs reads as absent either way; the condition is for the type.
      // Stryker disable next-line ConditionalExpression: equivalent, see above.
      ...(functionTimeoutMs !== undefined ? { functionTimeoutMs } : {}),
    });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    loaded = e;
    log('error', 'config.invalid', { fn, problems: e.problems });
  }
  // A configuration error is answered by every invocation, never half-wired.
  const refuse = (error: ConfigError) => () => {
    throw error;
  };
  if (loaded instanceof ConfigError) return refuse(loaded);
  const config = loaded;
  let wxpay: Payments | undefined;
  if (needs.wxpay) {
    try {
      const byName = providersFromConfig(config, { cloudPay: cloudPayApi });
      const current = byName[config.providers.current];
      if (current) wxpay = { current, byName };
    } catch (e) {
      // A key that parsed at validation and fails to build now is still a configuration error.
      const error = new ConfigError([`WeChat Pay could not be set up: ${(e as Error).message}`]);
      log('error', 'config.invalid', { fn, problems: error.problems });
      return refuse(error);
    }
  }
  const notices: NoticeRuntime | undefined =
    needs.notices !== undefined
      ? {
          config: config.notices,
          kinds: noticeKindsOf(needs),
          ...(extras.sendNotices ? { send: extras.sendNotices() } : {}),
        }
      : undefined;
  return (budget) => ({
    store: new Store(rawDatabase()),
    config,
    wxpay: wxpay && withDeadline(wxpay, budget.callDeadlineMs),
    now: Date.now,
    random: nonceStr,
    log,
    budget,
    ...(notices ? { notices } : {}),
  });
}

export type DomainHandler<T> = (deps: Deps, event: Record<string, unknown>, caller: Caller) => Promise<T>;

export interface CallableOptions extends Extras {
  /**
   * Count every call against the caller's per-minute limit of this kind before the handler
   * runs (domain/limits.ts); over it, the call answers RATE_LIMITED with the wait.
   */
  limit?: LimitScope;
  /** Non-admins are refused by the handler before any database request: they are not counted. */
  adminOnly?: boolean;
}

/** A function the mini-program calls with wx.cloud.callFunction. */
export function callableFunction<T>(
  fn: string,
  needs: ConfigNeeds,
  handler: DomainHandler<T>,
  options: CallableOptions = {},
) {
  const deps = wiring(fn, needs, options);
  const { limit, adminOnly } = options;
  return (event: unknown, context?: unknown): Promise<Result<T>> => {
    const budget = budgetFor(Date.now(), context);
    return callable<T>(fn, async (e, caller) => {
      const d = deps(budget);
      if (limit) await limitCaller(d, caller, limit, { adminOnly: adminOnly === true });
      return handler(d, e, caller);
    })(event);
  };
}

export interface HttpAccessEvent {
  httpMethod?: string;
  body?: string | null;
  isBase64Encoded?: boolean;
  headers?: Record<string, string>;
}

export interface IntegrationResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: false;
}

/** What a cloudPay callback function returns to the platform. */
export interface CallbackAnswer {
  errcode: number;
  errmsg: string;
}

function asResponse(reply: NotificationReply, statusCode?: number): IntegrationResponse | CallbackAnswer {
  if (reply.transport === 'function') return reply.value;
  return {
    statusCode: statusCode ?? reply.statusCode,
    headers: reply.headers,
    body: reply.body,
    isBase64Encoded: false,
  };
}

const REPLIES = { v2: v2Reply, v3: v3Reply, cloudpay: cloudPayReply } as const;

/**
 * A WeChat Pay notify endpoint. APIv2 and APIv3 notifies come through HTTP access (云函数
 * HTTP 访问), raw body in, the dialect's own reply out (XML; 204 or JSON errors); cloudPay's
 * callbacks are invocations by the platform (SOURCE wx_paycallback, no OPENID), answered
 * `{errcode: 0}`. A call from the mini-program (it carries an OPENID) is refused, as is any
 * other event.
 */
export function notifyFunction(
  fn: string,
  needs: ConfigNeeds,
  handler: (deps: Deps, input: NotificationInput) => Promise<NotifyReply>,
  extras?: Extras,
) {
  const deps = wiring(fn, needs, extras);
  return async (event: unknown, context?: unknown): Promise<IntegrationResponse | CallbackAnswer> => {
    const started = Date.now();
    const e = (typeof event === 'object' && event !== null ? event : {}) as HttpAccessEvent;
    const ctx = getWxContext();
    let input: NotificationInput;
    const refused = () => {
      log('warn', `${fn}.rejected`, { reason: 'NOT_A_NOTIFY', source: ctx.SOURCE });
      // Stryker disable next-line BooleanLiteral: APIv2's reply is FAIL whether or not it asks for a retry (equivalent).
      return asResponse(v2Reply({ ok: false, retry: false, message: 'not a notify' }), 400);
    };
    // The mini-program (it carries an OPENID) is never WeChat Pay, whatever it sends.
    if (ctx.OPENID) return refused();
    if (typeof e.httpMethod === 'string') {
      const raw = typeof e.body === 'string' ? e.body : '';
      const headers = e.headers ?? {};
      // Stryker disable next-line StringLiteral: notifyDialect reads only an HTTP input's headers (equivalent).
      const dialect = notifyDialect({ transport: 'http', method: 'POST', headers, body: new Uint8Array() });
      const fail = (message: string, status: number) =>
        // Stryker disable next-line BooleanLiteral: the status is given; retry only picks APIv3's own (equivalent).
        asResponse(REPLIES[dialect]({ ok: false, retry: false, message }), status);
      if (e.httpMethod.toUpperCase() !== 'POST') return fail('POST only', 405);
      // Refuse floods before decoding: base64 is 4/3 of the bytes it carries.
      // Stryker disable next-line ConditionalExpression,EqualityOperator,StringLiteral: both limits are 64 KiB (equivalent while they are).
      const max = dialect === 'v3' ? V3_NOTIFY_MAX_BYTES : XML_MAX_BYTES;
      if (raw.length > Math.ceil((max * 4) / 3) + 4) {
        log('warn', `${fn}.rejected`, { reason: 'BODY_TOO_LARGE', bytes: raw.length });
        return fail('body too large', 413);
      }
      // APIv3 signs the bytes as sent: they are passed on exactly, never re-serialised.
      // Stryker disable next-line StringLiteral: Buffer.from(text, '') is utf8 too (equivalent).
      const body = e.isBase64Encoded ? Buffer.from(raw, 'base64') : Buffer.from(raw, 'utf8');
      input = { transport: 'http', method: 'POST', headers, body };
    } else {
      // Stryker disable next-line StringLiteral: any stand-in for a missing SOURCE is not wx_paycallback (equivalent).
      const source = ctx.SOURCE ?? '';
      if (!source.split(',').includes('wx_paycallback')) return refused();
      input = { transport: 'function', event, source };
    }
    const dialect = notifyDialect(input);
    const transientFail = (message: string) =>
      asResponse(REPLIES[dialect]({ ok: false, retry: true, message }));
    let d: Deps;
    try {
      d = deps(budgetFor(started, context));
    } catch (err) {
      log('error', `${fn}.config_invalid`, { error: err });
      return transientFail('merchant configuration error');
    }
    try {
      const reply = await handler(d, input);
      log('info', `${fn}.done`, {
        outcome: reply.outcome,
        provider: dialect,
        dbRequests: d.store.requests,
        ms: Date.now() - started,
      });
      return asResponse(reply.reply);
    } catch (err) {
      // Transient (database, network): a failure makes WeChat retry on its schedule.
      log('error', `${fn}.error`, { error: err, dbRequests: d.store.requests });
      return transientFail('temporary error');
    }
  };
}

/** A timer-triggered function: its return value goes nowhere, so everything is logged. */
export function timerFunction<T>(
  fn: string,
  needs: ConfigNeeds,
  handler: (deps: Deps, event: unknown) => Promise<T>,
  extras?: Extras,
) {
  const deps = wiring(fn, needs, extras);
  return async (event: unknown, context?: unknown): Promise<T | { error: string }> => {
    const budget = budgetFor(Date.now(), context);
    // A timer run carries no user and no HTTP request. Any mini-program user can callFunction
    // any function by name unless a deploy rule forbids it; refusing here as well keeps a
    // shopper from driving the merchant's WeChat API calls at will (as notifyFunction does).
    const ctx = getWxContext();
    const isHttp = typeof event === 'object' && event !== null && 'httpMethod' in event;
    // Stryker disable next-line StringLiteral: any stand-in for a missing SOURCE is not wx_client (equivalent).
    if (ctx.OPENID || (ctx.SOURCE ?? '').split(',').includes('wx_client') || isHttp) {
      log('warn', `${fn}.rejected`, { reason: 'NOT_TIMER', source: ctx.SOURCE });
      return { error: 'FORBIDDEN: this function runs on its timer trigger' };
    }
    try {
      return await handler(deps(budget), event);
    } catch (err) {
      log('error', `${fn}.error`, { error: err });
      return { error: (err as Error)?.message ?? String(err) };
    }
  };
}
