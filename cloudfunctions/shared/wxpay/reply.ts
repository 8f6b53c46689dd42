import { toXml } from './xml';

/**
 * The merchant's answer to a pay or refund notify. Only `return_code=SUCCESS` stops
 * WeChat's retries; anything else (FAIL, JSON, "success") is a failure and is retried.
 */
export function replyXml(code: 'SUCCESS' | 'FAIL', msg?: string): string {
  return toXml({ return_code: code, return_msg: msg ?? (code === 'SUCCESS' ? 'OK' : 'FAIL') });
}
