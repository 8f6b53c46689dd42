import * as crypto from 'node:crypto';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { CryptoError } from '../errors';
import { canonicalString } from './canonical';
import { isSignType, type SignType, type WxParamsIn } from './types';

function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new CryptoError('WXPAY_KEY_MISSING', 'the APIv2 key is empty: set WXPAY_API_KEY (32 characters)');
  }
}

function digest(params: WxParamsIn, key: string, signType: SignType): Buffer {
  assertKey(key);
  if (!isSignType(signType))
    throw new CryptoError('WXPAY_SIGN_TYPE', `unsupported sign type: ${String(signType)}`);
  const stringSignTemp = `${canonicalString(params)}&key=${key}`;
  // utf8 is the default encoding of update(): the 'utf8' mutants are equivalent.
  if (signType === 'MD5') {
    // Stryker disable next-line ConditionalExpression: both paths give the same digest (see md5OneShot).
    return md5OneShot
      ? md5OneShot('md5', stringSignTemp, 'buffer')
      : // Stryker disable next-line StringLiteral: equivalent, see above.
        createHash('md5').update(stringSignTemp, 'utf8').digest();
  }
  // Stryker disable next-line StringLiteral: equivalent, see above.
  return createHmac('sha256', key).update(stringSignTemp, 'utf8').digest();
}

// crypto.hash (Node 20.12 and later) digests in one call, without a Hash object per notify;
// older runtimes take the createHash path, with the same result.
// Either path computes the same MD5, so the choice's mutants are equivalent.
// Stryker disable next-line all: see above.
const md5OneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;

/** Upper-case hex signature of `params` (MD5, or HMAC-SHA256 keyed with the API key). */
export function sign(params: WxParamsIn, key: string, signType: SignType): string {
  return digest(params, key, signType).toString('hex').toUpperCase();
}

const HEX = /^[0-9A-Fa-f]+$/;

/**
 * Constant-time check of `params.sign`. The sign type is the configured one, never guessed
 * from the notify: HMAC notifies often arrive without `sign_type` (WxJava#1585).
 */
export function verify(params: WxParamsIn, key: string, signType: SignType): boolean {
  const given = params['sign'];
  // An empty sign fails the length comparison below as well (equivalent mutant).
  // Stryker disable next-line ConditionalExpression: equivalent, see above.
  if (typeof given !== 'string' || given.length === 0) return false;
  const expected = digest(params, key, signType);
  // Hex in either letter case, compared as the bytes it stands for.
  if (given.length !== expected.length * 2 || !HEX.test(given)) return false;
  return timingSafeEqual(expected, Buffer.from(given, 'hex'));
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
