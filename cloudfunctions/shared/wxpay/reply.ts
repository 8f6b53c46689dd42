import { toXml } from './xml';

let success: string | undefined;

/**
 * The merchant's answer to a pay or refund notify. Only `return_code=SUCCESS` stops
 * WeChat's retries; anything else (FAIL, JSON, "success") is a failure and is retried.
 */
export function replyXml(code: 'SUCCESS' | 'FAIL', msg?: string): string {
  if (code === 'SUCCESS' && msg === undefined) {
    // The answer to almost every notify, so it is built once.
    success ??= toXml({ return_code: 'SUCCESS', return_msg: 'OK' });
    return success;
  }
  // SUCCESS without a message returned above, so a missing message here is FAIL's.
  return toXml({ return_code: code, return_msg: msg ?? 'FAIL' });
}
