import type { ApiError, ErrorCode, Result } from '../../cloudfunctions/shared/contract';
import type { Text } from './refund-guide';

/** What the shopper or merchant reads; the server's own message goes to the console only. */
export const ERROR_MESSAGES: Record<ErrorCode, string> = {
  INVALID_INPUT: '提交的信息有误，请检查后重试',
  NOT_FOUND: '订单或退款不存在',
  FORBIDDEN: '没有权限进行此操作',
  UNAUTHENTICATED: '登录状态已失效，请重新进入小程序',
  ORDER_NOT_PAYABLE: '订单当前不可支付，请刷新后查看',
  ORDER_EXPIRED: '订单已过期，请重新下单',
  REFUND_EXCEEDS_PAID: '退款金额超过可退金额',
  REFUND_NOT_ALLOWED: '该订单当前不能申请退款',
  TOO_MANY_OPEN_REFUNDS: '该订单还有未处理完的退款申请，请等待处理后再申请',
  INVALID_STATE: '状态已变化，请刷新后重试',
  CONFLICT: '操作冲突，请刷新后重试',
  RATE_LIMITED: '操作太频繁，请稍后再试',
  WXPAY_UNAVAILABLE: '微信支付暂时不可用，请稍后重试',
  WXPAY_ERROR: '微信支付处理失败，请稍后重试',
  CONFIG_INVALID: '商户配置异常，请联系商家',
  INTERNAL: '服务繁忙，请稍后重试',
};

export const NETWORK_MESSAGE = '网络异常，请检查网络后重试';

/** A wait in words: seconds under a minute, else whole minutes (rounded up). */
export function waitText(seconds: number): Text {
  const s = Math.max(1, Math.ceil(seconds));
  if (s < 60) return { zh: `${s} 秒`, en: `${s} s` };
  const m = Math.ceil(s / 60);
  return { zh: `${m} 分钟`, en: `${m} min` };
}

/**
 * What a RATE_LIMITED refusal says, with the wait the server gave: Chinese for the
 * mini-program, English beside it in the console. Too many unpaid orders says how many to
 * pay or cancel first (and when the first would expire anyway).
 */
export function rateLimitText(error: Pick<ApiError, 'retryAfterSeconds' | 'payOrCancelFirst'>): Text {
  const wait = error.retryAfterSeconds ? waitText(error.retryAfterSeconds) : null;
  if (error.payOrCancelFirst) {
    const n = error.payOrCancelFirst;
    return {
      zh: `待支付的订单太多，请先支付或取消其中 ${n} 笔${wait ? `（或 ${wait.zh}后再试）` : ''}`,
      en: `Too many unpaid orders: pay or cancel ${n} of them first${wait ? ` (or try again in ${wait.en})` : ''}`,
    };
  }
  if (wait)
    return { zh: `操作太频繁，请 ${wait.zh}后再试`, en: `Too many requests: try again in ${wait.en}` };
  return { zh: ERROR_MESSAGES.RATE_LIMITED, en: 'Too many requests: try again later' };
}

/** Codes where trying the same call again later can succeed without changing anything. */
const RETRYABLE: ReadonlySet<string> = new Set(['WXPAY_UNAVAILABLE', 'INTERNAL', 'NETWORK']);

export type CallErrorCode = ErrorCode | 'NETWORK';

export class CallError extends Error {
  readonly code: CallErrorCode;
  /** Chinese, ready for a toast or modal. */
  readonly userMessage: string;
  readonly retryable: boolean;
  /** What the server or callFunction returned, for the console (stripe-style `raw`). */
  readonly raw: unknown;
  /** With RATE_LIMITED: seconds until the same call may succeed. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: CallErrorCode, detail: string, raw?: unknown) {
    super(`${code}: ${detail}`);
    this.name = 'CallError';
    this.code = code;
    const limit = code === 'RATE_LIMITED' ? limitFieldsOf(raw) : null;
    this.userMessage =
      code === 'NETWORK' ? NETWORK_MESSAGE : limit ? rateLimitText(limit).zh : ERROR_MESSAGES[code];
    this.retryable = RETRYABLE.has(code);
    this.raw = raw;
    this.retryAfterSeconds = limit?.retryAfterSeconds;
  }
}

/** retryAfterSeconds and payOrCancelFirst of a refusal, when they are positive whole numbers. */
function limitFieldsOf(raw: unknown): Pick<ApiError, 'retryAfterSeconds' | 'payOrCancelFirst'> {
  const e = (raw ?? {}) as Record<string, unknown>;
  const out: Pick<ApiError, 'retryAfterSeconds' | 'payOrCancelFirst'> = {};
  const n = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  if (n(e['retryAfterSeconds'])) out.retryAfterSeconds = e['retryAfterSeconds'] as number;
  if (n(e['payOrCancelFirst'])) out.payOrCancelFirst = e['payOrCancelFirst'] as number;
  return out;
}

// A Set, not Object.hasOwn: that is ES2022 and missing on older iOS WeChat engines.
const KNOWN_CODES: ReadonlySet<string> = new Set(Object.keys(ERROR_MESSAGES));

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && KNOWN_CODES.has(code);
}

/**
 * Turns what `wx.cloud.callFunction` resolved with (its `.result`) into the data or a CallError.
 * A result that is not the §6 envelope means a function crashed or is not deployed.
 */
export function unwrapResult<T>(name: string, result: unknown): T {
  const envelope = result as Result<T> | null | undefined;
  if (envelope && typeof envelope === 'object' && envelope.ok === true) return envelope.data;
  if (envelope && typeof envelope === 'object' && envelope.ok === false && envelope.error) {
    const { code, message } = envelope.error;
    throw new CallError(isErrorCode(code) ? code : 'INTERNAL', `${name}: ${message}`, envelope.error);
  }
  throw new CallError('INTERNAL', `${name}: not a {ok, data|error} result`, result);
}

/** callFunction itself failed: no network, timeout, function missing in the environment. */
export function networkError(name: string, cause: unknown): CallError {
  const errMsg = (cause as { errMsg?: unknown } | null)?.errMsg;
  return new CallError('NETWORK', `${name}: ${typeof errMsg === 'string' ? errMsg : String(cause)}`, cause);
}

/** Any thrown value as the text to show. */
export function userMessageOf(err: unknown): string {
  return err instanceof CallError ? err.userMessage : ERROR_MESSAGES.INTERNAL;
}
