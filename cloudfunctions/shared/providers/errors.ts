import { AppError } from '../errors';
import type { FailureClass, FailureReason, ProviderName } from './port';

/**
 * A call to WeChat Pay that did not succeed, on any provider. `code` keeps the backend's
 * stable vocabulary (`WXPAY_UNAVAILABLE` for anything worth retrying, `WXPAY_RATE_LIMITED`,
 * `WXPAY_ERROR` for WeChat's decisions); `failure` and `reason` are what the domain switches
 * on; `providerCode`/`description` are WeChat's own words for the merchant and the logs.
 *
 * `transient`, `errCode` and `errCodeDes` mirror the APIv2 client's error, so code written
 * against that client reads this one the same way.
 */
export class ProviderError extends AppError {
  declare readonly code: 'WXPAY_UNAVAILABLE' | 'WXPAY_RATE_LIMITED' | 'WXPAY_ERROR';
  readonly provider: ProviderName;
  readonly failure: FailureClass;
  readonly reason: FailureReason;
  /** WeChat's code as sent (v2 err_code or return_msg, v3 `code`, cloudPay's text). */
  readonly providerCode: string;
  readonly description: string;
  readonly httpStatus: number | undefined;
  /** The operation, e.g. `refund` or `/v3/refund/domestic/refunds`. */
  readonly operation: string;
  /** Retry after this many seconds when WeChat said so or the class implies it. */
  readonly retryAfterSeconds: number | undefined;

  constructor(f: {
    provider: ProviderName;
    failure: FailureClass;
    reason: FailureReason;
    providerCode: string;
    description: string;
    operation: string;
    httpStatus?: number;
    retryAfterSeconds?: number;
    cause?: unknown;
  }) {
    const code =
      f.failure === 'transient'
        ? 'WXPAY_UNAVAILABLE'
        : f.failure === 'rate-limited'
          ? 'WXPAY_RATE_LIMITED'
          : 'WXPAY_ERROR';
    super(code, `WeChat Pay (${f.provider}) ${f.operation}: ${f.providerCode}: ${f.description}`, {
      cause: f.cause,
      details: { provider: f.provider, operation: f.operation, httpStatus: f.httpStatus },
    });
    this.provider = f.provider;
    this.failure = f.failure;
    this.reason = f.reason;
    this.providerCode = f.providerCode;
    this.description = f.description;
    this.httpStatus = f.httpStatus;
    this.operation = f.operation;
    this.retryAfterSeconds = f.retryAfterSeconds ?? (f.failure === 'rate-limited' ? 60 : undefined);
  }

  get transient(): boolean {
    return this.failure !== 'definitive';
  }

  get errCode(): string {
    return this.providerCode;
  }

  get errCodeDes(): string {
    return this.description;
  }
}

export function isProviderError(e: unknown): e is ProviderError {
  return e instanceof ProviderError;
}

/** The APIv2 err_code words and their normalized reason and class (shared by v2 and cloudPay). */
export const V2_ERR_CODES: Readonly<Record<string, { reason: FailureReason; failure: FailureClass }>> = {
  ORDERNOTEXIST: { reason: 'ORDER_NOT_FOUND', failure: 'definitive' },
  ORDERPAID: { reason: 'ORDER_PAID', failure: 'definitive' },
  ORDERCLOSED: { reason: 'ORDER_CLOSED', failure: 'definitive' },
  OUT_TRADE_NO_USED: { reason: 'ORDER_NO_REUSED', failure: 'definitive' },
  REFUNDNOTEXIST: { reason: 'REFUND_NOT_FOUND', failure: 'definitive' },
  NOTENOUGH: { reason: 'NOT_ENOUGH', failure: 'definitive' },
  USER_ACCOUNT_ABNORMAL: { reason: 'USER_ACCOUNT_ABNORMAL', failure: 'definitive' },
  TRADE_OVERDUE: { reason: 'TRADE_OVERDUE', failure: 'definitive' },
  INVALID_REQUEST: { reason: 'INVALID_REQUEST', failure: 'definitive' },
  PARAM_ERROR: { reason: 'INVALID_REQUEST', failure: 'definitive' },
  LACK_PARAMS: { reason: 'INVALID_REQUEST', failure: 'definitive' },
  SIGNERROR: { reason: 'SIGN_ERROR', failure: 'definitive' },
  NOAUTH: { reason: 'NO_AUTH', failure: 'definitive' },
  // "系统超时 — 请使用相同参数再次调用API"; "并发情况下，业务被拒绝".
  SYSTEMERROR: { reason: 'SYSTEM_ERROR', failure: 'transient' },
  BIZERR_NEED_RETRY: { reason: 'SYSTEM_ERROR', failure: 'transient' },
  // "频率限制"; "连续错误请求数过多被系统短暂屏蔽，请1分钟后再试".
  FREQUENCY_LIMITED: { reason: 'RATE_LIMITED', failure: 'rate-limited' },
  INVALID_REQ_TOO_MUCH: { reason: 'RATE_LIMITED', failure: 'rate-limited' },
};
