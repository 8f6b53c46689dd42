import { type ApiError, ERROR_CODES, type ErrorCode, type Result } from '../contract';
import { AppError } from '../errors';
import { log } from '../log';
import { getWxContext, type WxContext } from './cloud';

const CONTRACT_CODES: ReadonlySet<string> = new Set<ErrorCode>(ERROR_CODES);

/** Who is calling, as the platform says (docs/ARCHITECTURE.md §3): never a field of the event. */
export interface Caller {
  openid: string | undefined;
  appid: string | undefined;
  clientIp: string | undefined;
  source: string | undefined;
}

export function callerFrom(ctx: WxContext): Caller {
  return {
    openid: ctx.OPENID || undefined,
    appid: ctx.APPID || undefined,
    clientIp: ctx.CLIENTIP || undefined,
    source: ctx.SOURCE,
  };
}

/** RATE_LIMITED's wait (and, for open orders, how many to pay or cancel first), as whole numbers. */
function limitFields(e: AppError): Pick<ApiError, 'retryAfterSeconds' | 'payOrCancelFirst'> {
  if (e.code !== 'RATE_LIMITED') return {};
  const out: Pick<ApiError, 'retryAfterSeconds' | 'payOrCancelFirst'> = {};
  const wait = e.details?.['retryAfterSeconds'];
  // Number.isSafeInteger is false for anything but a number; typeof only narrows the type.
  // Stryker disable next-line ConditionalExpression: equivalent, see above.
  if (typeof wait === 'number' && Number.isSafeInteger(wait) && wait > 0) out.retryAfterSeconds = wait;
  const first = e.details?.['payOrCancelFirst'];
  // Stryker disable next-line ConditionalExpression: equivalent, as for the wait.
  if (typeof first === 'number' && Number.isSafeInteger(first) && first > 0) out.payOrCancelFirst = first;
  return out;
}

export function toApiError(e: unknown, fn: string): ApiError {
  if (e instanceof AppError && CONTRACT_CODES.has(e.code))
    return { code: e.code as ErrorCode, message: e.message, ...limitFields(e) };
  if (e instanceof AppError) {
    // Codec and config errors keep their own code in the log; callers see a contract code.
    const code: ErrorCode = e.code.startsWith('CONFIG')
      ? 'CONFIG_INVALID'
      : e.code.startsWith('WXPAY')
        ? 'WXPAY_ERROR'
        : 'INTERNAL';
    log('error', 'function.error', { fn, code: e.code, error: e });
    return { code, message: e.message };
  }
  log('error', 'function.crash', { fn, error: e });
  return { code: 'INTERNAL', message: 'internal error, please try again' };
}

/** The event minus what the platform adds to mini-program calls (`userInfo`), which is not trusted input. */
export function eventFields(event: unknown): Record<string, unknown> {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return {};
  const { userInfo: _ignored, ...rest } = event as Record<string, unknown>;
  return rest;
}

export type CallableHandler<T> = (event: Record<string, unknown>, caller: Caller) => Promise<T>;

/** Wraps a domain handler as a cloud function `main` that always resolves to the contract's Result. */
export function callable<T>(
  fn: string,
  handler: CallableHandler<T>,
  context: () => WxContext = getWxContext,
) {
  return async (event: unknown): Promise<Result<T>> => {
    try {
      const data = await handler(eventFields(event), callerFrom(context()));
      return { ok: true, data };
    } catch (e) {
      return { ok: false, error: toApiError(e, fn) };
    }
  };
}
