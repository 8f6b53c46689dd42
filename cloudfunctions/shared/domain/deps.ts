/**
 * Everything with an effect enters the domain through here: database, WeChat Pay, clock,
 * randomness, configuration and logging. index.ts wires the real ones; tests pass their own.
 */
import type { ShopConfig } from '../config';
import type { LogFields } from '../log';
import type { Store } from '../store';
import type { WxPayClient } from '../wxpay/client';

/** The WeChat Pay calls the domain makes (the client in ../wxpay/client.ts; tests may pass their own). */
export type WxPayPort = Pick<
  WxPayClient,
  'unifiedOrder' | 'orderQuery' | 'closeOrder' | 'refund' | 'refundQuery'
>;

export interface Deps {
  store: Store;
  config: ShopConfig;
  /** Absent in functions that never call WeChat Pay. */
  wxpay: WxPayPort | undefined;
  now: () => number;
  /** Random characters for ids, from a CSPRNG. */
  random: (length: number) => string;
  log: (level: 'info' | 'warn' | 'error', event: string, fields?: LogFields) => void;
}

/** What a WeChat Pay failure tells the domain, read without importing the client's classes. */
export interface WxFailure {
  transient: boolean;
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
    errCode?: unknown;
    errCodeDes?: unknown;
    message?: unknown;
  };
  if (typeof x.code !== 'string' || !x.code.startsWith('WXPAY_')) return undefined;
  return {
    transient: x.transient === true,
    errCode: typeof x.errCode === 'string' ? x.errCode : undefined,
    errCodeDes: typeof x.errCodeDes === 'string' ? x.errCodeDes : undefined,
    code: x.code,
    message: typeof x.message === 'string' ? x.message : x.code,
  };
}

export function requireWxpay(deps: Deps): WxPayPort {
  if (!deps.wxpay) throw new Error('this function was wired without a WeChat Pay client');
  return deps.wxpay;
}
