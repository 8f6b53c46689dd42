import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { CryptoError } from '../errors';
import { canonicalString } from './canonical';
import { isSignType, type SignType, type WxParamsIn } from './types';

function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new CryptoError('WXPAY_KEY_MISSING', 'the APIv2 key is empty: set WXPAY_API_KEY (32 characters)');
  }
}

/** Upper-case hex signature of `params` (MD5, or HMAC-SHA256 keyed with the API key). */
export function sign(params: WxParamsIn, key: string, signType: SignType): string {
  assertKey(key);
  if (!isSignType(signType))
    throw new CryptoError('WXPAY_SIGN_TYPE', `unsupported sign type: ${String(signType)}`);
  const stringSignTemp = `${canonicalString(params)}&key=${key}`;
  // utf8 is the default encoding of update(): the two 'utf8' mutants are equivalent.
  const digest =
    signType === 'MD5'
      ? // Stryker disable next-line StringLiteral: equivalent, see above.
        createHash('md5').update(stringSignTemp, 'utf8').digest('hex')
      : // Stryker disable next-line StringLiteral: equivalent, see above.
        createHmac('sha256', key).update(stringSignTemp, 'utf8').digest('hex');
  return digest.toUpperCase();
}

/**
 * Constant-time check of `params.sign`. The sign type is the configured one, never guessed
 * from the notify: HMAC notifies often arrive without `sign_type` (WxJava#1585).
 */
export function verify(params: WxParamsIn, key: string, signType: SignType): boolean {
  const given = params['sign'];
  // An empty sign fails the length comparison below as well (equivalent mutant).
  // Stryker disable next-line ConditionalExpression: equivalent, see above.
  if (typeof given !== 'string' || given.length === 0) return false;
  // Stryker disable next-line StringLiteral: utf8 is Buffer.from's default (equivalent).
  const expected = Buffer.from(sign(params, key, signType), 'utf8');
  // Stryker disable next-line StringLiteral: utf8 is Buffer.from's default (equivalent).
  const actual = Buffer.from(given.toUpperCase(), 'utf8');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Returns `params` with `sign` (and `sign_type` unless MD5, which is the default) added. */
export function withSign<T extends WxParamsIn>(
  params: T,
  key: string,
  signType: SignType,
): T & { sign: string } {
  const p: WxParamsIn = { ...params };
  if (signType !== 'MD5' && p['sign_type'] === undefined) p['sign_type'] = signType;
  return { ...(p as T), sign: sign(p, key, signType) };
}
