/**
 * Everything with an effect enters the domain through here: database, WeChat Pay, clock,
 * randomness, configuration, logging and the invocation's time budget. index.ts wires the
 * real ones; tests pass their own.
 */
import type { ShopConfig } from '../config';
import type { LogFields } from '../log';
import type { NoticeRuntime } from '../notices/outbox';
import type { Store } from '../store';
import type { CallOptions, WxPayClient } from '../wxpay/client';

/** The WeChat Pay calls the domain makes (the client in ../wxpay/client.ts; tests may pass their own). */
export type WxPayPort = Pick<
  WxPayClient,
  'unifiedOrder' | 'orderQuery' | 'closeOrder' | 'refund' | 'refundQuery'
>;

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
  wxpay: WxPayPort | undefined;
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

/** What a WeChat Pay failure tells the domain, read without importing the client's classes. */
export interface WxFailure {
  /** No answer, or an answer that says "try the same again": the outcome is unknown. */
  transient: boolean;
  /** WeChat refused for rate: nothing happened, try again in a minute. */
  rateLimited: boolean;
  errCode: string | undefined;
  errCodeDes: string | undefined;
  code: string;
  message: string;
}

export function wxFailure(e: unknown): WxFailure | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const x = e as {
    code?: unknown;
    transient?: unknown;
    rateLimited?: unknown;
    errCode?: unknown;
    errCodeDes?: unknown;
    message?: unknown;
  };
  if (typeof x.code !== 'string' || !x.code.startsWith('WXPAY_')) return undefined;
  return {
    transient: x.transient === true,
    rateLimited: x.rateLimited === true,
    errCode: typeof x.errCode === 'string' ? x.errCode : undefined,
    errCodeDes: typeof x.errCodeDes === 'string' ? x.errCodeDes : undefined,
    code: x.code,
    message: typeof x.message === 'string' ? x.message : x.code,
  };
}

/** `err_code: err_code_des` of a failure, for the merchant (never shown to the shopper). */
export function failureReason(f: WxFailure): string {
  return `${f.errCode ?? f.code}: ${f.errCodeDes ?? f.message}`.slice(0, 200);
}

export function requireWxpay(deps: Deps): WxPayPort {
  if (!deps.wxpay) throw new Error('this function was wired without a WeChat Pay client');
  return deps.wxpay;
}

/**
 * The port with every call ending by `deadlineMs` (a tighter deadline passed by the caller
 * still wins), so no call outlives the function that made it.
 */
export function withDeadline(port: WxPayPort, deadlineMs: number): WxPayPort {
  const o = (extra?: CallOptions): CallOptions => ({
    ...extra,
    deadlineMs: Math.min(deadlineMs, extra?.deadlineMs ?? Number.POSITIVE_INFINITY),
  });
  return {
    unifiedOrder: (p, x) => port.unifiedOrder(p, o(x)),
    orderQuery: (p, x) => port.orderQuery(p, o(x)),
    closeOrder: (p, x) => port.closeOrder(p, o(x)),
    refund: (p, x) => port.refund(p, o(x)),
    refundQuery: (p, x) => port.refundQuery(p, o(x)),
  };
}
