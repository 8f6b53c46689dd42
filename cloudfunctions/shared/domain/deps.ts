/**
 * Everything with an effect enters the domain through here: database, WeChat Pay, clock,
 * randomness, configuration, logging and the invocation's time budget. index.ts wires the
 * real ones; tests pass their own.
 */
import type { ShopConfig } from '../config';
import { AppError } from '../errors';
import type { LogFields } from '../log';
import type { NoticeRuntime } from '../notices/outbox';
import { withDeadline as providerWithDeadline } from '../providers';
import type { FailureClass, FailureReason, PaymentProvider, ProviderName } from '../providers/port';
import type { Store } from '../store';

/**
 * WeChat Pay as the domain reaches it: the provider that makes new orders (WXPAY_PROVIDER)
 * and every provider existing orders may have been made by. An order's queries, closes and
 * refunds always go through its own provider (`providerOf`), whatever `current` is now.
 */
export interface Payments {
  current: PaymentProvider;
  byName: Partial<Record<ProviderName, PaymentProvider>>;
}

/** When this invocation ends, as epoch ms. */
export interface Budget {
  /** The platform kills the invocation then (its config.json timeout). */
  endsAtMs: number;
  /** Every WeChat call ends by then, leaving time to store what WeChat answered. */
  callDeadlineMs: number;
}

export interface Deps {
  store: Store;
  config: ShopConfig;
  /** Absent in functions that never call WeChat Pay. Bound to this invocation's deadline. */
  wxpay: Payments | undefined;
  now: () => number;
  /** Random characters for ids, from a CSPRNG. */
  random: (length: number) => string;
  log: (level: 'info' | 'warn' | 'error', event: string, fields?: LogFields) => void;
  budget: Budget;
  /**
   * Subscribe message notices (服务通知): the templates of the kinds this function renders
   * and, in the functions allowed to send, the sender. Absent: this function writes none.
   */
  notices?: NoticeRuntime;
  /** Waits this long; a test with its own clock passes one that moves it. Default: a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/** What a WeChat Pay failure tells the domain, read without importing the providers' classes. */
export interface WxFailure {
  /** No answer, or an answer that says "try the same again": the outcome is unknown. */
  transient: boolean;
  /** WeChat refused for rate: nothing happened, try again in a minute. */
  rateLimited: boolean;
  /** The normalized reason (ORDER_PAID, NOT_ENOUGH, …), the same on every provider. */
  reason: FailureReason | undefined;
  /** WeChat's own code (APIv2 err_code, APIv3 code, cloudPay's text class). */
  errCode: string | undefined;
  errCodeDes: string | undefined;
  code: string;
  message: string;
}

export function wxFailure(e: unknown): WxFailure | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const x = e as {
    code?: unknown;
    failure?: unknown;
    reason?: unknown;
    providerCode?: unknown;
    description?: unknown;
    transient?: unknown;
    rateLimited?: unknown;
    errCode?: unknown;
    errCodeDes?: unknown;
    message?: unknown;
  };
  if (typeof x.code !== 'string' || !x.code.startsWith('WXPAY_')) return undefined;
  const failure = x.failure as FailureClass | undefined;
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  return {
    transient: failure ? failure === 'transient' : x.transient === true,
    rateLimited: failure ? failure === 'rate-limited' : x.rateLimited === true,
    reason: typeof x.reason === 'string' ? (x.reason as FailureReason) : undefined,
    errCode: str(x.providerCode) ?? str(x.errCode),
    errCodeDes: str(x.description) ?? str(x.errCodeDes),
    code: x.code,
    message: typeof x.message === 'string' ? x.message : x.code,
  };
}

/** `err_code: err_code_des` of a failure, for the merchant (never shown to the shopper). */
export function failureReason(f: WxFailure): string {
  return `${f.errCode ?? f.code}: ${f.errCodeDes ?? f.message}`.slice(0, 200);
}

export function requireWxpay(deps: Deps): Payments {
  if (!deps.wxpay) throw new Error('this function was wired without WeChat Pay');
  return deps.wxpay;
}

const LABEL: Record<ProviderName, string> = { v2: 'APIv2', v3: 'APIv3', cloudpay: 'cloudPay' };

/**
 * The provider named, which must be enabled here. An order made through a provider this
 * function no longer has (WXPAY_PROVIDER switched without WXPAY_KEEP_PROVIDERS) cannot be
 * queried, closed or refunded through another: that is a configuration error, said plainly.
 */
export function providerNamed(deps: Deps, name: ProviderName): PaymentProvider {
  const p = requireWxpay(deps).byName[name];
  if (!p) {
    throw new AppError(
      'CONFIG_INVALID',
      `this order was paid through ${LABEL[name]}, which is not configured: add ${name} to WXPAY_KEEP_PROVIDERS and keep its variables set`,
    );
  }
  return p;
}

/** The provider an order (or a refund of it) was made through; orders stored before providers existed are APIv2's. */
export function providerOf(deps: Deps, doc: { provider?: ProviderName }): PaymentProvider {
  return providerNamed(deps, doc.provider ?? 'v2');
}

/**
 * Every provider with every call ending by `deadlineMs` (a tighter deadline passed by the
 * caller still wins), so no call outlives the function that made it.
 */
export function withDeadline(payments: Payments, deadlineMs: number): Payments {
  const byName: Payments['byName'] = {};
  for (const [name, p] of Object.entries(payments.byName) as [ProviderName, PaymentProvider][])
    byName[name] = providerWithDeadline(p, deadlineMs);
  return { current: byName[payments.current.name] ?? payments.current, byName };
}
